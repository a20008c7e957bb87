"""The neurons of the four neuron kinds (:data:`tasks.specs.NEURON_KINDS`) in Spyx.

Spyx 1.0 is built on Flax NNX: a neuron is an ``nnx.Module`` with
``initial_state(batch_size)`` and a one-step ``__call__(x, state) -> (out,
new_state)``, run over time by :func:`spyx.nn.run` (a ``jax.lax.scan``).  Its
spiking nonlinearities are the "axons" of :mod:`spyx.axn`: a Heaviside
forward ``[x > 0]`` (the specification's ``H``) with a surrogate backward;
``spyx.axn.custom(bwd, fwd)`` is the library's mechanism for a new one.

What the library computes and what is written here:

* ``soft`` (synthetic): :class:`spyx.nn.CuBaLIF` *is* the equation -- it
  subtracts the previous spike ``V_th S(V[t-1])`` (surrogate gradient kept),
  then ``V = beta V' + I`` with ``I = alpha I + x``; fed ``(1 - a_mem) x``
  its ``I`` is ``(1 - a_mem)`` times the specification's synaptic current, so
  ``V[t] = a_mem (V[t-1] - V_th S[t-1]) + (1 - a_mem) I[t]`` exactly.
* ``subtractive`` (fc_mnist): :class:`spyx.nn.LIF` computes
  ``U[t] = beta U[t-1] + X[t] - V_th H(U[t-1] - V_th)`` exactly; the
  specification detaches that reset, so the LIF is given a Heaviside axon
  with a zero surrogate (:data:`DETACHED`).
* ``hard`` (fc_mnist_poisson, lif_layer) and ``stbp`` (dsrn_tdbn): no Spyx
  neuron has a hard or multiplicative reset; :class:`HardResetLIF` and
  :class:`STBPNeuron` are written in Spyx's own neuron style (an
  ``nnx.Module`` with ``initial_state`` and ``(x, state) -> (out, state)``)
  around Spyx axons.

Every Spyx neuron returns the spike of the *previous* membrane (the one its
reset uses), one step behind the specification's ``S[t] = H(V[t] - V_th)``;
:class:`SpikeOfUpdate` runs the library neuron for the step and reads the
spike of the updated membrane with the same kind of axon.

Every module here returns ``((spikes, membrane), new_state)`` per step, the
membrane being the potential compared with the threshold at that step, before
the reset its spike causes (what :mod:`tasks.reference` records).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import spyx
from flax import nnx

Axon = Callable[[jax.Array], jax.Array]

# ----------------------------------------------------------------- surrogates (spyx.axn)
# A Heaviside whose surrogate is zero: the reset of fc_mnist, "computed without gradient".
DETACHED: Axon = spyx.axn.custom(bwd=jnp.zeros_like, fwd=spyx.axn.heaviside)


def triangle(alpha: float, width: float, v_th: float) -> Axon:
    """synthetic: S = H(u / V_th), h(x) = alpha max(0, width - |x|), so dS/du = h(u / V_th) / V_th.

    Custom, because ``spyx.axn.triangular(k)`` is ``max(0, 1 - |k x|)``: height 1,
    the specification's is 0.3.
    """
    alpha, width, v_th = float(alpha), float(width), float(v_th)

    def bwd(u):
        return alpha * jnp.maximum(0.0, width - jnp.abs(u / v_th)) / v_th

    return spyx.axn.custom(bwd=bwd, fwd=spyx.axn.heaviside)


def arctan(alpha: float) -> Axon:
    """fc_mnist: h(x) = (alpha/2) / (1 + (pi alpha x / 2)^2) (snnTorch's atan; 1/(1 + (pi x)^2) at alpha 2).

    Custom, because ``spyx.axn.arctan(k)`` is ``1 / (pi (1 + (k pi x)^2))``: no
    ``k`` gives the specification's (``k = 1`` has its shape at 1/pi of its height).
    """
    half = float(alpha) / 2.0

    def bwd(u):
        return half / (1.0 + (math.pi * half * u) ** 2)

    return spyx.axn.custom(bwd=bwd, fwd=spyx.axn.heaviside)


def sigmoid(alpha: float) -> Axon:
    """fc_mnist_poisson, lif_layer: h(x) = alpha s(alpha x) (1 - s(alpha x)).

    At the specification's alpha = 4 that is ``1 / cosh^2(2x)``, which is
    Spyx's own ``spyx.axn.tanh(k=2)`` (``4 / (e^-2x + e^2x)^2``): the library
    axon is used; any other alpha falls back to a custom axon of the formula.
    """
    alpha = float(alpha)
    if alpha == 4.0:
        return spyx.axn.tanh(k=2.0)

    def bwd(u):
        s = jax.nn.sigmoid(alpha * u)
        return alpha * s * (1.0 - s)

    return spyx.axn.custom(bwd=bwd, fwd=spyx.axn.heaviside)


def rectangle(a: float, offset: float) -> Axon:
    """dsrn_tdbn: h = 1/(2a) where |u - offset| < a (open window), u = U - V_th.

    ``offset = 0`` (the window on the threshold) is Spyx's own
    ``spyx.axn.boxcar(width=2a, height=1/(2a))``; ``offset = -V_th`` (the
    published code's window on U = 0, ``--surrogate-center zero``) cannot be
    expressed by the boxcar, which is centred on zero: a custom axon.
    """
    a, offset = float(a), float(offset)
    if offset == 0.0:
        return spyx.axn.boxcar(width=2.0 * a, height=1.0 / (2.0 * a))

    def bwd(u):
        return (jnp.abs(u - offset) < a).astype(u.dtype) * (1.0 / (2.0 * a))

    return spyx.axn.custom(bwd=bwd, fwd=spyx.axn.heaviside)


def _typed(value: float, dtype) -> np.ndarray:
    """A NumPy scalar of ``dtype``: Spyx stores a given decay as ``jnp.full((), value)``,
    which then keeps the backend's dtype whatever JAX's x64 flag says."""
    return np.asarray(value, dtype=dtype)


# ----------------------------------------------------------------- neurons
class SpikeOfUpdate(nnx.Module):
    """A Spyx neuron whose spike is read from the membrane it has just updated.

    One step: the library neuron updates its state (its own reset, with its
    own axon); the spike is ``spike(V[t] - V_th)`` of the new membrane
    ``V[t]`` (the first half of a CuBaLIF's ``[V, I]`` state).  ``gain``
    scales the input first.
    """

    def __init__(self, neuron: nnx.Module, spike: Axon, threshold: float, dtype, *, gain: float = 1.0,
                 synaptic: bool = False):
        self.neuron = neuron
        self.spike = spike
        self.threshold = float(threshold)
        self.gain = float(gain)
        self.synaptic = synaptic
        self.dtype = np.dtype(dtype)

    def initial_state(self, batch_size: int):
        # the library's own state shape, in the backend's dtype
        return self.neuron.initial_state(batch_size).astype(self.dtype)

    def membrane(self, state):
        return jnp.split(state, 2, axis=-1)[0] if self.synaptic else state

    def __call__(self, x, state):
        if self.gain != 1.0:
            x = self.gain * x
        _, state = self.neuron(x, state)
        v = self.membrane(state)
        return (self.spike(v - self.threshold), v), state


class _TauNeuron(nnx.Module):
    """A neuron of one decay constant ``tau`` and threshold, its spike through ``spike``."""

    def __init__(self, hidden_shape: tuple[int, ...], tau: float, threshold: float, spike: Axon, dtype):
        self.hidden_shape = tuple(hidden_shape)
        self.tau = float(tau)
        self.threshold = float(threshold)
        self.spike = spike
        self.dtype = np.dtype(dtype)


class HardResetLIF(_TauNeuron):
    """fc_mnist_poisson, lif_layer: H = V + (X - V) / tau; S = H(H - V_th); V = H (1 - S).

    The reset keeps the spike's surrogate gradient and the gradient through
    H (SpikingJelly's default).  State: the reset membrane V; recorded: H.
    """

    def initial_state(self, batch_size: int):
        return jnp.zeros((batch_size,) + self.hidden_shape, self.dtype)

    def __call__(self, x, V):
        H = V + (x - V) / self.tau
        spikes = self.spike(H - self.threshold)
        return (spikes, H), H * (1.0 - spikes)


class STBPNeuron(_TauNeuron):
    """dsrn_tdbn: U[t] = tau U[t-1] (1 - S[t-1]) + X[t]; S = H(U - V_th); the reset keeps its gradient.

    State: ``(U, S)`` of the previous step; recorded: U[t].
    """

    def initial_state(self, batch_size: int):
        zeros = jnp.zeros((batch_size,) + self.hidden_shape, self.dtype)
        return zeros, zeros

    def __call__(self, x, state):
        U, S = state
        U = self.tau * U * (1.0 - S) + x
        spikes = self.spike(U - self.threshold)
        return (spikes, U), (U, spikes)


# ----------------------------------------------------------------- the kinds
def _rngs() -> nnx.Rngs:
    # Spyx's parametric neurons take rngs for their default (random) decays;
    # every decay is given here, so it is never drawn.
    return nnx.Rngs(0)


def soft(shape, params, dtype, synapse: float | None = None) -> nnx.Module:
    """synthetic: spyx.nn.CuBaLIF(alpha = a_syn, beta = a_mem), fed (1 - a_mem) x."""
    a_mem, v_th, alpha, width = params
    spike = triangle(alpha, width, v_th)
    cuba = spyx.nn.CuBaLIF(tuple(shape), alpha=_typed(synapse or 0.0, dtype), beta=_typed(a_mem, dtype),
                           threshold=float(v_th), activation=spike, rngs=_rngs())
    return SpikeOfUpdate(cuba, spike, v_th, dtype, gain=1.0 - a_mem, synaptic=True)


def subtractive(shape, params, dtype, synapse: float | None = None) -> nnx.Module:
    """fc_mnist: spyx.nn.LIF(beta) with a detached reset; the spike of U[t] with the arctan axon."""
    _no_synapse("subtractive", synapse)
    beta, v_th, alpha = params
    lif = spyx.nn.LIF(tuple(shape), beta=_typed(beta, dtype), threshold=float(v_th), activation=DETACHED,
                      rngs=_rngs())
    return SpikeOfUpdate(lif, arctan(alpha), v_th, dtype)


def hard(shape, params, dtype, synapse: float | None = None) -> nnx.Module:
    _no_synapse("hard", synapse)
    tau, v_th, alpha = params
    return HardResetLIF(tuple(shape), tau, v_th, sigmoid(alpha), dtype)


def stbp(shape, params, dtype, synapse: float | None = None) -> nnx.Module:
    _no_synapse("stbp", synapse)
    tau, v_th, a, offset = params
    return STBPNeuron(tuple(shape), tau, v_th, rectangle(a, offset), dtype)


def _no_synapse(kind: str, synapse: float | None) -> None:
    if synapse is not None:
        raise ValueError(f"the {kind} neuron has no synaptic current in any task")


# neuron kind -> factory(shape, spec.neuron_params(), dtype, synapse decay or None)
NEURONS: dict[str, Callable[..., nnx.Module]] = {
    "soft": soft,
    "subtractive": subtractive,
    "hard": hard,
    "stbp": stbp,
}


def run(neuron: nnx.Module, inputs: Any, dtype) -> tuple[Any, Any]:
    """``neuron`` over the time-major ``inputs`` with :func:`spyx.nn.run`, from its
    zero state; returns (spikes, membranes), both ``[T, B, ...]``."""
    inputs = inputs.astype(dtype)
    (spikes, membranes), _ = spyx.nn.run(neuron, inputs, state=neuron.initial_state(inputs.shape[1]))
    return spikes, membranes

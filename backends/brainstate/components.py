"""The pieces the four networks are built from.

Library pieces are used as they are wherever they compute the equations of
the task specification (``brainpy.state.LIF`` and ``brainpy.state.Expon`` for
``synthetic``, ``brainstate.nn.Linear`` / ``brainstate.nn.Conv2d`` for every
synapse, braintools' surrogate gradients).  What the libraries do not have is
written here through their extension points, as small as possible:

* surrogates: subclasses of ``braintools.surrogate.Surrogate`` (or of the
  library's own surrogate class) whose forward is the specification's
  Heaviside ``H(x) = [x > 0]`` (braintools' primitive fires at ``x >= 0``);
  the rectangular STBP window is a new ``Surrogate`` subclass;
* neurons: subclasses of ``brainpy.state.Neuron`` for the three neurons whose
  update no brainpy.state model computes;
* tdBN: a ``brainstate.nn.Module`` (brainstate's BatchNorm has no
  ``alpha * V_th`` scale and keeps the biased variance as running variance);
* bf16 synapses: ``Linear`` / ``Conv2d`` subclasses that run the product on
  bfloat16 operands when the precision policy asks for it (the library's own
  ``update`` otherwise).

Every neuron works on a time step; the networks loop over time with
``brainstate.transform.for_loop``.  The membrane a neuron exposes through
``membrane()`` is the potential compared with the threshold at that step,
before the reset its spike causes (what :mod:`tasks.reference` records).
"""

from __future__ import annotations

from typing import Any

import braintools
import brainstate
import jax
import jax.numpy as jnp
import numpy as np

import brainpy.state as bps

from ..jax_common import TdBNMath


# ----------------------------------------------------------------- helpers
def constant(value: float, dtype: Any):
    """A braintools initializer of ``value`` with an explicit dtype.

    braintools' ``Constant`` takes its dtype from the value, so a typed NumPy
    scalar keeps neuron state in the backend's dtype whatever JAX's x64 flag
    says.
    """
    return braintools.init.Constant(np.asarray(value, dtype=dtype))


def scalar(value: float, dtype: Any) -> np.ndarray:
    return np.asarray(value, dtype=dtype)


# ----------------------------------------------------------------- surrogates
class _StrictHeaviside:
    """Forward ``H(x) = [x > 0]`` as in the specification.

    braintools' Heaviside primitive returns 1 at ``x == 0``; this subtracts
    that single point (without gradient), so the surrogate gradient is the
    library's own ``surrogate_grad`` unchanged.
    """

    def __call__(self, x):
        spike = super().__call__(x)
        return spike - jax.lax.stop_gradient((x == 0).astype(spike.dtype))


class ReluGradSpike(_StrictHeaviside, braintools.surrogate.ReluGrad):
    """synthetic: h(x) = alpha * max(0, width - |x|) (braintools' ReluGrad)."""


class ArctanSpike(_StrictHeaviside, braintools.surrogate.Arctan):
    """fc_mnist: h(x) = (alpha/2) / (1 + (pi alpha x / 2)^2) (braintools' Arctan)."""


class SigmoidSpike(_StrictHeaviside, braintools.surrogate.Sigmoid):
    """fc_mnist_poisson: h(x) = alpha s(alpha x)(1 - s(alpha x)) (braintools' Sigmoid)."""


class RectangularSpike(_StrictHeaviside, braintools.surrogate.Surrogate):
    """dsrn_tdbn: h(x) = 1/(2a) where |x - center| < a (open window), else 0.

    ``x`` is ``U - V_th``; ``center = 0`` centres the window on the threshold,
    ``center = -V_th`` on ``U = 0`` (the STBP reference code).  braintools'
    nearest surrogate, ``PiecewiseLeakyRelu(c=0, w=a)``, has a closed window
    and cannot be shifted.
    """

    def __init__(self, a: float, center: float = 0.0):
        super().__init__()
        self.a = float(a)
        self.center = float(center)

    def surrogate_grad(self, x):
        inside = (jnp.abs(x - self.center) < self.a).astype(x.dtype)
        return inside * (1.0 / (2.0 * self.a))

    def __repr__(self):
        return f"{self.__class__.__name__}(a={self.a}, center={self.center})"

    def __hash__(self):
        return hash((self.__class__, self.a, self.center))


# ----------------------------------------------------------------- neurons
class _ZeroStateNeuron(bps.Neuron):
    """A brainpy.state neuron whose hidden states start at zero in ``dtype``."""

    state_names: tuple[str, ...] = ("V",)

    def __init__(self, in_size, spk_fun, dtype, name=None):
        super().__init__(in_size, spk_fun=spk_fun, spk_reset="soft", name=name)
        self.dtype = dtype

    def init_state(self, batch_size: int | None = None, **kwargs):
        for key in self.state_names:
            value = braintools.init.param(constant(0.0, self.dtype), self.varshape, batch_size)
            setattr(self, key, brainstate.HiddenState(value))

    def reset_state(self, batch_size: int | None = None, **kwargs):
        for key in self.state_names:
            getattr(self, key).value = braintools.init.param(constant(0.0, self.dtype), self.varshape, batch_size)

    def membrane(self):
        return self.V.value


class SubtractiveResetLeaky(_ZeroStateNeuron):
    """fc_mnist: R = H(V[t-1] - V_th) (no gradient); V = beta V[t-1] + X - V_th R; S = H(V - V_th).

    brainpy.state's LIF resets before the leak (``beta (V - V_th S)``) and
    keeps the reset's gradient; snnTorch's Leaky (the task's source) subtracts
    after the leak and detaches it.
    """

    def __init__(self, in_size, beta: float, v_th: float, spk_fun, dtype, name=None):
        super().__init__(in_size, spk_fun, dtype, name=name)
        self.beta = scalar(beta, dtype)
        self.V_th = scalar(v_th, dtype)

    def get_spike(self, V=None):
        V = self.V.value if V is None else V
        return self.spk_fun(V - self.V_th)

    def update(self, x):
        last = self.V.value
        reset = (last > self.V_th).astype(last.dtype)  # a comparison: no gradient
        V = self.beta * last + x - self.V_th * reset
        self.V.value = V
        return self.get_spike(V)


class DecayInputHardResetLIF(_ZeroStateNeuron):
    """fc_mnist_poisson: H = V + (X - V)/tau; S = H(H - V_th); V = H (1 - S), gradient through S.

    brainpy.state's LIF integrates with exponential Euler and its hard reset
    multiplies the spike by a detached membrane.  ``V`` holds the reset
    membrane, ``H`` the charged one (the recorded membrane).
    """

    state_names = ("V", "H")

    def __init__(self, in_size, tau: float, v_th: float, spk_fun, dtype, name=None):
        super().__init__(in_size, spk_fun, dtype, name=name)
        self.tau = scalar(tau, dtype)
        self.V_th = scalar(v_th, dtype)

    def get_spike(self, H=None):
        H = self.H.value if H is None else H
        return self.spk_fun(H - self.V_th)

    def update(self, x):
        v = self.V.value
        h = v + (x - v) / self.tau
        spike = self.get_spike(h)
        self.H.value = h
        self.V.value = h * (1.0 - spike)
        return spike

    def membrane(self):
        return self.H.value


class STBPNeuron(_ZeroStateNeuron):
    """dsrn_tdbn: U[t] = tau U[t-1] (1 - S[t-1]) + X[t]; S = H(U - V_th); reset keeps its gradient."""

    state_names = ("V", "S")

    def __init__(self, in_size, tau: float, v_th: float, spk_fun, dtype, name=None):
        super().__init__(in_size, spk_fun, dtype, name=name)
        self.tau = scalar(tau, dtype)
        self.V_th = scalar(v_th, dtype)

    def get_spike(self, V=None):
        V = self.V.value if V is None else V
        return self.spk_fun(V - self.V_th)

    def update(self, x):
        V = self.tau * self.V.value * (1.0 - self.S.value) + x
        spike = self.get_spike(V)
        self.V.value = V
        self.S.value = spike
        return spike


def soft_reset_lif(n: int, tau: float, v_th: float, spk_fun, dtype):
    """synthetic: brainpy.state's LIF (soft reset, exponential Euler), dimensionless.

    Its update is ``V = V[t-1] - V_th S(V[t-1])`` (the previous spike recomputed
    from the previous membrane, surrogate gradient kept), then the exact
    exponential-Euler step of ``tau dV/dt = -V + R I``: ``a V + (1 - a) I``.
    """
    return bps.LIF(
        n,
        R=scalar(1.0, dtype),
        tau=scalar(tau, dtype),
        V_th=scalar(v_th, dtype),
        V_reset=scalar(0.0, dtype),
        V_rest=scalar(0.0, dtype),
        V_initializer=constant(0.0, dtype),
        spk_fun=spk_fun,
        spk_reset="soft",
    )


def exponential_synapse(n: int, tau: float, dtype):
    """brainpy.state's Expon: g = a g[t-1] + x (exponential Euler of dg/dt = -g/tau)."""
    return bps.Expon(n, tau=scalar(tau, dtype), g_initializer=constant(0.0, dtype))


# ----------------------------------------------------------------- synapses
class Linear(brainstate.nn.Linear):
    """brainstate's Linear; with ``compute_dtype`` set (bf16 policy) the product
    runs on operands of that dtype and the result is cast back to ``out_dtype``."""

    compute_dtype = None
    out_dtype = None

    def update(self, x):
        if self.compute_dtype is None:
            return super().update(x)
        params = self.weight.value
        y = jnp.dot(x.astype(self.compute_dtype), params["weight"].astype(self.compute_dtype))
        y = y.astype(self.out_dtype)
        if "bias" in params:
            y = y + params["bias"]
        return y


class Conv2d(brainstate.nn.Conv2d):
    """brainstate's Conv2d (channels-last, kernel ``[kh, kw, in, out]``, no bias);
    with ``compute_dtype`` set the convolution runs on operands of that dtype."""

    compute_dtype = None
    out_dtype = None

    def update(self, x):
        if self.compute_dtype is None:
            return super().update(x)
        w = self.weight.value["weight"].astype(self.compute_dtype)
        y = jax.lax.conv_general_dilated(
            x.astype(self.compute_dtype),
            w,
            window_strides=self.stride,
            padding=self.padding,
            dimension_numbers=self.dimension_numbers,
        )
        return y.astype(self.out_dtype)


# ----------------------------------------------------------------- tdBN
class TdBN(brainstate.nn.Module, TdBNMath):
    """Threshold-dependent batch norm of a channels-last ``[T, B, H, W, C]`` input
    (the arithmetic: :class:`backends.jax_common.TdBNMath`).

    ``y = lambda * alpha * V_th * (x - mean) / sqrt(var + eps) + beta`` with the
    mean and biased variance over (T, B, H, W); the running statistics move
    with ``momentum`` towards the batch mean and the *unbiased* variance.
    ``lambda`` and ``beta`` are one ``ParamState`` (``{"weight", "bias"}``, as
    brainstate's own layers store them); the running statistics are
    ``BatchState``.
    """

    def __init__(self, channels: int, alpha: float, v_th: float, eps: float, momentum: float, dtype, name=None):
        super().__init__(name=name)
        self.scale = float(alpha) * float(v_th)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.dtype = dtype
        self.weight = brainstate.ParamState(
            {"weight": jnp.ones((channels,), dtype), "bias": jnp.zeros((channels,), dtype)}
        )
        self.running_mean = brainstate.BatchState(jnp.zeros((channels,), dtype))
        self.running_var = brainstate.BatchState(jnp.ones((channels,), dtype))

    def _affine(self):
        params = self.weight.value
        return params["weight"], params["bias"]

    def _running(self):
        return self.running_mean.value, self.running_var.value

    def _set_running(self, mean, var) -> None:
        self.running_mean.value = mean
        self.running_var.value = var

    def update(self, x, batch_statistics: bool = True, update_running: bool = False):
        return self.normalise(x, batch_statistics, update_running)

"""snnTorch neurons as the four tasks use them, and the surrogates snnTorch lacks.

Every neuron here *is* an snnTorch neuron (``snn.Leaky`` or ``snn.Synaptic``);
the subclasses add only glue for a benchmark:

* ``fire`` keeps a reference to the membrane snnTorch compares with the
  threshold (the membrane the task records: before the reset caused by the
  spike at t, which is not what ``forward`` returns when ``reset_delay=False``);
* the reset mechanism is stored as a Python int instead of a tensor buffer:
  ``forward`` branches on ``reset_mechanism_val == 0`` at every step when
  ``reset_delay=False``, which on a CUDA buffer is a host synchronisation per
  neuron per step;
* the neuron is taken off snnTorch's global ``SpikingNeuron.instances`` list
  (used only for ``init_hidden=True`` bookkeeping, which is not used here), so
  closed backends do not stay alive through it;
* :func:`run` drives a neuron over time from zero state, passing the state
  explicitly at every step, and clears the state the module keeps afterwards.

Where snnTorch itself would compute something else than the task's
equations, the smallest override is made and its docstring says why:
:class:`SoftResetSynaptic` (a second reset snnTorch applies above 2 V_th),
:class:`Sigmoid` (NaN gradients in float32 far below the threshold), and the
spikes' dtype in float64 (:func:`_in_input_dtype`).  snnTorch lacks the
triangle and rectangular surrogates: they are written with its custom
surrogate.
"""

from __future__ import annotations

import snntorch as snn
import torch
from snntorch import surrogate


# ----------------------------------------------------------------- surrogates
def _in_input_dtype(base: type) -> type:
    """snnTorch surrogate ``base`` with its spikes in the input's dtype.

    snnTorch's surrogates return ``(input_ > 0).float()``: float32 spikes.  In
    float64 that rounds every gradient flowing back into a spike to float32
    (relative error 6e-8 per step, enough to flip a spike after a few float64
    training steps); in float32 the cast below returns the very same tensor.
    The backward pass is snnTorch's, unchanged.
    """

    class Spike(base):
        @staticmethod
        def forward(ctx, input_, *args):
            out = base.forward(ctx, input_, *args)
            return out if out.dtype == input_.dtype else out.to(input_.dtype)

    Spike.__name__ = Spike.__qualname__ = base.__name__
    return Spike


ATan = _in_input_dtype(surrogate.ATan)
CustomSurrogate = _in_input_dtype(surrogate.CustomSurrogate)


class Sigmoid(_in_input_dtype(surrogate.Sigmoid)):
    """snnTorch's sigmoid surrogate with its derivative evaluated without overflow.

    snnTorch computes ``slope e^(-slope x) / (e^(-slope x) + 1)^2``: in float32
    e^(-slope x) overflows once slope * x < -88 (x < -22 at slope 4) and the
    gradient becomes inf / inf = NaN, where the true value is ~0.  Hidden
    membranes of fc_mnist_poisson go far below that in training, and with the
    stock formula a NaN gradient turns a neuron's weights NaN (it then never
    fires again), one neuron after another.  The same
    function, written slope sigmoid(z) sigmoid(-z) with z = slope x, never
    overflows (and, unlike s (1 - s), keeps full relative precision for
    large positive x).  Forward (and what it saves) is snnTorch's.
    """

    @staticmethod
    def backward(ctx, grad_output):
        (input_,) = ctx.saved_tensors
        z = ctx.slope * input_
        return grad_output * ctx.slope * (torch.sigmoid(z) * torch.sigmoid(-z)), None


def atan(alpha: float):
    """snnTorch's ``surrogate.atan(alpha)``: h(x) = (alpha/2) / (1 + (pi alpha x / 2)^2)."""
    return lambda x: ATan.apply(x, alpha)


def sigmoid(slope: float):
    """snnTorch's ``surrogate.sigmoid(slope)``: h(x) = slope s(slope x)(1 - s(slope x)),
    s the logistic function (see :class:`Sigmoid` for the overflow-free backward)."""
    return lambda x: Sigmoid.apply(x, slope)


def custom_surrogate(gradient):
    """snnTorch's ``surrogate.custom_surrogate(gradient)``."""
    return lambda x: CustomSurrogate.apply(x, gradient)


def triangle(alpha: float, width: float, v_th: float):
    """synthetic: S = H((V - V_th) / V_th) with h(x) = alpha * max(0, width - |x|).

    snnTorch's ``triangular`` is a different function (a constant +-threshold),
    so this is written with snnTorch's custom surrogate.  snnTorch hands the
    surrogate ``V - V_th``; the chain rule through x = (V - V_th) / V_th adds
    the factor 1 / V_th.
    """

    def gradient(input_: torch.Tensor, grad_input: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
        x = input_ / v_th
        return grad_input * alpha * torch.clamp(width - x.abs(), min=0.0) / v_th

    return custom_surrogate(gradient)


def rectangular(a: float, center: float):
    """dsrn_tdbn: h = 1 / (2a) where |(U - V_th) - center| < a, else 0.

    ``center`` is 0 for a window centred on the threshold and -V_th for one
    centred on U = 0 (``--surrogate-center zero``).  snnTorch has no
    rectangular surrogate: written with snnTorch's custom surrogate.
    """

    def gradient(input_: torch.Tensor, grad_input: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
        window = ((input_ - center).abs() < a).to(grad_input.dtype)
        return grad_input * window / (2.0 * a)

    return custom_surrogate(gradient)


# ----------------------------------------------------------------- neurons
def constant(value: float) -> torch.Tensor:
    """A float64 constant: after ``module.to(dtype)`` it is exact in float64 and
    rounded once in float32 (``torch.as_tensor(0.95)`` would already be float32)."""
    return torch.tensor(value, dtype=torch.float64)


class _BenchNeuron:
    """Glue shared by the snnTorch neurons below (see the module docstring)."""

    compared: torch.Tensor | None

    def _adapt(self) -> None:
        instances = snn.SpikingNeuron.instances
        for i in range(len(instances) - 1, -1, -1):
            if instances[i] is self:
                del instances[i]
                break
        mechanism = int(self.reset_mechanism_val)
        del self._buffers["reset_mechanism_val"]
        self.reset_mechanism_val = mechanism
        self.compared = None

    def fire(self, mem: torch.Tensor) -> torch.Tensor:
        self.compared = mem
        return super().fire(mem)  # type: ignore[misc]

    def clear_state(self) -> None:
        """Drop every tensor the module kept from the last time step."""
        for name in ("mem", "syn"):
            if name in self._buffers:
                self._buffers[name] = self._buffers[name].new_zeros(0)
        self.reset = None
        self.compared = None


class Leaky(_BenchNeuron, snn.Leaky):
    """``snn.Leaky``: U[t] = beta U[t-1] + X[t] (- reset), S = H(U - threshold)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._adapt()

    def zero_state(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def step(self, x: torch.Tensor, state: torch.Tensor):
        spk, mem = self(x, state)
        return spk, mem


class Synaptic(_BenchNeuron, snn.Synaptic):
    """``snn.Synaptic``: I[t] = alpha I[t-1] + X[t]; U[t] = beta U[t-1] + I[t] (- reset)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._adapt()

    def zero_state(self, x: torch.Tensor):
        return torch.zeros_like(x), torch.zeros_like(x)

    def step(self, x: torch.Tensor, state):
        spk, syn, mem = self(x, *state)
        return spk, (syn, mem)


class SoftResetSynaptic(Synaptic):
    """``snn.Synaptic`` with ``reset_mechanism="subtract"``, ``reset_delay=False``
    and snnTorch's delayed-reset detection switched off.

    With ``reset_delay=False`` snnTorch subtracts V_th S[t] (S with its
    surrogate gradient) from the membrane right after the spike, so the stored
    state is V[t] - V_th S[t] and the next step computes
    ``a_m (V[t-1] - V_th S[t-1]) + input`` -- the synthetic task's soft reset,
    gradient through S[t-1] included.  But snnTorch also computes, at every
    step, the delayed reset ``R = H(stored - V_th)`` (detached) from the stored
    membrane, subtracts ``V_th R`` in the update and then only ``V_th (S - R)``
    after the spike (its guard against resetting twice).  After a spike with
    V > 2 V_th the stored V - V_th is still above the threshold, so snnTorch
    would subtract a second V_th the task's equations do not have (measured in
    tests/test_backend_snntorch.py).  ``mem_reset`` returns 0 here, which
    leaves exactly the immediate reset; below 2 V_th nothing changes.
    """

    def mem_reset(self, mem: torch.Tensor) -> torch.Tensor:
        return mem.new_zeros(())


# ----------------------------------------------------------------- time loop
def run(
    neuron,
    inputs: torch.Tensor,
    record: bool,
    steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``neuron`` over time from zero state.

    ``inputs`` is ``[T, B, ...]``, or -- with ``steps`` given -- one ``[B, ...]``
    input fed at each of ``steps`` steps.  Returns the spikes ``[T, B, ...]`` (in
    the inputs' dtype: stock snnTorch spikes are float32) and, with ``record``,
    the membrane compared with the threshold at each step.
    """
    # unbind: one backward node for all steps (indexing inputs[t] would make
    # every step's backward write a zero-filled [T, B, ...] gradient).
    xs = (inputs,) * steps if steps is not None else inputs.unbind(0)
    state = neuron.zero_state(xs[0])
    spikes: list[torch.Tensor] = []
    membranes: list[torch.Tensor] | None = [] if record else None
    try:
        for x in xs:
            spk, state = neuron.step(x, state)
            spikes.append(spk)
            if membranes is not None:
                membranes.append(neuron.compared)
    finally:
        neuron.clear_state()
    out = torch.stack(spikes)
    if out.dtype != inputs.dtype:
        out = out.to(inputs.dtype)
    return out, (torch.stack(membranes) if membranes is not None else None)

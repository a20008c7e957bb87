"""The four task networks (and the single-layer benchmark) built from snnTorch neurons.

Module and parameter names are the shared weight names of
:mod:`tasks.weights` (neurons carry only constant buffers, no parameters).
Linear layers, convolutions and tdBN run once over all time steps (time
folded into the batch); each snnTorch neuron steps through time in
:func:`neurons.run`, layer after layer (no layer depends on a later one, so
running a whole layer over T before the next is the same computation as
snnTorch's tutorial loop over t with all layers inside).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tasks.specs import DSRNSpec, FCMnistSpec, FCPoissonSpec, LIFLayerSpec, SyntheticSpec, TaskSpec

from ..torch_common import NetworkOutput, Recorder, neuron_input
from . import neurons
from .neurons import Leaky, SoftResetSynaptic, constant


# ------------------------------------------------------------------ synthetic
class SyntheticNet(nn.Module):
    """100 -> 4 -> 2: exponential synapse + soft-reset LIF (snn.Synaptic), and a
    non-spiking exponential-synapse readout (snn.Leaky without reset).

    snn.Synaptic computes I' = a_s I' + X and V = a_m V + I'; the task's
    V = a_m (...) + (1 - a_m) I is that with X = (1 - a_m)(W1 x + b1), so the
    synaptic current snnTorch keeps is (1 - a_m) I.
    """

    def __init__(self, spec: SyntheticSpec):
        super().__init__()
        self.spec = spec
        self.fc1 = nn.Linear(spec.n_in, spec.n_hidden)
        self.readout = nn.Linear(spec.n_hidden, spec.n_classes)
        self.lif = SoftResetSynaptic(
            alpha=constant(spec.a_syn),
            beta=constant(spec.a_mem),
            threshold=constant(spec.v_th),
            spike_grad=neurons.triangle(spec.surrogate_alpha, spec.surrogate_width, spec.v_th),
            reset_mechanism="subtract",
            reset_delay=False,
        )
        # O[t] = a_s O[t-1] + W2 S[t] + b2: a leaky integrator that never resets;
        # its spikes are not used (surrogate_disable skips the autograd function).
        self.readout_filter = Leaky(
            beta=constant(spec.a_syn), reset_mechanism="none", surrogate_disable=True
        )
        self.input_scale = 1.0 - spec.a_mem

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        spec, rec = self.spec, Recorder(record)
        steps = spec.T if static else None
        current = neuron_input(self.fc1(x)) * self.input_scale
        s = rec("hidden", neurons.run(self.lif, current, record, steps))
        _, readout = neurons.run(self.readout_filter, neuron_input(self.readout(s)), record=True)
        return rec.output(readout)


# ------------------------------------------------------------------ fc tasks
def decay_input_hard_reset_leaky(tau: float, v_th: float, surrogate_alpha: float) -> Leaky:
    """fc_mnist_poisson's neuron (and lif_layer's) as ``snn.Leaky``: H = (1 - 1/tau) V + X / tau
    (fed X / tau), zero reset right after the spike with its surrogate gradient."""
    return Leaky(
        beta=constant(1.0 - 1.0 / tau),
        threshold=constant(v_th),
        spike_grad=neurons.sigmoid(surrogate_alpha),
        reset_mechanism="zero",
        reset_delay=False,
    )


class FCNet(nn.Module):
    """Two fully connected layers of snn.Leaky.

    fc_mnist (snnTorch tutorial 5): ``snn.Leaky(beta=0.95,
    spike_grad=surrogate.atan(alpha=2))`` -- subtractive reset, computed from
    the previous step's membrane and detached (``reset_delay=True``).

    fc_mnist_poisson: H = V + (X - V) / tau = (1 - 1/tau) V + X / tau, so
    ``snn.Leaky(beta=1 - 1/tau, reset_mechanism="zero", reset_delay=False,
    spike_grad=surrogate.sigmoid(slope=4))`` fed X / tau: the reset to zero is
    applied right after the spike with the spike's surrogate gradient,
    V = H (1 - S).
    """

    def __init__(self, spec: FCMnistSpec | FCPoissonSpec):
        super().__init__()
        self.spec = spec
        mnist = isinstance(spec, FCMnistSpec)
        self.fc1 = nn.Linear(spec.n_in, spec.n_hidden, bias=mnist)
        self.fc2 = nn.Linear(spec.n_hidden, spec.n_classes, bias=mnist)
        if mnist:
            make = lambda: Leaky(  # noqa: E731
                beta=constant(spec.beta),
                threshold=constant(spec.v_th),
                spike_grad=neurons.atan(spec.surrogate_alpha),
            )
            self.input_scale = None
        else:
            make = lambda: decay_input_hard_reset_leaky(spec.tau, spec.v_th, spec.surrogate_alpha)  # noqa: E731
            self.input_scale = 1.0 / spec.tau
        self.lif1 = make()
        self.lif2 = make()

    def current(self, x: torch.Tensor) -> torch.Tensor:
        x = neuron_input(x)
        return x if self.input_scale is None else x * self.input_scale

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        rec = Recorder(record)
        # A static image gives the same W x + b at every step: computed once.
        steps = self.spec.T if static else None
        s1 = rec("lif1", neurons.run(self.lif1, self.current(self.fc1(x)), record, steps))
        # The output membrane is fc_mnist's readout, so it is always kept.
        s2, u2 = neurons.run(self.lif2, self.current(self.fc2(s1)), record=True)
        rec("lif2", (s2, u2))
        return rec.output(u2 if isinstance(self.spec, FCMnistSpec) else s2)


# ------------------------------------------------------------------ lif_layer
class LIFLayerNet(nn.Module):
    """lif_layer: Linear(N, N) without bias, then one layer of fc_mnist_poisson's
    neuron (``snn.Leaky(beta=1 - 1/tau, reset_mechanism="zero", reset_delay=False)``
    fed X / tau, the sigmoid surrogate of :class:`neurons.Sigmoid`)."""

    def __init__(self, spec: LIFLayerSpec):
        super().__init__()
        self.spec = spec
        self.fc = nn.Linear(spec.neurons, spec.neurons, bias=False)
        self.lif = decay_input_hard_reset_leaky(spec.tau, spec.v_th, spec.surrogate_alpha)
        self.input_scale = 1.0 / spec.tau

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        rec = Recorder(record)
        steps = self.spec.T if static else None
        s = rec("lif", neurons.run(self.lif, neuron_input(self.fc(x)) * self.input_scale, record, steps))
        return rec.output(s)


# ------------------------------------------------------------------ dsrn_tdbn
class TdBN(nn.Module):
    """Threshold-dependent batch norm (custom: snnTorch has none).

    Input ``[T*B, C, H, W]`` (time folded into the batch), so the statistics
    PyTorch's batch norm takes over (N, H, W) are tdBN's over (T, B, H, W):
    y = lambda alpha V_th (x - mean) / sqrt(var + eps) + beta, i.e. batch norm
    with weight lambda * alpha * V_th.  Running statistics: momentum, unbiased
    variance, as in PyTorch.  Always computed in float32 at least.
    """

    def __init__(self, channels: int, alpha: float, v_th: float, eps: float, momentum: float):
        super().__init__()
        self.scale, self.eps, self.momentum = alpha * v_th, eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            neuron_input(x), self.running_mean, self.running_var, self.weight * self.scale, self.bias,
            self.training, self.momentum, self.eps,
        )


def stbp_neuron(spec: DSRNSpec) -> Leaky:
    """STBP neuron U[t] = tau U[t-1] (1 - S[t-1]) + X[t] as ``snn.Leaky``.

    ``reset_mechanism="zero"`` with ``reset_delay=False`` stores U (1 - S) right
    after the spike, with S's surrogate gradient (the reference does not detach
    the reset); snnTorch's delayed reset H(stored - V_th) is then always 0,
    because the stored membrane is 0 after a spike and at most V_th without one.
    """
    center = 0.0 if spec.surrogate_center == "threshold" else -spec.v_th
    return Leaky(
        beta=constant(spec.tau),
        threshold=constant(spec.v_th),
        spike_grad=neurons.rectangular(spec.surrogate_a, center),
        reset_mechanism="zero",
        reset_delay=False,
    )


class ConvBN(nn.Module):
    """Convolution (no bias) on time-folded input, then tdBN."""

    def __init__(self, spec: DSRNSpec, c_in: int, c_out: int, kernel: int, stride: int, alpha: float):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = TdBN(c_out, alpha, spec.v_th, spec.bn_eps, spec.bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    def __init__(self, spec: DSRNSpec, c_in: int, c_out: int, stride: int, name: str):
        super().__init__()
        self.name = name
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = TdBN(c_out, 1.0, spec.v_th, spec.bn_eps, spec.bn_momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = TdBN(c_out, spec.block_alpha, spec.v_th, spec.bn_eps, spec.bn_momentum)
        self.shortcut = (
            ConvBN(spec, c_in, c_out, 1, stride, spec.block_alpha) if stride != 1 or c_in != c_out else None
        )
        self.lif1 = stbp_neuron(spec)
        self.lif2 = stbp_neuron(spec)

    def forward(self, s: torch.Tensor, rec: Recorder) -> torch.Tensor:
        T, B = s.shape[:2]
        flat = s.flatten(0, 1)
        h = self.bn1(self.conv1(flat)).unflatten(0, (T, B))
        h = rec(f"{self.name}.lif1", neurons.run(self.lif1, h, rec.record))
        out = self.bn2(self.conv2(h.flatten(0, 1)))
        out = out + (self.shortcut(flat) if self.shortcut is not None else flat)
        return rec(f"{self.name}.lif2", neurons.run(self.lif2, out.unflatten(0, (T, B)), rec.record))


class DSRN(nn.Module):
    """19-spiking-layer residual network with tdBN (STBP-tdBN), snn.Leaky neurons."""

    def __init__(self, spec: DSRNSpec):
        super().__init__()
        self.spec = spec
        self.stem = ConvBN(spec, 1, spec.channels(spec.stem_channels), 3, 1, 1.0)
        self.stem.lif = stbp_neuron(spec)
        blocks = spec.blocks()
        for stage in range(1, len(spec.stages) + 1):
            members = [b for b in blocks if b.prefix.startswith(f"layer{stage}.")]
            setattr(self, f"layer{stage}", nn.ModuleList(
                BasicBlock(spec, b.in_channels, b.out_channels, b.stride, b.prefix) for b in members))
        self.fc1 = nn.Linear(spec.final_channels, spec.hidden_units)
        self.fc2 = nn.Linear(spec.hidden_units, spec.n_classes)
        self.fc1_lif = stbp_neuron(spec)
        self.fc2_lif = stbp_neuron(spec)

    def forward(self, x: torch.Tensor, static: bool = True, record: bool = False) -> NetworkOutput:
        spec, rec = self.spec, Recorder(record)
        T = spec.T
        if static:
            # The same image at every step: convolve it once, then give tdBN
            # all T copies (its statistics and the unbiased running variance
            # are over T * B * H * W values).
            y = self.stem.conv(x)
            B = y.shape[0]
            y = y.unsqueeze(0).expand((T,) + tuple(y.shape)).flatten(0, 1)
        else:
            B = x.shape[1]
            y = self.stem.conv(x.flatten(0, 1))
        y = self.stem.bn(y).unflatten(0, (T, B))
        s = rec("stem.lif", neurons.run(self.stem.lif, y, record))
        for stage in range(1, len(spec.stages) + 1):
            for block in getattr(self, f"layer{stage}"):
                s = block(s, rec)
        pooled = s.mean(dim=(3, 4))
        h = rec("fc1.lif", neurons.run(self.fc1_lif, neuron_input(self.fc1(pooled)), record))
        readout = rec("fc2.lif", neurons.run(self.fc2_lif, neuron_input(self.fc2(h)), record))
        return rec.output(readout)


def build_network(spec: TaskSpec) -> nn.Module:
    if isinstance(spec, SyntheticSpec):
        return SyntheticNet(spec)
    if isinstance(spec, (FCMnistSpec, FCPoissonSpec)):
        return FCNet(spec)
    if isinstance(spec, DSRNSpec):
        return DSRN(spec)
    if isinstance(spec, LIFLayerSpec):
        return LIFLayerNet(spec)
    raise TypeError(f"snntorch has no network for {type(spec).__name__}")

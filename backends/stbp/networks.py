"""The four task networks in plain PyTorch.

Module and parameter names are the shared weight names of
:mod:`tasks.weights`, so loading the shared weights is a plain copy.  Time is
folded into the batch for linear layers, convolutions and tdBN; neurons loop
over time.
"""

from __future__ import annotations

import torch
from torch import nn

from tasks.specs import DSRNSpec, FCMnistSpec, FCPoissonSpec, SyntheticSpec, TaskSpec

from ..torch_common import NetworkOutput
from . import neurons


def neuron_input(x: torch.Tensor) -> torch.Tensor:
    """Neuron state stays in float32 under bf16 autocast (the precision policy)."""
    return x.float() if x.dtype == torch.bfloat16 else x


def over_time(x: torch.Tensor, T: int, static: bool) -> torch.Tensor:
    """A static ``[B, ...]`` input repeated to ``[T, B, ...]``; a time-major one unchanged."""
    return x.unsqueeze(0).expand((T,) + tuple(x.shape)) if static else x


class _Recorder:
    def __init__(self, record: bool):
        self.record = record
        self.spikes: dict[str, torch.Tensor] = {}
        self.membranes: dict[str, torch.Tensor] | None = {} if record else None

    def __call__(self, name: str, pair) -> torch.Tensor:
        spikes, membranes = pair
        self.spikes[name] = spikes
        if self.record:
            self.membranes[name] = membranes
        return spikes

    def output(self, readout: torch.Tensor) -> NetworkOutput:
        return NetworkOutput(readout=readout, spikes=self.spikes, membranes=self.membranes)


class SyntheticNet(nn.Module):
    """100 -> 4 soft-reset LIF with exponential synapses -> 2 filtered readout."""

    def __init__(self, spec: SyntheticSpec):
        super().__init__()
        self.spec = spec
        self.fc1 = nn.Linear(spec.n_in, spec.n_hidden)
        self.readout = nn.Linear(spec.n_hidden, spec.n_classes)

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        spec, rec = self.spec, _Recorder(record)
        current = neurons.exponential_synapse(neuron_input(self.fc1(over_time(x, spec.T, static))), spec.a_syn)
        s = rec("hidden", neurons.soft_reset_lif(
            current, spec.a_mem, spec.v_th, spec.surrogate_alpha, spec.surrogate_width, record))
        readout = neurons.exponential_synapse(neuron_input(self.readout(s)), spec.a_syn)
        return rec.output(readout)


class FCNet(nn.Module):
    """Two fully connected spiking layers (fc_mnist and fc_mnist_poisson)."""

    def __init__(self, spec: FCMnistSpec | FCPoissonSpec):
        super().__init__()
        self.spec = spec
        bias = isinstance(spec, FCMnistSpec)
        self.fc1 = nn.Linear(spec.n_in, spec.n_hidden, bias=bias)
        self.fc2 = nn.Linear(spec.n_hidden, spec.n_classes, bias=bias)

    def neuron(self, x: torch.Tensor, record: bool):
        spec = self.spec
        if isinstance(spec, FCMnistSpec):
            return neurons.subtractive_lif(neuron_input(x), spec.beta, spec.v_th, spec.surrogate_alpha, record)
        return neurons.hard_reset_lif(neuron_input(x), spec.tau, spec.v_th, spec.surrogate_alpha, record)

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        rec = _Recorder(record)
        # A static image gives the same W x + b at every step: compute it once.
        s1 = rec("lif1", self.neuron(over_time(self.fc1(x), self.spec.T, static), record))
        # The output membrane is fc_mnist's readout, so it is always kept.
        s2, u2 = self.neuron(self.fc2(s1), record=True)
        rec("lif2", (s2, u2))
        return rec.output(u2 if isinstance(self.spec, FCMnistSpec) else s2)


class TdBN(nn.Module):
    """Threshold-dependent batch norm over (T, B, H, W) of a ``[T, B, C, H, W]`` input.

    y = lambda * alpha * V_th * (x - mean) / sqrt(var + eps) + beta; lambda is
    ``weight``, beta is ``bias``.  Statistics are computed in float32 at least.
    """

    def __init__(self, channels: int, alpha: float, v_th: float, eps: float, momentum: float):
        super().__init__()
        self.alpha, self.v_th, self.eps, self.momentum = alpha, v_th, eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = neuron_input(x)
        if self.training:
            dims = (0, 1, 3, 4)
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
            with torch.no_grad():
                n = x.numel() // x.shape[2]
                m = self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        else:
            mean, var = self.running_mean, self.running_var
        c = (slice(None), None, None)
        scale = self.weight * (self.alpha * self.v_th) / torch.sqrt(var + self.eps)
        return (x - mean[c]) * scale[c] + self.bias[c]


class ConvBN(nn.Module):
    """Convolution (no bias) applied at every step, then tdBN."""

    def __init__(self, spec: DSRNSpec, c_in: int, c_out: int, kernel: int, stride: int, alpha: float):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = TdBN(c_out, alpha, spec.v_th, spec.bn_eps, spec.bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = self.conv(x.flatten(0, 1))
        return self.bn(y.unflatten(0, (T, B)))


class BasicBlock(nn.Module):
    def __init__(self, spec: DSRNSpec, c_in: int, c_out: int, stride: int, name: str):
        super().__init__()
        self.spec, self.name = spec, name
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = TdBN(c_out, 1.0, spec.v_th, spec.bn_eps, spec.bn_momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = TdBN(c_out, spec.block_alpha, spec.v_th, spec.bn_eps, spec.bn_momentum)
        self.shortcut = (
            ConvBN(spec, c_in, c_out, 1, stride, spec.block_alpha) if stride != 1 or c_in != c_out else None
        )

    def forward(self, s: torch.Tensor, lif) -> torch.Tensor:
        T, B = s.shape[:2]
        h = self.bn1(self.conv1(s.flatten(0, 1)).unflatten(0, (T, B)))
        h = lif(f"{self.name}.lif1", h)
        out = self.bn2(self.conv2(h.flatten(0, 1)).unflatten(0, (T, B)))
        out = out + (self.shortcut(s) if self.shortcut is not None else s)
        return lif(f"{self.name}.lif2", out)


class DSRN(nn.Module):
    """19-spiking-layer residual network with tdBN (STBP-tdBN)."""

    def __init__(self, spec: DSRNSpec):
        super().__init__()
        self.spec = spec
        self.stem = ConvBN(spec, 1, spec.channels(spec.stem_channels), 3, 1, 1.0)
        blocks = spec.blocks()
        for stage in range(1, len(spec.stages) + 1):
            members = [b for b in blocks if b.prefix.startswith(f"layer{stage}.")]
            setattr(self, f"layer{stage}", nn.ModuleList(
                BasicBlock(spec, b.in_channels, b.out_channels, b.stride, b.prefix) for b in members))
        self.fc1 = nn.Linear(spec.final_channels, spec.hidden_units)
        self.fc2 = nn.Linear(spec.hidden_units, spec.n_classes)

    def forward(self, x: torch.Tensor, static: bool = True, record: bool = False) -> NetworkOutput:
        spec, rec = self.spec, _Recorder(record)
        center = 0.0 if spec.surrogate_center == "threshold" else -spec.v_th

        def lif(name: str, inp: torch.Tensor) -> torch.Tensor:
            return rec(name, neurons.stbp_lif(neuron_input(inp), spec.tau, spec.v_th, spec.surrogate_a, center, record))

        s = lif("stem.lif", self.stem(over_time(x, spec.T, static)))
        for stage in range(1, len(spec.stages) + 1):
            for block in getattr(self, f"layer{stage}"):
                s = block(s, lif)
        pooled = s.mean(dim=(3, 4))
        h = lif("fc1.lif", self.fc1(pooled))
        readout = lif("fc2.lif", self.fc2(h))
        return rec.output(readout)


def build_network(spec: TaskSpec) -> nn.Module:
    if isinstance(spec, SyntheticSpec):
        return SyntheticNet(spec)
    if isinstance(spec, (FCMnistSpec, FCPoissonSpec)):
        return FCNet(spec)
    if isinstance(spec, DSRNSpec):
        return DSRN(spec)
    raise TypeError(f"stbp has no network for {type(spec).__name__}")

"""The task networks in plain PyTorch.

Module and parameter names are the shared weight names of
:mod:`tasks.weights`, so loading the shared weights is a plain copy.  Time is
folded into the batch for linear layers, convolutions and tdBN; neurons run
over time.

A network is assembled from *building blocks* (:class:`Blocks`): the neurons,
the exponential synapse and tdBN.  :class:`ClearBlocks` are the readable ones
(a Python loop over time per neuron, autograd records every step); the
``stbp:fused`` variant swaps in fused multi-step blocks
(:mod:`backends.stbp.fused`) without touching the architecture written here.
"""

from __future__ import annotations

import torch
from torch import nn

from tasks.specs import DSRNSpec, FCMnistSpec, FCPoissonSpec, LIFLayerSpec, SyntheticSpec, TaskSpec

from ..torch_common import NetworkOutput, Recorder, neuron_input, over_time
from . import neurons

Pair = tuple[torch.Tensor, "torch.Tensor | None"]


class Blocks:
    """The neurons, synapse and tdBN a network is built from.

    Every neuron takes its input time-major ``[T, B, ...]`` -- or, with
    ``steps=T``, one static ``[B, ...]`` input that stands for ``T`` identical
    steps -- and returns the spikes ``[T, B, ...]`` and the membrane compared
    with the threshold (``None`` unless ``record``).  The neuron kinds and
    their parameters, in order:

    * ``soft`` (synthetic): a_mem, v_th, alpha, width;
    * ``subtractive`` (fc_mnist): beta, v_th, alpha;
    * ``hard`` (fc_mnist_poisson, lif_layer): tau, v_th, alpha;
    * ``stbp`` (dsrn_tdbn): tau, v_th, a, center.
    """

    def neuron(self, kind: str, inputs: torch.Tensor, params: tuple[float, ...], record: bool,
               steps: int | None = None) -> Pair:
        raise NotImplementedError

    def synapse(self, inputs: torch.Tensor, decay: float) -> torch.Tensor:
        """I[t] = decay * I[t-1] + inputs[t]."""
        raise NotImplementedError

    def tdbn(self, channels: int, alpha: float, v_th: float, eps: float, momentum: float) -> nn.Module:
        raise NotImplementedError


CLEAR_NEURONS = {
    "soft": neurons.soft_reset_lif,
    "subtractive": neurons.subtractive_lif,
    "hard": neurons.hard_reset_lif,
    "stbp": neurons.stbp_lif,
}


class ClearBlocks(Blocks):
    """The readable blocks: :mod:`backends.stbp.neurons` and :class:`TdBN`."""

    def neuron(self, kind, inputs, params, record, steps=None):
        x = inputs if steps is None else over_time(inputs, steps, True)
        return CLEAR_NEURONS[kind](x, *params, record)

    def synapse(self, inputs, decay):
        return neurons.exponential_synapse(inputs, decay)

    def tdbn(self, channels, alpha, v_th, eps, momentum):
        return TdBN(channels, alpha, v_th, eps, momentum)


CLEAR = ClearBlocks()


class SyntheticNet(nn.Module):
    """100 -> 4 soft-reset LIF with exponential synapses -> 2 filtered readout."""

    def __init__(self, spec: SyntheticSpec, blocks: Blocks = CLEAR):
        super().__init__()
        self.spec, self.blocks = spec, blocks
        self.fc1 = nn.Linear(spec.n_in, spec.n_hidden)
        self.readout = nn.Linear(spec.n_hidden, spec.n_classes)

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        spec, rec, blocks = self.spec, Recorder(record), self.blocks
        current = blocks.synapse(neuron_input(self.fc1(over_time(x, spec.T, static))), spec.a_syn)
        params = (spec.a_mem, spec.v_th, spec.surrogate_alpha, spec.surrogate_width)
        s = rec("hidden", blocks.neuron("soft", current, params, record))
        readout = blocks.synapse(neuron_input(self.readout(s)), spec.a_syn)
        return rec.output(readout)


class FCNet(nn.Module):
    """Two fully connected spiking layers (fc_mnist and fc_mnist_poisson)."""

    def __init__(self, spec: FCMnistSpec | FCPoissonSpec, blocks: Blocks = CLEAR):
        super().__init__()
        self.spec, self.blocks = spec, blocks
        bias = isinstance(spec, FCMnistSpec)
        self.fc1 = nn.Linear(spec.n_in, spec.n_hidden, bias=bias)
        self.fc2 = nn.Linear(spec.n_hidden, spec.n_classes, bias=bias)

    def neuron(self, x: torch.Tensor, record: bool, steps: int | None = None) -> Pair:
        spec = self.spec
        if isinstance(spec, FCMnistSpec):
            return self.blocks.neuron("subtractive", neuron_input(x), (spec.beta, spec.v_th, spec.surrogate_alpha),
                                      record, steps)
        return self.blocks.neuron("hard", neuron_input(x), (spec.tau, spec.v_th, spec.surrogate_alpha), record, steps)

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        rec = Recorder(record)
        # A static image gives the same W x + b at every step: computed once.
        s1 = rec("lif1", self.neuron(self.fc1(x), record, self.spec.T if static else None))
        # The output membrane is fc_mnist's readout, so it is always kept.
        s2, u2 = self.neuron(self.fc2(s1), record=True)
        rec("lif2", (s2, u2))
        return rec.output(u2 if isinstance(self.spec, FCMnistSpec) else s2)


class LIFLayerNet(nn.Module):
    """lif_layer: Linear(N, N) without bias, then fc_mnist_poisson's LIF neuron."""

    def __init__(self, spec: LIFLayerSpec, blocks: Blocks = CLEAR):
        super().__init__()
        self.spec, self.blocks = spec, blocks
        self.fc = nn.Linear(spec.neurons, spec.neurons, bias=False)

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        spec, rec = self.spec, Recorder(record)
        params = (spec.tau, spec.v_th, spec.surrogate_alpha)
        s = rec("lif", self.blocks.neuron("hard", neuron_input(self.fc(x)), params, record,
                                          spec.T if static else None))
        return rec.output(s)


class TdBN(nn.Module):
    """Threshold-dependent batch norm over (T, B, H, W) of a ``[T, B, C, H, W]`` input.

    y = lambda * alpha * V_th * (x - mean) / sqrt(var + eps) + beta; lambda is
    ``weight``, beta is ``bias``.  Statistics are computed in float32 at least.
    With ``steps=T`` the input is one static ``[B, C, H, W]`` tensor standing
    for T identical steps: the same mean and variance, but T times the count
    in the running variance's unbiased correction; the output is static too.
    """

    def __init__(self, channels: int, alpha: float, v_th: float, eps: float, momentum: float):
        super().__init__()
        self.alpha, self.v_th, self.eps, self.momentum = alpha, v_th, eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        x = neuron_input(x if steps is None else x.unsqueeze(0))
        if self.training:
            dims = (0, 1, 3, 4)
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
            self.update_running(mean, var, x.numel() // x.shape[2] * (steps or 1))
        else:
            mean, var = self.running_mean, self.running_var
        c = (slice(None), None, None)
        scale = self.weight * (self.alpha * self.v_th) / torch.sqrt(var + self.eps)
        y = (x - mean[c]) * scale[c] + self.bias[c]
        return y if steps is None else y[0]

    @torch.no_grad()
    def update_running(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        """Running statistics after a batch of ``n`` values per channel (biased ``var``
        in, unbiased running variance kept)."""
        m = self.momentum
        self.running_mean.mul_(1 - m).add_(m * mean)
        self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))


def conv_over_time(conv: nn.Conv2d, x: torch.Tensor, steps: int | None) -> torch.Tensor:
    """``conv`` at every step of ``[T, B, C, H, W]`` (time folded into the batch),
    or once on a static ``[B, C, H, W]`` input (``steps`` given)."""
    if steps is not None:
        return conv(x)
    T, B = x.shape[:2]
    return conv(x.flatten(0, 1)).unflatten(0, (T, B))


class ConvBN(nn.Module):
    """Convolution (no bias) applied at every step, then tdBN."""

    def __init__(self, spec: DSRNSpec, blocks: Blocks, c_in: int, c_out: int, kernel: int, stride: int, alpha: float):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = blocks.tdbn(c_out, alpha, spec.v_th, spec.bn_eps, spec.bn_momentum)

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        return self.bn(conv_over_time(self.conv, x, steps), steps=steps)


class BasicBlock(nn.Module):
    def __init__(self, spec: DSRNSpec, blocks: Blocks, c_in: int, c_out: int, stride: int, name: str):
        super().__init__()
        self.spec, self.name = spec, name
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = blocks.tdbn(c_out, 1.0, spec.v_th, spec.bn_eps, spec.bn_momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = blocks.tdbn(c_out, spec.block_alpha, spec.v_th, spec.bn_eps, spec.bn_momentum)
        self.shortcut = (
            ConvBN(spec, blocks, c_in, c_out, 1, stride, spec.block_alpha)
            if stride != 1 or c_in != c_out else None
        )

    def forward(self, s: torch.Tensor, lif) -> torch.Tensor:
        h = lif(f"{self.name}.lif1", self.bn1(conv_over_time(self.conv1, s, None)))
        out = self.bn2(conv_over_time(self.conv2, h, None))
        out = out + (self.shortcut(s) if self.shortcut is not None else s)
        return lif(f"{self.name}.lif2", out)


class DSRN(nn.Module):
    """19-spiking-layer residual network with tdBN (STBP-tdBN)."""

    def __init__(self, spec: DSRNSpec, blocks: Blocks = CLEAR):
        super().__init__()
        self.spec, self.blocks = spec, blocks
        self.stem = ConvBN(spec, blocks, 1, spec.channels(spec.stem_channels), 3, 1, 1.0)
        specs = spec.blocks()
        for stage in range(1, len(spec.stages) + 1):
            members = [b for b in specs if b.prefix.startswith(f"layer{stage}.")]
            setattr(self, f"layer{stage}", nn.ModuleList(
                BasicBlock(spec, blocks, b.in_channels, b.out_channels, b.stride, b.prefix) for b in members))
        self.fc1 = nn.Linear(spec.final_channels, spec.hidden_units)
        self.fc2 = nn.Linear(spec.hidden_units, spec.n_classes)

    def forward(self, x: torch.Tensor, static: bool = True, record: bool = False) -> NetworkOutput:
        spec, rec = self.spec, Recorder(record)
        center = 0.0 if spec.surrogate_center == "threshold" else -spec.v_th
        params = (spec.tau, spec.v_th, spec.surrogate_a, center)

        def lif(name: str, inp: torch.Tensor, steps: int | None = None) -> torch.Tensor:
            return rec(name, self.blocks.neuron("stbp", neuron_input(inp), params, record, steps))

        # A static image: the stem's convolution and tdBN see T identical steps.
        steps = spec.T if static else None
        s = lif("stem.lif", self.stem(x, steps), steps)
        for stage in range(1, len(spec.stages) + 1):
            for block in getattr(self, f"layer{stage}"):
                s = block(s, lif)
        pooled = s.mean(dim=(3, 4))
        h = lif("fc1.lif", self.fc1(pooled))
        readout = lif("fc2.lif", self.fc2(h))
        return rec.output(readout)


def build_network(spec: TaskSpec, blocks: Blocks = CLEAR) -> nn.Module:
    if isinstance(spec, SyntheticSpec):
        return SyntheticNet(spec, blocks)
    if isinstance(spec, (FCMnistSpec, FCPoissonSpec)):
        return FCNet(spec, blocks)
    if isinstance(spec, DSRNSpec):
        return DSRN(spec, blocks)
    if isinstance(spec, LIFLayerSpec):
        return LIFLayerNet(spec, blocks)
    raise TypeError(f"stbp has no network for {type(spec).__name__}")

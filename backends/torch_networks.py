"""The task networks in PyTorch, written once for every PyTorch backend whose
library does not bring its own network layers (stbp, stbp:fused, snnTorch,
Norse, Sinabs, Rockpool).

Module and parameter names are the shared weight names of
:mod:`tasks.weights`, so loading the shared weights is a plain copy.  Time is
folded into the batch for linear layers, convolutions and tdBN; neurons run
over time.

A network is assembled from *building blocks* (:class:`Blocks`) that each
backend supplies: its neurons (one per neuron kind of :mod:`tasks.specs`), the
exponential synapse and tdBN.  The architecture here never asks which
framework runs it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tasks.specs import DSRNSpec, FCMnistSpec, FCPoissonSpec, LIFLayerSpec, SyntheticSpec, TaskSpec

from .torch_common import NetworkOutput, Recorder, neuron_input, over_time

Pair = tuple[torch.Tensor, "torch.Tensor | None"]


class Blocks:
    """What a backend supplies to build the networks: modules, created once per layer.

    * ``neuron(kind, params)``: a module whose ``forward(inputs, record, steps=None)``
      takes the input time-major ``[T, B, ...]`` -- or, with ``steps=T``, one
      static ``[B, ...]`` input standing for ``T`` identical steps -- and returns
      the spikes ``[T, B, ...]`` and the membrane compared with the threshold
      (``None`` unless ``record``).  ``kind`` is the spec's neuron kind and
      ``params`` its :meth:`~tasks.specs.TaskSpec.neuron_params`.
    * ``synapse(decay)``: a module, ``forward(inputs) -> I`` with
      I[t] = decay * I[t-1] + inputs[t] (the non-spiking exponential synapse).
    * ``synaptic_neuron(kind, decay, params)``: a neuron fed through that synapse,
      ``forward(inputs, record)``; a library whose neuron keeps the synaptic
      current itself overrides it.
    * ``tdbn(...)``: tdBN over (T, B, H, W); the default is :class:`FoldedTdBN`'s
      readable parent :class:`TdBN`.

    A module may hold buffers (a library's constants), never parameters: every
    trained tensor is a shared weight.
    """

    def neuron(self, kind: str, params: tuple[float, ...]) -> nn.Module:
        raise NotImplementedError

    def synapse(self, decay: float) -> nn.Module:
        raise NotImplementedError

    def synaptic_neuron(self, kind: str, decay: float, params: tuple[float, ...]) -> nn.Module:
        return SynapseThenNeuron(self.synapse(decay), self.neuron(kind, params))

    def tdbn(self, channels: int, alpha: float, v_th: float, eps: float, momentum: float) -> nn.Module:
        return TdBN(channels, alpha, v_th, eps, momentum)


class SynapseThenNeuron(nn.Module):
    def __init__(self, synapse: nn.Module, neuron: nn.Module):
        super().__init__()
        self.synapse, self.neuron = synapse, neuron

    def forward(self, inputs: torch.Tensor, record: bool) -> Pair:
        return self.neuron(self.synapse(inputs), record)


class FunctionNeuron(nn.Module):
    """A neuron module around a function ``fn(kind, inputs, params, record, steps) -> Pair``."""

    def __init__(self, fn, kind: str, params: tuple[float, ...]):
        super().__init__()
        self.fn, self.kind, self.params = fn, kind, tuple(params)

    def forward(self, inputs: torch.Tensor, record: bool, steps: int | None = None) -> Pair:
        return self.fn(self.kind, inputs, self.params, record, steps)


class FunctionSynapse(nn.Module):
    """A synapse module around a function ``fn(inputs, decay) -> I``."""

    def __init__(self, fn, decay: float):
        super().__init__()
        self.fn, self.decay = fn, decay

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(inputs, self.decay)


class SyntheticNet(nn.Module):
    """100 -> 4 soft-reset LIF with exponential synapses -> 2 filtered readout."""

    def __init__(self, spec: SyntheticSpec, blocks: Blocks):
        super().__init__()
        self.spec = spec
        self.fc1 = nn.Linear(spec.n_in, spec.n_hidden)
        self.readout = nn.Linear(spec.n_hidden, spec.n_classes)
        self.hidden_lif = blocks.synaptic_neuron(spec.neuron, spec.a_syn, spec.neuron_params())
        self.readout_synapse = blocks.synapse(spec.a_syn)

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        spec, rec = self.spec, Recorder(record)
        s = rec("hidden", self.hidden_lif(neuron_input(self.fc1(over_time(x, spec.T, static))), record))
        return rec.output(self.readout_synapse(neuron_input(self.readout(s))))


class FCNet(nn.Module):
    """Two fully connected spiking layers (fc_mnist and fc_mnist_poisson)."""

    def __init__(self, spec: FCMnistSpec | FCPoissonSpec, blocks: Blocks):
        super().__init__()
        self.spec = spec
        bias = spec.synapses()[0].bias
        self.fc1 = nn.Linear(spec.n_in, spec.n_hidden, bias=bias)
        self.fc2 = nn.Linear(spec.n_hidden, spec.n_classes, bias=bias)
        self.lif1 = blocks.neuron(spec.neuron, spec.neuron_params())
        self.lif2 = blocks.neuron(spec.neuron, spec.neuron_params())

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        rec = Recorder(record)
        # A static image gives the same W x + b at every step: computed once.
        s1 = rec("lif1", self.lif1(neuron_input(self.fc1(x)), record, self.spec.T if static else None))
        # The output membrane is fc_mnist's readout, so it is always kept.
        s2, u2 = self.lif2(neuron_input(self.fc2(s1)), True)
        rec("lif2", (s2, u2))
        return rec.output(u2 if self.spec.readout == "membrane" else s2)


class LIFLayerNet(nn.Module):
    """lif_layer: Linear(N, N) without bias, then fc_mnist_poisson's LIF neuron."""

    def __init__(self, spec: LIFLayerSpec, blocks: Blocks):
        super().__init__()
        self.spec = spec
        self.fc = nn.Linear(spec.neurons, spec.neurons, bias=False)
        self.lif = blocks.neuron(spec.neuron, spec.neuron_params())

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        rec = Recorder(record)
        s = rec("lif", self.lif(neuron_input(self.fc(x)), record, self.spec.T if static else None))
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


class FoldedTdBN(TdBN):
    """tdBN as one ``batch_norm`` over ``[T*B, C, H, W]`` (same parameters and buffers as :class:`TdBN`)."""

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        x = neuron_input(x)
        flat = x if steps is not None else x.flatten(0, 1)
        weight = self.weight * (self.alpha * self.v_th)
        if not self.training or steps is None:
            # training: batch statistics, running statistics updated with the
            # unbiased variance of the T*B*H*W values (torch's own rule)
            y = F.batch_norm(flat, self.running_mean, self.running_var, weight, self.bias,
                             self.training, self.momentum, self.eps)
        else:
            # One static [B, C, H, W] copy stands for `steps` identical steps:
            # the same mean and biased variance, but the running variance's
            # unbiased correction counts all steps * B * H * W values.
            y = F.batch_norm(flat, None, None, weight, self.bias, True, 0.0, self.eps)
            self.update_running_static(flat, steps)
        return y if steps is not None else y.unflatten(0, x.shape[:2])

    @torch.no_grad()
    def update_running_static(self, flat: torch.Tensor, steps: int) -> None:
        """Running statistics after a static batch ``flat`` [B, C, H, W] standing for ``steps`` steps."""
        var, mean = torch.var_mean(flat, (0, 2, 3), unbiased=False)
        self.update_running(mean, var, flat.numel() // flat.shape[1] * steps)


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
        self.lif1 = blocks.neuron(spec.neuron, spec.neuron_params())
        self.lif2 = blocks.neuron(spec.neuron, spec.neuron_params())

    def forward(self, s: torch.Tensor, rec: Recorder) -> torch.Tensor:
        h = rec(f"{self.name}.lif1", self.lif1(neuron_input(self.bn1(conv_over_time(self.conv1, s, None))),
                                               rec.record))
        out = self.bn2(conv_over_time(self.conv2, h, None))
        out = out + (self.shortcut(s) if self.shortcut is not None else s)
        return rec(f"{self.name}.lif2", self.lif2(neuron_input(out), rec.record))


class DSRN(nn.Module):
    """19-spiking-layer residual network with tdBN (STBP-tdBN)."""

    block_type: type[BasicBlock] = BasicBlock  # a subclass may run the same block its own way

    def __init__(self, spec: DSRNSpec, blocks: Blocks):
        super().__init__()
        self.spec = spec
        self.stem = ConvBN(spec, blocks, 1, spec.channels(spec.stem_channels), 3, 1, 1.0)
        specs = spec.blocks()
        for stage in range(1, len(spec.stages) + 1):
            members = [b for b in specs if b.prefix.startswith(f"layer{stage}.")]
            setattr(self, f"layer{stage}", nn.ModuleList(
                self.block_type(spec, blocks, b.in_channels, b.out_channels, b.stride, b.prefix) for b in members))
        self.fc1 = nn.Linear(spec.final_channels, spec.hidden_units)
        self.fc2 = nn.Linear(spec.hidden_units, spec.n_classes)
        self.stem_lif = blocks.neuron(spec.neuron, spec.neuron_params())
        self.fc1_lif = blocks.neuron(spec.neuron, spec.neuron_params())
        self.fc2_lif = blocks.neuron(spec.neuron, spec.neuron_params())

    def forward(self, x: torch.Tensor, static: bool = True, record: bool = False) -> NetworkOutput:
        spec, rec = self.spec, Recorder(record)
        # A static image: the stem's convolution and tdBN see T identical steps.
        steps = spec.T if static else None
        s = rec("stem.lif", self.stem_lif(neuron_input(self.stem(x, steps)), record, steps))
        for stage in range(1, len(spec.stages) + 1):
            for block in getattr(self, f"layer{stage}"):
                s = block(s, rec)
        pooled = s.mean(dim=(3, 4))
        h = rec("fc1.lif", self.fc1_lif(neuron_input(self.fc1(pooled)), record))
        return rec.output(rec("fc2.lif", self.fc2_lif(neuron_input(self.fc2(h)), record)))


# the architecture of each task (fc_mnist and fc_mnist_poisson share one)
ARCHITECTURES: dict[str, type[nn.Module]] = {
    SyntheticSpec.name: SyntheticNet,
    FCMnistSpec.name: FCNet,
    FCPoissonSpec.name: FCNet,
    DSRNSpec.name: DSRN,
    LIFLayerSpec.name: LIFLayerNet,
}


def build_network(spec: TaskSpec, blocks: Blocks) -> nn.Module:
    """The task's network, built from ``blocks``."""
    try:
        architecture = ARCHITECTURES[spec.name]
    except KeyError:
        raise TypeError(f"no PyTorch network for task {spec.name}") from None
    return architecture(spec, blocks)

"""The four task networks (and the single-layer benchmark) in SpikingJelly's ``activation_based`` API, multi-step.

Module names follow the shared weight names of :mod:`tasks.weights`, so the
state_dict keys are the shared names (tdBN's ``weight`` is stored scaled; the
backend converts it).  Linear layers and convolutions are SpikingJelly's
``layer.Linear`` / ``layer.Conv2d`` in multi-step mode (T folded into the
batch), tdBN is ``layer.ThresholdDependentBatchNorm2d`` (statistics over T, B,
H, W), and every forward starts and ends by resetting every ``MemoryModule``
(``functional.reset_net``'s work, without its process-wide cache).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import base, layer, surrogate
from torch import nn

from tasks.specs import DSRNSpec, FCMnistSpec, FCPoissonSpec, LIFLayerSpec, SyntheticSpec, TaskSpec

from ..torch_common import NetworkOutput, neuron_input, over_time
from .neurons import ChargeLIFNode, ChargeSimpleLIFNode, ExponentialSynapse, SubtractiveLeakyNode
from .surrogates import ScaledTriangle, ShiftedRect, StrictATan, StrictRect

LIF_KINDS = ("lif", "simple")


def make_lif(kind: str, *, tau: float, decay_input: bool, v_threshold: float, v_reset: float | None,
             surrogate_function, detach_reset: bool) -> nn.Module:
    """A multi-step LIF: ``neuron.LIFNode`` ("lif") or ``neuron.SimpleLIFNode`` ("simple")."""
    cls = {"lif": ChargeLIFNode, "simple": ChargeSimpleLIFNode}[kind]
    return cls(tau=float(tau), decay_input=decay_input, v_threshold=float(v_threshold),
               v_reset=None if v_reset is None else float(v_reset), surrogate_function=surrogate_function,
               detach_reset=detach_reset, step_mode="m")


def _rectangle(spec: DSRNSpec):
    # Rect(alpha): height alpha on |x| < 0.5 / alpha; alpha = 1/(2a) gives 1/(2a) on |x| < a
    alpha = 1.0 / (2.0 * spec.surrogate_a)
    if spec.surrogate_center == "threshold":
        return StrictRect(alpha=alpha)
    return ShiftedRect(alpha=alpha, center=-spec.v_th)


# the spec's neuron kinds -> the surrogate of their LIFNode (fc_mnist's subtractive neuron is custom)
SURROGATES = {
    "soft": lambda spec: ScaledTriangle(spec.surrogate_alpha, spec.surrogate_width, spec.v_th),
    "hard": lambda spec: surrogate.Sigmoid(alpha=spec.surrogate_alpha),
    "stbp": _rectangle,
}


def lif_surrogate(spec: TaskSpec):
    """The surrogate of the task's LIFNode layers (None for fc_mnist, whose neuron is custom)."""
    make = SURROGATES.get(spec.neuron)
    return make(spec) if make is not None else None


def stbp_tau(decay: float) -> float:
    """LIFNode's tau whose leak 1 - 1/tau is STBP's decay (0.25 -> 4/3)."""
    return 1.0 / (1.0 - decay)


class _Network(nn.Module):
    """Resets every stateful module around a forward pass; collects spikes and membranes."""

    def reset_states(self) -> None:
        """``functional.reset_net`` without its module cache: that cache is one process-wide
        weak dictionary, and torch.compile guards on what it holds, which changes as other
        networks are collected -- a compiled variant then recompiles, or fails building its
        guards, depending on what else the process ran."""
        for module in self.modules():
            if isinstance(module, base.MemoryModule):
                module.reset()

    def forward(self, x: torch.Tensor, static: bool = False, record: bool = False) -> NetworkOutput:
        self.reset_states()
        self._spikes: dict[str, torch.Tensor] = {}
        self._membranes: dict[str, torch.Tensor] | None = {} if record else None
        try:
            readout = self.run(x, static, record)
            return NetworkOutput(readout=readout, spikes=self._spikes, membranes=self._membranes)
        finally:
            self._spikes, self._membranes = {}, None
            self.reset_states()  # drop the last states, so they do not count towards memory

    def fire(self, name: str, node: nn.Module, x: torch.Tensor, record: bool, keep_membrane: bool = False):
        """Run spiking layer ``name``; returns its spikes (and membrane with ``keep_membrane``)."""
        want = record or keep_membrane
        node.record_charge = want
        try:
            spikes = node(neuron_input(x))
            membrane = node.h_seq if want else None
        finally:
            node.record_charge = False
            node.h_seq = None
        self._spikes[name] = spikes
        if record:
            self._membranes[name] = membrane
        return (spikes, membrane) if keep_membrane else spikes

    def run(self, x: torch.Tensor, static: bool, record: bool) -> torch.Tensor:
        raise NotImplementedError


class SyntheticNet(_Network):
    """100 -> 4 soft-reset LIF (exponential synapses) -> 2 filtered readout.

    V[t] = a_m (V[t-1] - V_th S[t-1]) + (1 - a_m) I[t] is LIFNode with
    decay_input=True, soft reset (v_reset=None) and tau = 1 / (1 - a_m):
    H[t] = V + (I - V) / tau, V = H - V_th S, reset not detached.
    """

    def __init__(self, spec: SyntheticSpec, lif_kind: str):
        super().__init__()
        self.spec = spec
        self.fc1 = layer.Linear(spec.n_in, spec.n_hidden, step_mode="m")
        self.syn1 = ExponentialSynapse(spec.a_syn)
        self.lif = make_lif(lif_kind, tau=1.0 / (1.0 - spec.a_mem), decay_input=True, v_threshold=spec.v_th,
                            v_reset=None, detach_reset=False,
                            surrogate_function=lif_surrogate(spec))
        self.readout = layer.Linear(spec.n_hidden, spec.n_classes, step_mode="m")
        self.syn_out = ExponentialSynapse(spec.a_syn)

    def run(self, x, static, record):
        current = self.syn1(neuron_input(self.fc1(over_time(x, self.spec.T, static))))
        s = self.fire("hidden", self.lif, current, record)
        return self.syn_out(neuron_input(self.readout(s)))


class FCMnistNet(_Network):
    """784 -> 1000 -> 10 snnTorch-style leaky neurons (custom node), arctangent surrogate."""

    def __init__(self, spec: FCMnistSpec):
        super().__init__()
        self.spec = spec
        self.fc1 = layer.Linear(spec.n_in, spec.n_hidden, step_mode="m")
        self.lif1 = SubtractiveLeakyNode(spec.beta, float(spec.v_th), StrictATan(alpha=spec.surrogate_alpha))
        self.fc2 = layer.Linear(spec.n_hidden, spec.n_classes, step_mode="m")
        self.lif2 = SubtractiveLeakyNode(spec.beta, float(spec.v_th), StrictATan(alpha=spec.surrogate_alpha))

    def run(self, x, static, record):
        # A static image gives the same W x + b at every step: computed once, then repeated.
        s1 = self.fire("lif1", self.lif1, over_time(self.fc1(x), self.spec.T, static), record)
        # The output membrane U2 is the readout, so it is always kept (with its gradient).
        _, u2 = self.fire("lif2", self.lif2, self.fc2(s1), record, keep_membrane=True)
        return u2


class FCPoissonNet(_Network):
    """784 -> 196 -> 10, the SpikingJelly tutorial: LIFNode(tau=100, hard reset to 0), Sigmoid(4)."""

    def __init__(self, spec: FCPoissonSpec, lif_kind: str):
        super().__init__()
        self.spec = spec
        self.fc1 = layer.Linear(spec.n_in, spec.n_hidden, bias=False, step_mode="m")
        self.fc2 = layer.Linear(spec.n_hidden, spec.n_classes, bias=False, step_mode="m")
        for name in ("lif1", "lif2"):
            setattr(self, name, make_lif(lif_kind, tau=spec.tau, decay_input=True, v_threshold=spec.v_th, v_reset=0.0,
                                         surrogate_function=lif_surrogate(spec),
                                         detach_reset=False))

    def run(self, x, static, record):
        s1 = self.fire("lif1", self.lif1, over_time(self.fc1(x), self.spec.T, static), record)
        return self.fire("lif2", self.lif2, self.fc2(s1), record)


class LIFLayerNet(_Network):
    """lif_layer: ``layer.Linear(N, N, bias=False)`` then one layer of fc_mnist_poisson's neuron,
    ``neuron.LIFNode(tau, decay_input=True, v_reset=0, detach_reset=False)`` with Sigmoid(4)."""

    def __init__(self, spec: LIFLayerSpec, lif_kind: str):
        super().__init__()
        self.spec = spec
        self.fc = layer.Linear(spec.neurons, spec.neurons, bias=False, step_mode="m")
        self.lif = make_lif(lif_kind, tau=spec.tau, decay_input=True, v_threshold=spec.v_th, v_reset=0.0,
                            surrogate_function=lif_surrogate(spec), detach_reset=False)

    def run(self, x, static, record):
        return self.fire("lif", self.lif, over_time(self.fc(x), self.spec.T, static), record)


def tdbn(spec: DSRNSpec, channels: int, alpha: float) -> layer.ThresholdDependentBatchNorm2d:
    return layer.ThresholdDependentBatchNorm2d(alpha, spec.v_th, channels, eps=spec.bn_eps, momentum=spec.bn_momentum)


class ConvBN(nn.Module):
    """``layer.Conv2d`` (multi-step, no bias) then ``layer.ThresholdDependentBatchNorm2d``."""

    def __init__(self, spec: DSRNSpec, c_in: int, c_out: int, kernel: int, stride: int, alpha: float):
        super().__init__()
        self.conv = layer.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False, step_mode="m")
        self.bn = tdbn(spec, c_out, alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(neuron_input(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, spec: DSRNSpec, c_in: int, c_out: int, stride: int, lif):
        super().__init__()
        self.conv1 = layer.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False, step_mode="m")
        self.bn1 = tdbn(spec, c_out, 1.0)
        self.lif1 = lif()
        self.conv2 = layer.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False, step_mode="m")
        self.bn2 = tdbn(spec, c_out, spec.block_alpha)
        self.shortcut = (
            ConvBN(spec, c_in, c_out, 1, stride, spec.block_alpha) if stride != 1 or c_in != c_out else None
        )
        self.lif2 = lif()


class DSRN(_Network):
    """19-spiking-layer residual network with tdBN (STBP-tdBN).

    The STBP neuron U[t] = tau_s U[t-1] (1 - S[t-1]) + X[t] is LIFNode with
    decay_input=False, hard reset to 0 (gradient through the reset kept) and
    tau = 1 / (1 - tau_s); the rectangular surrogate is ``surrogate.Rect``
    (alpha = 1 / (2a): height 1/(2a) on |x| < a), or :class:`ShiftedRect`
    for ``--surrogate-center zero``.
    """

    def __init__(self, spec: DSRNSpec, lif_kind: str):
        super().__init__()
        self.spec = spec

        def lif():
            return make_lif(lif_kind, tau=stbp_tau(spec.tau), decay_input=False, v_threshold=spec.v_th,
                            v_reset=0.0, surrogate_function=lif_surrogate(spec), detach_reset=False)

        self.stem = ConvBN(spec, 1, spec.channels(spec.stem_channels), 3, 1, 1.0)
        self.stem_lif = lif()
        blocks = spec.blocks()
        self.block_names: list[str] = []
        for stage in range(1, len(spec.stages) + 1):
            members = [b for b in blocks if b.prefix.startswith(f"layer{stage}.")]
            setattr(self, f"layer{stage}", nn.ModuleList(
                BasicBlock(spec, b.in_channels, b.out_channels, b.stride, lif) for b in members))
            self.block_names += [b.prefix for b in members]
        self.fc1 = layer.Linear(spec.final_channels, spec.hidden_units, step_mode="m")
        self.fc1_lif = lif()
        self.fc2 = layer.Linear(spec.hidden_units, spec.n_classes, step_mode="m")
        self.fc2_lif = lif()

    def run(self, x, static, record):
        spec = self.spec
        if static:
            # One image at every step: the stem convolution runs once (a T = 1
            # sequence) and its output is repeated; tdBN still sees T copies.
            h = self.stem.conv(x.unsqueeze(0))
            h = self.stem.bn(neuron_input(h).expand((spec.T,) + tuple(h.shape[1:])))
        else:
            h = self.stem(x)
        s = self.fire("stem.lif", self.stem_lif, h, record)
        for stage in range(1, len(spec.stages) + 1):
            for index, block in enumerate(getattr(self, f"layer{stage}")):
                name = f"layer{stage}.{index}"
                h = block.bn1(neuron_input(block.conv1(s)))
                h = self.fire(f"{name}.lif1", block.lif1, h, record)
                out = block.bn2(neuron_input(block.conv2(h)))
                out = out + (block.shortcut(s) if block.shortcut is not None else s)
                s = self.fire(f"{name}.lif2", block.lif2, out, record)
        pooled = s.mean(dim=(3, 4))
        h = self.fire("fc1.lif", self.fc1_lif, self.fc1(pooled), record)
        return self.fire("fc2.lif", self.fc2_lif, self.fc2(h), record)


ARCHITECTURES = {
    SyntheticSpec.name: SyntheticNet,
    FCMnistSpec.name: FCMnistNet,
    FCPoissonSpec.name: FCPoissonNet,
    DSRNSpec.name: DSRN,
    LIFLayerSpec.name: LIFLayerNet,
}


def build_network(spec: TaskSpec, lif_kind: str = "lif") -> _Network:
    if lif_kind not in LIF_KINDS:
        raise ValueError(f"lif_kind must be one of {LIF_KINDS}")
    try:
        architecture = ARCHITECTURES[spec.name]
    except KeyError:
        raise TypeError(f"spikingjelly has no network for task {spec.name}") from None
    return architecture(spec) if architecture is FCMnistNet else architecture(spec, lif_kind)


def tdbn_scales(model: nn.Module) -> dict[str, float]:
    """Shared name of every tdBN weight -> c, where the module stores gamma = c * lambda (c = alpha * V_th)."""
    return {
        f"{name}.weight": float(m.alpha) * float(m.v_th)
        for name, m in model.named_modules()
        if isinstance(m, layer.ThresholdDependentBatchNorm2d)
    }


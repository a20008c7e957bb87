"""The four task networks (and the single-layer benchmark) as brainstate modules.

Synapses (Linear, Conv2d) and tdBN act on whole ``[T, B, ...]`` arrays with
time folded into the batch; neurons run over time in
``brainstate.transform.for_loop``, one layer after another (a feed-forward
network computes the same thing layer by layer as step by step).
Convolutional activity is channels-last inside (``[T, B, H, W, C]``,
brainstate's layout); the backend converts to the common channels-first
layout when it returns spikes and membranes.

Each network's ``weight_map()`` says where every shared weight lives:
``name -> (state, key, layout)`` with ``key`` the entry of a ``ParamState``'s
dict (None for a ``BatchState``) and ``layout`` one of ``"linear"`` (PyTorch
``[out, in]`` <-> brainstate ``[in, out]``), ``"conv"`` (``[O, I, kh, kw]`` <->
``[kh, kw, I, O]``) or ``"same"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import brainstate
import jax.numpy as jnp

from tasks.specs import DSRNSpec, FCMnistSpec, FCPoissonSpec, LIFLayerSpec, SyntheticSpec, TaskSpec

from ..jax_common import TaskNetwork, dsrn_forward, residual_block
from . import components as C


@dataclass
class NetworkOutput:
    readout: Any  # [T, B, n_classes]: what the loss is computed from
    spikes: dict[str, Any] = field(default_factory=dict)  # layer -> [T, B, *shape] (channels-last)
    membranes: dict[str, Any] | None = None


@dataclass(frozen=True)
class Settings:
    """How a network is built: dtype of state, bf16 compute dtype, loop unrolling."""

    dtype: Any  # parameters, neuron state, statistics
    compute_dtype: Any = None  # operands of linear/conv (bf16 policy), or None
    unroll: int = 1


class _Recorder:
    def __init__(self, record: bool):
        self.record = record
        self.spikes: dict[str, Any] = {}
        self.membranes: dict[str, Any] | None = {} if record else None

    def add(self, name: str, spikes, membranes) -> Any:
        self.spikes[name] = spikes
        if self.record:
            self.membranes[name] = membranes
        return spikes


def run_neuron(neuron, inputs, *, T: int, static: bool, record: bool, unroll: int):
    """Run ``neuron`` over time: ``inputs`` is ``[T, B, ...]``, or ``[B, ...]``
    fed at every step when ``static``.  Returns (spikes, membranes or None)."""

    def step(x):
        spike = neuron(x)
        return (spike, neuron.membrane()) if record else spike

    if static:
        # (for_loop needs something to iterate over: the step index, unused)
        out = brainstate.transform.for_loop(lambda _: step(inputs), jnp.arange(T), unroll=unroll)
    else:
        out = brainstate.transform.for_loop(step, inputs, unroll=unroll)
    return out if record else (out, None)


def _synapse(module, settings: Settings):
    if settings.compute_dtype is not None:
        module.compute_dtype = settings.compute_dtype
        module.out_dtype = settings.dtype
    return module


def _linear(n_in: int, n_out: int, bias: bool, settings: Settings):
    zeros = brainstate.nn.init.ZeroInit()
    return _synapse(C.Linear(n_in, n_out, w_init=zeros, b_init=zeros if bias else None), settings)


def _linear_map(prefix: str, module, bias: bool) -> dict:
    out = {f"{prefix}.weight": (module.weight, "weight", "linear")}
    if bias:
        out[f"{prefix}.bias"] = (module.weight, "bias", "same")
    return out


class SyntheticNet(brainstate.nn.Module):
    """The brainstate SNN-training tutorial: Linear -> Expon -> LIF -> Linear -> Expon."""

    def __init__(self, spec: SyntheticSpec, settings: Settings):
        super().__init__()
        self.spec, self.settings = spec, settings
        dt = settings.dtype
        self.fc1 = _linear(spec.n_in, spec.n_hidden, True, settings)
        self.syn = C.exponential_synapse(spec.n_hidden, spec.tau_syn, dt)
        spk = C.ReluGradSpike(alpha=spec.surrogate_alpha, width=spec.surrogate_width)
        self.lif = C.soft_reset_lif(spec.n_hidden, spec.tau_mem, spec.v_th, spk, dt)
        self.readout = _linear(spec.n_hidden, spec.n_classes, True, settings)
        self.out = C.exponential_synapse(spec.n_classes, spec.tau_syn, dt)

    def weight_map(self) -> dict:
        return {**_linear_map("fc1", self.fc1, True), **_linear_map("readout", self.readout, True)}

    def __call__(self, x, *, static: bool, record: bool, **_) -> NetworkOutput:
        spec, unroll = self.spec, self.settings.unroll
        rec = _Recorder(record)
        current = self.fc1(x)  # [T, B, H] (or [B, H] for a static input)

        def hidden_step(inp):
            spike = self.lif(self.syn(inp))
            return (spike, self.lif.V.value) if record else spike

        if static:
            out = brainstate.transform.for_loop(lambda _: hidden_step(current), jnp.arange(spec.T), unroll=unroll)
        else:
            out = brainstate.transform.for_loop(hidden_step, current, unroll=unroll)
        spikes, membranes = out if record else (out, None)
        rec.add("hidden", spikes, membranes)
        readout = brainstate.transform.for_loop(self.out, self.readout(spikes), unroll=unroll)
        return NetworkOutput(readout, rec.spikes, rec.membranes)


class FCNet(brainstate.nn.Module):
    """Two fully connected spiking layers (fc_mnist, fc_mnist_poisson)."""

    def __init__(self, spec: FCMnistSpec | FCPoissonSpec, settings: Settings):
        super().__init__()
        self.spec, self.settings = spec, settings
        self.bias = spec.synapses()[0].bias
        self.fc1 = _linear(spec.n_in, spec.n_hidden, self.bias, settings)
        self.lif1 = self._neuron(spec.n_hidden)
        self.fc2 = _linear(spec.n_hidden, spec.n_classes, self.bias, settings)
        self.lif2 = self._neuron(spec.n_classes)

    def _neuron(self, n: int):
        spec, dt = self.spec, self.settings.dtype
        if spec.neuron == "subtractive":
            spk = C.ArctanSpike(alpha=spec.surrogate_alpha)
            return C.SubtractiveResetLeaky(n, spec.beta, spec.v_th, spk, dt)
        spk = C.SigmoidSpike(alpha=spec.surrogate_alpha)
        return C.DecayInputHardResetLIF(n, spec.tau, spec.v_th, spk, dt)

    def weight_map(self) -> dict:
        return {**_linear_map("fc1", self.fc1, self.bias), **_linear_map("fc2", self.fc2, self.bias)}

    def __call__(self, x, *, static: bool, record: bool, **_) -> NetworkOutput:
        T, unroll = self.spec.T, self.settings.unroll
        rec = _Recorder(record)
        # A static image gives the same W x + b at every step: computed once.
        s1, v1 = run_neuron(self.lif1, self.fc1(x), T=T, static=static, record=record, unroll=unroll)
        rec.add("lif1", s1, v1)
        # The output membrane is fc_mnist's readout, so it is always kept there.
        keep = record or self.spec.readout == "membrane"
        s2, v2 = run_neuron(self.lif2, self.fc2(s1), T=T, static=False, record=keep, unroll=unroll)
        rec.add("lif2", s2, v2)
        readout = v2 if self.spec.readout == "membrane" else s2
        return NetworkOutput(readout, rec.spikes, rec.membranes)


class LIFLayerNet(brainstate.nn.Module):
    """lif_layer: a bias-free Linear(N, N), then one layer of fc_mnist_poisson's neuron
    (:class:`components.DecayInputHardResetLIF`, braintools' sigmoid surrogate)."""

    def __init__(self, spec: LIFLayerSpec, settings: Settings):
        super().__init__()
        self.spec, self.settings = spec, settings
        self.fc = _linear(spec.neurons, spec.neurons, False, settings)
        spk = C.SigmoidSpike(alpha=spec.surrogate_alpha)
        self.lif = C.DecayInputHardResetLIF(spec.neurons, spec.tau, spec.v_th, spk, settings.dtype)

    def weight_map(self) -> dict:
        return _linear_map("fc", self.fc, False)

    def __call__(self, x, *, static: bool, record: bool, **_) -> NetworkOutput:
        rec = _Recorder(record)
        spikes, membranes = run_neuron(self.lif, self.fc(x), T=self.spec.T, static=static, record=record,
                                       unroll=self.settings.unroll)
        rec.add("lif", spikes, membranes)
        return NetworkOutput(spikes, rec.spikes, rec.membranes)


class BasicBlock(brainstate.nn.Module):
    def __init__(self, spec: DSRNSpec, settings: Settings, block, spk):
        super().__init__()
        dt = settings.dtype
        self.prefix = block.prefix
        zeros = brainstate.nn.init.ZeroInit()
        size, out = block.in_size, block.out_size
        cin, cout, stride = block.in_channels, block.out_channels, block.stride

        def conv(c_in, in_size, kernel, s, padding):
            return _synapse(
                C.Conv2d((in_size, in_size, c_in), cout, kernel, stride=s, padding=padding, w_init=zeros, b_init=None),
                settings,
            )

        def bn(alpha):
            return C.TdBN(cout, alpha, spec.v_th, spec.bn_eps, spec.bn_momentum, dt)

        self.conv1 = conv(cin, size, 3, stride, 1)
        self.bn1 = bn(1.0)
        self.lif1 = C.STBPNeuron((out, out, cout), spec.tau, spec.v_th, spk, dt)
        self.conv2 = conv(cout, out, 3, 1, 1)
        self.bn2 = bn(spec.block_alpha)
        self.has_projection = block.has_projection
        if self.has_projection:
            self.shortcut_conv = conv(cin, size, 1, stride, 0)
            self.shortcut_bn = bn(spec.block_alpha)
        self.lif2 = C.STBPNeuron((out, out, cout), spec.tau, spec.v_th, spk, dt)

    def weight_map(self) -> dict:
        p = self.prefix
        out = {}
        parts = [("conv1", self.conv1, "bn1", self.bn1), ("conv2", self.conv2, "bn2", self.bn2)]
        if self.has_projection:
            parts.append(("shortcut.conv", self.shortcut_conv, "shortcut.bn", self.shortcut_bn))
        for conv_name, conv, bn_name, bn in parts:
            out[f"{p}.{conv_name}.weight"] = (conv.weight, "weight", "conv")
            out.update(_bn_map(f"{p}.{bn_name}", bn))
        return out

    def __call__(self, s, lif, bn_mode: dict):
        return residual_block(self, s, lif, bn_mode)


def _bn_map(prefix: str, bn) -> dict:
    return {
        f"{prefix}.weight": (bn.weight, "weight", "same"),
        f"{prefix}.bias": (bn.weight, "bias", "same"),
        f"{prefix}.running_mean": (bn.running_mean, None, "same"),
        f"{prefix}.running_var": (bn.running_var, None, "same"),
    }


class DSRN(brainstate.nn.Module):
    """19-spiking-layer residual network with tdBN (STBP-tdBN), channels-last."""

    def __init__(self, spec: DSRNSpec, settings: Settings):
        super().__init__()
        self.spec, self.settings = spec, settings
        dt = settings.dtype
        center = 0.0 if spec.surrogate_center == "threshold" else -spec.v_th
        spk = C.RectangularSpike(spec.surrogate_a, center)
        size, stem = spec.image_size, spec.channels(spec.stem_channels)
        self.stem_conv = _synapse(
            C.Conv2d((size, size, 1), stem, 3, stride=1, padding=1,
                     w_init=brainstate.nn.init.ZeroInit(), b_init=None),
            settings,
        )
        self.stem_bn = C.TdBN(stem, 1.0, spec.v_th, spec.bn_eps, spec.bn_momentum, dt)
        self.stem_lif = C.STBPNeuron((size, size, stem), spec.tau, spec.v_th, spk, dt)
        self.block_names = []
        for b in spec.blocks():
            attr = b.prefix.replace(".", "_")
            setattr(self, attr, BasicBlock(spec, settings, b, spk))
            self.block_names.append(attr)
        self.fc1 = _linear(spec.final_channels, spec.hidden_units, True, settings)
        self.fc1_lif = C.STBPNeuron(spec.hidden_units, spec.tau, spec.v_th, spk, dt)
        self.fc2 = _linear(spec.hidden_units, spec.n_classes, True, settings)
        self.fc2_lif = C.STBPNeuron(spec.n_classes, spec.tau, spec.v_th, spk, dt)

    def weight_map(self) -> dict:
        out = {"stem.conv.weight": (self.stem_conv.weight, "weight", "conv")}
        out.update(_bn_map("stem.bn", self.stem_bn))
        for attr in self.block_names:
            out.update(getattr(self, attr).weight_map())
        out.update(_linear_map("fc1", self.fc1, True))
        out.update(_linear_map("fc2", self.fc2, True))
        return out

    def __call__(self, x, *, static: bool, record: bool, batch_statistics: bool = True,
                 update_running: bool = False) -> NetworkOutput:
        spec, unroll = self.spec, self.settings.unroll
        T = spec.T
        rec = _Recorder(record)
        bn_mode = {"batch_statistics": batch_statistics, "update_running": update_running}

        def lif(name, neuron, inp):
            spikes, membranes = run_neuron(neuron, inp, T=T, static=False, record=record, unroll=unroll)
            return rec.add(name, spikes, membranes)

        # a static image (one per sample, the same at every step) is convolved once and repeated over time
        readout = dsrn_forward(self, x, lif, bn_mode, T=T, static=static)
        return NetworkOutput(readout, rec.spikes, rec.membranes)


# each task: its network, and how its neuron and surrogate are built (the backend's capabilities list them)
ARCHITECTURES: dict[str, TaskNetwork] = {
    SyntheticSpec.name: TaskNetwork(SyntheticNet, {
        "neuron": (
            "library: brainpy.state.LIF (soft reset, V_reset 0, R 1, exponential Euler; "
            "the reset spike is recomputed from the previous membrane with its surrogate "
            "gradient) fed by brainpy.state.Expon (tau 10); dimensionless, dt = 1"
        ),
        "readout": "library: brainstate.nn.Linear + brainpy.state.Expon (tau 10), not spiking",
        "surrogate": "library: braintools.surrogate.ReluGrad(alpha=0.3, width=1.0)",
    }),
    FCMnistSpec.name: TaskNetwork(FCNet, {
        "neuron": (
            "custom: brainpy.state.Neuron subclass SubtractiveResetLeaky, because "
            "brainpy.state.LIF resets before the leak (beta (V - V_th S)) and keeps the reset's "
            "gradient, while the spec subtracts V_th H(U[t-1] - V_th) after it, detached"
        ),
        "surrogate": "library: braintools.surrogate.Arctan(alpha=2.0) = 1/(1+(pi x)^2)",
    }),
    FCPoissonSpec.name: TaskNetwork(FCNet, {
        "neuron": (
            "custom: brainpy.state.Neuron subclass DecayInputHardResetLIF, because "
            "brainpy.state.LIF integrates with exponential Euler and its hard reset "
            "multiplies the spike by a detached membrane (spec: Euler H = V + (X - V)/tau, "
            "V = H (1 - S) with gradient through H and S)"
        ),
        "surrogate": "library: braintools.surrogate.Sigmoid(alpha=4.0)",
    }),
    LIFLayerSpec.name: TaskNetwork(LIFLayerNet, {
        "neuron": (
            "custom: DecayInputHardResetLIF of fc_mnist_poisson (same reasons), one layer "
            "after a bias-free brainstate.nn.Linear(N, N)"
        ),
        "surrogate": "library: braintools.surrogate.Sigmoid(alpha=4.0)",
    }),
    DSRNSpec.name: TaskNetwork(DSRN, {
        "neuron": (
            "custom: brainpy.state.Neuron subclass STBPNeuron (multiplicative reset "
            "tau U (1 - S), not detached), because no brainpy.state neuron has this update"
        ),
        "surrogate": (
            "custom: braintools.surrogate.Surrogate subclass RectangularSpike, because "
            "braintools' PiecewiseLeakyRelu(c=0, w=a) has a closed window |x| <= a and "
            "cannot be centred on U = 0 (--surrogate-center zero is supported)"
        ),
    }),
}


def build_network(spec: TaskSpec, settings: Settings):
    if spec.name in ARCHITECTURES:
        return ARCHITECTURES[spec.name].network(spec, settings)
    raise TypeError(f"brainstate has no network for {type(spec).__name__}")

"""The task networks as Flax NNX modules built from Spyx neurons.

Synapses are Flax's own layers (``nnx.Linear`` with kernels ``[in, out]``,
``nnx.Conv`` channels-last with kernels ``[kh, kw, in, out]``; Spyx has no
synapse layers of its own) and act on whole ``[T, B, ...]`` arrays with time
folded into the batch; each spiking layer runs over time with
:func:`spyx.nn.run` (layer by layer: a feed-forward network computes the same
thing as step by step).  Convolutional activity is channels-last inside; the
backend returns it channels-first.

Each network's ``weight_paths()`` says where every shared weight lives in the
module's NNX state: ``name -> (path, layout)``, ``layout`` one of
``"linear"`` (PyTorch ``[out, in]`` <-> ``[in, out]``), ``"conv"``
(``[O, I, kh, kw]`` <-> ``[kh, kw, I, O]``) or ``"same"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np
import spyx
from flax import nnx

from tasks.specs import DSRNSpec, FCMnistSpec, FCPoissonSpec, LIFLayerSpec, SyntheticSpec, TaskSpec

from ..jax_common import TaskNetwork, TdBNMath, dsrn_forward, residual_block
from .neurons import NEURONS, run


@dataclass
class NetworkOutput:
    spikes: dict[str, Any] = field(default_factory=dict)  # layer -> [T, B, *shape] (channels-last)
    membranes: dict[str, Any] = field(default_factory=dict)  # layer -> [T, B, *shape]
    synapse: Any = None  # the non-spiking readout synapse's output [T, B, C], where the network has one


@dataclass(frozen=True)
class Settings:
    dtype: Any  # parameters, neuron state, statistics
    compute_dtype: Any = None  # operands of linear/conv under the bf16 policy, or None


# readout kind -> what the loss is computed from, [T, B, classes]
READOUTS: dict[str, Callable[[NetworkOutput, str], Any]] = {
    "synapse": lambda out, last: out.synapse,
    "membrane": lambda out, last: out.membranes[last],
    "spikes": lambda out, last: out.spikes[last],
}


def _rngs() -> nnx.Rngs:
    return nnx.Rngs(0)  # initial values are overwritten by the shared weights


def linear(n_in: int, n_out: int, bias: bool, settings: Settings) -> nnx.Linear:
    return nnx.Linear(n_in, n_out, use_bias=bias, param_dtype=settings.dtype, dtype=settings.compute_dtype,
                      kernel_init=nnx.initializers.zeros, rngs=_rngs())


def conv(c_in: int, c_out: int, kernel: int, stride: int, padding: int, settings: Settings) -> nnx.Conv:
    return nnx.Conv(c_in, c_out, (kernel, kernel), strides=stride, padding=((padding, padding), (padding, padding)),
                    use_bias=False, param_dtype=settings.dtype, dtype=settings.compute_dtype,
                    kernel_init=nnx.initializers.zeros, rngs=_rngs())


def _linear_paths(name: str, attr: str, bias: bool) -> dict:
    out = {f"{name}.weight": ((attr, "kernel"), "linear")}
    if bias:
        out[f"{name}.bias"] = ((attr, "bias"), "same")
    return out


def neuron(spec: TaskSpec, shape, settings: Settings, synapse: float | None = None) -> nnx.Module:
    return NEURONS[spec.neuron](tuple(shape), spec.neuron_params(), settings.dtype, synapse)


def over_time(x, T: int, static: bool):
    """A static ``[B, ...]`` input stands for T identical steps."""
    return jnp.broadcast_to(x, (T,) + x.shape) if static else x


class _Recorder:
    def __init__(self):
        self.out = NetworkOutput()

    def __call__(self, name: str, pair):
        self.out.spikes[name], self.out.membranes[name] = pair
        return pair[0]


class SyntheticNet(nnx.Module):
    """Linear -> CuBaLIF (exponential synapse + soft reset) -> Linear -> spyx.nn.LI readout."""

    def __init__(self, spec: SyntheticSpec, settings: Settings):
        self.T, self.dtype = spec.T, settings.dtype
        self.fc1 = linear(spec.n_in, spec.n_hidden, True, settings)
        self.hidden = neuron(spec, (spec.n_hidden,), settings, synapse=spec.a_syn)
        self.readout = linear(spec.n_hidden, spec.n_classes, True, settings)
        # O[t] = a_syn O[t-1] + x[t]: Spyx's leaky integrator, non-spiking
        self.readout_synapse = spyx.nn.LI((spec.n_classes,), beta=np.asarray(spec.a_syn, settings.dtype),
                                          rngs=_rngs())

    def weight_paths(self) -> dict:
        return {**_linear_paths("fc1", "fc1", True), **_linear_paths("readout", "readout", True)}

    def __call__(self, x, *, static: bool, **_) -> NetworkOutput:
        rec = _Recorder()
        s = rec("hidden", run(self.hidden, over_time(self.fc1(x), self.T, static), self.dtype))
        drive = self.readout(s).astype(self.dtype)
        state = self.readout_synapse.initial_state(drive.shape[1]).astype(self.dtype)
        rec.out.synapse, _ = spyx.nn.run(self.readout_synapse, drive, state=state)
        return rec.out


class FCNet(nnx.Module):
    """Two fully connected spiking layers (fc_mnist, fc_mnist_poisson)."""

    def __init__(self, spec: FCMnistSpec | FCPoissonSpec, settings: Settings):
        self.T, self.dtype = spec.T, settings.dtype
        self.bias = spec.synapses()[0].bias
        self.fc1 = linear(spec.n_in, spec.n_hidden, self.bias, settings)
        self.lif1 = neuron(spec, (spec.n_hidden,), settings)
        self.fc2 = linear(spec.n_hidden, spec.n_classes, self.bias, settings)
        self.lif2 = neuron(spec, (spec.n_classes,), settings)

    def weight_paths(self) -> dict:
        return {**_linear_paths("fc1", "fc1", self.bias), **_linear_paths("fc2", "fc2", self.bias)}

    def __call__(self, x, *, static: bool, **_) -> NetworkOutput:
        rec = _Recorder()
        # A static image gives the same W x + b at every step: computed once.
        s = rec("lif1", run(self.lif1, over_time(self.fc1(x), self.T, static), self.dtype))
        rec("lif2", run(self.lif2, self.fc2(s), self.dtype))
        return rec.out


class LIFLayerNet(nnx.Module):
    """lif_layer: a bias-free Linear(N, N), then one layer of fc_mnist_poisson's neuron."""

    def __init__(self, spec: LIFLayerSpec, settings: Settings):
        self.T, self.dtype = spec.T, settings.dtype
        self.fc = linear(spec.neurons, spec.neurons, False, settings)
        self.lif = neuron(spec, (spec.neurons,), settings)

    def weight_paths(self) -> dict:
        return _linear_paths("fc", "fc", False)

    def __call__(self, x, *, static: bool, **_) -> NetworkOutput:
        rec = _Recorder()
        rec("lif", run(self.lif, over_time(self.fc(x), self.T, static), self.dtype))
        return rec.out


# ----------------------------------------------------------------- tdBN
class TdBN(nnx.Module, TdBNMath):
    """Threshold-dependent batch norm of a channels-last ``[T, B, H, W, C]`` input (custom: JAX,
    Flax and Spyx have none; the arithmetic: :class:`backends.jax_common.TdBNMath`).

    ``y = lambda alpha V_th (x - mean) / sqrt(var + eps) + beta``, mean and biased variance over
    (T, B, H, W), the gradient flowing through both.  ``lambda`` (``weight``) and ``beta``
    (``bias``) are ``nnx.Param``; the running mean and *unbiased* running variance are
    ``nnx.BatchStat``, moved with ``momentum`` only when ``update_running``.  Flax's
    ``nnx.BatchNorm`` normalises over the batch axes too but has no ``alpha V_th`` scale and
    keeps the biased variance as its running variance.
    """

    def __init__(self, channels: int, alpha: float, v_th: float, eps: float, momentum: float, dtype):
        self.scale = float(alpha) * float(v_th)
        self.eps, self.momentum = float(eps), float(momentum)
        self.dtype = np.dtype(dtype)
        self.weight = nnx.Param(jnp.ones((channels,), dtype))
        self.bias = nnx.Param(jnp.zeros((channels,), dtype))
        self.running_mean = nnx.BatchStat(jnp.zeros((channels,), dtype))
        self.running_var = nnx.BatchStat(jnp.ones((channels,), dtype))

    def _affine(self):
        return self.weight[...], self.bias[...]

    def _running(self):
        return self.running_mean[...], self.running_var[...]

    def _set_running(self, mean, var) -> None:
        self.running_mean[...] = mean
        self.running_var[...] = var

    def __call__(self, x, batch_statistics: bool = True, update_running: bool = False):
        return self.normalise(x, batch_statistics, update_running)


def _bn_paths(name: str, attr: tuple[str, ...]) -> dict:
    return {f"{name}.{k}": (attr + (k,), "same") for k in ("weight", "bias", "running_mean", "running_var")}


class BasicBlock(nnx.Module):
    def __init__(self, spec: DSRNSpec, settings: Settings, block):
        self.prefix = block.prefix
        cin, cout, s, size = block.in_channels, block.out_channels, block.stride, block.out_size

        def bn(alpha):
            return TdBN(cout, alpha, spec.v_th, spec.bn_eps, spec.bn_momentum, settings.dtype)

        self.conv1 = conv(cin, cout, 3, s, 1, settings)
        self.bn1 = bn(1.0)
        self.lif1 = neuron(spec, (size, size, cout), settings)
        self.conv2 = conv(cout, cout, 3, 1, 1, settings)
        self.bn2 = bn(spec.block_alpha)
        self.has_projection = block.has_projection
        if self.has_projection:
            self.shortcut_conv = conv(cin, cout, 1, s, 0, settings)
            self.shortcut_bn = bn(spec.block_alpha)
        self.lif2 = neuron(spec, (size, size, cout), settings)

    def weight_paths(self, attr: str) -> dict:
        p = self.prefix
        parts = [("conv1", "conv1", "bn1", "bn1"), ("conv2", "conv2", "bn2", "bn2")]
        if self.has_projection:
            parts.append(("shortcut.conv", "shortcut_conv", "shortcut.bn", "shortcut_bn"))
        out = {}
        for conv_name, conv_attr, bn_name, bn_attr in parts:
            out[f"{p}.{conv_name}.weight"] = ((attr, conv_attr, "kernel"), "conv")
            out.update(_bn_paths(f"{p}.{bn_name}", (attr, bn_attr)))
        return out

    def __call__(self, s, lif, bn_mode: dict):
        return residual_block(self, s, lif, bn_mode)


class DSRN(nnx.Module):
    """19 spiking layers with tdBN (STBP-tdBN), channels-last."""

    def __init__(self, spec: DSRNSpec, settings: Settings):
        self.T, self.dtype = spec.T, settings.dtype
        size, stem = spec.image_size, spec.channels(spec.stem_channels)
        self.stem_conv = conv(1, stem, 3, 1, 1, settings)
        self.stem_bn = TdBN(stem, 1.0, spec.v_th, spec.bn_eps, spec.bn_momentum, settings.dtype)
        self.stem_lif = neuron(spec, (size, size, stem), settings)
        names = []
        for b in spec.blocks():
            attr = b.prefix.replace(".", "_")
            setattr(self, attr, BasicBlock(spec, settings, b))
            names.append(attr)
        self.block_names = tuple(names)
        self.fc1 = linear(spec.final_channels, spec.hidden_units, True, settings)
        self.fc1_lif = neuron(spec, (spec.hidden_units,), settings)
        self.fc2 = linear(spec.hidden_units, spec.n_classes, True, settings)
        self.fc2_lif = neuron(spec, (spec.n_classes,), settings)

    def weight_paths(self) -> dict:
        out = {"stem.conv.weight": (("stem_conv", "kernel"), "conv"), **_bn_paths("stem.bn", ("stem_bn",))}
        for attr in self.block_names:
            out.update(getattr(self, attr).weight_paths(attr))
        out.update(_linear_paths("fc1", "fc1", True))
        out.update(_linear_paths("fc2", "fc2", True))
        return out

    def __call__(self, x, *, static: bool, batch_statistics: bool = True, update_running: bool = False):
        rec = _Recorder()
        bn_mode = {"batch_statistics": batch_statistics, "update_running": update_running}

        def lif(name, module, inputs):
            return rec(name, run(module, inputs, self.dtype))

        # one image per sample: convolved once ([B, C, H, W] -> channels-last), repeated over time
        dsrn_forward(self, x, lif, bn_mode, T=self.T, static=static)
        return rec.out


# each task: its network (fc_mnist and fc_mnist_poisson share one), and how its neuron and surrogate
# are built (the backend's capabilities list them)
ARCHITECTURES: dict[str, TaskNetwork] = {
    SyntheticSpec.name: TaskNetwork(SyntheticNet, {
        "neuron": (
            "library: spyx.nn.CuBaLIF(alpha=a_syn, beta=a_mem, threshold 1) is the "
            "exponential synapse + soft reset (subtract V_th S[t-1], surrogate kept, "
            "then V = a_mem V' + I); custom glue: its input is scaled by (1 - a_mem) "
            "(its I is then (1 - a_mem) times the spec's current), and the spike of "
            "the updated membrane is read with the same axon (SpikeOfUpdate), because "
            "Spyx neurons return the spike of the previous membrane"
        ),
        "readout": "library: flax.nnx.Linear + spyx.nn.LI(beta=a_syn), not spiking",
        "surrogate": (
            "custom: spyx.axn.custom(bwd = 0.3 max(0, 1 - |x|)), because "
            "spyx.axn.triangular(k) = max(0, 1 - |k x|) has height 1"
        ),
    }),
    FCMnistSpec.name: TaskNetwork(FCNet, {
        "neuron": (
            "library: spyx.nn.LIF(beta=0.95, threshold 1) computes U = beta U + X - V_th "
            "H(U[t-1] - V_th) exactly; custom: its axon is a Heaviside with zero surrogate "
            "(spyx.axn.custom), because the spec detaches the reset, and the output spike "
            "H(U[t] - V_th) is read from the updated membrane (SpikeOfUpdate)"
        ),
        "surrogate": (
            "custom: spyx.axn.custom(bwd = 1/(1 + (pi x)^2)), because "
            "spyx.axn.arctan(k) = 1/(pi (1 + (k pi x)^2)): no k gives the spec's "
            "(k = 1 is the spec's shape at 1/pi of its height; the default k = 2 is "
            "narrower as well)"
        ),
    }),
    FCPoissonSpec.name: TaskNetwork(FCNet, {
        "neuron": (
            "custom: HardResetLIF, an nnx.Module in Spyx's neuron style "
            "(initial_state, (x, V) -> (out, V)), because no Spyx neuron has a "
            "hard reset (H = V + (X - V)/tau, V = H (1 - S), gradient kept)"
        ),
        "surrogate": (
            "library: spyx.axn.tanh(k=2) = 4/(e^-2x + e^2x)^2 = 1/cosh^2(2x), "
            "which is the spec's sigmoid surrogate 4 s(4x)(1 - s(4x))"
        ),
    }),
    LIFLayerSpec.name: TaskNetwork(LIFLayerNet, {
        "neuron": (
            "custom: HardResetLIF of fc_mnist_poisson (same reason), after a bias-free "
            "flax.nnx.Linear(N, N)"
        ),
        "surrogate": "library: spyx.axn.tanh(k=2) (= the sigmoid surrogate at alpha 4)",
    }),
    DSRNSpec.name: TaskNetwork(DSRN, {
        "neuron": (
            "custom: STBPNeuron in Spyx's neuron style, because no Spyx neuron has the "
            "multiplicative reset U = tau U (1 - S[t-1]) + X (gradient kept)"
        ),
        "surrogate": (
            "library: spyx.axn.boxcar(width=2a, height=1/(2a)) (open window "
            "|U - V_th| < a); custom only for --surrogate-center zero "
            "(spyx.axn.custom: the window on U = 0, which the boxcar, centred on 0 "
            "of U - V_th, cannot express)"
        ),
    }),
}


def build_network(spec: TaskSpec, settings: Settings) -> nnx.Module:
    try:
        architecture = ARCHITECTURES[spec.name].network
    except KeyError:
        raise TypeError(f"spyx has no network for task {spec.name}") from None
    return architecture(spec, settings)

"""Initial weights of every task, drawn in NumPy from the run's seed.

Every backend loads these (fairness rule 1).  Names and layouts follow
PyTorch: a linear weight is ``[out, in]``, a convolution weight
``[out, in, kh, kw]``; tdBN layers carry ``weight`` (lambda), ``bias`` (beta)
and the running statistics ``running_mean`` / ``running_var``.  Backends whose
framework uses another layout convert on load and back on read.
"""

from __future__ import annotations

import math

import numpy as np

from . import rng
from .specs import (
    DSRNSpec,
    FCMnistSpec,
    FCPoissonSpec,
    LIFLayerSpec,
    SyntheticSpec,
    TaskSpec,
)

Weights = dict[str, np.ndarray]


def kaiming_normal(gen: np.random.Generator, shape: tuple[int, ...], scale: float, mode: str = "fan_in") -> np.ndarray:
    """Normal with variance ``scale / fan`` (``scale = 2`` is He's ReLU gain squared)."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    fan = (shape[1] if mode == "fan_in" else shape[0]) * receptive
    return gen.normal(0.0, math.sqrt(scale / fan), size=shape)


def torch_linear_default(gen: np.random.Generator, n_out: int, n_in: int, bias: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """PyTorch's ``nn.Linear`` default: weight and bias uniform in +-1/sqrt(fan_in)."""
    bound = 1.0 / math.sqrt(n_in)
    w = gen.uniform(-bound, bound, size=(n_out, n_in))
    b = gen.uniform(-bound, bound, size=(n_out,)) if bias else None
    return w, b


def _tdbn(weights: Weights, prefix: str, channels: int) -> None:
    weights[f"{prefix}.weight"] = np.ones(channels)
    weights[f"{prefix}.bias"] = np.zeros(channels)
    weights[f"{prefix}.running_mean"] = np.zeros(channels)
    weights[f"{prefix}.running_var"] = np.ones(channels)


def initial_weights(spec: TaskSpec) -> Weights:
    """The float64 initial weights (and tdBN running statistics) of ``spec``."""
    gen = rng.stream(spec.seed, f"weights-{spec.name}")
    w: Weights = {}
    if isinstance(spec, SyntheticSpec):
        w["fc1.weight"] = kaiming_normal(gen, (spec.n_hidden, spec.n_in), spec.w1_scale)
        w["fc1.bias"] = np.zeros(spec.n_hidden)
        w["readout.weight"] = kaiming_normal(gen, (spec.n_classes, spec.n_hidden), spec.w2_scale)
        w["readout.bias"] = np.zeros(spec.n_classes)
    elif isinstance(spec, (FCMnistSpec, FCPoissonSpec)):
        bias = isinstance(spec, FCMnistSpec)
        for name, n_out, n_in in (("fc1", spec.n_hidden, spec.n_in), ("fc2", spec.n_classes, spec.n_hidden)):
            weight, b = torch_linear_default(gen, n_out, n_in, bias=bias)
            w[f"{name}.weight"] = weight
            if b is not None:
                w[f"{name}.bias"] = b
    elif isinstance(spec, DSRNSpec):
        stem = spec.channels(spec.stem_channels)
        w["stem.conv.weight"] = kaiming_normal(gen, (stem, 1, 3, 3), 2.0, "fan_out")
        _tdbn(w, "stem.bn", stem)
        for b in spec.blocks():
            p = b.prefix
            w[f"{p}.conv1.weight"] = kaiming_normal(gen, (b.out_channels, b.in_channels, 3, 3), 2.0, "fan_out")
            _tdbn(w, f"{p}.bn1", b.out_channels)
            w[f"{p}.conv2.weight"] = kaiming_normal(gen, (b.out_channels, b.out_channels, 3, 3), 2.0, "fan_out")
            _tdbn(w, f"{p}.bn2", b.out_channels)
            if b.has_projection:
                w[f"{p}.shortcut.conv.weight"] = kaiming_normal(
                    gen, (b.out_channels, b.in_channels, 1, 1), 2.0, "fan_out"
                )
                _tdbn(w, f"{p}.shortcut.bn", b.out_channels)
        for name, n_out, n_in in (
            ("fc1", spec.hidden_units, spec.final_channels),
            ("fc2", spec.n_classes, spec.hidden_units),
        ):
            w[f"{name}.weight"], w[f"{name}.bias"] = torch_linear_default(gen, n_out, n_in)
    elif isinstance(spec, LIFLayerSpec):
        n = spec.neurons
        w["fc.weight"] = kaiming_normal(gen, (n, n), spec.w_scale)
    else:
        raise TypeError(f"no initial weights for {type(spec).__name__}")
    return {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}


BUFFER_SUFFIXES = (".running_mean", ".running_var")


def trainable_names(weights: Weights) -> list[str]:
    """Names of the trained parameters (everything but running statistics)."""
    return [k for k in weights if not k.endswith(BUFFER_SUFFIXES)]

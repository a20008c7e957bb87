"""Initial weights of every task, drawn in NumPy from the run's seed.

Each task draws its own (``initial_weights`` of ``tasks/workloads/<task>.py``)
with the initialisers here, from the task's named stream.

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
from .taskspec import TaskSpec

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


def initial_weights(spec: TaskSpec) -> Weights:
    """The float64 initial weights (and tdBN running statistics) of ``spec``."""
    gen = rng.stream(spec.seed, f"weights-{spec.name}")
    w = spec.workload.initial_weights(spec, gen)
    return {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}


BUFFER_SUFFIXES = (".running_mean", ".running_var")


def trainable_names(weights: Weights) -> list[str]:
    """Names of the trained parameters (everything but running statistics)."""
    return [k for k in weights if not k.endswith(BUFFER_SUFFIXES)]

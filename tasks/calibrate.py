"""What this CPU can do, measured: the floor's rates for ``python -m tasks.floor --device cpu``.

A short calibration run (seconds): the best matrix-product rate per precision
over the GEMMs installed here (PyTorch's ``torch.mm`` -- MKL in float32,
oneDNN in bfloat16 --, oneDNN's float32 product reached through
``torch.ops.mkldnn._linear_pointwise`` -- on AMD CPUs about twice MKL's
rate --, and XLA's ``jnp.dot`` when JAX is installed), each the best of a few products of
the shape of the widest single-layer benchmark on the CPU (8192 x 2048 by
2048 x 2048, lif_layer's T*B rows at N = 2048), and the memory bandwidth of a large copy (bytes read plus
written).  The best rate is the floor's: a framework that reaches a faster GEMM
than ``torch.mm`` must not be measured as faster than the floor.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from . import cpu
from .machine import machine

GEMM_M, GEMM_N = 8192, 2048  # 69 GFLOP a product: a few tenths of a second each
REPEATS = 5
COPY_BYTES = 256 * 2**20


@dataclass
class Calibration:
    cpu: str
    threads: int
    # precision -> {gemm: FLOP/s}
    gemm: dict[str, dict[str, float]] = field(default_factory=dict)
    bandwidth: float = 0.0  # bytes/s, read + written
    machine: dict | None = None  # where it was taken (tasks/machine.py); None in calibrations from before

    def peak(self, precision: str) -> float:
        rates = self.gemm.get("fp32" if precision == "tf32" else precision) or {}
        return max(rates.values()) if rates else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def best_seconds(call: Callable[[], object], repeats: int = REPEATS) -> float:
    call()  # warm-up (and, for XLA, compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return min(times)


def _torch_operands(precision: str):
    """The GEMM's two operands as torch tensors, [M, N] and [N, N], in ``precision``."""
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return torch.randn(GEMM_M, GEMM_N).to(dtype), torch.randn(GEMM_N, GEMM_N).to(dtype)


def torch_gemm(precision: str) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    a, b = _torch_operands(precision)
    return 2 * GEMM_M * GEMM_N**2 / best_seconds(lambda: torch.mm(a, b))


def onednn_gemm(precision: str) -> float | None:
    try:
        import torch

        op = torch.ops.mkldnn._linear_pointwise
    except (ImportError, AttributeError, RuntimeError):
        return None
    if not torch.backends.mkldnn.is_available():
        return None
    a, b = _torch_operands(precision)  # b as [out, in]: a @ b.T
    return 2 * GEMM_M * GEMM_N**2 / best_seconds(lambda: op(a, b, None, "none", [], ""))


def xla_gemm(precision: str) -> float | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
    key = jax.random.PRNGKey(0)
    a = jax.random.normal(key, (GEMM_M, GEMM_N), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (GEMM_N, GEMM_N), dtype)
    dot = jax.jit(lambda x, y: jnp.dot(x, y, precision=jax.lax.Precision.HIGHEST))
    return 2 * GEMM_M * GEMM_N**2 / best_seconds(lambda: dot(a, b).block_until_ready())


GEMMS = {"torch.mm": torch_gemm, "oneDNN linear (torch.ops.mkldnn)": onednn_gemm, "jax.numpy.dot (XLA)": xla_gemm}


def copy_bandwidth() -> float:
    src = np.ones(COPY_BYTES // 8)
    dst = np.empty_like(src)
    return 2 * src.nbytes / best_seconds(lambda: np.copyto(dst, src))


def calibrate(precisions: tuple[str, ...] = ("fp32", "bf16")) -> Calibration:
    cal = Calibration(cpu=cpu.model_name(), threads=len(os.sched_getaffinity(0)), machine=machine())
    for precision in precisions:
        rates = {}
        for name, gemm in GEMMS.items():
            rate = gemm(precision)
            if rate is not None:
                rates[name] = rate
        cal.gemm[precision] = rates
    cal.bandwidth = copy_bandwidth()
    return cal

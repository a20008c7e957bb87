"""Run stbp:fused's numba kernels on fixed NumPy inputs under any Python, and save or compare their outputs.

For checking the CPU engine on a Python where PyTorch cannot be installed (its
CPU build comes from a local file for one Python only): the kernels themselves
never touch PyTorch, so where it does not import a stand-in module takes its
place, enough for the kernel modules (``backends/stbp/cpu_neuron.py``, ``cpu_neuron_node.py``,
``cpu_neuron_linear_node.py``, ``cpu_tdbn_node.py``) and ``cpu_threads.py`` to load.
Covered: the neuron forward and backward passes (every kind), the neuron + linear +
neuron node (forward, backward from the membranes and from the input) and the tdBN +
neuron node (statistics, per-channel constants and running statistics, forward
with a normalised residual, backward, its per-channel gradient sums, input
gradient) on NCHW and on channels-last steps, in float32 and float64, threaded.

    python tools/numba_kernels_check.py save ref.npz        # e.g. on 3.11, beside PyTorch
    python3.12 tools/numba_kernels_check.py compare ref.npz # exit 1 unless bitwise equal

Needs only numba and NumPy; it loads the modules by path, under their own names.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np

KERNELS = Path(__file__).resolve().parents[1] / "backends" / "stbp"
PARAMS = {"soft": (0.5, 1.0), "subtractive": (0.8, 1.0, 2.0), "hard": (2.0, 1.0), "stbp": (0.25, 0.4, 0.5)}


def _load_kernels():
    try:
        import torch  # noqa: F401  (loaded first where present, as the backend does)
        with_torch = True
    except ImportError:
        with_torch = False
        sys.modules["torch"] = types.ModuleType("torch")  # imported, never used by what runs here
    # the real package names without running the packages' __init__ (which import PyTorch):
    # numba's disk cache records the module each kernel came from
    for name, path in (("backends", KERNELS.parent), ("backends.stbp", KERNELS)):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package
    # cpu_threads first: numba's threading layer as the backend picks it
    names = ("cpu_threads", "cpu_neuron", "cpu_neuron_node", "cpu_neuron_linear_node", "cpu_tdbn_node")
    modules = []
    for name in names:
        spec = importlib.util.spec_from_file_location(f"backends.stbp.{name}", KERNELS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        modules.append(module)
    modules = modules[1:]
    return (*modules, with_torch)


def outputs() -> dict[str, np.ndarray]:
    neuron, node, nl, td, with_torch = _load_kernels()
    import numba

    print(f"Python {sys.version.split()[0]}, numba {numba.__version__}, NumPy {np.__version__}, "
          f"{'with' if with_torch else 'without'} PyTorch", end="")
    rng = np.random.default_rng(0)
    out = {}
    for dt in (np.float32, np.float64):
        fast_exp = dt == np.float32
        for kind, code in neuron.KIND_CODES.items():
            qf = neuron.constants(kind, PARAMS[kind], dt, backward=False)
            qb = neuron.constants(kind, PARAMS[kind], dt, backward=True)
            T, M = 7, 3001  # blocks of 512, the last cut short
            x, gs = (rng.standard_normal(T * M).astype(dt) for _ in range(2))
            s, m, gx = (np.empty(T * M, dt) for _ in range(3))
            s8 = np.empty(T * M, np.uint8)
            node._forward_parallel(code, x, M, s, s8, m, T, M, qf, True, True, 512)
            node._backward_parallel(code, m, gs, M, gs, M, False, gx, False, T, M, qb, 512, fast_exp)
            out[f"neuron-{kind}-{dt.__name__}"] = np.concatenate([s, m, gx, s8]).astype(np.float64)

            # the neuron + linear + neuron node, static and time-major input: forward with the membranes,
            # backward from them and from the input (recomputed), two tasks of samples (the
            # second's last group of four cut short), K = 6 (a block of four rows and two more)
            T, B, N, K, rows = 5, 11, 37, 6, 6
            w, bias = rng.standard_normal((K, N)).astype(dt), rng.standard_normal(K).astype(dt)
            g = np.empty((T * B, K), dt)  # (written by the backward pass: the linear layer's output gradient)
            for layout, x_step in (("static", 0), ("time-major", B * N)):
                x = (rng.standard_normal(B * N if x_step == 0 else T * B * N) + 0.6).astype(dt)
                y, m = np.empty((T * B, K), dt), np.empty(T * B * N, dt)
                s8 = np.empty(T * B * N, np.uint8)
                s_out, m_out = np.empty(T * B * K, dt), np.empty(T * B * K, dt)
                nl._nl_forward_parallel(code, x, x_step, T, B, N, qf, w, bias, True, y, s8, m, True, code, qf,
                                        s_out, m_out, rows)
                results = [y.ravel(), m, s8, s_out, m_out]
                none = np.zeros(1, dt)
                gs_out, gm_out = rng.standard_normal(B * K).astype(dt), rng.standard_normal(T * B * K).astype(dt)
                for recompute in (False, True):
                    gx, dw = np.empty(x.size, dt), np.empty((2, K, N), dt)
                    # the output spikes' gradient broadcast over time (step stride 0), the membranes' not
                    nl._nl_backward_parallel(code, qb, qf, m, x, x_step, recompute, T, B, N, w, g,
                                             (none, 0, False, none, False), gx, x_step == 0, dw,
                                             (code, qb, m_out, gs_out, 0, gm_out, B * K, True),
                                             (rows, 4 if recompute else rows), fast_exp)
                    results += [gx, dw.ravel(), g.copy().ravel()]
                out[f"neuron-linear-{layout}-{kind}-{dt.__name__}"] = np.concatenate(results).astype(np.float64)

            T, B, C, HW = 3, 4, 5, 49  # tasks of two channel planes, the last cut short
            n = T * B * C * HW
            x, r, gs = (rng.standard_normal(n).astype(dt) for _ in range(3))
            a, b = rng.uniform(0.5, 1.5, C).astype(dt), rng.uniform(-0.2, 0.2, C).astype(dt)
            # the same values read as NCHW steps (tasks of 2 channel planes) and as channels-last
            # steps (tasks of 20 positions, the last cut short)
            for name, nhwc, split, rows in (("tdbn", False, 2, B), ("tdbn-channels-last", True, 20, B * 3)):
                sums, m2s = np.empty((B, C)), np.empty((B, C))
                if nhwc:
                    td._stats_nhwc_parallel(x, T, B, C, HW, sums, m2s)
                else:
                    td._stats_parallel(x, T, B, C, HW, sums, m2s, split)
                # tdBN's constants per channel (mean, var, invstd, scale, shift) and running statistics
                consts, running_mean, running_var = np.empty((5, C), dt), np.zeros(C, dt), np.ones(C, dt)
                k = np.array([0.7, 1e-5, 0.1, 0.9, 1, T * B * HW, T * B * HW - 1], dt)
                td._batch_constants(sums, m2s, T * HW, a, b, k, running_mean, running_var, consts)
                mean, invstd, scale, shift = consts[td.MEAN], consts[td.INVSTD], consts[td.SCALE], consts[td.SHIFT]
                s, g, gx = np.empty(n, dt), np.empty(n, dt), np.empty(n, dt)
                s8 = np.empty(n, np.uint8)
                gsum, gdot, r_gdot = (np.empty((rows, C), dt) for _ in range(3))
                td._forward_parallel(code, x, r, 2, T, B, C, HW, scale, shift, a, b, qf, s, s8, split, nhwc)
                td._backward_parallel(code, x, r, 2, gs, T, B, C, HW, scale, shift, a, b, mean, invstd, mean, invstd,
                                      qf, qb, g, gsum, gdot, r_gdot, split, nhwc, fast_exp)
                grads = np.empty((6, C), dt)
                td._gradient_constants(gsum, gdot, r_gdot, np.array([0.7, 0.5, T * B * HW], dt), grads)
                td._input_grad_parallel(g, x, T, B, C, HW, scale, grads[td.MEAN_G], grads[td.MEAN_GDOT], mean, invstd,
                                        gx, False, split, nhwc)
                out[f"{name}-{kind}-{dt.__name__}"] = np.concatenate(
                    [consts.ravel(), running_mean, running_var, s, s8, g, grads.ravel(), gx]).astype(np.float64)
    print(f", numba threading layer {numba.threading_layer()}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "compare"):
        print("usage: python tools/numba_kernels_check.py save|compare FILE.npz", file=sys.stderr)
        return 2
    action, path = argv
    want = None
    if action == "compare":
        try:
            want = dict(np.load(path))
        except (OSError, ValueError) as e:
            print(f"error: cannot read {path}: {e}", file=sys.stderr)
            return 2
    got = outputs()
    if want is None:
        np.savez(path, **got)
        print(f"saved {len(got)} outputs to {path}")
        return 0
    different = [k for k in got if k not in want or not np.array_equal(got[k], want[k])]
    print(f"compared {len(got)} outputs: " + ("bitwise equal" if not different else "DIFFERENT: " + ", ".join(different)))
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

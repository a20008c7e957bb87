"""What the JAX backends (brainstate, spyx) share.

Framework-neutral JAX and NumPy only: nothing here imports brainstate,
brainpy, braintools, Spyx, Flax or optax, so each backend still runs with only
its own framework installed.  What differs between the two (the library's
modules, losses, optimiser and how the weights are held) stays in their
folders; what is the same logic is here once:

* :class:`JaxBackend`: the precision policy (``jax_enable_x64``, dtypes, the
  matmul precision per precision), the device and its description, the scope
  every call into JAX runs in, staging, the conversion of evaluation's output,
  loading a shared weight onto the device, and measurement (synchronisation,
  the allocator's peak, out-of-memory errors);
* the weight layouts (PyTorch's ``[out, in]`` and ``[O, I, kh, kw]`` <->
  JAX's ``[in, out]`` and ``[kh, kw, I, O]``) and channels-last activity ->
  channels-first;
* the score kinds of the spec (tasks/taskspec.py) in ``jax.numpy``;
* the arithmetic of tdBN (:class:`TdBNMath`), time folded into the batch
  (:func:`fold`), and the DSRN's forward pass and basic block, on modules the
  backend builds with its own library;
* a task's entry in a backend's network table (:class:`TaskNetwork`: its network
  and how its neuron and surrogate are built), which the backend's capabilities
  list (:func:`task_components`), so a task is one entry per backend.

Precision policy (as in :mod:`backends.torch_common`):

* ``fp64``: ``jax_enable_x64`` is switched on in the constructor (parity);
* ``fp32``: float32 with ``jax_default_matmul_precision = "highest"`` (no TF32);
* ``tf32``: float32 storage, ``"tensorfloat32"`` matmul precision;
* ``bf16``: parameters, optimiser, neuron state, tdBN statistics and loss in
  float32; the operands of linear layers and convolutions in bfloat16 (each
  backend says how its library does that).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import jax
import jax.numpy as jnp

from tasks import cpu
from tasks.data import Batch
from tasks.errors import DeviceUnavailable
from tasks.specs import TaskSpec
from tasks.weights import BUFFER_SUFFIXES

from .base import Backend, EvalOutput

MATMUL_PRECISION = {"fp64": "highest", "fp32": "highest", "tf32": "tensorfloat32", "bf16": "highest"}

# score kind -> scores(readout [T, B, C], output spikes [T, B, C]) -> [B, C]
SCORES: dict[str, Callable[[Any, Any], Any]] = {
    "max_over_time": lambda readout, spikes: jnp.max(readout, axis=0),
    "spike_count": lambda readout, spikes: jnp.sum(spikes, axis=0),
    "time_mean": lambda readout, spikes: jnp.mean(readout, axis=0),
}


@dataclass(frozen=True)
class TaskNetwork:
    """One task's entry in a JAX backend's ``ARCHITECTURES``: the network class built for it, and
    how each part of it is built (``"neuron"``, ``"surrogate"``, and ``"readout"`` where it is not
    a spiking layer: "library: ..." or "custom: ..., because ...")."""

    network: type
    components: dict[str, str]


def task_components(architectures: dict[str, TaskNetwork]) -> dict[str, str]:
    """The ``"<part>:<task>"`` components of every task of ``architectures``: each task's neuron
    and readout, then each task's surrogate (the order the capability table reads in)."""
    out = {}
    for task, entry in architectures.items():
        out.update({f"{part}:{task}": text for part, text in entry.components.items() if part != "surrogate"})
    out.update({f"surrogate:{task}": entry.components["surrogate"] for task, entry in architectures.items()})
    return out


def version(module) -> str:
    return str(getattr(module, "__version__", "unknown"))


# ----------------------------------------------------------------- layouts
def to_module(layout: str, value: np.ndarray) -> np.ndarray:
    """A shared (PyTorch-layout) weight -> the JAX module's layout."""
    if layout == "linear":  # [out, in] -> [in, out]
        return value.T
    if layout == "conv":  # [O, I, kh, kw] -> [kh, kw, I, O]
        return value.transpose(2, 3, 1, 0)
    return value


def from_module(layout: str, value: np.ndarray) -> np.ndarray:
    """A weight (or its gradient) in the JAX module's layout -> the shared layout."""
    if layout == "linear":
        return value.T
    if layout == "conv":  # [kh, kw, I, O] -> [O, I, kh, kw]
        return value.transpose(3, 2, 0, 1)
    return value


def channels_first(value: np.ndarray, leading: int) -> np.ndarray:
    """Channels-last -> channels-first for convolutional layers (3 dims after ``leading``)."""
    if value.ndim - leading == 3:
        axes = tuple(range(leading)) + (leading + 2, leading, leading + 1)
        return np.ascontiguousarray(value.transpose(axes))
    return value


def to_numpy(x) -> np.ndarray:
    """A device array -> a float64 NumPy array of its own."""
    return np.array(jax.device_get(x), dtype=np.float64)


@dataclass
class StagedBatch:
    """A batch already on the device (see ``Backend.stage``)."""

    x: Any
    y: Any
    static: bool

    @property
    def size(self) -> int:
        return int(self.y.shape[0])


def find_device(device: str):
    """The JAX device for ``--device`` (``cpu`` or ``cuda``)."""
    if device == "cpu":
        return jax.devices("cpu")[0]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        raise DeviceUnavailable("--device cuda asked for, but JAX sees no GPU (is jax[cuda] installed?)")
    return gpus[0]


# ----------------------------------------------------------------- the backend
class JaxBackend(Backend):
    """Precision, device, staging, evaluation's output, weight loading and measurement of a JAX backend.

    A subclass builds its network and optimiser after ``super().__init__``,
    compiles its functions (:meth:`_compile`; kept in ``self._compiled``,
    traces counted in ``compile_count``), says what they take besides the
    batch (:meth:`_arguments`) and which arrays hold its trained state
    (:meth:`_state_leaves`), and writes the training step and
    ``forward_backward`` (what they update is the framework's); whatever a call
    returns stays on the device in ``self._last``.
    """

    peak_memory_scope = "process"  # JAX cannot reset peak_bytes_in_use

    def __init__(self, spec: TaskSpec, weights: dict[str, np.ndarray], *, device: str = "cpu", precision: str = "fp32"):
        super().__init__(spec, weights, device=device, precision=precision)
        if precision == "fp64":
            jax.config.update("jax_enable_x64", True)
        self.jax_device = find_device(device)
        self.dtype = jnp.float64 if precision == "fp64" else jnp.float32
        self.np_dtype = np.float64 if precision == "fp64" else np.float32
        self.matmul_precision = MATMUL_PRECISION[precision]
        self._compiled: dict[tuple, Any] = {}
        self._last: Any = None
        self.compile_count = 0  # traces of compiled functions (a recompilation shows here)

    # -- what a subclass provides -------------------------------------------------
    def _compile(self, kind: str, static: bool, record: bool, batch_statistics: bool) -> Callable:
        """The compiled function of ``kind`` ("train", "forward_backward", "gradients", "eval"),
        called as ``fn(*self._arguments(kind), x, y)``; "gradients" returns (gradients, loss) and
        "eval" :func:`eval_result`.  Each trace adds one to ``compile_count``."""
        raise NotImplementedError

    def _arguments(self, kind: str) -> tuple:
        """What the compiled function of ``kind`` takes before ``(x, y)``: none where the
        framework keeps the state itself (brainstate), the state where it is passed in (spyx)."""
        return ()

    def _state_leaves(self) -> list:
        """The arrays (or pytrees) of the trained state, which :meth:`synchronize` waits for too."""
        raise NotImplementedError

    def shared_gradients(self, grads) -> dict[str, np.ndarray]:
        """Gradients as the compiled functions return them -> shared names and layouts (float64 NumPy)."""
        raise NotImplementedError

    # -- set-up ---------------------------------------------------------------------
    def _scope(self) -> contextlib.ExitStack:
        """Matmul precision and device for everything run inside (a subclass may enter more)."""
        stack = contextlib.ExitStack()
        stack.enter_context(jax.default_matmul_precision(self.matmul_precision))
        stack.enter_context(jax.default_device(self.jax_device))
        return stack

    def device_info(self) -> dict[str, Any]:
        d = self.jax_device
        info: dict[str, Any] = {
            "type": "cuda" if d.platform == "gpu" else d.platform,
            "name": getattr(d, "device_kind", str(d)),
            "platform": d.platform,
            "jax_backend": jax.default_backend(),
        }
        if d.platform == "cpu":
            info["name"] = cpu.model_name() or info["name"]
            info["threads"] = os.cpu_count()
        else:
            stats = self._stats()
            if "bytes_limit" in stats:
                info["memory_bytes"] = int(stats["bytes_limit"])
            for attr in ("compute_capability", "core_count"):
                if hasattr(d, attr):
                    info[attr] = getattr(d, attr)
        return info

    # -- inputs and outputs ------------------------------------------------------------
    def stage(self, batch: Batch) -> StagedBatch:
        x = jax.device_put(np.asarray(batch.x, dtype=self.np_dtype), self.jax_device)
        y = jax.device_put(np.asarray(batch.y, dtype=np.int32), self.jax_device)
        return StagedBatch(x, y, batch.static)

    def _inputs(self, batch: Batch | StagedBatch):
        staged = batch if isinstance(batch, StagedBatch) else self.stage(batch)
        return staged.x, staged.y

    def _function(self, kind: str, static: bool, record: bool = False, batch_statistics: bool = True) -> Callable:
        """The compiled function of ``kind``, compiled once per (kind, static, record, batch_statistics)
        (and by JAX once per batch shape)."""
        key = (kind, static, record, batch_statistics)
        fn = self._compiled.get(key)
        if fn is None:
            fn = self._compiled[key] = self._compile(kind, static, record, batch_statistics)
        return fn

    def _call(self, kind: str, batch: Batch | StagedBatch, *flags: bool):
        """The compiled function of ``kind`` (``flags``: record, batch_statistics) on ``batch``, in the scope."""
        with self._scope():
            x, y = self._inputs(batch)
            return self._function(kind, batch.static, *flags)(*self._arguments(kind), x, y)

    # -- evaluation --------------------------------------------------------------------
    def infer(self, batch: Batch | StagedBatch) -> None:
        """Forward pass (running statistics), results left on the device."""
        self._last = self._call("eval", batch, False, False)

    def evaluate(self, batch: Batch | StagedBatch, *, record: bool = False, batch_statistics: bool = False) -> EvalOutput:
        out = self._call("eval", batch, record, batch_statistics)
        self._last = out
        return self._eval_output(out, record)

    def gradients(self, batch: Batch | StagedBatch) -> dict[str, np.ndarray]:
        grads, loss = self._call("gradients", batch)
        self._last = loss
        return self.shared_gradients(grads)

    def _eval_output(self, out: dict, record: bool) -> EvalOutput:
        """What a compiled evaluation returned (loss, scores, counts; with ``record`` spikes,
        membranes and readout) -> an :class:`EvalOutput`, float64 and channels-first."""
        out = jax.device_get(out)
        counts = {k: channels_first(to_numpy(v), 0) for k, v in out["counts"].items()}
        result = EvalOutput(loss=float(out["loss"]), scores=to_numpy(out["scores"]), spike_counts=counts)
        if record:
            result.spikes = {k: channels_first(to_numpy(v), 2) for k, v in out["spikes"].items()}
            result.membranes = {k: channels_first(to_numpy(v), 2) for k, v in out["membranes"].items()}
            result.readout = to_numpy(out["readout"])
        return result

    # -- weights -------------------------------------------------------------------------
    def _check_weight_names(self, known, weights: dict[str, np.ndarray]) -> None:
        """Every weight given is one of ``known``; every trainable one of ``known`` is given
        (tdBN running statistics may be left out)."""
        unknown = sorted(set(weights) - set(known))
        missing = sorted(n for n in known if n not in weights and not n.endswith(BUFFER_SUFFIXES))
        if unknown or missing:
            raise ValueError(f"{self.name}: unknown weights {unknown}, missing weights {missing}")

    def _device_array(self, name: str, value: np.ndarray, layout: str, shape) -> Any:
        """Shared weight ``name`` in the module's layout and dtype, on the device; its shape must be ``shape``."""
        converted = np.asarray(to_module(layout, np.asarray(value, dtype=np.float64)), dtype=self.np_dtype)
        if tuple(converted.shape) != tuple(shape):
            raise ValueError(f"{self.name}: weight {name} has shape {np.shape(value)}, "
                             f"which does not fit the module's {tuple(shape)} ({layout} layout)")
        return jax.device_put(np.ascontiguousarray(converted), self.jax_device)

    # -- measurement -----------------------------------------------------------------------
    def compile_info(self) -> dict[str, Any] | None:
        return {"compiler": "jax.jit (XLA)", "graphs": self.compile_count}

    def synchronize(self) -> None:
        leaves = jax.tree_util.tree_leaves(self._last) if self._last is not None else []
        leaves += self._state_leaves()
        jax.block_until_ready(leaves)

    def reset_peak_memory(self) -> None:
        """JAX cannot reset its allocator's peak: :meth:`peak_memory_bytes` is the process's peak
        (construction included), which is why measurements run each backend in a fresh process."""
        self.synchronize()

    def _stats(self) -> dict:
        if self.jax_device.platform == "cpu":
            return {}
        try:
            return dict(self.jax_device.memory_stats() or {})
        except Exception:
            return {}

    def peak_memory_bytes(self) -> int | None:
        """The process's device-memory peak (``peak_bytes_in_use``); None on the CPU."""
        if self.jax_device.platform == "cpu":
            return None
        self.synchronize()
        peak = self._stats().get("peak_bytes_in_use")
        return None if peak is None else int(peak)

    def is_out_of_memory(self, exc: BaseException) -> bool:
        text = str(exc)
        return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()

    def close(self) -> None:
        self._compiled.clear()
        self._last = None


def eval_result(loss, scores, spikes: dict, record: bool, membranes: dict | None = None, readout=None) -> dict:
    """What a compiled evaluation returns (read by :meth:`JaxBackend._eval_output`): loss, scores and
    each layer's spike counts summed over time and batch; with ``record`` the spikes, membranes and readout."""
    result = {"loss": loss, "scores": scores, "counts": {k: jnp.sum(v, axis=(0, 1)) for k, v in spikes.items()}}
    if record:
        result.update(spikes=spikes, membranes=membranes, readout=readout)
    return result


# ----------------------------------------------------------------- network pieces
def fold(module, x):
    """``module`` on ``[T, B, ...]`` with time folded into the batch."""
    T, B = x.shape[:2]
    y = module(x.reshape((T * B,) + x.shape[2:]))
    return y.reshape((T, B) + y.shape[1:])


class TdBNMath:
    """Threshold-dependent batch norm of a channels-last ``[T, B, H, W, C]`` input, whatever holds its state.

    ``y = lambda alpha V_th (x - mean) / sqrt(var + eps) + beta``, mean and biased variance over
    (T, B, H, W), the gradient flowing through both; the running mean and *unbiased* running
    variance move with ``momentum`` towards the batch's (detached), only when ``update_running``.
    A module mixes this in and sets ``dtype``, ``scale`` (alpha V_th), ``eps`` and ``momentum``;
    it reads and writes its own library's state in :meth:`_affine` (lambda, beta),
    :meth:`_running` and :meth:`_set_running` (mean, var), each called only where needed.
    """

    dtype: Any
    scale: float
    eps: float
    momentum: float

    def _affine(self):
        raise NotImplementedError

    def _running(self):
        raise NotImplementedError

    def _set_running(self, mean, var) -> None:
        raise NotImplementedError

    def normalise(self, x, batch_statistics: bool = True, update_running: bool = False):
        x = x.astype(self.dtype)
        if batch_statistics:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axis=axes)
            var = jnp.var(x, axis=axes)
            if update_running:
                n = x.size // x.shape[-1]
                m = self.momentum
                batch_mean = jax.lax.stop_gradient(mean)
                unbiased = jax.lax.stop_gradient(var) * (n / (n - 1))
                running_mean, running_var = self._running()
                self._set_running((1.0 - m) * running_mean + m * batch_mean, (1.0 - m) * running_var + m * unbiased)
        else:
            mean, var = self._running()
        weight, bias = self._affine()
        scale = weight * self.scale / jnp.sqrt(var + self.eps)
        return (x - mean) * scale + bias


def residual_block(block, s, lif, bn_mode: dict):
    """A DSRN basic block on spikes ``s`` ``[T, B, H, W, C]``: conv-tdBN-LIF, conv-tdBN plus the shortcut
    (conv-tdBN where it projects, else ``s``), LIF.  ``block`` has the modules ``conv1``, ``bn1``,
    ``lif1``, ``conv2``, ``bn2``, ``lif2`` (and ``shortcut_conv``, ``shortcut_bn`` with
    ``has_projection``); ``lif(name, neuron, inputs)`` runs a spiking layer over time."""
    h = lif(f"{block.prefix}.lif1", block.lif1, block.bn1(fold(block.conv1, s), **bn_mode))
    out = block.bn2(fold(block.conv2, h), **bn_mode)
    if block.has_projection:
        out = out + block.shortcut_bn(fold(block.shortcut_conv, s), **bn_mode)
    else:
        out = out + s
    return lif(f"{block.prefix}.lif2", block.lif2, out)


def dsrn_forward(net, x, lif, bn_mode: dict, *, T: int, static: bool):
    """The DSRN (STBP-tdBN), channels-last inside, on ``[B, C, H, W]`` images (``static``: convolved
    once and repeated over time) or ``[T, B, C, H, W]`` frames; returns the output layer's spikes.
    ``net`` has ``stem_conv``, ``stem_bn``, ``stem_lif``, the blocks named in ``block_names``
    (each called ``block(s, lif, bn_mode)``), ``fc1``, ``fc1_lif``, ``fc2``, ``fc2_lif``."""
    if static:
        y = net.stem_conv(jnp.transpose(x, (0, 2, 3, 1)))
        y = jnp.broadcast_to(y, (T,) + y.shape)
    else:
        y = fold(net.stem_conv, jnp.transpose(x, (0, 1, 3, 4, 2)))
    s = lif("stem.lif", net.stem_lif, net.stem_bn(y, **bn_mode))
    for attr in net.block_names:
        s = getattr(net, attr)(s, lif, bn_mode)
    pooled = jnp.mean(s, axis=(2, 3))  # [T, B, C]
    h = lif("fc1.lif", net.fc1_lif, net.fc1(pooled))
    return lif("fc2.lif", net.fc2_lif, net.fc2(h))

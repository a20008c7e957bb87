"""What the PyTorch backends (stbp, snntorch, spikingjelly) share.

A PyTorch backend only builds an ``nn.Module`` whose ``forward(x, static,
record)`` returns a :class:`NetworkOutput`, and says how the shared weight
names map onto its module; training, evaluation, gradients, weights, the
precision policy and measurement are done here once, identically for all.

Precision policy (identical in every framework):

* ``fp64``: float64 everywhere (parity checks only);
* ``fp32``: float32, TF32 off for matrix products and convolutions;
* ``tf32``: float32 storage, TF32 allowed in matrix products and convolutions;
* ``bf16``: parameters, optimiser, neuron state, tdBN statistics and loss in
  float32; linear layers and convolutions run in bfloat16 (autocast).
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from tasks import cpu
from tasks.data import Batch
from tasks.idx import cache_dir
from tasks.errors import BackendUnavailable, DeviceUnavailable
from tasks.specs import TaskSpec
from tasks.weights import trainable_names

from .base import Backend, Capabilities, EvalOutput


@dataclass
class StagedBatch:
    """A batch already on the device (see ``Backend.stage``)."""

    x: torch.Tensor
    y: torch.Tensor
    static: bool

    @property
    def size(self) -> int:
        return int(self.y.shape[0])


@dataclass
class NetworkOutput:
    """What a network's forward returns (all time-major)."""

    readout: torch.Tensor  # [T, B, C]: what the loss is computed from
    spikes: dict[str, torch.Tensor]  # layer -> [T, B, *shape]
    membranes: dict[str, torch.Tensor] | None = None  # with record=True


def neuron_input(x: torch.Tensor) -> torch.Tensor:
    """Neuron state and tdBN statistics stay float32 under bf16 autocast (the precision policy)."""
    return x.float() if x.dtype == torch.bfloat16 else x


def over_time(x: torch.Tensor, T: int, static: bool) -> torch.Tensor:
    """A static ``[B, ...]`` input repeated to ``[T, B, ...]`` (a view); a time-major one unchanged."""
    return x.unsqueeze(0).expand((T,) + tuple(x.shape)) if static else x


# What a Recorder keeps of a layer's spikes: the tensor itself, unless a
# backend sets a function here for the duration of a forward pass (stbp:fused
# keeps the one-byte copy its neuron kernel wrote, so that the float spikes
# can be freed as soon as the next layer has read them).
spike_keeper: contextvars.ContextVar = contextvars.ContextVar("spike_keeper", default=None)


class Recorder:
    """Collects each spiking layer's spikes (and, with ``record``, membranes) during a forward pass."""

    def __init__(self, record: bool):
        self.record = record
        self.spikes: dict[str, torch.Tensor] = {}
        self.membranes: dict[str, torch.Tensor] | None = {} if record else None
        # (a compiled variant never sets a keeper, and dynamo cannot trace ContextVar.get)
        self.keep = None if torch.compiler.is_compiling() else spike_keeper.get()

    def __call__(self, name: str, pair) -> torch.Tensor:
        """Keep ``pair = (spikes, membranes)`` of layer ``name``; return the spikes."""
        spikes, membranes = pair
        self.spikes[name] = spikes if self.keep is None else self.keep(spikes)
        if self.record:
            self.membranes[name] = membranes
        return spikes

    def output(self, readout: torch.Tensor) -> NetworkOutput:
        return NetworkOutput(readout=readout, spikes=self.spikes, membranes=self.membranes)


def torch_dtype(precision: str) -> torch.dtype:
    return torch.float64 if precision == "fp64" else torch.float32


def configure_precision(precision: str) -> None:
    """Switch TF32 on only for the ``tf32`` policy."""
    allow = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = allow
    torch.backends.cudnn.allow_tf32 = allow
    torch.set_float32_matmul_precision("high" if allow else "highest")


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    """PyTorch's default dtype set to ``dtype`` inside the block.  Adam keeps its step
    count as a tensor of the default dtype, and compiled, computes its bias
    corrections in it (eager Adam reads the count as a Python float): a float64
    run needs it float64, as a user training in float64 sets it."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _ce_of_time_mean(readout, labels, n_classes):
    return nn.functional.cross_entropy(readout.mean(0), labels)


def _ce_summed_over_time(readout, labels, n_classes):
    T, B, C = readout.shape
    # the classes as the middle dimension of [1, C, T*B] (a view): PyTorch's CPU log-softmax
    # over a short last dimension is 3-4x slower than over a middle one (fc_mnist's 640 x 10
    # at T = 5: 92 -> 47 us forward and backward), the same values to rounding
    logits = readout.reshape(T * B, C).t().unsqueeze(0)
    return nn.functional.cross_entropy(logits, labels.expand(T, B).reshape(1, T * B), reduction="sum") / B


def _mse_of_rate(readout, labels, n_classes):
    rate = readout.mean(0)
    return nn.functional.mse_loss(rate, nn.functional.one_hot(labels, n_classes).to(rate.dtype))


# the spec's loss and score kinds (tasks/taskspec.py) -> PyTorch
LOSSES = {
    "ce_of_time_mean": _ce_of_time_mean,
    "ce_summed_over_time": _ce_summed_over_time,
    "mse_of_rate": _mse_of_rate,
    "mean": lambda readout, labels, n_classes: readout.mean(),
}
SCORES = {
    "max_over_time": lambda readout, spikes: readout.amax(0),
    "spike_count": lambda readout, spikes: spikes.sum(0),
    "time_mean": lambda readout, spikes: readout.mean(0),
}


def task_loss(spec: TaskSpec, out: NetworkOutput, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and scores of ``docs/tasks.md`` from the spec's kinds (as ``tasks.reference.loss_and_scores``)."""
    readout = out.readout.float() if out.readout.dtype == torch.bfloat16 else out.readout
    output_spikes = out.spikes[spec.layer_names()[-1]]
    return LOSSES[spec.loss](readout, labels, spec.n_classes), SCORES[spec.score](readout, output_spikes)


def cuda_device_info(device: torch.device) -> dict[str, Any]:
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    info = {
        "type": "cuda",
        "name": props.name,
        "memory_bytes": int(props.total_memory),
        "capability": f"{props.major}.{props.minor}",
        "multiprocessors": int(props.multi_processor_count),
        "cuda_runtime": torch.version.cuda,
    }
    try:  # the driver version, where NVML is there to ask
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        info["driver"] = driver.decode() if isinstance(driver, bytes) else driver
    except Exception:
        pass
    return info


def cpu_device_info() -> dict[str, Any]:
    return {"type": "cpu", "name": cpu.model_name(), "threads": torch.get_num_threads()}


# -- torch.compile ---------------------------------------------------------------
# How a compiled variant compiles (recorded in its capability table and records):
# inductor with the user's defaults.  ``dynamic=None`` is torch.compile's own
# default: the first shape is compiled static, a second one recompiles with
# dynamic sizes (automatic dynamic shapes), later ones reuse that graph.
# Graph breaks are allowed, as in a user's torch.compile (PyTorch's Adam itself
# breaks the graph on purpose around its step): each is counted and recorded; a
# step that fails to compile, or of which nothing compiles, is unavailable.
COMPILE_BACKEND = "inductor"
COMPILE_DYNAMIC = None
# The mode of the CUDA-graph variants (":cudagraphs", CUDA only): inductor's code, each
# graph captured once and replayed, which saves the launch of every kernel of a step.
CUDA_GRAPHS_MODE = "reduce-overhead"

# Inductor's on-disk caches (FX graphs, AOTAutograd, the C++ it built) in one place that
# every run of this user shares -- the suite's processes, its Slurm jobs, asv -- so that a
# second run finds its points compiled; set before torch._inductor is imported (which
# fixes its default, a folder under /tmp), a TORCHINDUCTOR_CACHE_DIR given is kept.
INDUCTOR_CACHE_DIR = os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))


def compiler_missing(device: str) -> str | None:
    """Why inductor cannot generate code for ``device`` here, or None when it can."""
    if device == "cpu":
        from torch._inductor import cpp_builder

        try:
            cpp_builder.get_cpp_compiler()
        except Exception as exc:  # InvalidCxxCompiler: none of the compilers it looks for is on PATH
            return ("torch.compile (inductor) needs a C++ compiler on the CPU (g++ or clang++ on PATH, or "
                    f"TORCHINDUCTOR_CPP_CXX / CXX): {' '.join(str(exc).split())[:200]}")
        return None
    from torch.utils._triton import has_triton

    return None if has_triton() else "torch.compile (inductor) needs Triton on CUDA (pip install triton)"


def _dynamo_counts() -> tuple[int, int, Counter]:
    """Graph breaks and graphs compiled so far in this process, and the breaks by reason."""
    from torch._dynamo.utils import counters

    breaks = counters["graph_break"]
    return sum(breaks.values()), counters["stats"]["unique_graphs"], Counter(breaks)


def _inductor_cache_counts() -> Counter:
    """Inductor's on-disk cache so far in this process: graphs found there ("hit") and
    graphs compiled anew ("miss"), which is most of a compile time."""
    from torch._dynamo.utils import counters

    inductor = counters["inductor"]
    return Counter(hit=inductor["fxgraph_cache_hit"], miss=inductor["fxgraph_cache_miss"])


def _cudagraph_skips() -> int:
    """Graphs inductor compiled but ran without CUDA graphs so far in this process (a CPU
    tensor among the inputs, a mutated input, dynamic shapes, ...)."""
    from torch._dynamo.utils import counters

    return counters["inductor"]["cudagraph_skips"]


def _break_reason(text: str) -> str:
    """Dynamo's graph-break message without its hints and links: its first line and
    the explanation."""
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    if not lines or not lines[0]:
        return "(no reason given)"
    explained = [line.removeprefix("Explanation:").strip() for line in lines if line.startswith("Explanation:")]
    return ": ".join(lines[:1] + explained[:1])[:300]


def _failed_compiling(exc: BaseException) -> bool:
    """Whether ``exc`` is torch.compile failing to compile (dynamo's and inductor's
    errors, the recompilation limit, or an internal error raised while dynamo
    traced or built its guards), not an error of the compiled code as it ran (out
    of memory, ...)."""
    from torch._dynamo.exc import FailOnRecompileLimitHit, TorchDynamoException

    if isinstance(exc, (TorchDynamoException, FailOnRecompileLimitHit)):
        return True
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename.replace("\\", "/"))
        tb = tb.tb_next
    # raised in dynamo, or anywhere below its compiling of a frame: the guards it builds
    # run generated code, whose errors (an IndexError on a library's global state it
    # guarded on) are compiling's, not the network's
    return bool(frames) and ("/torch/_dynamo/" in frames[-1]
                             or any(f.endswith("/torch/_dynamo/convert_frame.py") for f in frames))


class CompiledFunction:
    """A function under ``torch.compile``, its graph breaks and compilations counted.

    A failure to compile (dynamo cannot trace, inductor or the C++ compiler
    fails, the recompilation limit is hit) raises :class:`BackendUnavailable`
    with the reason; so does a call that compiled nothing (a silent eager
    fallback).  ``describe(*args)`` names the kind of call (training or
    evaluation, gradients or not, ...): each kind compiles its own graphs, and
    its first compilation's graph breaks are kept under that name; ``graphs``
    counts the graphs compiled in all (a recompilation adds one)."""

    def __init__(self, fn, name: str, mode: str, describe=None):
        self.name = name
        self.mode = mode
        self.fn = torch.compile(fn, backend=COMPILE_BACKEND, mode=mode, dynamic=COMPILE_DYNAMIC, fullgraph=False)
        self.describe = describe or (lambda *args: name)
        self.graphs = 0
        self.breaks_by_call: dict[str, int] = {}
        self.reasons: Counter = Counter()

    def __call__(self, *args):
        breaks0, graphs0, reasons0 = _dynamo_counts()
        skips0 = _cudagraph_skips()
        try:
            out = self.fn(*args)
        except Exception as exc:
            if _failed_compiling(exc):
                said = " ".join(" ".join(line.split()) for line in str(exc).strip().splitlines()[:2])[:300]
                raise BackendUnavailable(f"torch.compile of the {self.name} failed: {type(exc).__name__}: {said}") from None
            raise
        if self.mode == CUDA_GRAPHS_MODE and _cudagraph_skips() > skips0:
            # inductor ran the graph without CUDA graphs: the row would be the :compile variant's
            raise BackendUnavailable(
                f"torch.compile of the {self.name} ({self.describe(*args)}) ran {_cudagraph_skips() - skips0} "
                f"graph(s) without CUDA graphs (inductor's reasons: TORCH_LOGS=perf_hints)")
        breaks1, graphs1, reasons1 = _dynamo_counts()
        if graphs1 == graphs0 and breaks1 == breaks0:
            return out  # nothing new was compiled: the cached graphs ran
        kind = self.describe(*args)
        if kind not in self.breaks_by_call:
            if graphs1 == graphs0:
                raise BackendUnavailable(f"torch.compile of the {self.name} ({kind}) compiled no graph: it ran "
                                         f"eagerly ({breaks1 - breaks0} graph breaks)")
            self.breaks_by_call[kind] = breaks1 - breaks0
        self.graphs += graphs1 - graphs0
        self.reasons.update({_break_reason(k): v - reasons0.get(k, 0) for k, v in reasons1.items()
                             if v > reasons0.get(k, 0)})
        return out

    def record(self) -> dict[str, Any]:
        """``graph_breaks``: the most any kind of call met in its first compilation
        (None before any compiled); per kind, and every break's reason."""
        return {"graph_breaks": max(self.breaks_by_call.values(), default=None), "graphs": self.graphs,
                "graph_breaks_by_call": dict(self.breaks_by_call), "graph_break_reasons": dict(self.reasons)}


def compiled_capabilities(caps: Capabilities, mode: str, device_note: str = "") -> Capabilities:
    """``caps`` of an eager backend, as its compiled variant's (CUDA graphs: on CUDA only)."""
    compile_table = {
        "compiler": f"torch.compile, backend {COMPILE_BACKEND}",
        "mode": mode,
        "dynamic": COMPILE_DYNAMIC,
        "fullgraph": False,
        "compiled": ("the network and the loss (forward; AOTAutograd compiles their backward) in one function, "
                     "and Adam's step in another (PyTorch's recipe 'Compiling the optimizer with torch.compile'); "
                     "the same compiled network for inference and evaluation"),
        "graph_breaks": ("counted per point: the most that one kind of call of the network and loss (training "
                         "with gradients, evaluation without, recording, ...) met in its first compilation, "
                         "recorded in the record's copy of this table and in its 'compile' entry with each kind's "
                         "count and every reason; Adam's own breaks (PyTorch breaks the graph around every "
                         "optimizer step on purpose) are counted apart"),
    }
    devices = caps.devices
    if mode == CUDA_GRAPHS_MODE:
        devices = tuple(d for d in caps.devices if d == "cuda")
        compile_table["cuda_graphs"] = ("every graph captured and replayed as a CUDA graph (inductor's cudagraph "
                                        "trees); a graph inductor runs without one makes the point unavailable, "
                                        "as a graph break would not; a new step begins at each forward")
    return Capabilities(
        tasks=caps.tasks, devices=devices, precisions=caps.precisions, components=dict(caps.components),
        differences=dict(caps.differences), parity_tolerances={k: dict(v) for k, v in caps.parity_tolerances.items()},
        notes=f"Under torch.compile ({COMPILE_BACKEND}, mode {mode}): " + caps.notes + device_note,
        compile=compile_table,
    )


def compiled_variant(eager: type, mode: str = "default", variant: str = "compile") -> type:
    """The variant of PyTorch backend ``eager`` whose steps run under ``torch.compile``
    (``mode`` :data:`CUDA_GRAPHS_MODE`: with CUDA graphs, variant ``cudagraphs``)."""
    name = f"{eager.__name__.removesuffix('Backend')}{'Compiled' if mode == 'default' else 'CudaGraphs'}Backend"

    def capabilities(cls) -> Capabilities:
        return compiled_capabilities(eager.capabilities(), mode)

    return type(name, (eager,), {
        "variant": variant,
        "compile_mode": mode,
        "capabilities": classmethod(capabilities),
        "__module__": eager.__module__,
        "__qualname__": name,
        "__doc__": f"{eager.__name__} with its training step, inference and evaluation under torch.compile ({mode}).",
    })


class TorchBackend(Backend):
    """Training, evaluation, weights and measurement for any PyTorch network."""

    def __init__(self, spec: TaskSpec, weights: dict[str, np.ndarray], *, device: str = "cpu", precision: str = "fp32"):
        super().__init__(spec, weights, device=device, precision=precision)
        if device == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailable("--device cuda asked for, but PyTorch sees no CUDA device")
        self.torch_device = torch.device(device)
        self.dtype = torch_dtype(precision)
        configure_precision(precision)
        self.model = self.build_model().to(device=self.torch_device, dtype=self.dtype)
        self.parameter_names = trainable_names(weights)
        self.set_weights(weights)
        groups = self.optimizer_groups()
        for group in groups:
            group.setdefault("lr_scale", 1.0)
            group["lr"] = spec.lr * group["lr_scale"]
        self.optimizer = torch.optim.Adam(groups, lr=spec.lr, betas=spec.adam_betas, eps=spec.adam_eps)
        self._network = self._network_outputs
        if self.compile_mode is not None:
            self._compile()

    # The torch.compile mode of a compiled variant (``compiled_variant``); None: eager.
    compile_mode: ClassVar[str | None] = None

    def _compile(self) -> None:
        missing = compiler_missing(self.device)
        if missing is not None:
            raise NotImplementedError(f"{self.name}: {missing}")
        import torch._dynamo

        # a step that does not compile must fail, never run eagerly in silence
        torch._dynamo.config.suppress_errors = False
        torch._dynamo.config.fail_on_recompile_limit_hit = True
        # dynamo keeps a code object's graphs for the whole process and counts its
        # recompilations against one limit, and every variant's network is one code
        # object (``_network_outputs``): variants and tasks built one after another in a
        # process (a notebook, a test worker) would add up to that limit.  A compiled
        # backend starts from empty caches, as in the suite's process per point (inductor's
        # on-disk cache stays); one built before it recompiles if it is called again.
        torch._dynamo.reset()
        self._inductor_cache_at_start = _inductor_cache_counts()
        # the learning rate as a tensor: a float is a constant of the compiled
        # Adam step, and each new value (a schedule) would recompile it
        # (on the device under CUDA graphs: a CPU tensor among a graph's inputs keeps it out of one)
        lr_device = self.torch_device if self.compile_mode == CUDA_GRAPHS_MODE else None
        for group in self.optimizer.param_groups:
            group["lr"] = torch.tensor(group["lr"], dtype=torch.float64, device=lr_device)
        self._network = CompiledFunction(self._network_outputs, "network and loss", self.compile_mode,
                                         self._call_kind)
        self._compiled_step = CompiledFunction(self._optimizer_step, "Adam step", self.compile_mode)

    # -- what a subclass provides -----------------------------------------------
    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """The network: ``forward(x, static: bool, record: bool) -> NetworkOutput``."""

    def module_key(self, name: str) -> str:
        """The module's state_dict key of shared weight ``name``."""
        return name

    def to_module(self, name: str, value: np.ndarray) -> np.ndarray:
        """Shared layout -> the module's layout."""
        return value

    def from_module(self, name: str, value: np.ndarray) -> np.ndarray:
        """The module's layout -> shared layout."""
        return value

    def gradient_from_module(self, name: str, grad: np.ndarray) -> np.ndarray:
        """Gradient w.r.t. the module's tensor -> gradient w.r.t. the shared weight."""
        return self.from_module(name, grad)

    def optimizer_groups(self) -> list[dict]:
        """Adam parameter groups.  A group may carry ``lr_scale`` (its learning
        rate is ``lr * lr_scale``, also after :meth:`set_learning_rate`) and its
        own ``eps``: a library that stores a weight as ``c * w`` keeps Adam's
        trajectory on ``w`` exactly with ``lr_scale = c`` and ``eps = eps / c``."""
        return [{"params": list(self.model.parameters())}]

    @classmethod
    def framework_versions(cls) -> dict[str, str]:
        return {}

    # -- Backend interface ---------------------------------------------------------
    @classmethod
    def versions(cls) -> dict[str, str]:
        return {"torch": torch.__version__, **cls.framework_versions()}

    def device_info(self) -> dict[str, Any]:
        if self.torch_device.type == "cuda":
            return cuda_device_info(self.torch_device)
        return cpu_device_info()

    def stage(self, batch: Batch) -> StagedBatch:
        x = torch.from_numpy(np.ascontiguousarray(batch.x)).to(self.torch_device, self.dtype, non_blocking=True)
        y = torch.from_numpy(np.asarray(batch.y, dtype=np.int64)).to(self.torch_device, non_blocking=True)
        return StagedBatch(x, y, batch.static)

    def _inputs(self, batch: Batch | StagedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        staged = batch if isinstance(batch, StagedBatch) else self.stage(batch)
        return staged.x, staged.y

    def infer(self, batch: Batch | StagedBatch) -> None:
        self.model.eval()
        with torch.no_grad():
            self._forward(batch, record=False)

    def _network_outputs(self, x: torch.Tensor, y: torch.Tensor, static: bool, record: bool) -> tuple:
        """The network and the loss: readout, spikes, membranes, loss and scores (plain
        tensors and dicts: what a compiled function returns)."""
        with autocast(self.precision, self.torch_device):
            out = self.model(x, static=static, record=record)
            loss, scores = task_loss(self.spec, out, y)
        return out.readout, out.spikes, out.membranes, loss, scores

    def _call_kind(self, x, y, static: bool, record: bool) -> str:
        """What a call of the network and loss is, for its graph breaks: each compiles apart."""
        kind = ["training" if self.model.training else "evaluation",
                "gradients" if torch.is_grad_enabled() else "no gradients"]
        return ", ".join(kind + (["recording"] if record else []))

    def _forward(self, batch: Batch | StagedBatch, record: bool) -> tuple[NetworkOutput, torch.Tensor, torch.Tensor]:
        x, y = self._inputs(batch)
        if self.compile_mode == CUDA_GRAPHS_MODE:
            # a forward begins a step: the CUDA graphs' outputs of the last one may be overwritten
            # (every caller reads its outputs before its next forward)
            torch.compiler.cudagraph_mark_step_begin()
        readout, spikes, membranes, loss, scores = self._network(x, y, batch.static, record)
        return NetworkOutput(readout=readout, spikes=spikes, membranes=membranes), loss, scores

    def forward_backward(self, batch: Batch | StagedBatch) -> torch.Tensor:
        """Forward and backward as in training; returns the loss, on the device."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        _, loss, _ = self._forward(batch, record=False)
        loss.backward()
        return loss

    def _optimizer_step(self) -> None:
        self.optimizer.step()

    def train_step(self, batch: Batch) -> float:
        loss = self.forward_backward(batch)
        if self.compile_mode is None:
            self.optimizer.step()
        else:
            with default_dtype(self.dtype):
                self._compiled_step()
        return float(loss.detach())

    def compile_info(self) -> dict[str, Any] | None:
        if self.compile_mode is None:
            return None
        network, step = self._network.record(), self._compiled_step.record()
        return {
            "compiler": f"torch.compile ({COMPILE_BACKEND})",
            "mode": self.compile_mode,
            "dynamic": COMPILE_DYNAMIC,
            "fullgraph": False,
            "graph_breaks": network["graph_breaks"],
            "graphs": network["graphs"] + step["graphs"],
            "network": network,
            "optimizer_step": step,
            # a warm cache shortens the compile time: comparable only with its own kind
            "inductor_cache": {k: n - self._inductor_cache_at_start[k] for k, n in _inductor_cache_counts().items()},
        }

    @contextlib.contextmanager
    def _buffers_kept(self):
        """Undo running-statistics updates made inside the block."""
        saved = {k: v.clone() for k, v in self.model.named_buffers()}
        try:
            yield
        finally:
            with torch.no_grad():
                for k, v in self.model.named_buffers():
                    v.copy_(saved[k])

    def evaluate(self, batch: Batch, *, record: bool = False, batch_statistics: bool = False) -> EvalOutput:
        self.model.train(batch_statistics)
        with torch.no_grad(), self._buffers_kept():
            out, loss, scores = self._forward(batch, record=record)
            counts = {name: _numpy(s.sum(dim=(0, 1))) for name, s in out.spikes.items()}
            result = EvalOutput(loss=float(loss), scores=_numpy(scores), spike_counts=counts)
            if record:
                result.spikes = {k: _numpy(v) for k, v in out.spikes.items()}
                result.membranes = {k: _numpy(v) for k, v in (out.membranes or {}).items()}
                result.readout = _numpy(out.readout)
        return result

    def gradients(self, batch: Batch) -> dict[str, np.ndarray]:
        self.model.train()
        params = dict(self.model.named_parameters())
        with self._buffers_kept():
            self.forward_backward(batch)
        grads = {}
        for name in self.parameter_names:
            tensor = params[self.module_key(name)]
            grad = np.zeros(tuple(tensor.shape)) if tensor.grad is None else _numpy(tensor.grad)
            grads[name] = self.gradient_from_module(name, grad)
        self.optimizer.zero_grad(set_to_none=True)
        return grads

    def get_weights(self) -> dict[str, np.ndarray]:
        state = self.model.state_dict()
        return {name: self.from_module(name, _numpy(state[self.module_key(name)])) for name in self.weight_names}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        state = self.model.state_dict()
        expected = {self.module_key(n) for n in weights}
        # Every trained tensor must come from the shared weights; other
        # buffers (a library's constants) are left alone.
        missing = [k for k, _ in self.model.named_parameters() if k not in expected]
        if missing:
            raise ValueError(f"{self.name}: no shared weight for module parameters {missing}")
        with torch.no_grad():
            for name, value in weights.items():
                target = state[self.module_key(name)]
                converted = np.asarray(self.to_module(name, np.asarray(value)))
                if tuple(converted.shape) != tuple(target.shape):
                    raise ValueError(f"{self.name}: weight {name} has shape {converted.shape}, module wants {tuple(target.shape)}")
                target.copy_(torch.from_numpy(np.ascontiguousarray(converted)).to(target.dtype))
        self.weight_names = list(weights)

    def set_learning_rate(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):  # compiled: changed in place (see _compile)
                group["lr"].fill_(lr * group["lr_scale"])
            else:
                group["lr"] = lr * group["lr_scale"]

    def synchronize(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)

    def reset_peak_memory(self) -> None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)
            torch.cuda.reset_peak_memory_stats(self.torch_device)

    def peak_memory_bytes(self) -> int | None:
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize(self.torch_device)
            return int(torch.cuda.max_memory_allocated(self.torch_device))
        return None

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()

    def close(self) -> None:
        self.optimizer = None  # type: ignore[assignment]
        self.model = None  # type: ignore[assignment]
        self._network = None  # type: ignore[assignment]
        if self.torch_device.type == "cuda":
            torch.cuda.empty_cache()


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A float64 NumPy copy (never a view of a live tensor: weights kept for
    early stopping must not change with training)."""
    return t.detach().to("cpu", torch.float64, copy=True).numpy()

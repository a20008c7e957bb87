"""The ``spyx`` backend: Spyx 1.0 (Flax NNX) on JAX, with optax's Adam.

The network is a Flax NNX module (:mod:`.networks`) of Spyx neurons
(:mod:`.neurons`) and Flax synapses.  It is used functionally: ``nnx.split``
once gives its graph definition and its state, the trainable weights and the
tdBN running statistics are kept here as dictionaries of arrays under the
shared weight names, and every compiled function rebuilds the module from them
with ``nnx.merge`` inside the trace.  The whole training step (forward over
time, loss, gradient, optax Adam update) is one ``jax.jit``-compiled function;
evaluation, the parity gradients and ``forward_backward`` (the step without the
Adam update) are compiled too, one function per static batch shape (JAX's
cache).

Precision policy (as in :mod:`backends.torch_common` and the brainstate backend):

* ``fp64``: ``jax_enable_x64`` is switched on in the constructor (parity);
  every array and constant of a backend has an explicit dtype, so a float32
  backend created later in the same process stays float32;
* ``fp32``: float32 with ``jax_default_matmul_precision = "highest"`` (no TF32);
* ``tf32``: float32 storage, ``"tensorfloat32"`` matmul precision;
* ``bf16``: parameters, Adam, neuron state, tdBN statistics and loss in
  float32; Flax's ``Linear`` / ``Conv`` compute in bfloat16 (``dtype=bfloat16``,
  ``param_dtype=float32``).

Matmul precision and device are scoped: every call into JAX runs inside a
context that sets them, so they are part of each compiled function.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import jax
import jax.numpy as jnp
import optax
import spyx
from flax import nnx

from tasks.data import Batch
from tasks.errors import DeviceUnavailable
from tasks.specs import ALL_PRECISIONS, TASKS, TaskSpec
from tasks.weights import BUFFER_SUFFIXES

from ..base import Backend, Capabilities, EvalOutput
from .networks import READOUTS, Settings, build_network

MATMUL_PRECISION = {"fp64": "highest", "fp32": "highest", "tf32": "tensorfloat32", "bf16": "highest"}


def _version(module) -> str:
    return str(getattr(module, "__version__", "unknown"))


# ----------------------------------------------------------------- losses and scores
def _ce_of_time_mean(spec: TaskSpec) -> Callable:
    # spyx.fn.integral_crossentropy takes the cross-entropy of sum_t R; fed R / T
    # that is mean_t R.  smoothing 0: the one-hot labels unchanged.
    ce = spyx.fn.integral_crossentropy(smoothing=0.0, time_axis=0)
    return lambda readout, labels: ce(readout / readout.shape[0], labels)


def _ce_summed_over_time(spec: TaskSpec) -> Callable:
    # spyx.fn has no per-step loss: optax (spyx.fn's own dependency)
    def loss(readout, labels):
        T, B = readout.shape[:2]
        per_step = optax.softmax_cross_entropy_with_integer_labels(readout, jnp.broadcast_to(labels, (T, B)))
        return jnp.sum(per_step) / B

    return loss


def _mse_of_rate(spec: TaskSpec) -> Callable:
    # spyx.fn.mse_spikerate compares mean_t R with the target one_hot * sparsity * T.
    # Fed the rate as a one-step trace (T = 1) with sparsity 1 its target is the one-hot
    # exactly, for every T (sparsity = 1/T would leave (1/T) * T, which for some T no
    # float rounds to 1).
    mse = spyx.fn.mse_spikerate(sparsity=1.0, smoothing=0.0, time_axis=0)
    return lambda readout, labels: mse(jnp.mean(readout, axis=0, keepdims=True), labels)


def _mean(spec: TaskSpec) -> Callable:
    return lambda readout, labels: jnp.mean(readout)


# loss kind -> factory(spec) -> loss(readout [T, B, C], labels [B])
LOSSES: dict[str, Callable[[TaskSpec], Callable]] = {
    "ce_of_time_mean": _ce_of_time_mean,
    "ce_summed_over_time": _ce_summed_over_time,
    "mse_of_rate": _mse_of_rate,
    "mean": _mean,
}

# score kind -> scores(readout [T, B, C], output spikes [T, B, C]) -> [B, C]
SCORES: dict[str, Callable[[Any, Any], Any]] = {
    "max_over_time": lambda readout, spikes: jnp.max(readout, axis=0),
    "spike_count": lambda readout, spikes: jnp.sum(spikes, axis=0),
    "time_mean": lambda readout, spikes: jnp.mean(readout, axis=0),
}


# ----------------------------------------------------------------- layouts
def _to_module(layout: str, value: np.ndarray) -> np.ndarray:
    if layout == "linear":  # [out, in] -> [in, out]
        return value.T
    if layout == "conv":  # [O, I, kh, kw] -> [kh, kw, I, O]
        return value.transpose(2, 3, 1, 0)
    return value


def _from_module(layout: str, value: np.ndarray) -> np.ndarray:
    if layout == "linear":
        return value.T
    if layout == "conv":  # [kh, kw, I, O] -> [O, I, kh, kw]
        return value.transpose(3, 2, 0, 1)
    return value


def _channels_first(value: np.ndarray, leading: int) -> np.ndarray:
    """Channels-last -> channels-first for convolutional layers (3 dims after ``leading``)."""
    if value.ndim - leading == 3:
        axes = tuple(range(leading)) + (leading + 2, leading, leading + 1)
        return np.ascontiguousarray(value.transpose(axes))
    return value


def _numpy(x) -> np.ndarray:
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


class SpyxBackend(Backend):
    framework = "spyx"
    peak_memory_scope = "process"  # JAX cannot reset peak_bytes_in_use

    def __init__(self, spec: TaskSpec, weights: dict[str, np.ndarray], *, device: str = "cpu", precision: str = "fp32"):
        super().__init__(spec, weights, device=device, precision=precision)
        if precision == "fp64":
            jax.config.update("jax_enable_x64", True)
        self.jax_device = self._find_device(device)
        self.dtype = jnp.float64 if precision == "fp64" else jnp.float32
        self.np_dtype = np.float64 if precision == "fp64" else np.float32
        self.matmul_precision = MATMUL_PRECISION[precision]
        settings = Settings(dtype=self.dtype, compute_dtype=jnp.bfloat16 if precision == "bf16" else None)
        self.loss_fn = LOSSES[spec.loss](spec)
        self.score_fn = SCORES[spec.score]
        self.readout_fn = READOUTS[spec.readout]
        self.output_layer = spec.layer_names()[-1]
        with self._scope():
            net = build_network(spec, settings)
            self.paths: dict[str, tuple[tuple, str]] = net.weight_paths()
            self.graphdef, state = nnx.split(net)
            self.template = dict(nnx.to_flat_state(state))
            unknown = [p for p, _ in self.paths.values() if p not in self.template]
            if unknown:
                raise RuntimeError(f"spyx: weight paths not in the module: {unknown}")
            mapped = {p for p, _ in self.paths.values()}
            # What the shared weights do not cover: Spyx's neuron decays (nnx.Param
            # in the library, constants here: never differentiated nor updated).
            self.constants = {p: v for p, v in self.template.items() if p not in mapped}
            stray = [p for p, v in self.constants.items() if not isinstance(v, nnx.Param)]
            if stray:
                raise RuntimeError(f"spyx: module state without a shared weight: {stray}")
            self.trainable = [n for n in self.paths if not n.endswith(BUFFER_SUFFIXES)]
            self.buffer_names = [n for n in self.paths if n.endswith(BUFFER_SUFFIXES)]
            self.params = {n: self.template[self.paths[n][0]][...] for n in self.trainable}
            self.buffers = {n: self.template[self.paths[n][0]][...] for n in self.buffer_names}
            self.set_weights(weights)
            # the learning rate an optimiser state of the backend's dtype, the other constants static
            self.tx = optax.inject_hyperparams(optax.adam, static_args=("b1", "b2", "eps"),
                                               hyperparam_dtype=self.np_dtype)(
                learning_rate=spec.lr, b1=spec.adam_betas[0], b2=spec.adam_betas[1], eps=spec.adam_eps,
            )
            self.opt_state = self.tx.init(self.params)
        self._compiled: dict[tuple, Any] = {}
        self._last: Any = None
        self.compile_count = 0  # traces of compiled functions (a recompilation shows here)

    # -- set-up ---------------------------------------------------------------------
    @staticmethod
    def _find_device(device: str):
        if device == "cpu":
            return jax.devices("cpu")[0]
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:
            gpus = []
        if not gpus:
            raise DeviceUnavailable("--device cuda asked for, but JAX sees no GPU (is jax[cuda] installed?)")
        return gpus[0]

    def _scope(self):
        stack = contextlib.ExitStack()
        stack.enter_context(jax.default_matmul_precision(self.matmul_precision))
        stack.enter_context(jax.default_device(self.jax_device))
        return stack

    # -- description ----------------------------------------------------------------
    @classmethod
    def versions(cls) -> dict[str, str]:
        import flax
        import jaxlib

        return {
            "spyx": _version(spyx),
            "flax": _version(flax),
            "jax": _version(jax),
            "jaxlib": _version(jaxlib),
            "optax": _version(optax),
        }

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            tasks=tuple(TASKS),
            devices=("cpu", "cuda"),
            precisions=ALL_PRECISIONS,
            components={
                "neuron:synthetic": "library: spyx.nn.CuBaLIF(alpha=a_syn, beta=a_mem, threshold 1) is the "
                                    "exponential synapse + soft reset (subtract V_th S[t-1], surrogate kept, "
                                    "then V = a_mem V' + I); custom glue: its input is scaled by (1 - a_mem) "
                                    "(its I is then (1 - a_mem) times the spec's current), and the spike of "
                                    "the updated membrane is read with the same axon (SpikeOfUpdate), because "
                                    "Spyx neurons return the spike of the previous membrane",
                "readout:synthetic": "library: flax.nnx.Linear + spyx.nn.LI(beta=a_syn), not spiking",
                "neuron:fc_mnist": "library: spyx.nn.LIF(beta=0.95, threshold 1) computes U = beta U + X - V_th "
                                   "H(U[t-1] - V_th) exactly; custom: its axon is a Heaviside with zero surrogate "
                                   "(spyx.axn.custom), because the spec detaches the reset, and the output spike "
                                   "H(U[t] - V_th) is read from the updated membrane (SpikeOfUpdate)",
                "neuron:fc_mnist_poisson": "custom: HardResetLIF, an nnx.Module in Spyx's neuron style "
                                           "(initial_state, (x, V) -> (out, V)), because no Spyx neuron has a "
                                           "hard reset (H = V + (X - V)/tau, V = H (1 - S), gradient kept)",
                "neuron:lif_layer": "custom: HardResetLIF of fc_mnist_poisson (same reason), after a bias-free "
                                    "flax.nnx.Linear(N, N)",
                "neuron:dsrn_tdbn": "custom: STBPNeuron in Spyx's neuron style, because no Spyx neuron has the "
                                    "multiplicative reset U = tau U (1 - S[t-1]) + X (gradient kept)",
                "surrogate:synthetic": "custom: spyx.axn.custom(bwd = 0.3 max(0, 1 - |x|)), because "
                                       "spyx.axn.triangular(k) = max(0, 1 - |k x|) has height 1",
                "surrogate:fc_mnist": "custom: spyx.axn.custom(bwd = 1/(1 + (pi x)^2)), because "
                                      "spyx.axn.arctan(k) = 1/(pi (1 + (k pi x)^2)): no k gives the spec's "
                                      "(k = 1 is the spec's shape at 1/pi of its height; the default k = 2 is "
                                      "narrower as well)",
                "surrogate:fc_mnist_poisson": "library: spyx.axn.tanh(k=2) = 4/(e^-2x + e^2x)^2 = 1/cosh^2(2x), "
                                              "which is the spec's sigmoid surrogate 4 s(4x)(1 - s(4x))",
                "surrogate:lif_layer": "library: spyx.axn.tanh(k=2) (= the sigmoid surrogate at alpha 4)",
                "surrogate:dsrn_tdbn": "library: spyx.axn.boxcar(width=2a, height=1/(2a)) (open window "
                                       "|U - V_th| < a); custom only for --surrogate-center zero "
                                       "(spyx.axn.custom: the window on U = 0, which the boxcar, centred on 0 "
                                       "of U - V_th, cannot express)",
                "heaviside": "library: spyx.axn.heaviside, [x > 0] (the spec's H), the forward of every axon",
                "tdbn": "custom: nnx.Module TdBN (nnx.Param lambda/beta, nnx.BatchStat running statistics), "
                        "because JAX, Flax and Spyx have no tdBN (nnx.BatchNorm has no alpha V_th scale and keeps "
                        "the biased variance); statistics over (T, B, H, W), gradient through them, momentum 0.1, "
                        "unbiased running variance; evaluate(batch_statistics=True) leaves them unchanged",
                "synapses": "library: flax.nnx.Linear and flax.nnx.Conv (Spyx has no synapse layers; "
                            "channels-last, kernels [in, out] and [kh, kw, in, out]: the shared PyTorch-layout "
                            "weights are transposed on load and back on read); bf16: their dtype=bfloat16",
                "time": "spyx.nn.run (jax.lax.scan over T) per layer; Linear, Conv and tdBN fold T into the "
                        "batch; a static image is multiplied (fc_mnist) or convolved (dsrn_tdbn stem) once and "
                        "broadcast over time",
                "state": "neuron states start from zeros in the backend's dtype, passed to spyx.nn.run; Spyx's "
                         "neuron decays (nnx.Param in the library) are constants, not trained",
                "loss:ce_of_time_mean": "library: spyx.fn.integral_crossentropy(smoothing=0, time_axis=0) of "
                                        "R / T (it takes the cross-entropy of the time sum)",
                "loss:ce_summed_over_time": "library: optax.softmax_cross_entropy_with_integer_labels per step "
                                            "(spyx.fn has no per-step loss)",
                "loss:mse_of_rate": "library: spyx.fn.mse_spikerate(sparsity=1, smoothing=0, time_axis=0) fed "
                                    "the rate mean_t R as a one-step trace (its target is one_hot * sparsity "
                                    "* T, the one-hot exactly at T = 1 and sparsity 1; sparsity = 1/T would "
                                    "miss it by an ulp where no float makes (1/T) T round to 1)",
                "loss:mean": "jax.numpy.mean of the output spikes",
                "optimizer": "library: optax.inject_hyperparams(optax.adam) (bias-corrected, eps added to "
                             "sqrt(v_hat), as torch.optim.Adam); the learning rate is an optimiser state, so "
                             "set_learning_rate does not recompile",
                "compilation": "jax.jit of the whole step (nnx.merge of the state, forward, loss, "
                               "jax.value_and_grad, optax update); forward_backward is the same step without the "
                               "Adam update",
            },
            notes="Spyx 1.0 is built on Flax NNX (no longer Haiku). spyx.nn.IF, ALIF and the recurrent neurons "
                  "fit no task's equations and are not used. JAX: peak_memory_bytes is the process's allocator "
                  "peak (JAX cannot reset it), so measurements run in fresh processes. bf16: Flax's bfloat16 "
                  "Linear adds the bias in bfloat16 too.",
        )

    def device_info(self) -> dict[str, Any]:
        d = self.jax_device
        info: dict[str, Any] = {
            "type": "cuda" if d.platform == "gpu" else d.platform,
            "name": getattr(d, "device_kind", str(d)),
            "platform": d.platform,
            "jax_backend": jax.default_backend(),
        }
        if d.platform == "cpu":
            info["name"] = _cpu_name() or info["name"]
            info["threads"] = os.cpu_count()
        else:
            stats = self._stats()
            if "bytes_limit" in stats:
                info["memory_bytes"] = int(stats["bytes_limit"])
            for attr in ("compute_capability", "core_count"):
                if hasattr(d, attr):
                    info[attr] = getattr(d, attr)
        return info

    # -- the pure functions -----------------------------------------------------------
    def _model(self, params: dict, buffers: dict) -> nnx.Module:
        """The network with these weights (inside a trace: a fresh module of traced values)."""
        flat = dict(self.constants)
        for values in (params, buffers):
            for name, value in values.items():
                path = self.paths[name][0]
                flat[path] = self.template[path].replace(value)
        return nnx.merge(self.graphdef, nnx.from_flat_state(flat), copy=True)

    def _forward(self, params, buffers, x, y, *, static: bool, batch_statistics: bool, update_running: bool):
        model = self._model(params, buffers)
        out = model(x, static=static, batch_statistics=batch_statistics, update_running=update_running)
        readout = self.readout_fn(out, self.output_layer)
        loss = self.loss_fn(readout, y)
        scores = self.score_fn(readout, out.spikes[self.output_layer])
        new_buffers = {}
        if self.buffer_names:
            state = dict(nnx.to_flat_state(nnx.state(model, nnx.BatchStat)))
            new_buffers = {n: state[self.paths[n][0]][...] for n in self.buffer_names}
        return loss, scores, out, readout, new_buffers

    def _function(self, kind: str, static: bool, record: bool = False, batch_statistics: bool = True):
        if not self.buffer_names:
            batch_statistics = True  # no tdBN: both modes are one function
        key = (kind, static, record, batch_statistics)
        fn = self._compiled.get(key)
        if fn is not None:
            return fn

        def loss_and_gradients(params, buffers, x, y, update_running: bool):
            def loss(p):
                value, _, _, _, new_buffers = self._forward(p, buffers, x, y, static=static, batch_statistics=True,
                                                            update_running=update_running)
                return value, new_buffers

            (value, new_buffers), grads = jax.value_and_grad(loss, has_aux=True)(params)
            return grads, new_buffers, value

        if kind == "train":
            def fn(params, opt_state, buffers, x, y):
                self.compile_count += 1
                grads, buffers, loss = loss_and_gradients(params, buffers, x, y, True)
                updates, opt_state = self.tx.update(grads, opt_state, params)
                return optax.apply_updates(params, updates), opt_state, buffers, loss
        elif kind == "forward_backward":
            # the training step without the optimiser: running statistics move as in train_step
            def fn(params, buffers, x, y):
                self.compile_count += 1
                return loss_and_gradients(params, buffers, x, y, True)
        elif kind == "gradients":
            def fn(params, buffers, x, y):
                self.compile_count += 1
                grads, _, loss = loss_and_gradients(params, buffers, x, y, False)
                return grads, loss
        else:
            def fn(params, buffers, x, y):
                self.compile_count += 1
                loss, scores, out, readout, _ = self._forward(params, buffers, x, y, static=static,
                                                              batch_statistics=batch_statistics,
                                                              update_running=False)
                result = {"loss": loss, "scores": scores,
                          "counts": {k: jnp.sum(v, axis=(0, 1)) for k, v in out.spikes.items()}}
                if record:
                    result.update(spikes=out.spikes, membranes=out.membranes, readout=readout)
                return result
        fn = jax.jit(fn)
        self._compiled[key] = fn
        return fn

    # -- training and evaluation -----------------------------------------------------
    def stage(self, batch: Batch) -> StagedBatch:
        x = jax.device_put(np.asarray(batch.x, dtype=self.np_dtype), self.jax_device)
        y = jax.device_put(np.asarray(batch.y, dtype=np.int32), self.jax_device)
        return StagedBatch(x, y, batch.static)

    def _inputs(self, batch: Batch | StagedBatch):
        staged = batch if isinstance(batch, StagedBatch) else self.stage(batch)
        return staged.x, staged.y

    def train_step(self, batch: Batch | StagedBatch) -> float:
        with self._scope():
            x, y = self._inputs(batch)
            fn = self._function("train", batch.static)
            self.params, self.opt_state, self.buffers, loss = fn(self.params, self.opt_state, self.buffers, x, y)
        self._last = loss
        return float(loss)

    def forward_backward(self, batch: Batch | StagedBatch) -> None:
        """Forward and backward as in training, no Adam update; (gradients, loss) stay on
        the device in ``self._last`` (:meth:`synchronize` waits for them)."""
        with self._scope():
            x, y = self._inputs(batch)
            grads, self.buffers, loss = self._function("forward_backward", batch.static)(self.params, self.buffers, x, y)
        self._last = (grads, loss)

    def infer(self, batch: Batch | StagedBatch) -> None:
        with self._scope():
            x, y = self._inputs(batch)
            self._last = self._function("eval", batch.static, False, False)(self.params, self.buffers, x, y)

    def evaluate(self, batch: Batch | StagedBatch, *, record: bool = False, batch_statistics: bool = False) -> EvalOutput:
        with self._scope():
            x, y = self._inputs(batch)
            out = self._function("eval", batch.static, record, batch_statistics)(self.params, self.buffers, x, y)
        self._last = out
        out = jax.device_get(out)
        counts = {k: _channels_first(_numpy(v), 0) for k, v in out["counts"].items()}
        result = EvalOutput(loss=float(out["loss"]), scores=_numpy(out["scores"]), spike_counts=counts)
        if record:
            result.spikes = {k: _channels_first(_numpy(v), 2) for k, v in out["spikes"].items()}
            result.membranes = {k: _channels_first(_numpy(v), 2) for k, v in out["membranes"].items()}
            result.readout = _numpy(out["readout"])
        return result

    def gradients(self, batch: Batch | StagedBatch) -> dict[str, np.ndarray]:
        with self._scope():
            x, y = self._inputs(batch)
            grads, loss = self._function("gradients", batch.static)(self.params, self.buffers, x, y)
        self._last = loss
        return self.shared_gradients(grads)

    def shared_gradients(self, grads) -> dict[str, np.ndarray]:
        """Gradients as the compiled functions return them -> shared layouts (float64 NumPy)."""
        grads = jax.device_get(grads)
        return {n: _from_module(self.paths[n][1], _numpy(grads[n])) for n in self.trainable}

    # -- weights -------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        values = {**self.params, **self.buffers}
        return {n: _from_module(self.paths[n][1], _numpy(values[n])) for n in self.paths}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        unknown = sorted(set(weights) - set(self.paths))
        missing = sorted(n for n in self.trainable if n not in weights)
        if unknown or missing:
            raise ValueError(f"{self.name}: unknown weights {unknown}, missing weights {missing}")
        converted = {}
        for name, value in weights.items():
            layout = self.paths[name][1]
            target = self.params[name] if name in self.params else self.buffers[name]
            array = np.asarray(_to_module(layout, np.asarray(value, dtype=np.float64)), dtype=self.np_dtype)
            if tuple(array.shape) != tuple(target.shape):
                raise ValueError(f"{self.name}: weight {name} has shape {np.shape(value)}, which does not fit "
                                 f"the module's {tuple(target.shape)} ({layout} layout)")
            converted[name] = jax.device_put(np.ascontiguousarray(array), self.jax_device)
        for name, array in converted.items():
            (self.params if name in self.params else self.buffers)[name] = array

    def set_learning_rate(self, lr: float) -> None:
        # an optimiser state, read by the compiled step as an input (no recompilation)
        hyper = dict(self.opt_state.hyperparams)
        current = hyper["learning_rate"]
        hyper["learning_rate"] = jax.device_put(np.asarray(lr, dtype=current.dtype), self.jax_device)
        self.opt_state = self.opt_state._replace(hyperparams=hyper)

    # -- measurement -----------------------------------------------------------------------
    def synchronize(self) -> None:
        leaves = jax.tree_util.tree_leaves(self._last) if self._last is not None else []
        leaves += jax.tree_util.tree_leaves((self.params, self.buffers))
        jax.block_until_ready(leaves)

    def reset_peak_memory(self) -> None:
        """JAX cannot reset its allocator's peak: :meth:`peak_memory_bytes` is the process's peak."""
        self.synchronize()

    def _stats(self) -> dict:
        if self.jax_device.platform == "cpu":
            return {}
        try:
            return dict(self.jax_device.memory_stats() or {})
        except Exception:
            return {}

    def peak_memory_bytes(self) -> int | None:
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


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None

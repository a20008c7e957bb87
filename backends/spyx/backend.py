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

Precision policy (:mod:`backends.jax_common`, shared with the brainstate backend, as in
:mod:`backends.torch_common`):

* ``fp64``: ``jax_enable_x64`` is switched on in the constructor (parity);
  every array and constant of a backend has an explicit dtype, so a float32
  backend created later in the same process stays float32;
* ``fp32``: float32 with ``jax_default_matmul_precision = "highest"`` (no TF32);
* ``tf32``: float32 storage, ``"tensorfloat32"`` matmul precision;
* ``bf16``: parameters, Adam, neuron state, tdBN statistics and loss in
  float32; Flax's ``Linear`` / ``Conv`` compute in bfloat16 (``dtype=bfloat16``,
  ``param_dtype=float32``).

Matmul precision and device are scoped: every call into JAX runs inside a
context that sets them, so they are part of each compiled function.  What is
not Spyx's, Flax's or optax's (device, staging, evaluation's output, weight
loading, measurement) is :class:`backends.jax_common.JaxBackend`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

import jax
import jax.numpy as jnp
import optax
import spyx
from flax import nnx

from tasks.data import Batch
from tasks.specs import TaskSpec
from tasks.weights import BUFFER_SUFFIXES

from ..base import Capabilities
from ..jax_common import SCORES, JaxBackend, StagedBatch, eval_result, from_module, task_components, to_numpy, version
from .networks import ARCHITECTURES, READOUTS, Settings, build_network


# ----------------------------------------------------------------- losses (the score kinds: jax_common.SCORES)
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

class SpyxBackend(JaxBackend):
    framework = "spyx"

    def __init__(self, spec: TaskSpec, weights: dict[str, np.ndarray], *, device: str = "cpu", precision: str = "fp32"):
        super().__init__(spec, weights, device=device, precision=precision)
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

    def _state_leaves(self) -> list:
        return jax.tree_util.tree_leaves((self.params, self.buffers))

    # -- description ----------------------------------------------------------------
    @classmethod
    def versions(cls) -> dict[str, str]:
        import flax
        import jaxlib

        return {
            "spyx": version(spyx),
            "flax": version(flax),
            "jax": version(jax),
            "jaxlib": version(jaxlib),
            "optax": version(optax),
        }

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            components={
                **task_components(ARCHITECTURES),
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
        return super()._function(kind, static, record, batch_statistics)

    def _compile(self, kind: str, static: bool, record: bool, batch_statistics: bool):
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
                return eval_result(loss, scores, out.spikes, record, out.membranes, readout)
        return jax.jit(fn)

    # -- training -------------------------------------------------------------------------
    def _arguments(self, kind: str) -> tuple:
        if kind == "train":
            return self.params, self.opt_state, self.buffers
        return self.params, self.buffers

    def train_step(self, batch: Batch | StagedBatch) -> float:
        self.params, self.opt_state, self.buffers, loss = self._call("train", batch)
        self._last = loss
        return float(loss)

    def forward_backward(self, batch: Batch | StagedBatch) -> None:
        """Forward and backward as in training, no Adam update; (gradients, loss) stay on
        the device in ``self._last`` (:meth:`synchronize` waits for them)."""
        grads, self.buffers, loss = self._call("forward_backward", batch)
        self._last = (grads, loss)

    def shared_gradients(self, grads) -> dict[str, np.ndarray]:
        """Gradients as the compiled functions return them -> shared layouts (float64 NumPy)."""
        grads = jax.device_get(grads)
        return {n: from_module(self.paths[n][1], to_numpy(grads[n])) for n in self.trainable}

    # -- weights -------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        values = {**self.params, **self.buffers}
        return {n: from_module(self.paths[n][1], to_numpy(values[n])) for n in self.paths}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self._check_weight_names(self.paths, weights)
        converted = {}
        for name, value in weights.items():
            target = self.params[name] if name in self.params else self.buffers[name]
            converted[name] = self._device_array(name, value, self.paths[name][1], target.shape)
        for name, array in converted.items():
            (self.params if name in self.params else self.buffers)[name] = array

    def set_learning_rate(self, lr: float) -> None:
        # an optimiser state, read by the compiled step as an input (no recompilation)
        hyper = dict(self.opt_state.hyperparams)
        current = hyper["learning_rate"]
        hyper["learning_rate"] = jax.device_put(np.asarray(lr, dtype=current.dtype), self.jax_device)
        self.opt_state = self.opt_state._replace(hyperparams=hyper)

"""The ``brainstate`` backend: brainstate + brainpy.state + braintools on JAX.

The whole training step (forward over time, loss, gradient, Adam update) is
one function compiled with ``brainstate.transform.jit``; evaluation, the
parity gradients and ``forward_backward`` (the step without the Adam update)
are compiled too.  A compiled function is kept per static
batch shape (JAX's cache does that): training batches all have one size, and
the last, partial test batch compiles its own evaluation once.  No padding is
used, so batch statistics are always those of the real samples.

Precision policy (:mod:`backends.jax_common`, as in :mod:`backends.torch_common`):

* ``fp64``: ``jax_enable_x64`` is switched on in the constructor (parity);
* ``fp32``: float32 with ``jax_default_matmul_precision = "highest"`` (no TF32);
* ``tf32``: float32 storage, ``"tensorfloat32"`` matmul precision;
* ``bf16``: parameters, Adam, neuron state, tdBN statistics and loss in
  float32; the operands of linear layers and convolutions in bfloat16.

The matmul precision, the device and brainstate's ``dt`` are scoped: every
call into JAX runs inside a context that sets them, so the setting is part of
each compiled function (and of JAX's cache key) without touching the process
defaults.  What is not brainstate's own (device, staging, evaluation's output,
weight loading, measurement) is :class:`backends.jax_common.JaxBackend`,
shared with the spyx backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import jax
import jax.numpy as jnp

import braintools
import brainstate
import brainunit
import brainpy
import brainpy.state  # noqa: F401  (the subpackage: brainpy.state.LIF, .Expon, .Neuron)

from tasks.data import Batch
from tasks.specs import TaskSpec

from ..base import Capabilities
from ..jax_common import SCORES, JaxBackend, StagedBatch, eval_result, from_module, task_components, to_numpy, version
from .networks import ARCHITECTURES, NetworkOutput, Settings, build_network


def _ce_summed_over_time(readout, labels, n_classes):
    T, B = readout.shape[:2]
    ce = braintools.metric.softmax_cross_entropy_with_integer_labels
    return jnp.sum(ce(readout, jnp.broadcast_to(labels, (T, B)))) / B


def _mse_of_rate(readout, labels, n_classes):
    rate = jnp.mean(readout, axis=0)
    return jnp.mean(braintools.metric.squared_error(rate, jax.nn.one_hot(labels, n_classes, dtype=rate.dtype)))


# the spec's loss kinds (tasks/taskspec.py) -> braintools / jax.numpy (the score kinds: jax_common.SCORES)
LOSSES = {
    "ce_of_time_mean": lambda readout, labels, n_classes: jnp.mean(
        braintools.metric.softmax_cross_entropy_with_integer_labels(jnp.mean(readout, axis=0), labels)),
    "ce_summed_over_time": _ce_summed_over_time,
    "mse_of_rate": _mse_of_rate,
    "mean": lambda readout, labels, n_classes: jnp.mean(readout),
}


def task_loss(spec: TaskSpec, out: NetworkOutput, labels):
    """Loss and scores of the task from the spec's kinds (as :func:`tasks.reference.loss_and_scores`)."""
    output_spikes = out.spikes[spec.layer_names()[-1]]
    return LOSSES[spec.loss](out.readout, labels, spec.n_classes), SCORES[spec.score](out.readout, output_spikes)


class BrainstateBackend(JaxBackend):
    framework = "brainstate"
    # for_loop's ``unroll``: time loops of up to ``unroll_limit`` steps are
    # unrolled completely, longer ones not at all.  Measured on the CPU: the
    # T = 2 ResNet step is about 1.4x faster unrolled; for T = 20..200 loops,
    # unrolling in chunks of 4..8 was 2-3x slower and full unrolling no
    # faster (with much longer compiles).  Not measured on a GPU.
    unroll_limit = 8

    def __init__(self, spec: TaskSpec, weights: dict[str, np.ndarray], *, device: str = "cpu", precision: str = "fp32"):
        super().__init__(spec, weights, device=device, precision=precision)
        self.dt = float(getattr(spec, "dt", 1.0))
        unroll = spec.T if spec.T <= self.unroll_limit else 1
        self.settings = Settings(
            dtype=self.dtype,
            compute_dtype=jnp.bfloat16 if precision == "bf16" else None,
            unroll=unroll,
        )
        with self._scope():
            self.net = build_network(spec, self.settings)
            self.weight_map = self.net.weight_map()
            # ParamStates to train, keyed by a name of ours (the optimiser and
            # the gradient transform return dictionaries with these keys).
            self.params: dict[str, Any] = {}
            for name, (state, key, _) in self.weight_map.items():
                if key is not None:
                    self.params.setdefault(name.rsplit(".", 1)[0], state)
            self.set_weights(weights)
            self.optimizer = braintools.optim.Adam(
                lr=spec.lr, betas=tuple(spec.adam_betas), eps=spec.adam_eps
            )
            self.optimizer.register_trainable_weights(self.params)

    # -- set-up ---------------------------------------------------------------------
    def _scope(self):
        """Matmul precision, device and brainstate's dt for everything run inside."""
        stack = super()._scope()
        stack.enter_context(brainstate.environ.context(dt=self.dt))
        return stack

    def _state_leaves(self) -> list:
        return [s.value for s in self.params.values()]

    # -- description ----------------------------------------------------------------
    @classmethod
    def versions(cls) -> dict[str, str]:
        import jaxlib
        import optax

        out = {
            "jax": version(jax),
            "jaxlib": version(jaxlib),
            "brainstate": version(brainstate),
            "brainpy": version(brainpy),
            "brainpy.state": version(brainpy.state),
            "braintools": version(braintools),
            "brainunit": version(brainunit),
            "optax": version(optax),
        }
        try:
            import brainevent

            out["brainevent"] = version(brainevent)
        except Exception:
            pass
        return out

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            components={
                **task_components(ARCHITECTURES),
                "heaviside": "custom: every surrogate above is subclassed so the forward is H(x) = [x > 0]; "
                             "braintools' Heaviside primitive fires at x >= 0 (the surrogate gradient is the "
                             "library's, unchanged)",
                "tdbn": "custom: brainstate.nn.Module TdBN (ParamState lambda/beta, BatchState running "
                        "statistics), because brainstate.nn.BatchNorm2d has no alpha*V_th scale and keeps the "
                        "biased variance as running variance; statistics over (T, B, H, W), momentum 0.1, "
                        "unbiased running variance; evaluate(batch_statistics=True) leaves them unchanged",
                "synapses": "library: brainstate.nn.Linear and brainstate.nn.Conv2d (channels-last, kernels "
                            "[kh, kw, in, out]; shared PyTorch-layout weights are transposed on load and back on "
                            "read); bf16: subclasses that cast the operands to bfloat16",
                "time": "brainstate.transform.for_loop over T per layer (unrolled completely for T <= 8, not "
                        "unrolled above); Linear, Conv2d and tdBN fold T into the batch; a static image is "
                        "multiplied (fc_mnist) or convolved (dsrn_tdbn stem) once and repeated over time",
                "state": "neuron states are brainstate.HiddenState created by brainstate.nn.init_all_states "
                         "inside each compiled function (one compiled function per batch shape)",
                "loss": "library: braintools.metric.softmax_cross_entropy_with_integer_labels, "
                        "braintools.metric.squared_error",
                "optimizer": "library: braintools.optim.Adam (optax.scale_by_adam: bias-corrected, eps added to "
                             "sqrt(v_hat), as torch.optim.Adam); the learning rate lives in an optimiser state, "
                             "so set_learning_rate does not recompile",
                "compilation": "brainstate.transform.jit of the whole step (forward, loss, gradient, Adam); "
                               "forward_backward is the same step without the Adam update, compiled once",
            },
            notes="JAX: peak_memory_bytes is the process's allocator peak (JAX cannot reset it), so "
                  "measurements run in fresh processes. bf16 rounds each linear/conv output to bfloat16 "
                  "before adding the float32 bias.",
        )

    # -- compiled functions -----------------------------------------------------------
    def _forward(self, x, y, *, static: bool, record: bool, batch_statistics: bool, update_running: bool):
        brainstate.nn.init_all_states(self.net, y.shape[0])
        out = self.net(x, static=static, record=record, batch_statistics=batch_statistics,
                       update_running=update_running)
        loss, scores = task_loss(self.spec, out, y)
        return loss, scores, out

    def _compile(self, kind: str, static: bool, record: bool, batch_statistics: bool):
        def count():
            self.compile_count += 1

        def loss_and_gradients(x, y, update_running: bool):
            """(gradients, loss) of the training forward pass (tdBN with batch statistics)."""

            def loss_fn():
                return self._forward(x, y, static=static, record=False, batch_statistics=True,
                                     update_running=update_running)[0]

            return brainstate.transform.grad(loss_fn, grad_states=self.params, return_value=True)()

        if kind == "train":
            def train(x, y):
                count()
                grads, loss = loss_and_gradients(x, y, update_running=True)
                self.optimizer.update(grads)
                return loss

            fn = train
        elif kind == "forward_backward":
            # The training step without the optimiser: running statistics move
            # as in train_step (and as in the PyTorch backends' forward_backward).
            def forward_backward(x, y):
                count()
                return loss_and_gradients(x, y, update_running=True)

            fn = forward_backward
        elif kind == "gradients":
            def gradients(x, y):
                count()
                return loss_and_gradients(x, y, update_running=False)

            fn = gradients
        else:
            def evaluate(x, y):
                count()
                loss, scores, out = self._forward(x, y, static=static, record=record,
                                                  batch_statistics=batch_statistics, update_running=False)
                return eval_result(loss, scores, out.spikes, record, out.membranes, out.readout)

            fn = evaluate
        return brainstate.transform.jit(fn)

    # -- training -------------------------------------------------------------------------
    def train_step(self, batch: Batch | StagedBatch) -> float:
        loss = self._call("train", batch)
        self._last = loss
        return float(loss)

    def forward_backward(self, batch: Batch | StagedBatch) -> None:
        """Forward and backward as in training, no Adam update; the (gradients, loss)
        stay on the device in ``self._last`` (:meth:`synchronize` waits for them)."""
        self._last = self._call("forward_backward", batch)

    def shared_gradients(self, grads) -> dict[str, np.ndarray]:
        """Gradients as the compiled functions return them -> shared names and layouts (float64 NumPy)."""
        grads = jax.device_get(grads)
        out = {}
        for name, (state, key, layout) in self.weight_map.items():
            if key is None:
                continue
            out[name] = from_module(layout, to_numpy(grads[name.rsplit(".", 1)[0]][key]))
        return out

    # -- weights -------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        out = {}
        for name, (state, key, layout) in self.weight_map.items():
            value = state.value if key is None else state.value[key]
            out[name] = from_module(layout, to_numpy(value))
        return out

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self._check_weight_names(self.weight_map, weights)
        updates: dict[int, tuple[Any, dict]] = {}
        with self._scope():
            for name, value in weights.items():
                state, key, layout = self.weight_map[name]
                current = state.value if key is None else state.value[key]
                array = self._device_array(name, value, layout, current.shape)
                if key is None:
                    state.value = array
                else:
                    entry = updates.setdefault(id(state), (state, dict(state.value)))
                    entry[1][key] = array
            for state, value in updates.values():
                state.value = value

    def set_learning_rate(self, lr: float) -> None:
        # A float in an optimiser state: the compiled step reads it as an input.
        self.optimizer.current_lr = float(lr)

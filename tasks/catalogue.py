"""The metric catalogue: one place for what each figure is.

name -> unit, which direction is better, a short label, a description, and
whether a framework controls it (``ranked``): only those get "best" marks
and ratios.  Accuracy, losses and firing rates are checks that every
framework computes the same thing (every backend starts from the same
weights and sees the same batches, and parity proves the equations), so a
difference between backends there is floating-point divergence over
training, shown with its seed spread, never crowned.
"""

from __future__ import annotations

from dataclasses import dataclass

FRACTION = "fraction"
RATE_UNIT = "spikes/neuron/step"
LOSS = "loss"
OPS_UNIT = "ops/sample"
SPREAD_UNIT = "max/min"

# How the *_host_memory figures are taken (tasks/hostmem.py takes them so).
HOST_MEMORY_STEPS = 3
HOST_MEMORY_METHOD = (
    f"the peak resident memory over {HOST_MEMORY_STEPS} steps minus the resident memory just before them, in a "
    "process of its own whose malloc returns every freed block at once (tasks/hostmem.py); the same measure for "
    "every framework")


@dataclass(frozen=True)
class MetricInfo:
    name: str
    unit: str
    better: str  # "higher" | "lower"
    label: str
    description: str
    ranked: bool  # controlled by the framework: may be marked best and given ratios
    timing: str | None = None  # the Result.timings entry holding its repeats


def _m(name, unit, better, label, description, ranked, timing=None) -> MetricInfo:
    return MetricInfo(name, unit, better, label, description, ranked, timing)


CATALOGUE: dict[str, MetricInfo] = {m.name: m for m in (
    # ---- checks (not ranked)
    _m("accuracy", FRACTION, "higher", "Test accuracy",
       "Test accuracy after training, tie-aware: a sample whose label is among k tied top classes counts 1/k. "
       "Mean over seeds, ± the standard deviation; the seeds are the same for every backend.", False),
    _m("firing_rate_mean", RATE_UNIT, "lower", "Mean firing rate",
       "Mean over the spiking layers of each layer's rate on the test set after training; mean over seeds.", False),
    _m("final_train_loss", "loss", "lower", "Final loss", "Loss of the last training step.", False),
    # ---- training runs: timed once per seed, unsynchronised, data path included
    _m("time_to_accuracy", "s", "lower", "Time to accuracy",
       "Wall time from the run's start until the test accuracy first reached the task's target: the "
       "framework's import, loading the data set, building the network, every compile and jit, the data path "
       "of each batch, training, and the evaluations up to the one that reached it (every backend evaluates "
       "at the same steps). Mean over the seeds that reached it, ± the standard deviation, and how many did. "
       "One unsynchronised run per seed: shown, not ranked (the measured step times are).", False),
    _m("train_throughput", "samples/s", "higher", "Training throughput",
       "Training samples over the training wall time of the whole run (data path included, one "
       "synchronisation per step); median over seeds. Shown, not ranked (the measured step times are).", False),
    _m("peak_device_memory", "bytes", "lower", "Peak device memory",
       "The device allocator's peak (CUDA only).", True),
    # ---- measurement points: synchronised, repeated
    _m("train_step_time", "s", "lower", "Train step",
       "Forward, backward and Adam on a batch already on the device, device synchronised; median of the "
       "repeats. Below it, the spread (max/min) of the repeats.", True, "train_step"),
    _m("forward_backward_time", "s", "lower", "Forward + backward",
       "Forward and backward pass, no optimiser step, on a batch already on the device; median of the repeats "
       "(the single-layer benchmark's figure). Below it, the spread (max/min).", True, "forward_backward"),
    _m("inference_time", "s", "lower", "Inference",
       "One forward pass without gradients on a batch already on the device; median of the repeats. "
       "Below it, the spread (max/min).", True, "inference"),
    _m("train_step_throughput", "samples/s", "higher", "Train-step throughput",
       "Batch size over the median train-step time.", True, "train_step"),
    _m("forward_backward_throughput", "samples/s", "higher", "Forward + backward throughput",
       "Batch size over the median forward + backward time.", True, "forward_backward"),
    _m("inference_throughput", "samples/s", "higher", "Inference throughput",
       "Batch size over the median inference time.", True, "inference"),
    _m("train_step_host_memory", "bytes", "lower", "Train-step memory (host)",
       f"Host memory a training step needs on the CPU: {HOST_MEMORY_METHOD}.", True),
    _m("forward_backward_host_memory", "bytes", "lower", "Forward + backward memory (host)",
       "Host memory a forward + backward pass needs on the CPU, measured like the train-step memory.", True),
    _m("inference_host_memory", "bytes", "lower", "Inference memory (host)",
       "Host memory an inference pass needs on the CPU, measured like the train-step memory.", True),
    _m("peak_device_memory_forward_backward", "bytes", "lower", "Forward + backward peak device memory",
       "The device allocator's peak over forward + backward passes (CUDA only).", True),
    _m("compile_time", "s", "lower", "Compile time",
       "What compiling costs a point: over the calls it measures (inference, forward + backward, train step), "
       "each one's first call less its median. torch.compile variants (inductor; its on-disk cache, when warm, "
       "shortens it: the record counts the graphs found there and compiled anew) and JAX's jit; not recorded "
       "for eager backends.", True),
    _m("host_peak_rss", "bytes", "lower", "Process peak RSS",
       "The measuring process's peak resident memory, framework, data and compilation included.", False),
    _m("peak_device_memory_inference", "bytes", "lower", "Inference peak device memory",
       "The device allocator's peak over inference passes (CUDA only).", True),
    # ---- the rest of a record: checks, counts and bookkeeping (never ranked)
    _m("tie_rate", FRACTION, "lower", "Tie rate", "Test samples with more than one class at the top.", False),
    _m("accuracy_first_index", FRACTION, "higher", "Accuracy (ties to the lowest index)",
       "Test accuracy with ties broken towards the lowest class index (argmax's rule).", False),
    _m("test_loss", LOSS, "lower", "Test loss", "The task's loss on the test set.", False),
    _m("best_val_loss", LOSS, "lower", "Best validation loss", "The lowest validation loss of the run.", False),
    _m("best_epoch", "epochs", "lower", "Best epoch", "The epoch of the lowest validation loss.", False),
    _m("firing_rate_overall", RATE_UNIT, "lower", "Overall firing rate",
       "All spikes over all neuron-steps of the spiking layers.", False),
    _m("activation_sparsity", FRACTION, "higher", "Activation sparsity",
       "1 - spikes / neuron-steps over all spiking layers (NeuroBench).", False),
    _m("synops_ac", OPS_UNIT, "lower", "Synaptic operations (AC)",
       "Accumulates: spikes arriving at synapses, per sample (NeuroBench's effective ACs).", False),
    _m("synops_mac", OPS_UNIT, "lower", "Synaptic operations (MAC)",
       "Multiply-accumulates: real-valued inputs arriving at synapses, per sample.", False),
    _m("dense_mac", OPS_UNIT, "lower", "Dense MACs", "Multiply-accumulates of the same network run densely.", False),
    _m("steps", "steps", "lower", "Steps", "Optimiser steps taken.", False),
    _m("epochs", "epochs", "lower", "Epochs", "Epochs run.", False),
    _m("train_time", "s", "lower", "Training time",
       "Wall time of the training loop (data path included, evaluation excluded).", False),
    _m("epoch_time", "s", "lower", "Epoch time", "Steps of an epoch end to end, data path included.", False),
    _m("epoch_throughput", "samples/s", "higher", "Epoch throughput",
       "Training samples over the end-to-end epoch time.", False),
    _m("train_step_spread", SPREAD_UNIT, "lower", "Train-step spread", "Slowest over fastest repeat.", False,
       "train_step"),
    _m("forward_backward_spread", SPREAD_UNIT, "lower", "Forward + backward spread",
       "Slowest over fastest repeat.", False, "forward_backward"),
    _m("inference_spread", SPREAD_UNIT, "lower", "Inference spread", "Slowest over fastest repeat.", False,
       "inference"),
)}


def info(name: str) -> MetricInfo:
    return CATALOGUE[name]


def unit_of(name: str) -> str:
    """The unit a metric is recorded in; a metric outside the catalogue is a programming error."""
    try:
        return CATALOGUE[name].unit
    except KeyError:
        raise KeyError(f"metric {name!r} is not in tasks/catalogue.py: add it there with its unit") from None

"""Activity metrics in NeuroBench's vocabulary, from returned spike counts.

* activation sparsity: 1 - (spikes / neuron-steps) over all spiking layers;
* synaptic operations per sample, split into accumulates (ACs: a binary spike
  arriving at a synapse) and multiply-accumulates (MACs: a non-zero real value
  arriving at a synapse), counted per time step as the equations compute them.

Nothing here asks a framework: the counts come from the per-neuron spike
totals the backends return and from the input batches themselves.  For a
convolution, an input element's fan-out is the output channels times the
number of output positions whose window covers it (fewer at the borders).
"""

from __future__ import annotations

import numpy as np

from .data import Batch
from .specs import SynapseInfo, TaskSpec


def input_counts(spec: TaskSpec, batch: Batch) -> np.ndarray:
    """Non-zero input elements per input position, summed over time and batch."""
    nonzero = (np.asarray(batch.x) != 0).astype(np.float64)
    if batch.static:
        return nonzero.sum(axis=0) * spec.T
    return nonzero.sum(axis=(0, 1))


def coverage(size: int, out_size: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """For each input index along one axis, how many output positions read it."""
    cover = np.zeros(size)
    for o in range(out_size):
        start = o * stride - padding
        lo, hi = max(start, 0), min(start + kernel, size)
        cover[lo:hi] += 1
    return cover


def fan_out(syn: SynapseInfo) -> np.ndarray:
    """Synapses leaving each input element of ``syn`` (shape ``syn.in_shape``)."""
    if syn.kind == "linear":
        return np.full(syn.in_shape, float(syn.out_shape[0]))
    _, h, w = syn.in_shape
    out_c, oh, ow = syn.out_shape
    cov = np.outer(
        coverage(h, oh, syn.kernel, syn.stride, syn.padding),
        coverage(w, ow, syn.kernel, syn.stride, syn.padding),
    )
    return np.broadcast_to(out_c * cov, syn.in_shape)


def synaptic_operations(
    spec: TaskSpec, spike_counts: dict[str, np.ndarray], inputs: np.ndarray, samples: int
) -> dict:
    """ACs and MACs per sample, in total and per synaptic layer."""
    per_layer = {}
    total_ac = total_mac = 0.0
    for syn in spec.synapses():
        fan = fan_out(syn)
        if syn.inputs == "dense":
            ops, kind = float(fan.sum()) * spec.T * samples, "mac"
        else:
            counts = inputs if syn.source == "input" else spike_counts[syn.source]
            counts = np.asarray(counts, dtype=np.float64).reshape(syn.in_shape)
            ops = float((counts * fan).sum())
            kind = "ac" if syn.inputs == "spikes" else "mac"
        per_layer[syn.name] = {kind: ops / samples}
        if kind == "ac":
            total_ac += ops
        else:
            total_mac += ops
    return {"ac": total_ac / samples, "mac": total_mac / samples, "per_layer": per_layer}


def dense_operations(spec: TaskSpec) -> float:
    """MACs per sample of the same network run densely (every synapse, every step)."""
    return float(sum(fan_out(syn).sum() for syn in spec.synapses()) * spec.T)

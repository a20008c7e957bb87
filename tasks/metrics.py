"""Metrics computed from what the backends return: loss, scores, spike counts.

Accuracy handles ties the way ``docs/tasks.md`` prescribes: a spike-count
readout often gives several classes the top score, so the headline accuracy
counts a sample whose class is among k tied classes as 1/k.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .specs import TaskSpec

# A trained network's readout ties on fewer test images than this (docs/tasks.md, the cpu
# profile's training runs); above it, the tie-aware accuracy is mostly the 1/k of random
# tie-breaking: a check that the backends agree, not a trained network's accuracy.
TRAINED_TIE_RATE = 0.15


def accuracy_with_ties(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``accuracy`` (ties count 1/k), ``tie_rate`` and ``accuracy_first_index``."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("no samples to score")
    top = scores.max(axis=1, keepdims=True)
    at_top = scores == top
    n_top = at_top.sum(axis=1)
    hit = at_top[np.arange(len(labels)), labels]
    return {
        "accuracy": float(np.mean(hit / n_top)),
        "tie_rate": float(np.mean(n_top > 1)),
        "accuracy_first_index": float(np.mean(scores.argmax(axis=1) == labels)),
    }


@dataclass
class EvalAccumulator:
    """Sums a split's batches: loss (sample-weighted), scores, labels, spike counts."""

    spec: TaskSpec
    loss_sum: float = 0.0
    samples: int = 0
    scores: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    spike_counts: dict[str, np.ndarray] = field(default_factory=dict)
    input_counts: np.ndarray | None = None  # non-zero inputs per position, for synaptic operations

    def add_inputs(self, counts: np.ndarray) -> None:
        self.input_counts = counts if self.input_counts is None else self.input_counts + counts

    def add(self, loss: float, scores: np.ndarray, labels: np.ndarray, spike_counts: dict[str, np.ndarray]) -> None:
        n = len(labels)
        self.loss_sum += float(loss) * n
        self.samples += n
        self.scores.append(np.asarray(scores, dtype=np.float64))
        self.labels.append(np.asarray(labels))
        for name, counts in spike_counts.items():
            counts = np.asarray(counts, dtype=np.float64)
            if name in self.spike_counts:
                self.spike_counts[name] = self.spike_counts[name] + counts
            else:
                self.spike_counts[name] = counts

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.samples, 1)

    def summary(self) -> dict[str, float]:
        out = {"loss": self.loss}
        out.update(accuracy_with_ties(np.concatenate(self.scores), np.concatenate(self.labels)))
        rates = firing_rates(self.spec, self.spike_counts, self.samples)
        out["firing_rate_mean"] = rates["mean"]
        out["firing_rate_overall"] = rates["overall"]
        return out

    def layer_rates(self) -> dict[str, float]:
        return firing_rates(self.spec, self.spike_counts, self.samples)["layers"]

    def activity(self) -> dict:
        """Activation sparsity and synaptic operations per sample (NeuroBench's terms)."""
        from .neuro import dense_operations, synaptic_operations

        rates = firing_rates(self.spec, self.spike_counts, self.samples)
        ops = synaptic_operations(self.spec, self.spike_counts, self.input_counts, self.samples)
        return {
            "activation_sparsity": 1.0 - rates["overall"],
            "synops_ac": ops["ac"],
            "synops_mac": ops["mac"],
            "dense_mac": dense_operations(self.spec),
            "per_layer": ops["per_layer"],
        }


def firing_rates(spec: TaskSpec, spike_counts: dict[str, np.ndarray], samples: int) -> dict:
    """Per-layer firing rate (spikes per neuron per step), their mean, and the overall rate.

    ``spike_counts[layer]`` holds each neuron's spike count summed over time
    and over ``samples`` samples.
    """
    layers = {}
    total_spikes = 0.0
    total_slots = 0
    for layer in spec.layers():
        counts = np.asarray(spike_counts[layer.name], dtype=np.float64)
        if counts.size != layer.size:
            raise ValueError(
                f"layer {layer.name}: {counts.size} spike counts returned, {layer.size} neurons expected"
            )
        slots = layer.size * spec.T * samples
        layers[layer.name] = float(counts.sum()) / slots
        total_spikes += float(counts.sum())
        total_slots += slots
    return {
        "layers": layers,
        "mean": float(np.mean(list(layers.values()))),
        "overall": total_spikes / total_slots,
    }

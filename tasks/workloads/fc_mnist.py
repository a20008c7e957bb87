"""fc_mnist: 784 -> 1000 -> 10 leaky neurons, subtractive reset, image fed at every step (snnTorch tutorial 5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import reference as ref
from .. import reference_grad as bptt
from ..data import Batch, ImageData
from ..taskspec import ImageTaskSpec, LayerInfo, Published, SynapseInfo
from ..weights import Weights, torch_linear_default


@dataclass(frozen=True, kw_only=True)
class FCMnistSpec(ImageTaskSpec):
    """784 -> 1000 -> 10 Leaky neurons, direct input (snnTorch tutorial 5)."""

    name: ClassVar[str] = "fc_mnist"
    description: ClassVar[str] = "784-1000-10 leaky neurons, subtractive reset, image fed at every step"
    neuron: ClassVar[str] = "subtractive"
    readout: ClassVar[str] = "membrane"
    loss: ClassVar[str] = "ce_summed_over_time"
    score: ClassVar[str] = "spike_count"

    T: int = 25
    batch_size: int = 128
    epochs: int = 1
    lr: float = 5e-4
    n_in: int = 784
    n_hidden: int = 1000
    beta: float = 0.95
    v_th: float = 1.0
    surrogate_alpha: float = 2.0  # arctangent, snnTorch's atan(alpha=2)
    accuracy_targets: tuple[tuple[str, float], ...] = (("mnist", 0.93), ("fashion-mnist", 0.80))
    published: ClassVar["Published | None"] = Published("mnist", 0.9387, "snnTorch's tutorial 5, one epoch")

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("lif1", (self.n_hidden,)), LayerInfo("lif2", (self.n_classes,))]

    def synapses(self) -> list[SynapseInfo]:
        return [
            SynapseInfo("fc1", "linear", "input", (self.n_in,), (self.n_hidden,), inputs="real", bias=True),
            SynapseInfo("fc2", "linear", "lif1", (self.n_hidden,), (self.n_classes,), bias=True),
        ]

    def input_shape(self) -> tuple[int, ...]:
        return (self.n_in,)


class FlatImageData(ImageData):
    """Pixels in [0, 1], flattened, the same image at every step (fc_mnist)."""

    def make_batch(self, images, labels, split, epoch, index) -> Batch:
        x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
        return Batch(x=x, y=labels, static=True)


SPEC = FCMnistSpec
ORDER = 2
DATA = FlatImageData


def initial_weights(spec: FCMnistSpec, gen: np.random.Generator) -> Weights:
    w: Weights = {}
    for name, n_out, n_in in (("fc1", spec.n_hidden, spec.n_in), ("fc2", spec.n_classes, spec.n_hidden)):
        w[f"{name}.weight"], w[f"{name}.bias"] = torch_linear_default(gen, n_out, n_in)
    return w


def reference_forward(spec: FCMnistSpec, w: Weights, x: np.ndarray, batch_statistics: bool, record, running):
    s = record("lif1", ref.subtractive_lif(ref.linear(x, w, "fc1"), spec.beta, spec.v_th))
    spikes_and_membranes = ref.subtractive_lif(ref.linear(s, w, "fc2"), spec.beta, spec.v_th)
    record("lif2", spikes_and_membranes)
    return spikes_and_membranes[1]  # the loss reads the output membrane


def reference_gradients(spec: FCMnistSpec, w: Weights, x: np.ndarray, labels: np.ndarray, spike, grads,
                        record) -> float:
    s1, u1, cache1 = bptt.subtractive_lif(bptt.linear(x, w, "fc1"), spec.beta, spec.v_th, spike)
    s2, u2, cache2 = bptt.subtractive_lif(bptt.linear(s1, w, "fc2"), spec.beta, spec.v_th, spike)
    record("lif1", s1, u1)
    record("lif2", s2, u2)
    # the loss reads the output membrane U2; the output spikes do not reach it
    loss, g = bptt.loss_and_readout_grad(spec, u2, labels)
    g = bptt.subtractive_lif_backward(np.zeros_like(s2), cache2, spike, grad_membranes=g)
    g = bptt.subtractive_lif_backward(bptt.linear_backward(g, s1, w, "fc2", grads), cache1, spike)
    bptt.linear_backward(g, x, w, "fc1", grads)
    return loss


PARITY_SIZE = {"T": 8, "batch_size": 16}
PARITY_GAINS = {"fc1.weight": 2.0, "fc2.weight": 2.0}


def parity_batch(spec: FCMnistSpec, gen: np.random.Generator) -> Batch:
    y = gen.integers(0, spec.n_classes, size=spec.batch_size)
    return Batch(gen.random((spec.batch_size, 784)).astype(np.float32), y, static=True)


def at_threshold(spec: FCMnistSpec, weights: Weights, batch: Batch) -> None:
    """Sample 0's input is zero, so its first membrane is fc1's bias: set to V_th."""
    batch.x[0] = 0.0
    weights["fc1.bias"][0] = spec.v_th


FLOOR_POINTS: list[dict] = [{}]

"""dsrn_tdbn: a deep spiking residual network with tdBN (STBP-tdBN), 19 spiking layers, augmented images."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import reference as ref
from .. import reference_grad as bptt
from .. import rng
from ..data import Batch, ImageData, limited
from ..errors import UsageError
from ..idx import ImageDataset
from ..taskspec import WIDTH_MAX, ImageTaskSpec, LayerInfo, Published, SynapseInfo
from ..weights import Weights, kaiming_normal, torch_linear_default


@dataclass(frozen=True)
class BlockInfo:
    """One basic block of the residual network."""

    prefix: str  # e.g. "layer2.0"
    in_channels: int
    out_channels: int
    stride: int
    in_size: int  # spatial size of the block's input
    out_size: int

    @property
    def has_projection(self) -> bool:
        return self.stride != 1 or self.in_channels != self.out_channels


SURROGATE_CENTERS = ("threshold", "zero")


@dataclass(frozen=True, kw_only=True)
class DSRNSpec(ImageTaskSpec):
    """Deep spiking residual network with tdBN (STBP-tdBN), 19 spiking layers."""

    name: ClassVar[str] = "dsrn_tdbn"
    description: ClassVar[str] = "19-layer spiking ResNet with tdBN, STBP neurons, augmented images"
    neuron: ClassVar[str] = "stbp"
    readout: ClassVar[str] = "spikes"
    loss: ClassVar[str] = "ce_of_time_mean"
    score: ClassVar[str] = "time_mean"

    T: int = 2
    batch_size: int = 64
    epochs: int = 11
    lr: float = 1e-3
    lr_step_epochs: int = 10
    lr_gamma: float = 0.1
    patience: int = 7
    validation_size: int = 5000
    width: float = 1.0  # channel multiplier (< 1 for CPU tests)
    image_size: int = 28
    stem_channels: int = 64
    # (channels, blocks, stride of the first block)
    stages: tuple[tuple[int, int, int], ...] = ((128, 3, 1), (256, 3, 2), (512, 2, 2))
    fc_hidden: int = 256
    tau: float = 0.25
    v_th: float = 0.4
    surrogate_a: float = 0.5
    surrogate_center: str = "threshold"
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    block_alpha: float = 1.0 / math.sqrt(2.0)
    mean: float = 0.1307
    std: float = 0.3082
    pad: int = 4
    # Fashion-MNIST's from a reference run at the cpu profile's size (docs/tasks.md, "The cpu profile's
    # training runs"): what a quarter-width network reaches in its 100 steps there, far below what the
    # spec's network reaches in 11 epochs
    accuracy_targets: tuple[tuple[str, float], ...] = (("mnist", 0.98), ("fashion-mnist", 0.30))
    published: ClassVar["Published | None"] = Published("mnist", 0.9867, "STBP-tdBN (Zheng et al. 2021), 11 epochs")
    not_structural: ClassVar[frozenset[str]] = ImageTaskSpec.not_structural | {
        "patience", "validation_size"}

    def validate(self) -> None:
        super().validate()
        if not (isinstance(self.width, (int, float)) and self.width > 0 and math.isfinite(self.width)):
            raise UsageError(f"width must be a positive number, got {self.width!r}")
        if self.width > WIDTH_MAX:
            raise UsageError(f"width must be at most {WIDTH_MAX:g} ({WIDTH_MAX * self.stages[-1][0]:g} channels), "
                             f"got {self.width!r}")
        if self.surrogate_center not in SURROGATE_CENTERS:
            raise UsageError(
                f"surrogate centre must be one of {', '.join(SURROGATE_CENTERS)}, got {self.surrogate_center!r}"
            )

    def channels(self, base: int) -> int:
        return max(1, int(round(base * self.width)))

    def blocks(self) -> list[BlockInfo]:
        out = []
        in_ch = self.channels(self.stem_channels)
        size = self.image_size
        for stage, (base, count, stride) in enumerate(self.stages, start=1):
            ch = self.channels(base)
            for index in range(count):
                s = stride if index == 0 else 1
                out_size = (size - 1) // s + 1  # 3x3 kernel, padding 1
                out.append(BlockInfo(f"layer{stage}.{index}", in_ch, ch, s, size, out_size))
                in_ch, size = ch, out_size
        return out

    @property
    def final_channels(self) -> int:
        return self.channels(self.stages[-1][0])

    @property
    def hidden_units(self) -> int:
        return self.channels(self.fc_hidden)

    def layers(self) -> list[LayerInfo]:
        size = self.image_size
        out = [LayerInfo("stem.lif", (self.channels(self.stem_channels), size, size))]
        for block in self.blocks():
            shape = (block.out_channels, block.out_size, block.out_size)
            out.append(LayerInfo(f"{block.prefix}.lif1", shape))
            out.append(LayerInfo(f"{block.prefix}.lif2", shape))
        out.append(LayerInfo("fc1.lif", (self.hidden_units,)))
        out.append(LayerInfo("fc2.lif", (self.n_classes,)))
        return out

    def synapses(self) -> list[SynapseInfo]:
        size = self.image_size
        stem = self.channels(self.stem_channels)
        out = [SynapseInfo("stem.conv", "conv", "input", (1, size, size), (stem, size, size), 3, 1, 1, "real")]
        source = "stem.lif"
        for b in self.blocks():
            in_shape = (b.in_channels, b.in_size, b.in_size)
            shape = (b.out_channels, b.out_size, b.out_size)
            out.append(SynapseInfo(f"{b.prefix}.conv1", "conv", source, in_shape, shape, 3, b.stride, 1))
            out.append(SynapseInfo(f"{b.prefix}.conv2", "conv", f"{b.prefix}.lif1", shape, shape, 3, 1, 1))
            if b.has_projection:
                out.append(SynapseInfo(f"{b.prefix}.shortcut.conv", "conv", source, in_shape, shape, 1, b.stride, 0))
            source = f"{b.prefix}.lif2"
        # fc1 reads the spatial mean of the last block's spikes: real-valued
        out.append(SynapseInfo("fc1", "linear", source, (self.final_channels,), (self.hidden_units,), inputs="dense",
                               bias=True))
        out.append(SynapseInfo("fc2", "linear", "fc1.lif", (self.hidden_units,), (self.n_classes,), bias=True))
        return out

    def input_shape(self) -> tuple[int, ...]:
        return (1, self.image_size, self.image_size)


class AugmentedImageData(ImageData):
    """dsrn_tdbn: a seeded validation split, random flip and padded crop for
    training, normalisation with the task's mean and std everywhere."""

    splits = ("val", "test")

    def __init__(self, spec: DSRNSpec, dataset: ImageDataset):
        super().__init__(spec, dataset)
        n = len(dataset.train_images)
        n_val = min(spec.validation_size, n // 2)
        perm = rng.stream(spec.seed, "validation-split").permutation(n)
        self.val_index = np.sort(perm[:n_val])[: limited(n_val, spec.limit_test)]
        train = np.sort(perm[n_val:])
        self.train_index = train[: limited(len(train), spec.limit_train)]

    def _eval_source(self, split):
        if split == "val":
            return self.dataset.train_images, self.dataset.train_labels, self.val_index
        return super()._eval_source(split)

    def make_batch(self, images, labels, split, epoch, index) -> Batch:
        spec = self.spec
        x = images.astype(np.float32) / np.float32(255.0)
        if split == "train":
            x = self.augment(x, rng.stream(spec.seed, "augment", epoch, index))
        x = (x - np.float32(spec.mean)) / np.float32(spec.std)
        return Batch(x=x[:, None, :, :].astype(np.float32), y=labels, static=True)

    def augment(self, x: np.ndarray, gen: np.random.Generator) -> np.ndarray:
        """Random crop of the zero-padded image, then random horizontal flip."""
        pad = self.spec.pad
        n, h, w = x.shape
        padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        dy = gen.integers(0, 2 * pad + 1, size=n)
        dx = gen.integers(0, 2 * pad + 1, size=n)
        flip = gen.random(n) < 0.5
        rows = dy[:, None] + np.arange(h)[None, :]
        cols = dx[:, None] + np.arange(w)[None, :]
        cols = np.where(flip[:, None], cols[:, ::-1], cols)
        return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


SPEC = DSRNSpec
ORDER = 4
DATA = AugmentedImageData


def _tdbn_weights(weights: Weights, prefix: str, channels: int) -> None:
    weights[f"{prefix}.weight"] = np.ones(channels)
    weights[f"{prefix}.bias"] = np.zeros(channels)
    weights[f"{prefix}.running_mean"] = np.zeros(channels)
    weights[f"{prefix}.running_var"] = np.ones(channels)


def initial_weights(spec: DSRNSpec, gen: np.random.Generator) -> Weights:
    w: Weights = {}
    stem = spec.channels(spec.stem_channels)
    w["stem.conv.weight"] = kaiming_normal(gen, (stem, 1, 3, 3), 2.0, "fan_out")
    _tdbn_weights(w, "stem.bn", stem)
    for b in spec.blocks():
        p = b.prefix
        w[f"{p}.conv1.weight"] = kaiming_normal(gen, (b.out_channels, b.in_channels, 3, 3), 2.0, "fan_out")
        _tdbn_weights(w, f"{p}.bn1", b.out_channels)
        w[f"{p}.conv2.weight"] = kaiming_normal(gen, (b.out_channels, b.out_channels, 3, 3), 2.0, "fan_out")
        _tdbn_weights(w, f"{p}.bn2", b.out_channels)
        if b.has_projection:
            w[f"{p}.shortcut.conv.weight"] = kaiming_normal(
                gen, (b.out_channels, b.in_channels, 1, 1), 2.0, "fan_out"
            )
            _tdbn_weights(w, f"{p}.shortcut.bn", b.out_channels)
    for name, n_out, n_in in (
        ("fc1", spec.hidden_units, spec.final_channels),
        ("fc2", spec.n_classes, spec.hidden_units),
    ):
        w[f"{name}.weight"], w[f"{name}.bias"] = torch_linear_default(gen, n_out, n_in)
    return w


def reference_forward(spec: DSRNSpec, w: Weights, x: np.ndarray, batch_statistics: bool, record, running):
    T, B = x.shape[:2]

    def conv_bn(inp: np.ndarray, conv: str, bn: str, stride: int, padding: int, alpha: float) -> np.ndarray:
        y = ref.conv2d(inp.reshape((T * B,) + inp.shape[2:]), w[f"{conv}.weight"], stride, padding)
        y = y.reshape((T, B) + y.shape[1:])
        out, mean, var = ref.tdbn(y, w, bn, alpha, spec.v_th, spec.bn_eps, batch_statistics)
        if batch_statistics:
            n = y.size // y.shape[2]
            running[f"{bn}.running_mean"], running[f"{bn}.running_var"] = ref.updated_running_stats(
                w[f"{bn}.running_mean"], w[f"{bn}.running_var"], mean, var, n, spec.bn_momentum
            )
        return out

    def lif(name: str, inp: np.ndarray) -> np.ndarray:
        return record(name, ref.stbp_lif(inp, spec.tau, spec.v_th))

    s = lif("stem.lif", conv_bn(x, "stem.conv", "stem.bn", 1, 1, 1.0))
    for b in spec.blocks():
        p = b.prefix
        h = lif(f"{p}.lif1", conv_bn(s, f"{p}.conv1", f"{p}.bn1", b.stride, 1, 1.0))
        out = conv_bn(h, f"{p}.conv2", f"{p}.bn2", 1, 1, spec.block_alpha)
        if b.has_projection:
            shortcut = conv_bn(s, f"{p}.shortcut.conv", f"{p}.shortcut.bn", b.stride, 0, spec.block_alpha)
        else:
            shortcut = s
        s = lif(f"{p}.lif2", out + shortcut)
    pooled = s.mean(axis=(3, 4))
    h = lif("fc1.lif", ref.linear(pooled, w, "fc1"))
    return lif("fc2.lif", ref.linear(h, w, "fc2"))


def reference_gradients(spec: DSRNSpec, w: Weights, x: np.ndarray, labels: np.ndarray, spike, grads,
                        record) -> float:
    """Forward (training mode), then backward through the same layers in reverse order."""
    T, B = x.shape[:2]

    def conv_bn(inp, conv, bn, stride, padding, alpha):
        folded = inp.reshape((T * B,) + inp.shape[2:])  # time folded into the batch
        y = bptt.conv2d(folded, w[f"{conv}.weight"], stride, padding)
        y = y.reshape((T, B) + y.shape[1:])
        z, bn_cache = bptt.tdbn(y, w, bn, alpha, spec.v_th, spec.bn_eps)
        return z, (inp, conv, bn, stride, padding, bn_cache)

    def conv_bn_backward(grad, cache):
        inp, conv, bn, stride, padding, bn_cache = cache
        grad = bptt.tdbn_backward(grad, bn_cache, w, bn, grads)
        folded = inp.reshape((T * B,) + inp.shape[2:])
        grad_in, grad_w = bptt.conv2d_backward(grad.reshape((T * B,) + grad.shape[2:]), folded, w[f"{conv}.weight"],
                                               stride, padding)
        bptt.accumulate(grads, f"{conv}.weight", grad_w)
        return grad_in.reshape(inp.shape)

    def lif(name, inp):
        s, u, cache = bptt.stbp_lif(inp, spec.tau, spec.v_th, spike)
        record(name, s, u)
        return s, cache

    def lif_backward(grad, cache):
        return bptt.stbp_lif_backward(grad, cache, spike)

    # forward
    z, stem_cache = conv_bn(x, "stem.conv", "stem.bn", 1, 1, 1.0)
    s, stem_lif = lif("stem.lif", z)
    blocks = []
    for b in spec.blocks():
        p = b.prefix
        z1, c1 = conv_bn(s, f"{p}.conv1", f"{p}.bn1", b.stride, 1, 1.0)
        h, lif1 = lif(f"{p}.lif1", z1)
        z2, c2 = conv_bn(h, f"{p}.conv2", f"{p}.bn2", 1, 1, spec.block_alpha)
        if b.has_projection:
            shortcut, cs = conv_bn(s, f"{p}.shortcut.conv", f"{p}.shortcut.bn", b.stride, 0, spec.block_alpha)
        else:
            shortcut, cs = s, None
        s, lif2 = lif(f"{p}.lif2", z2 + shortcut)
        blocks.append((c1, lif1, c2, cs, lif2))
    pooled = s.mean(axis=(3, 4))
    h, fc1_lif = lif("fc1.lif", bptt.linear(pooled, w, "fc1"))
    out, fc2_lif = lif("fc2.lif", bptt.linear(h, w, "fc2"))
    loss, g = bptt.loss_and_readout_grad(spec, out, labels)

    # backward
    g = bptt.linear_backward(lif_backward(g, fc2_lif), h, w, "fc2", grads)
    g = bptt.linear_backward(lif_backward(g, fc1_lif), pooled, w, "fc1", grads)
    height, width = s.shape[3:]
    g = np.broadcast_to(g[..., None, None] / (height * width), s.shape)  # the spatial mean
    for c1, lif1, c2, cs, lif2 in reversed(blocks):
        g_sum = lif_backward(g, lif2)  # the residual sum sends it to both branches
        g_h = conv_bn_backward(g_sum, c2)
        g_in = conv_bn_backward(lif_backward(g_h, lif1), c1)
        g = g_in + (conv_bn_backward(g_sum, cs) if cs is not None else g_sum)
    conv_bn_backward(lif_backward(g, stem_lif), stem_cache)  # the input's gradient is not needed
    return loss


# a sixteenth of the channels; gains on the classifier so that its two layers fire
PARITY_SIZE = {"T": 3, "batch_size": 4, "width": 1 / 16}
PARITY_GAINS = {"fc1.weight": 3.0, "fc2.weight": 3.0}


def parity_batch(spec: DSRNSpec, gen: np.random.Generator) -> Batch:
    y = gen.integers(0, spec.n_classes, size=spec.batch_size)
    return Batch(gen.standard_normal((spec.batch_size, 1, 28, 28)).astype(np.float32), y, static=True)


def at_threshold(spec: DSRNSpec, weights: Weights, batch: Batch) -> None:
    """Sample 0's input is zero, so with running statistics its first membrane
    is tdBN(0) = the stem's tdBN bias: set to V_th."""
    batch.x[0] = 0.0
    weights["stem.bn.bias"][0] = spec.v_th


# the memory-versus-T study's T
FLOOR_POINTS: list[dict] = [{"T": T} for T in (1, 2, 4, 8, 16)]

"""The task specs, by the names most of the code imports them under.

Nothing is defined here: what every task has is :mod:`tasks.taskspec`, each
task is its own module in ``tasks/workloads/`` and the registry of them is
:mod:`tasks.workloads`.
"""

from __future__ import annotations

from .taskspec import (
    ALL_PRECISIONS,
    DATASETS,
    DEVICES,
    LOSS_KINDS,
    LR_MAX,
    NEURON_KINDS,
    PRECISIONS,
    READOUT_KINDS,
    SCORE_KINDS,
    WIDTH_MAX,
    ImageTaskSpec,
    LayerInfo,
    Published,
    SynapseInfo,
    TaskSpec,
    accuracy_target_in,
)
from .workloads import TASKS, TRAINABLE_TASKS, get_spec, spec_from_dict
from .workloads.dsrn_tdbn import SURROGATE_CENTERS, BlockInfo, DSRNSpec
from .workloads.fc_mnist import FCMnistSpec
from .workloads.fc_mnist_poisson import FCPoissonSpec
from .workloads.lif_layer import LIFLayerSpec
from .workloads.synthetic import SyntheticSpec

__all__ = [
    "ALL_PRECISIONS", "DATASETS", "DEVICES", "LOSS_KINDS", "LR_MAX", "NEURON_KINDS", "PRECISIONS", "READOUT_KINDS",
    "SCORE_KINDS", "WIDTH_MAX", "ImageTaskSpec", "LayerInfo", "Published", "SynapseInfo", "TaskSpec",
    "accuracy_target_in", "TASKS", "TRAINABLE_TASKS", "get_spec", "spec_from_dict", "SURROGATE_CENTERS", "BlockInfo",
    "DSRNSpec", "FCMnistSpec", "FCPoissonSpec", "LIFLayerSpec", "SyntheticSpec",
]

"""The small cases of the JAX backends' tests (tests/test_backend_contract.py's checks over the
registry's JAX backends, tests/test_backend_brainstate.py, tests/test_backend_spyx.py): shapes at
which a compiled function builds in seconds on two cores, with the parity case's gains.

No framework is imported here.
"""

from __future__ import annotations

import numpy as np

from tasks import parity, rng
from tasks.data import Batch
from tasks.specs import get_spec
from tasks.weights import initial_weights

# small shapes of the fully connected tasks and lif_layer (dsrn_tdbn: small_dsrn_spec)
SMALL = {
    "synthetic": {"T": 20, "batch_size": 8, "input_probability": 0.1},
    "fc_mnist": {"T": 5, "batch_size": 6},
    "fc_mnist_poisson": {"T": 6, "batch_size": 6},
    "lif_layer": {"T": 12, "batch_size": 3, "neurons": 16},
}


def rel(a, b) -> float:
    return parity._rel(np.asarray(a), np.asarray(b))


def parity_weights(spec) -> dict[str, np.ndarray]:
    """The shared initial weights with the parity case's gains (so that neurons spike)."""
    weights = initial_weights(spec)
    for name, gain in spec.workload.PARITY_GAINS.items():
        weights[name] = weights[name] * gain
    return weights


def small_case(task: str, label: str, **extra):
    """(spec, weights, three random batches) of ``task`` at the small shapes of :data:`SMALL`;
    ``label`` names the batches' random stream (``test-<label>-<task>``)."""
    spec = get_spec(task).with_overrides(**{**SMALL[task], **extra})
    weights = parity_weights(spec)
    gen = rng.stream(1, f"test-{label}-{task}")
    return spec, weights, [parity.random_batch(spec, gen) for _ in range(3)]


def small_dsrn_spec(**extra):
    """dsrn_tdbn cut to 3 blocks (a projection with a channel change, an identity shortcut, a
    strided projection) on 8 x 8 images: the code paths of the full network, compiled in seconds."""
    return get_spec("dsrn_tdbn").with_overrides(
        **{"T": 2, "batch_size": 3, "width": 1 / 16, "image_size": 8, "stages": ((128, 2, 1), (256, 1, 2)), **extra})


def small_dsrn_case(spec, stream: str, seed: int = 1, n: int = 2):
    """(weights, ``n`` random batches of ``spec.image_size`` images from the random stream
    ``stream``) for a small dsrn_tdbn ``spec``."""
    weights = parity_weights(spec)
    gen = rng.stream(seed, stream)
    size = spec.image_size
    batches = [Batch(gen.standard_normal((spec.batch_size, 1, size, size)).astype(np.float32),
                     gen.integers(0, spec.n_classes, size=spec.batch_size), static=True) for _ in range(n)]
    return weights, batches

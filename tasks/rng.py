"""Named random streams derived from the run's seed.

Each use of randomness (weights, shuffling, augmentation, Poisson draws, the
validation split) gets its own stream, keyed by a name and a few integers
(epoch, batch index).  Changing how many numbers one use draws therefore never
shifts another, and every backend sees the same draws.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str, *keys: int) -> np.random.Generator:
    """A generator for ``name`` (and ``keys``) under ``seed``."""
    entropy = [int(seed), zlib.crc32(name.encode("utf-8"))] + [int(k) for k in keys]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))

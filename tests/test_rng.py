"""tasks/rng.py: one random stream per use, keyed by the seed, a name and integers."""

from __future__ import annotations

import numpy as np

from tasks import rng


def draws(seed, name, *keys):
    return rng.stream(seed, name, *keys).integers(0, 2**31, size=3).tolist()


def test_the_same_seed_name_and_keys_give_the_same_draws():
    assert draws(1, "shuffle", 2) == draws(1, "shuffle", 2)
    assert isinstance(rng.stream(1, "shuffle"), np.random.Generator)


def test_a_different_seed_name_or_key_gives_other_draws():
    base = draws(1, "shuffle", 2)
    assert draws(2, "shuffle", 2) != base
    assert draws(1, "poisson-train", 2) != base
    assert draws(1, "shuffle", 3) != base and draws(1, "shuffle") != base


def test_a_trailing_key_of_zero_is_the_stream_without_it():
    """numpy's SeedSequence ignores trailing zeros of its entropy: (name, k, 0) is (name, k).
    Harmless while each name is always drawn with the same number of keys, as tasks/ does."""
    assert draws(1, "shuffle", 2, 0) == draws(1, "shuffle", 2)
    assert draws(1, "shuffle", 0, 2) != draws(1, "shuffle", 2)


def test_drawing_from_one_stream_does_not_shift_another():
    first = draws(0, "validation-split")
    rng.stream(0, "shuffle", 0).standard_normal(1000)
    assert draws(0, "validation-split") == first


def test_the_streams_are_those_the_committed_records_were_drawn_from():
    """Every record's weights, batches and spikes come from these streams: a change of the
    derivation (the name's hash, the seed sequence, the generator) changes every number."""
    assert draws(0, "weights") == [1906646326, 1505380270, 156746072]
    assert rng.stream(3, "shuffle", 1, 2).integers(0, 2**31, size=2).tolist() == [1344003193, 2111405622]

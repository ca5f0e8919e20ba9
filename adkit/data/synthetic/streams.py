"""Random streams: every image, knob and defect draws from its own sub-stream of one seed.

A stream is a :class:`numpy.random.SeedSequence`; ``substream(ss, *keys)`` is its child
``keys`` (as ``ss.spawn`` would give, without the state that ``spawn`` keeps), so the
same arguments always give the same draws and turning one knob off does not shift
what the others draw.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["seed_sequence", "substream", "substream_rng"]


def seed_sequence(seed) -> np.random.SeedSequence:
    """``seed`` (a non-negative int or a SeedSequence) as a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}.")
        return np.random.SeedSequence(int(seed))
    raise TypeError(f"seed must be a non-negative int (or a numpy SeedSequence), got {seed!r}.")


def substream(ss: np.random.SeedSequence, *keys: int) -> np.random.SeedSequence:
    """Sub-stream ``keys`` of ``ss``, without the state that ``ss.spawn`` keeps."""
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + keys,
                                  pool_size=ss.pool_size)


def substream_rng(ss, *keys) -> np.random.Generator:
    """A Generator on sub-stream ``keys`` of ``ss``."""
    return np.random.default_rng(substream(ss, *keys))

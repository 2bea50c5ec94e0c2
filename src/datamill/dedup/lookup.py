"""Many-to-many lookup in a sorted key array: the join behind the persistent MinHash index and the
fuzzy decontamination n-gram index."""

from __future__ import annotations

import numpy as np


def equal_keys(sorted_keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (query number, position in ``sorted_keys``) whose keys are equal, vectorized."""
    lo, hi = np.searchsorted(sorted_keys, queries, "left"), np.searchsorted(sorted_keys, queries, "right")
    hits = np.flatnonzero(hi > lo)
    counts = (hi - lo)[hits]
    starts = np.repeat(lo[hits] - np.cumsum(np.r_[0, counts[:-1]]), counts)
    return np.repeat(hits, counts), starts + np.arange(counts.sum())

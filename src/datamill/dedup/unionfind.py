"""Vectorized union-find over numpy edge arrays: the clustering step shared by the dedups, the
leak-free split and template grouping (kept apart from MinHash so those do not load its hashing)."""

from __future__ import annotations

import numpy as np


def find(parent: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Roots of x (vectorized), compressing the paths it walked."""
    r = parent[x]
    while True:
        nxt = parent[r]
        if np.array_equal(nxt, r):
            break
        r = nxt
    parent[x] = r
    return r


def union(parent: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Union-find over edge arrays: the root with the larger index is linked under the smaller one
    (so every root is the first record of its cluster), repeated until every edge is inside one set."""
    while len(u):
        ru, rv = find(parent, u), find(parent, v)
        diff = ru != rv
        if not diff.any():
            return
        u, v, ru, rv = u[diff], v[diff], ru[diff], rv[diff]
        parent[np.maximum(ru, rv)] = np.minimum(ru, rv)  # conflicting writes: one wins, the rest retry

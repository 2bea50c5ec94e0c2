"""Pick the k most mutually different texts among several correct answers, so the training data keeps
different solutions to a prompt rather than k rewordings of one. Similarity is the MinHash estimate of
the Jaccard similarity of word n-gram sets (``datamill.dedup.minhash``, as near-duplicate dedup uses)."""

from __future__ import annotations

import numpy as np

from datamill.dedup import minhash as mh


def similarities(texts: list[str], ngram: int = 3, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """The estimated Jaccard similarity of every two texts (a symmetric matrix, 1 on the diagonal)."""
    a, b = mh.permutations(num_perm, seed)
    sig = mh.signatures(mh.shingle(texts, ngram=ngram, normalize=True), a, b)
    return (sig[:, None, :] == sig[None, :, :]).mean(axis=2)


def most_diverse(texts: list[str], k: int, ngram: int = 3) -> list[int]:
    """Indexes of ``k`` texts chosen greedily by farthest point: first the one least similar to the others
    on average, then each time the one whose highest similarity to those chosen is lowest (ties: the
    earlier text). All of them, in order, when there are at most ``k``."""
    if len(texts) <= k:
        return list(range(len(texts)))
    sim = similarities(texts, ngram)
    chosen = [int(np.argmin(sim.sum(axis=1)))]
    closest = sim[chosen[0]].copy()  # each text's highest similarity to the chosen ones
    while len(chosen) < k:
        closest[chosen] = np.inf
        nxt = int(np.argmin(closest))
        chosen.append(nxt)
        closest = np.maximum(closest, sim[nxt])
    return chosen

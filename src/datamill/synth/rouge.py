"""ROUGE-L between instructions, and an index that finds every existing instruction within a ROUGE-L
threshold of a new one without scoring the whole pool.

Tokens follow the ``rouge-score`` package (lowercase, runs of ``[a-z0-9]``), so English decisions are
identical to the original Self-Instruct code; Chinese (and other CJK) characters are one token each,
where ``rouge-score`` would silently drop them.

Why an index: the original code scores each candidate against every instruction in the pool (the
known bottleneck). ROUGE-L F = 2·LCS/(m+n) and LCS ≤ the multiset overlap of the two token lists, so a
pair can only reach threshold τ if the lengths are close and the overlap is at least α·len with
α = τ/(2-τ). Prefix filtering (as in set-similarity joins) then guarantees such a pair shares one of
the rarest ``len - ceil(α·len) + 1`` tokens of each side, so only those are indexed and probed; the
few survivors get an exact bit-parallel LCS. No pair at or above τ is ever missed.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
TOKEN = re.compile(rf"[a-z0-9]+|[{CJK}]")
EPS = 1e-6


def tokenize(text: str) -> list[str]:
    """Lowercase ``[a-z0-9]+`` words (as ``rouge-score``) plus every CJK character as its own token."""
    return TOKEN.findall(text.lower())


def lcs_len(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison–Dix / Hyyrö): one big-int step
    per token of ``b`` instead of a len(a)×len(b) table."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, t in enumerate(a):
        masks[t] = masks.get(t, 0) | (1 << i)
    return _lcs_masks(masks, len(a), b)


def _lcs_masks(masks: dict[str, int], n: int, b: list[str]) -> int:
    full = (1 << n) - 1
    v = full
    for t in b:
        m = masks.get(t)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return n - v.bit_count()


def fmeasure(lcs: int, n_new: int, n_old: int) -> float:
    """ROUGE-L F computed exactly as ``rouge-score`` does (same float operations, same decisions)."""
    if not n_new or not n_old or not lcs:
        return 0.0
    precision = lcs / n_old
    recall = lcs / n_new
    return 2 * precision * recall / (precision + recall)


def rouge_l(new: str | list[str], old: str | list[str]) -> float:
    a = tokenize(new) if isinstance(new, str) else new
    b = tokenize(old) if isinstance(old, str) else old
    return fmeasure(lcs_len(a, b), len(a), len(b))


def _elements(tokens: list[str]) -> list[tuple[str, int]]:
    """The token multiset as a set: the k-th occurrence of a token is the element (token, k)."""
    seen: Counter[str] = Counter()
    out = []
    for t in tokens:
        seen[t] += 1
        out.append((t, seen[t]))
    return out


class RougeIndex:
    """Instructions added so far; ``match`` returns the most similar one at or above ``threshold``.

    ``order_texts`` (e.g. the seed tasks, or the pool) sets which tokens count as rare: frequent ones
    go last in every prefix. The order is frozen at construction (prefix filtering needs one fixed
    order); it only affects speed, never the answer."""

    def __init__(self, threshold: float = 0.7, order_texts: Iterable[str | list[str]] = ()):
        if not 0 < threshold <= 1:
            raise ValueError(f"ROUGE-L threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.alpha = threshold / (2 - threshold)
        freq: Counter[tuple[str, int]] = Counter()
        for t in order_texts:
            freq.update(_elements(tokenize(t) if isinstance(t, str) else t))
        self.freq = freq
        self.docs: list[list[str]] = []
        self.lens: list[int] = []
        # element -> indexed length -> [(doc id, position of the element in the doc's prefix)]
        self.postings: defaultdict[tuple[str, int], dict[int, list[tuple[int, int]]]] = defaultdict(dict)
        self.scored = 0  # exact LCS computations done (how much the filters saved)

    def __len__(self) -> int:
        return len(self.docs)

    def _prefix(self, tokens: list[str]) -> list[tuple[str, int]]:
        n = len(tokens)
        need = max(1, math.ceil(self.alpha * n - EPS))  # least overlap any partner at/above τ can have
        els = sorted(_elements(tokens), key=lambda e: (self.freq.get(e, 0), e))
        return els[: n - need + 1]

    def add(self, text: str | list[str]) -> int:
        tokens = tokenize(text) if isinstance(text, str) else text
        i = len(self.docs)
        self.docs.append(tokens)
        self.lens.append(len(tokens))
        if tokens:
            n = len(tokens)
            for j, e in enumerate(self._prefix(tokens)):
                self.postings[e].setdefault(n, []).append((i, j))
        return i

    def candidates(self, tokens: list[str]) -> list[int]:
        """Ids that pass the prefix, length and positional filters (a superset of every match).

        Positional filter (PPJoin): when element i of the new list meets element j of an indexed one,
        their overlap is at most (matches so far) + 1 + min(remaining on each side); below the overlap
        the pair needs for the threshold, the pair is out for good."""
        m = len(tokens)
        if not m:
            return []
        tau = self.threshold
        lo, hi = m * self.alpha - EPS, m / self.alpha + EPS
        half = tau / 2
        acc: dict[int, int] = {}
        get, postings = acc.get, self.postings
        for i, e in enumerate(self._prefix(tokens)):
            by_len = postings.get(e)
            if not by_len:
                continue
            rest = m - i - 1
            for n, plist in by_len.items():
                if n < lo or n > hi:  # length filter: a whole bucket at once
                    continue
                need = half * (m + n) - EPS - 1
                for y, j in plist:
                    a = get(y, 0)
                    if a < 0:
                        continue
                    r = n - j - 1
                    acc[y] = a + 1 if a + (r if r < rest else rest) >= need else -1
        return sorted(y for y, a in acc.items() if a > 0)

    def match(self, text: str | list[str]) -> tuple[float, int] | None:
        """(score, id) of the most similar indexed instruction with ROUGE-L >= threshold, else None."""
        tokens = tokenize(text) if isinstance(text, str) else text
        ids = self.candidates(tokens)
        if not ids:
            return None
        masks: dict[str, int] = {}
        for k, t in enumerate(tokens):
            masks[t] = masks.get(t, 0) | (1 << k)
        best: tuple[float, int] | None = None
        for i in ids:
            doc = self.docs[i]
            self.scored += 1
            score = fmeasure(_lcs_masks(masks, len(tokens), doc), len(tokens), len(doc))
            if score >= self.threshold and (best is None or score > best[0]):
                best = (score, i)
        return best

    def naive_match(self, text: str | list[str]) -> tuple[float, int] | None:
        """The all-pairs loop the index replaces (for tests and the benchmark)."""
        tokens = tokenize(text) if isinstance(text, str) else text
        best: tuple[float, int] | None = None
        for i, doc in enumerate(self.docs):
            score = fmeasure(lcs_len(tokens, doc), len(tokens), len(doc))
            if score >= self.threshold and (best is None or score > best[0]):
                best = (score, i)
        return best

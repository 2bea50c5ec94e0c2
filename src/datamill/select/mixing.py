"""The arithmetic of a mix: how much to take of each source for a target ratio (``fill``), and the
shares a finished mix reached, read back from its counters (``effective_ratio``, for the report)."""

from __future__ import annotations

import bisect


def fill(order: list[int], size: list[int], target: float) -> list[int]:
    """Indices (from ``order``) whose sizes sum close to ``target``: a greedy pass takes each record
    that still fits under the target, then the unused record that best closes the remaining gap is
    added if it helps, then one taken record is swapped for an unused one if that closes it further
    (token targets are met to within a fraction of a record)."""
    taken, total = [], 0
    for i in order:
        if total + size[i] <= target:
            taken.append(i)
            total += size[i]
            if total == target:
                return taken
    used = set(taken)
    spare = sorted((size[i], i) for i in order if i not in used)
    keys = [sz for sz, _ in spare]

    def nearest(want: float) -> tuple[int, int] | None:
        """The unused record whose size is closest to ``want``."""
        k = bisect.bisect_left(keys, want)
        near = [spare[j] for j in (k - 1, k) if 0 <= j < len(spare)]
        return min(near, key=lambda p: abs(want - p[0])) if near else None

    gap = target - total
    add = nearest(gap)
    if add is not None and abs(gap - add[0]) < gap:
        taken.append(add[1])
        gap -= add[0]
        used.add(add[1])
        spare.remove(add)
        keys = [sz for sz, _ in spare]
    # one swap: replace a taken record by an unused one that closes the rest of the gap
    best = (abs(gap), None, None)
    for pos, t in enumerate(taken):
        cand = nearest(size[t] + gap)
        if cand is not None and abs(gap + size[t] - cand[0]) < best[0]:
            best = (abs(gap + size[t] - cand[0]), pos, cand[1])
    if best[1] is not None:
        taken[best[1]] = best[2]
    return taken


def effective_ratio(counters: dict[str, int]) -> dict[str, dict[str, float]]:
    """{source: {"share", "target", "units", "records"}} from a mix step's counters (stats.json)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in counters.items():
        kind, _, name = key.partition(":")
        if name and kind in ("share_ppm", "target_ppm", "units", "records", "available"):
            out.setdefault(name, {})[kind.removesuffix("_ppm")] = value / 1e6 if kind.endswith("_ppm") else value
    return out

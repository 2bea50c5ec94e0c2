"""From ranked candidates to training examples: which answers become chosen/rejected pairs, how votes
are counted, and which ratings or thumbs make a KTO label. Pure functions; the ops in
``datamill.prefs.training_pairs`` turn their results into records."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

Strategy = Literal["best_vs_worst", "margin", "best_vs_random", "judged", "prefer_models"]


@dataclass(frozen=True)
class Pair:
    chosen: int  # candidate index
    rejected: int
    margin: float | None  # score difference (None for verdict-based pairs)


def count_votes(cands: list[dict[str, Any]], votes: list[Any] | None = None) -> list[int]:
    """Votes per candidate. Either each candidate carries ``votes`` (a count, or a list of the annotators
    who preferred it), or ``votes`` is a list of ``{"annotator", "choice"}`` ballots where ``choice`` is a
    candidate index or model name. One annotator counts once per prompt: a later ballot replaces an
    earlier one. Ballots naming no candidate are ignored."""
    if votes is None:
        out = []
        for c in cands:
            v = c.get("votes", 0)
            out.append(len(set(map(str, v))) if isinstance(v, list) else int(v or 0))
        return out
    by_model = {c.get("model"): i for i, c in enumerate(cands)}
    last: dict[str, int] = {}
    for n, ballot in enumerate(votes):
        choice = ballot.get("choice") if isinstance(ballot, dict) else ballot
        annotator = str(ballot.get("annotator", f"#{n}")) if isinstance(ballot, dict) else f"#{n}"
        index = choice if isinstance(choice, int) and not isinstance(choice, bool) else by_model.get(choice)
        if index is not None and 0 <= index < len(cands):
            last[annotator] = index
    counts = [0] * len(cands)
    for index in last.values():
        counts[index] += 1
    return counts


def scores(cands: list[dict[str, Any]], key: str, votes: list[Any] | None = None) -> list[float | None]:
    """The number each candidate is ranked by: ``votes`` counts ballots, any other key reads that field
    (``score``, ``rating``, ``wins`` …); a missing or non-numeric value is None (not ranked)."""
    if key == "votes":
        return [float(v) for v in count_votes(cands, votes)]
    out: list[float | None] = []
    for c in cands:
        v = c.get(key)
        out.append(float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None)
    return out


def select(
    values: list[float | None],
    strategy: Strategy,
    margin: float = 1.0,
    rng: random.Random | None = None,
) -> tuple[list[Pair], str | None]:
    """Pairs by score, or ([], why) when there are none. ``best_vs_worst``: the top against the bottom;
    ``margin``: every pair at least ``margin`` apart; ``best_vs_random``: the top against a random
    lower-scored one. A top tied with the bottom (or nothing ``margin`` apart) is a tie."""
    ranked = [(v, i) for i, v in enumerate(values) if v is not None]
    if len(ranked) < 2:
        return [], "fewer than 2 ranked answers"
    # stable: among equal scores the earlier candidate counts as better
    ranked.sort(key=lambda t: (-t[0], t[1]))
    best, worst = ranked[0], ranked[-1]
    if strategy == "best_vs_worst":
        if best[0] - worst[0] < margin or best[0] == worst[0]:
            return [], "tie: best and worst are within the margin"
        return [Pair(best[1], worst[1], best[0] - worst[0])], None
    if strategy == "best_vs_random":
        lower = [t for t in ranked[1:] if best[0] - t[0] >= margin and t[0] < best[0]]
        if not lower:
            return [], "tie: no answer below the best by the margin"
        pick = (rng or random.Random(0)).choice(lower)
        return [Pair(best[1], pick[1], best[0] - pick[0])], None
    if strategy == "margin":
        pairs = [
            Pair(a[1], b[1], a[0] - b[0])
            for k, a in enumerate(ranked)
            for b in ranked[k + 1 :]
            if a[0] - b[0] >= margin and a[0] > b[0]
        ]
        return (pairs, None) if pairs else ([], "tie: no two answers are the margin apart")
    raise ValueError(f"strategy {strategy!r} does not rank by score")


def by_preference(models: list[str | None], order: list[str]) -> tuple[list[Pair], str | None]:
    """Teacher vs student: each candidate whose model comes earlier in ``order`` beats each later one."""
    rank = {m: k for k, m in enumerate(order)}
    known = [(rank[m], i) for i, m in enumerate(models) if m in rank]
    pairs = [Pair(i, j, None) for ri, i in known for rj, j in known if ri < rj]
    return (pairs, None) if pairs else ([], "no two answers from the preferred models")


def from_judgments(judgments: list[dict[str, Any]]) -> tuple[list[Pair], int]:
    """One pair per decided pairwise verdict (``winner`` is ``"a"``/``"b"``); returns (pairs, ties)."""
    pairs, ties = [], 0
    for j in judgments:
        if j.get("winner") == "a":
            pairs.append(Pair(j["a"], j["b"], None))
        elif j.get("winner") == "b":
            pairs.append(Pair(j["b"], j["a"], None))
        else:
            ties += 1
    return pairs, ties


THUMBS = {"up": True, "down": False, "+1": True, "-1": False, "👍": True, "👎": False}


def kto_label(value: Any, desirable_min: float | None, undesirable_max: float | None) -> bool | None:
    """True (desirable), False (undesirable) or None (no label). A bool or thumb (``up``/``down``,
    ``+1``/``-1``, 1/-1) is used as is; a number is compared with the thresholds (at or above
    ``desirable_min`` is desirable, at or below ``undesirable_max`` is not, between is unlabeled)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in THUMBS:
            return THUMBS[v]
        try:
            value = float(v)
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    if desirable_min is None and undesirable_max is None:  # a thumb given as a number
        return True if value > 0 else False if value < 0 else None
    if desirable_min is not None and value >= desirable_min:
        return True
    if undesirable_max is not None and value <= undesirable_max:
        return False
    return None

"""How unsure the pipeline's judges are about an item before anyone answered it — the queue's first
order, so people spend their time where the machine is least sure: judges that disagree (two verdicts
on a pair, the dataset's own preference against a judge's, a judge's per-answer scores against its
pairwise verdict, quality scores on both sides of the threshold), a pairwise verdict that flipped
with the order, a quality score near the keep/drop threshold, a small log-odds margin, two close
per-answer scores. 0 is sure, 1 a coin toss; an item nothing is known about is 0.5."""

from __future__ import annotations

import math
import re
from typing import Any

UNKNOWN = 0.5
MIN_SCORE = 3  # quality_judge keeps scores >= min_score (its default); a drop reason names the one used
_DROP_MIN = re.compile(r"quality score \d+ < (\d+)")


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def threshold(hints: list[dict[str, Any]]) -> float:
    """The quality score between keep and drop: halfway below the ``min_score`` the drop reason names."""
    for h in hints:
        m = _DROP_MIN.search(str(h.get("reason") or "")) if h.get("kind") == "drop" else None
        if m:
            return int(m.group(1)) - 0.5
    return MIN_SCORE - 0.5


def prior(hints: list[dict[str, Any]]) -> float:
    """The judges' uncertainty about one item (its suggestions), the largest of the signs found."""
    found: list[float] = []
    prefs = [h for h in hints if h.get("kind") == "prefers"]
    sides = {h.get("prefers") for h in prefs}  # None: a tie
    if any(h.get("consistent") is False for h in prefs):
        found.append(1.0)  # the verdict changed with the order the answers were shown in
    for h in prefs:
        if _number(h.get("margin")):
            found.append(1 - abs(math.tanh(h["margin"] / 2)))  # 1 - |2p - 1| with p = sigmoid(log-odds)
    cands = {h.get("candidate"): h for h in hints if h.get("kind") == "candidate_score" and _number(h.get("score"))}
    if {0, 1} <= cands.keys():
        s0, s1, top = cands[0]["score"], cands[1]["score"], cands[0].get("max") or 10
        found.append(max(0.0, 1 - abs(s0 - s1) / max(top - 1, 1)))
        sides.add(None if s0 == s1 else 0 if s0 > s1 else 1)
    if len(sides) > 1:
        found.append(1.0)  # the judges (or the dataset and a judge) disagree
    scores = [h for h in hints if h.get("kind") == "score" and _number(h.get("score"))]
    cut = threshold(hints)
    for h in scores:
        half = max(((h.get("max") or 5) - 1) / 2, 1)
        found.append(max(0.0, 1 - abs(h["score"] - cut) / half))
    if len({h["score"] >= cut for h in scores}) > 1:
        found.append(1.0)
    return round(max(found), 6) if found else UNKNOWN

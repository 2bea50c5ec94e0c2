"""From the annotators' answers to one item to what the data gets: records to keep (accepted or
edited, a chosen/rejected pair, scores, a label, a KTO label) or a drop with its reason. Several
annotators are resolved by majority; a tie is dropped, never guessed.

sft: keep (accept or edit) vs reject by majority; among keepers an edit wins over an accept (the
accepter saw nothing wrong with the original, the editor fixed something), and two different edits
with equal votes are a tie. pairwise: the most-voted outcome — a candidate, tie, or both bad; only a
candidate makes a pair. rating: the mean per criterion. label and kto: the most-voted label. An
adjudicator's decision on a conflict replaces the vote; an item the learner auto-decided is its
prediction, marked ``auto`` with the confidence."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from datamill.prefs.candidates import prompt_of
from datamill.record import Message, Record
from datamill.review.active import auto_vote
from datamill.review.items import content_of
from datamill.review.questions import combine

PAIR_META = ("source", "index", "line", "input", "reference")


@dataclass
class Outcome:
    decision: str
    records: list[Record] = field(default_factory=list)
    reason: str | None = None  # set when the item is dropped
    review: dict[str, Any] = field(default_factory=dict)


def decide(
    task: str, item: dict[str, Any], votes: list[dict[str, Any]], questions: list[dict[str, Any]] | None = None
) -> Outcome:
    """``item``: record, payload, id and (when the learner decided it) ``auto``; ``votes``: answer dicts
    with the annotator's ``name`` and ``role``; ``questions``: the project's, whose responses are
    combined into ``meta.review.responses``. An adjudicator's decision wins over the votes."""
    auto = item.get("auto") if not votes else None
    if auto is not None:
        votes = [auto_vote(task, auto)]
    judged = [v for v in votes if v.get("role") == "adjudicator"][-1:]
    review: dict[str, Any] = {"item": item["id"], "annotators": [_vote(v) for v in votes]}
    if judged:
        review["adjudicator"] = judged[0]["name"]
    if auto is not None:
        review |= {"auto": True, "confidence": auto["confidence"], "min_confidence": auto["min_confidence"],
                   "learner_accuracy": auto["accuracy"]}  # fmt: skip
    deciders = {"sft": _sft, "pairwise": _pairwise, "rating": _rating, "label": _label, "kto": _kto}
    outcome = deciders[task](item, judged or votes)
    if questions and any(v.get("responses") for v in votes):
        review["responses"] = combine(questions, [v["responses"] for v in votes if v.get("responses")])
    outcome.review = {"decision": outcome.decision, **review, **outcome.review}
    for rec in outcome.records:
        rec.meta["review"] = outcome.review
    return outcome


def original(item: dict[str, Any], review: dict[str, Any] | None = None) -> Record:
    rec = Record.from_dict(json.loads(json.dumps(item["record"])))  # a copy: meta is changed below
    if review is not None:
        rec.meta["review"] = review
    return rec


def _vote(v: dict[str, Any]) -> dict[str, Any]:
    out = {"name": v["name"], "at": v["updated_at"], "decision": v["decision"]}
    for key in ("reason", "ratings", "labels", "choice", "responses"):
        if v.get(key) is not None:
            out[key] = v[key]
    return out


def _reasons(votes: list[dict[str, Any]]) -> str:
    return "; ".join(f"{v['name']}: {v['reason']}" for v in votes if v.get("reason"))


def _split(counts: Counter) -> str:
    return ", ".join(f"{n} × {k}" for k, n in counts.most_common())


def _winner(counts: Counter) -> Any:
    """The most-voted value, or None on a tie for first place."""
    top = counts.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def _sft(item: dict[str, Any], votes: list[dict[str, Any]]) -> Outcome:
    keep = [v for v in votes if v["decision"] in ("accept", "edit")]
    reject = [v for v in votes if v["decision"] == "reject"]
    if len(reject) > len(keep):
        why = _reasons(reject)
        return Outcome("reject", reason=f"rejected by review: {why}" if why else "rejected by review")
    if len(reject) == len(keep):
        return Outcome("tie", reason=f"reviewers split: {len(keep)} keep vs {len(reject)} reject")
    edited = [v["record"] for v in keep if v["decision"] == "edit"]
    edits = Counter(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in edited)
    if not edits:
        return Outcome("accept", [original(item)])
    best = _winner(edits)
    if best is None:
        return Outcome("tie", reason=f"reviewers made {len(edits)} different edits with equal votes")
    after = json.loads(best)
    rec = original(item)
    edited = Record.from_dict({**after, "meta": rec.meta})
    edited.id = edited.compute_id()
    before = content_of(item["record"])
    return Outcome("edit", [edited], review={"original_id": item["record"].get("id"), "before": before, "after": after})


def _pairwise(item: dict[str, Any], votes: list[dict[str, Any]]) -> Outcome:
    counts = Counter(v["choice"] if v["decision"] in ("a", "b") else v["decision"] for v in votes)
    winner = _winner(counts)
    pair, cands = item["payload"]["pair"], item["payload"]["candidates"]
    review = {"pair": pair, "models": [c.get("model") for c in cands]}
    named = Counter({_name(pair[k], cands[k]) if isinstance(k, int) else k: n for k, n in counts.items()})
    why = _reasons(votes)
    if winner is None:
        return Outcome("tie", reason=f"reviewers disagree ({_split(named)})", review=review)
    if winner == "tie":
        return Outcome("tie", reason="tie: reviewers found neither answer better" + (f" ({why})" if why else ""),
                       review=review)  # fmt: skip
    if winner == "both_bad":
        return Outcome("both_bad", reason="both answers bad" + (f" ({why})" if why else ""), review=review)
    rec = original(item)
    chosen, rejected = cands[winner], cands[1 - winner]
    meta = {k: rec.meta[k] for k in PAIR_META if k in rec.meta}
    meta |= {"method": "review", "parent": rec.id, "chosen_model": chosen.get("model"),
             "rejected_model": rejected.get("model")}  # fmt: skip
    child = Record(messages=prompt_of(rec), system=rec.system, tools=rec.tools, meta=meta)
    child.chosen = Message("assistant", chosen["text"])
    child.rejected = Message("assistant", rejected["text"])
    child.id = child.compute_id()
    return Outcome("chose", [child], review=review | {"chosen": pair[winner], "votes": dict(named)})


def _name(index: int, cand: dict[str, Any]) -> str:
    return f"candidate {index} ({cand['model']})" if cand.get("model") else f"candidate {index}"


def _rating(item: dict[str, Any], votes: list[dict[str, Any]]) -> Outcome:
    criteria = list(votes[0]["ratings"])
    scores = {c: round(sum(v["ratings"][c] for v in votes) / len(votes), 3) for c in criteria}
    rec = original(item)
    rec.meta["scores"] = scores
    rec.meta["rating"] = round(sum(scores.values()) / len(scores), 3)
    return Outcome("rated", [rec])


def _label(item: dict[str, Any], votes: list[dict[str, Any]]) -> Outcome:
    counts = Counter(v["labels"][0] for v in votes)
    winner = _winner(counts)
    if winner is None:
        return Outcome("tie", reason=f"reviewers disagree on the label ({_split(counts)})")
    rec = original(item)
    rec.meta["labels"] = [winner]
    return Outcome("label", [rec], review={"votes": dict(counts)})


def _kto(item: dict[str, Any], votes: list[dict[str, Any]]) -> Outcome:
    counts = Counter(v["decision"] for v in votes)
    winner = _winner(counts)
    if winner is None:
        return Outcome("tie", reason=f"reviewers split ({_split(counts)})")
    rec = original(item)
    rec.label = winner == "desirable"
    return Outcome(winner, [rec], review={"votes": dict(counts)})

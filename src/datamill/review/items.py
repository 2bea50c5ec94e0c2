"""What an item is for each task: records become items (with the pre-annotations already in ``meta``
as suggestions), and an item's record becomes the turns a reviewer sees and edits.

Tasks: ``sft`` (accept / edit / reject), ``pairwise`` (two answers to one prompt: A / B / tie / both
bad), ``rating`` (1–N per criterion), ``label`` (one label of a set) and ``kto`` (desirable or not)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from datamill.prefs.candidates import answer_of, candidates, prompt_of
from datamill.record import Record
from datamill.review.uncertainty import prior

TASKS = ("sft", "pairwise", "rating", "label", "kto")
QUALITY_MAX = 5  # quality_judge's rubric is 1-5


def turns(record: dict[str, Any]) -> list[dict[str, str]]:
    """Every text of a record in reading order, each with the ``key`` an edit names it by."""
    out = []
    if record.get("system") is not None:
        out.append({"key": "system", "role": "system", "content": record["system"]})
    for i, m in enumerate(record.get("messages") or []):
        out.append({"key": f"messages.{i}", "role": m["role"], "content": m["content"]})
    if record.get("text") is not None:
        out.append({"key": "text", "role": "text", "content": record["text"]})
    for side in ("chosen", "rejected"):
        if record.get(side) is not None:
            out.append({"key": side, "role": side, "content": record[side]["content"]})
    return out


def apply_edits(record: dict[str, Any], edits: dict[str, str]) -> dict[str, Any]:
    """A copy of ``record`` with the texts named by ``edits`` replaced; raises KeyError on a key
    the record does not have (an edit changes texts, never the shape)."""
    out = copy.deepcopy(record)
    for key, value in edits.items():
        if key in ("system", "text") and out.get(key) is not None:
            out[key] = value
        elif key in ("chosen", "rejected") and out.get(key) is not None:
            out[key]["content"] = value
        elif key.startswith("messages.") and key[9:].isdigit() and int(key[9:]) < len(out.get("messages") or []):
            out["messages"][int(key[9:])]["content"] = value
        else:
            raise KeyError(key)
    return out


def content_of(record: dict[str, Any]) -> dict[str, Any]:
    """The record's content fields (no id, no meta): what an edit's before/after shows."""
    return {k: v for k, v in record.items() if k not in ("id", "meta")}


def drafts(
    rec: Record, task: str, drop: dict[str, Any] | None = None, questions: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]] | str:
    """The item rows one record gives for ``task``, or why it gives none. The payload carries what the
    questions need: the candidates to rank and the answer to edit."""
    record = rec.to_dict()
    base = suggestions(rec, drop)
    if task == "pairwise":
        rows = _pairs(rec, record, base)
    elif not record.keys() - {"id", "meta"}:
        return "empty record"
    elif task == "kto" and answer_of(rec) is None:
        return "no answer to call desirable or undesirable"
    else:
        if task == "kto" and rec.label is not None:
            base.append({"source": "dataset", "kind": "label", "label": rec.label})
        rows = [{"record": record, "payload": {}, "suggestions": base, "text": rec.part("all")}]
    if isinstance(rows, str):
        return rows
    kinds = {q["kind"] for q in questions or []}
    for row in rows:
        if "ranking" in kinds and len(candidates(rec)) >= 2:
            row["payload"]["rank"] = [_candidate(c) for c in candidates(rec)]
        if "edit" in kinds and answer_of(rec) is not None:
            row["payload"]["answer"] = answer_of(rec)
        row |= facets(record, row["suggestions"])
    return rows


def facets(record: dict[str, Any], hints: list[dict[str, Any]]) -> dict[str, Any]:
    """The columns an item's record and suggestions give: the table's filters — the quality score
    (1-5) of its first score suggestion, ``meta.source``, its tags (``meta.tags``, ``meta.lang``,
    ``meta.method`` and, for a dropped record, the operator that dropped it) — and the judges'
    uncertainty, the queue's order until the learner is fit."""
    meta = record.get("meta") or {}
    score = next((h["score"] for h in hints if h.get("kind") == "score"), None)
    tags = meta.get("tags")
    found = tags.split(",") if isinstance(tags, str) else list(tags) if isinstance(tags, list) else []
    found += [meta[k] for k in ("lang", "method") if isinstance(meta.get(k), str)]
    found += [h["op"] for h in hints if h.get("kind") == "drop" and h.get("op")]
    clean = sorted({str(t).strip().replace("|", "/") for t in found if str(t).strip()})
    source = meta.get("source")
    return {
        "score": float(score) if isinstance(score, int | float) else None,
        "source": source[:1000] if isinstance(source, str) else None,
        "tags": "|" + "|".join(clean) + "|" if clean else "",
        "uncertainty": prior(hints),
    }


def _pairs(rec: Record, record: dict[str, Any], base: list[dict[str, Any]]) -> list[dict[str, Any]] | str:
    cands = candidates(rec)
    prompt = ([{"key": "system", "role": "system", "content": rec.system}] if rec.system else []) + [
        {"key": f"messages.{i}", "role": m.role, "content": m.content} for i, m in enumerate(prompt_of(rec))
    ]
    if len(cands) >= 2:
        views = [_candidate(c) for c in cands]
        pairs = list(itertools.combinations(range(len(cands)), 2))
    elif rec.chosen is not None and rec.rejected is not None:
        prompt = [t for t in turns(record) if t["key"] not in ("chosen", "rejected")]
        views = [{"text": rec.chosen.content, "model": "chosen"}, {"text": rec.rejected.content, "model": "rejected"}]
        pairs = [(0, 1)]
        base = [*base, {"source": "dataset", "kind": "prefers", "prefers": 0}]
    else:
        return "no meta.candidates or chosen/rejected pair to compare"
    prompt_text = "\n".join(t["content"] for t in prompt)
    out = []
    for i, j in pairs:
        hints = [*base, *pair_judgments(rec, i, j)]
        out.append(
            {
                "record": record,
                "payload": {"pair": [i, j], "prompt": prompt, "candidates": [views[i], views[j]]},
                "suggestions": hints,
                "text": "\n".join((prompt_text, views[i]["text"], views[j]["text"])),
            }
        )
    return out


def _candidate(cand: dict[str, Any]) -> dict[str, Any]:
    view = {"text": str(cand.get("text") or ""), "model": str(cand.get("model") or "")}
    for key in ("score", "reason", "rating", "wins"):
        if cand.get(key) is not None:
            view[key] = cand[key]
    return view


def pair_judgments(rec: Record, i: int, j: int) -> list[dict[str, Any]]:
    """judge_pairwise's verdict on candidates i and j, as a preference for one of them (or a tie)."""
    out = []
    for jd in rec.meta.get("judgments") or []:
        if not isinstance(jd, dict) or {jd.get("a"), jd.get("b")} != {i, j}:
            continue
        winner = jd.get("winner")
        prefers = jd.get(winner) if winner in ("a", "b") else None
        hint = {"source": "judge_pairwise", "kind": "prefers", "prefers": [i, j].index(prefers) if prefers in (i, j)
                else None, "consistent": jd.get("consistent")}  # fmt: skip
        for key in ("margin", "reasons", "judge"):
            if jd.get(key) is not None:
                hint[key] = jd[key]
        out.append(hint)
    return out


def quality_hints(rec: Record) -> list[dict[str, Any]]:
    """``quality_judge``'s scores in ``meta`` (under any field name) as suggestions."""
    out = []
    for key, value in rec.meta.items():
        if isinstance(value, dict) and isinstance(value.get("score"), int | float) and "judge" in value:
            hint = {"source": "quality_judge", "kind": "score", "field": key, "score": value["score"]}
            hint["max"] = QUALITY_MAX
            for extra in ("reason", "model"):
                if value.get(extra) is not None:
                    hint[extra] = value[extra]
            out.append(hint)
    return out


def suggestions(rec: Record, drop: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What the pipeline already said about the record: the filter that dropped it, the quality judge's
    score and reason, the perplexity."""
    out: list[dict[str, Any]] = []
    if drop:
        out.append({"source": "filter", "kind": "drop", **{k: drop[k] for k in ("op", "step", "reason") if k in drop}})
    out += quality_hints(rec)
    if isinstance(rec.meta.get("perplexity"), int | float):
        out.append({"source": "perplexity", "kind": "value", "value": rec.meta["perplexity"]})
    return out

"""Turn ranked candidates into training examples (no LLM: ``uses_llm = False``).

- ``make_pairs``: one record with candidates → chosen/rejected preference records (DPO/ORPO/reward).
  By score (``best_vs_worst``, ``margin``, ``best_vs_random``; the score may be a judge's ``score``,
  a ``rating``, ``wins`` or annotator ``votes``), by pairwise verdicts (``judged``) or by model order
  (``prefer_models``: teacher over student). Ties are dropped with a reason.
- ``make_kto``: ratings (thresholds) or thumbs up/down → KTO examples with ``label``.

The input record is consumed: dropped as ``expanded into pairs`` / ``expanded into KTO examples`` once its
examples exist (they carry ``meta["parent"]``), or dropped with the reason no example came out.
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import Field, model_validator

from datamill.llm import LLMClient
from datamill.ops import register
from datamill.ops.base import Generator, OpConfig
from datamill.prefs import pairs as P
from datamill.prefs.candidates import answer_of, candidates, prompt_of
from datamill.record import Message, Record
from datamill.results import Drop

KEEP_META = ("input", "reference", "source")


def _child(record: Record, method: str, extra: dict[str, Any]) -> Record:
    meta = {k: record.meta[k] for k in KEEP_META if k in record.meta}
    meta.update(method=method, parent=record.id, **extra)
    return Record(messages=prompt_of(record), system=record.system, tools=record.tools, meta=meta)


def _public(cand: dict[str, Any]) -> dict[str, Any]:
    """What a pair keeps of a candidate in meta (everything but the text itself)."""
    return {k: v for k, v in cand.items() if k != "text"}


@register
class MakePairs(Generator):
    """Candidates → chosen/rejected records; ``meta`` keeps the margin, both models, scores and reasons."""

    name = "make_pairs"
    uses_llm = False

    class Config(OpConfig):
        strategy: P.Strategy = "best_vs_worst"
        score: str = Field("score", description="candidate field to rank by: score, rating, wins, votes …")
        margin: float = Field(1.0, ge=0, description="minimum score difference for a pair")
        prefer_models: list[str] | None = Field(None, description="prefer_models: best first (teacher, student)")

        @model_validator(mode="after")
        def _needs_order(self):
            if self.strategy == "prefer_models" and not self.prefer_models:
                raise ValueError("strategy prefer_models needs prefer_models: [best, …, worst]")
            return self

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        c = self.config
        cands = candidates(record)
        texts = [str(x.get("text") or "") for x in cands]
        if c.strategy == "judged":
            pairs, ties = P.from_judgments(record.meta.get("judgments") or [])
            self.counters["ties"] += ties
            why = "tie: no consistent verdict" if not pairs else None
        elif c.strategy == "prefer_models":
            pairs, why = P.by_preference([x.get("model") for x in cands], c.prefer_models or [])
        else:
            votes = record.meta.get("votes") if c.score == "votes" else None
            values = P.scores(cands, c.score, votes if isinstance(votes, list) else None)
            if c.score == "votes":
                for cand, v in zip(cands, values, strict=True):
                    cand["votes_counted"] = int(v or 0)
            rng = random.Random(f"{self.context.seed}:{record.id}")
            pairs, why = P.select(values, c.strategy, c.margin, rng)
        out: list[Record | Drop] = []
        for pair in pairs:
            if not texts[pair.chosen].strip() or not texts[pair.rejected].strip():
                self.counters["empty_answer_skipped"] += 1
                continue
            if texts[pair.chosen].strip() == texts[pair.rejected].strip():
                self.counters["identical_answers_skipped"] += 1
                continue
            extra: dict[str, Any] = {
                "strategy": c.strategy,
                "chosen_model": cands[pair.chosen].get("model"),
                "rejected_model": cands[pair.rejected].get("model"),
                "chosen_meta": _public(cands[pair.chosen]),
                "rejected_meta": _public(cands[pair.rejected]),
            }
            if pair.margin is not None:
                extra["margin"] = pair.margin
            if c.strategy == "judged":
                ends = {pair.chosen, pair.rejected}
                judged = record.meta.get("judgments") or []
                extra["judgment"] = next((j for j in judged if {j.get("a"), j.get("b")} == ends), None)
            child = _child(record, "make_pairs", extra)
            child.chosen = Message("assistant", texts[pair.chosen])
            child.rejected = Message("assistant", texts[pair.rejected])
            out.append(child)
        self.counters["pairs"] += len(out)
        if not out:
            return [Drop(record, why or "no usable pair (empty or identical answers)")]
        return [*out, Drop(record, "expanded into pairs")]


@register
class MakeKTO(Generator):
    """Ratings or thumbs → KTO examples (``label`` true = desirable). A record with candidates gives one
    example per labelled candidate; a record with one answer and ``meta[field]`` is labelled in place.
    Numbers use the thresholds (at or above ``desirable_min`` → true, at or below ``undesirable_max`` →
    false, between → no label); ``up``/``down``, ±1 and booleans are thumbs."""

    name = "make_kto"
    uses_llm = False

    class Config(OpConfig):
        field: str = Field("rating", description="candidate (or meta) field: rating, score, thumb …")
        desirable_min: float | None = 4
        undesirable_max: float | None = 2

    def _label(self, value: Any) -> bool | None:
        return P.kto_label(value, self.config.desirable_min, self.config.undesirable_max)

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        c = self.config
        cands = candidates(record)
        if not cands:
            if answer_of(record) is None:
                return [Drop(record, "no answer to label")]
            label = self._label(record.meta.get(c.field))
            if label is None:
                return [Drop(record, f"{c.field} gives no KTO label")]
            record.label = label
            self.counters["desirable" if label else "undesirable"] += 1
            return [record]
        out: list[Record | Drop] = []
        for cand in cands:
            label = self._label(cand.get(c.field))
            text = str(cand.get("text") or "")
            if label is None or not text.strip():
                self.counters["unlabelled_candidates"] += 1
                continue
            child = _child(record, "make_kto", {"model": cand.get("model"), "candidate": _public(cand)})
            child.messages.append(Message("assistant", text))
            child.label = label
            self.counters["desirable" if label else "undesirable"] += 1
            out.append(child)
        if not out:
            return [Drop(record, f"{c.field} gives no KTO label")]
        return [*out, Drop(record, "expanded into KTO examples")]

"""Collect candidate answers per prompt — the first step of preference data.

- ``group_answers`` (global): records answering the same prompt (e.g. one predictions file per model)
  become one record whose ``meta["candidates"]`` lists every answer with its model; the parts are
  dropped with the reason ``grouped`` (``meta["grouped_into"]`` names the merged record, whose
  ``meta["parents"]`` names them).
- ``sample_answers`` (generator): N answers from one model at a temperature, added as candidates. Two
  such steps with different ``llm`` settings give teacher vs student.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from pydantic import Field

from datamill.llm import LLMClient, reasoning
from datamill.ops import register
from datamill.ops.base import AnswerGeneratorConfig, Generator, Global, OpConfig
from datamill.prefs.candidates import SOURCE_MODEL, answer_of, candidates, group_key, model_of, prompt_of
from datamill.record import Record
from datamill.results import Drop, Generated

FEEDBACK = ("score", "rating", "votes", "thumb")  # per-answer feedback a part may carry in meta


@register
class GroupAnswers(Global):
    """Join records that answer the same prompt into one record with ``meta["candidates"]`` =
    ``[{"model", "text", "id"}, …]`` (model from ``meta[model_key]`` or the source file name; feedback in
    a part's meta — score, rating, votes, thumb — goes with its answer)."""

    name = "group_answers"

    class Config(OpConfig):
        model_key: str = Field("model", description="meta key naming the answer's model (else: the file name)")
        model_pattern: str = Field(
            SOURCE_MODEL.pattern, description="regex on the source file name; group 1 is the model"
        )
        min_candidates: int = Field(2, ge=1, description="prompts with fewer answers are dropped")

    def run(self, records: Iterable[Record]) -> Iterator[Record | Drop | Generated]:
        self.context.workdir.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(self.config.model_pattern)
        db = sqlite3.connect(self.context.workdir / "groups.sqlite")
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("DROP TABLE IF EXISTS parts")
            db.execute("CREATE TABLE parts (seq INTEGER PRIMARY KEY, k BLOB, rec BLOB)")
            for seq, rec in enumerate(records):
                if not prompt_of(rec) or answer_of(rec) is None:
                    yield Drop(rec, "no prompt and answer to group")
                    continue
                rec.meta.setdefault("_model", model_of(rec, self.config.model_key, pattern))
                db.execute("INSERT INTO parts VALUES (?, ?, ?)", (seq, group_key(rec), orjson.dumps(rec.to_dict())))
            db.execute("CREATE INDEX parts_k ON parts (k, seq)")
            keys = db.execute("SELECT k FROM parts GROUP BY k ORDER BY MIN(seq)").fetchall()
            for (k,) in keys:
                rows = db.execute("SELECT rec FROM parts WHERE k = ? ORDER BY seq", (k,)).fetchall()
                parts = [Record.from_dict(orjson.loads(r)) for (r,) in rows]
                yield from self._merge(parts)
        finally:
            db.close()

    def _merge(self, parts: list[Record]) -> Iterator[Record | Drop | Generated]:
        models = [p.meta.pop("_model") for p in parts]
        if len(parts) < self.config.min_candidates:
            self.counters["prompts_with_too_few_answers"] += 1
            for p in parts:
                yield Drop(p, f"fewer than {self.config.min_candidates} answers to its prompt")
            return
        first = parts[0]
        cands = [
            {"model": m, "text": answer_of(p), "id": p.id, **{k: p.meta[k] for k in FEEDBACK if k in p.meta}}
            for m, p in zip(models, parts, strict=True)
        ]
        meta: dict[str, Any] = {"method": "group_answers", "parents": [p.id for p in parts], "candidates": cands}
        for key in ("input", "reference"):
            if key in first.meta:
                meta[key] = first.meta[key]
        merged = Record(messages=prompt_of(first), system=first.system, tools=first.tools, meta=meta)
        merged.id = merged.compute_id()
        self.counters["prompts"] += 1
        self.counters["candidates"] += len(cands)
        yield Generated(merged)
        for p in parts:
            p.meta["grouped_into"] = merged.id
            yield Drop(p, "grouped")


@register
class SampleAnswers(Generator):
    """Ask ``llm`` for ``n`` answers to the record's prompt and add them to ``meta["candidates"]`` under
    the name ``label`` (default: the model name). The record's own answer, if any, becomes a candidate
    too (``keep_answer``), named ``meta["model"]`` or ``answer_label``. A reasoning model's thinking is
    dropped, kept in the candidate's text or put in its ``reasoning`` field (``reasoning``); a sample that
    only thought is counted, not kept."""

    name = "sample_answers"

    class Config(AnswerGeneratorConfig):
        n: int = Field(2, ge=1, le=64)
        temperature: float = Field(0.8, ge=0)
        label: str | None = Field(None, description="the candidates' model name (default: llm.model)")
        keep_answer: bool = True
        answer_label: str = "original"

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        assert llm is not None
        c = self.config
        prompt = prompt_of(record)
        if not prompt:
            return [Drop(record, "no prompt to answer")]
        cands = candidates(record)
        existing = answer_of(record)
        if existing is not None and c.keep_answer and not cands:
            cands.append({"model": record.meta.get("model") or c.answer_label, "text": existing, "id": record.id})
        msgs = ([{"role": "system", "content": record.system}] if record.system else []) + [m.to_dict() for m in prompt]
        base_seed = c.llm.seed if c.llm.seed is not None else self.context.seed
        done = await asyncio.gather(
            *(
                reasoning.answer(llm, msgs, c.reasoning, temperature=c.temperature, seed=base_seed + i)
                for i in range(c.n)
            )
        )
        label = c.label or c.llm.model
        seen = {str(x.get("text")) for x in cands}
        for out in done:
            text = out.text
            if out.problem:
                self.counters[f"unanswered_samples: {out.problem}"] += 1
            elif not text:
                self.counters["empty_samples"] += 1
            elif text in seen:
                self.counters["duplicate_samples"] += 1
            else:
                seen.add(text)
                cands.append(
                    {"model": label, "text": out.written, **out.meta, "method": "sample_answers",
                     "temperature": c.temperature}
                )  # fmt: skip
                self.counters["samples"] += 1
        record.messages = prompt
        record.meta["candidates"] = cands
        return [record]

"""add_constraints: complex-constraint instructions whose constraints a program can check (IFEval-style).

Each SFT record gets ``per_record`` compatible constraints drawn from ``types`` (length in words or
characters, keywords to include or avoid, JSON / bullet / numbered-list / quotation format, answer
language, no commas, lowercase, a fixed ending, a title), with parameters fitted to the original
answer (its length, its own content words). The constraints are stated after the instruction, the
model answers (up to ``attempts`` tries), and the new record is kept only if the answer passes every
checker in ``datamill.synth.constraints``; otherwise it is dropped naming the first failed one. The
constraint dicts go into ``meta.synth.constraints`` so the checks can be re-run later.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any, Literal

from pydantic import Field

from datamill.llm import reasoning
from datamill.llm.client import LLMClient
from datamill.llm.prompts import detect_lang
from datamill.ops import register
from datamill.ops.base import AnswerGeneratorConfig, Generator
from datamill.record import Record
from datamill.results import Drop
from datamill.synth.common import NOT_A_TASK, begin, provenance, sft_record
from datamill.synth.constraints import CHECKERS, compatible, describe, failed, word_count
from datamill.synth.rouge import CJK

ConstraintType = Literal[
    "words", "chars", "keywords", "forbidden_words", "json", "bullets", "numbered_list", "language",
    "no_commas", "lowercase", "end_with", "title", "quotation",
]  # fmt: skip
ENDINGS = {"en": "Is there anything else I can help with?", "zh": "还有什么可以帮您的吗？"}
STOP = frozenset(
    ("about", "after", "again", "because", "before", "being", "between", "could", "every", "other", "should",
     "their", "there", "these", "those", "which", "while", "would")
)  # fmt: skip


def content_words(text: str, lang: str) -> list[str]:
    """Distinctive words of a text, most frequent first: long Latin words, or CJK character pairs."""
    if lang == "zh":
        pairs = Counter(
            m for run in re.findall(f"[{CJK}]+", text) for m in (run[i : i + 2] for i in range(len(run) - 1))
        )
        return [w for w, _ in pairs.most_common(20)]
    words = Counter(w.lower() for w in re.findall(r"[A-Za-z]{5,}", text) if w.lower() not in STOP)
    return [w for w, _ in words.most_common(20)]


def sample_constraints(rng: random.Random, types: list[str], k: int, answer: str, lang: str) -> list[dict[str, Any]]:
    """``k`` compatible constraints with parameters fitted to a reference answer."""
    pool = [t for t in dict.fromkeys(types) if not (lang == "zh" and t == "lowercase")]
    for _ in range(50):
        chosen = rng.sample(pool, min(k, len(pool)))
        if compatible(chosen):
            break
    else:
        chosen = chosen[:1]
    words = content_words(answer, lang)
    out = []
    for t in chosen:
        c: dict[str, Any] = {"type": t}
        n_words, n_chars = max(word_count(answer), 10), max(len(answer), 40)
        if t == "words":
            c.update({"max": max(15, int(n_words * 0.8))} if rng.random() < 0.5 else {"min": int(n_words * 1.2) + 5})
        elif t == "chars":
            c.update({"max": max(60, int(n_chars * 0.8))} if rng.random() < 0.5 else {"min": int(n_chars * 1.2) + 20})
        elif t == "keywords":
            c["words"] = words[:2] or (["example"] if lang == "en" else ["例子"])
        elif t == "forbidden_words":
            c["words"] = words[2:3] or (["very"] if lang == "en" else ["非常"])
        elif t == "bullets":
            c["n"] = rng.randint(2, 5)
        elif t == "numbered_list":
            c["min"] = rng.randint(3, 5)
        elif t == "language":
            c["lang"] = lang
        elif t == "end_with":
            c["phrase"] = ENDINGS[lang]
        out.append(c)
    return out


@register
class AddConstraints(Generator):
    """Add checkable constraints to instructions; keep only answers that pass every checker."""

    name = "add_constraints"

    class Config(AnswerGeneratorConfig):
        types: list[ConstraintType] = Field(default_factory=lambda: list(CHECKERS))
        per_record: int = Field(2, ge=1, le=5, description="constraints added to each instruction")
        attempts: int = Field(2, ge=1, le=10, description="answers asked for before giving up")
        keep_original: bool = True
        lang: Literal["auto", "en", "zh"] = "auto"

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        assert llm is not None
        c = self.config
        begun = begin(
            record, c.keep_original, "constrained (keep_original: false)", f"{self.context.seed}:{self.context.step}"
        )
        if begun is None:
            return [Drop(record, NOT_A_TASK)]
        task, out, rng = begun
        lang = c.lang if c.lang != "auto" else detect_lang(task.prompt)
        constraints = sample_constraints(rng, list(c.types), c.per_record, task.output, lang)
        sep = "" if lang == "zh" else " "
        instruction = task.instruction.rstrip() + sep + sep.join(describe(x, lang) for x in constraints)
        prompt = "\n".join(p for p in (instruction, task.input) if p)
        answer, bad, tries = reasoning.Answer("", None, c.reasoning), ["no answer"], 0
        for tries in range(1, c.attempts + 1):
            answer = await reasoning.answer(llm, prompt, c.reasoning, **({"seed": tries} if tries > 1 else {}))
            bad = [answer.problem] if answer.problem else failed(answer.text, constraints)
            if not bad:
                break
        prov = provenance(
            "add_constraints", c.llm, "datamill.synth.constraints", parent_id=record.id, constraints=constraints,
            attempts=tries,
        )  # fmt: skip
        rec = sft_record(instruction, task.input, answer.written, prov, **answer.meta)
        for t in bad if answer.problem is None else ():
            self.counters[f"failed: {t}"] += 1
        out.append(Drop(rec, answer.problem or f"fails constraint: {bad[0]}") if bad else rec)
        return out

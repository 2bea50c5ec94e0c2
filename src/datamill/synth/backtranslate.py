"""backtranslate_instruction: instruction back-translation (Humpback, Li et al. 2023).

Unlabeled text (a document, e.g. c4_demo or wiki_demo; or the answer of an SFT record) is treated as
the answer: the model writes the instruction it answers, then self-curates the pair on Humpback's
1–5 scale; pairs scoring at least ``threshold`` become new records (score and provenance in
``meta.synth``), the others are dropped with the reason. The source record is dropped
(``keep_source: false``, the default) or passed through.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from datamill.llm import prompts
from datamill.llm.client import LLMClient
from datamill.llm.prompts import detect_lang
from datamill.llm.structured import StructuredOutputError, generate_json
from datamill.ops import register
from datamill.ops.base import Generator, GeneratorConfig
from datamill.record import Record
from datamill.results import Drop
from datamill.synth.common import provenance, sft_record, task_of
from datamill.synth.instructions import instruction_problem
from datamill.synth.parse import clean, numbered_items


class _Rating(BaseModel):
    # only the score, as an enum: grammar-constrained backends then can only write 1-5 (a free-text
    # reason from a small model often breaks the JSON)
    score: Literal[1, 2, 3, 4, 5]


@register
class BacktranslateInstruction(Generator):
    """Write the instruction a text answers, self-curate the pair 1–5, keep those >= threshold."""

    name = "backtranslate_instruction"

    class Config(GeneratorConfig):
        threshold: int = Field(4, ge=1, le=5, description="lowest self-curation score kept (Humpback: 4 or 5)")
        min_chars: int = Field(100, ge=1, description="shorter texts are skipped")
        max_chars: int = Field(4000, ge=1, description="longer texts are cut at a paragraph or sentence end")
        keep_source: bool = False
        lang: Literal["auto", "en", "zh"] = "auto"

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        assert llm is not None
        c = self.config
        task = task_of(record)
        text = record.text if record.text is not None else (task.output if task else "")
        text = _cut(text.strip(), c.max_chars)
        out: list[Record | Drop] = [record if c.keep_source else Drop(record, "used as the answer")]
        if len(text) < c.min_chars:
            return [Drop(record, "text too short to back-translate")]
        lang = c.lang if c.lang != "auto" else detect_lang(text)
        asked = (await llm.chat(prompts.load("backtranslate_instruction", lang).messages(text=text))).text
        items = numbered_items(asked)
        instruction = clean(items[0]) if items else ""
        prov = provenance(
            "backtranslate_instruction",
            c.llm,
            [f"backtranslate_instruction.{lang}", f"backtranslate_curate.{lang}"],
            parent_id=record.id,
        )
        candidate = sft_record(instruction, "", text, prov)
        problem = instruction_problem(instruction, banned=()) if instruction else "empty instruction"
        if problem is not None:
            return [*out, Drop(candidate, problem)]
        curate = prompts.load("backtranslate_curate", lang)
        try:
            rating = await generate_json(llm, curate.messages(instruction=instruction, answer=text), _Rating)
        except StructuredOutputError:
            self.counters["score unreadable"] += 1
            return [*out, Drop(candidate, "self-curation score unreadable")]
        score = rating.score
        prov["score"] = score
        self.counters[f"score {score}"] += 1
        if score < c.threshold:
            return [*out, Drop(candidate, f"self-curation score below {c.threshold}")]
        return [*out, candidate]


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending at a paragraph or sentence end when there is one late enough."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    for sep in ("\n\n", "\n", "。", ". ", "！", "？", "! ", "? "):
        i = head.rfind(sep)
        if i >= limit // 2:
            return head[: i + len(sep)].strip()
    return head

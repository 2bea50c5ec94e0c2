"""flan_templates: render labeled data through FLAN-style templates (no model involved).

Each single-turn record (instruction / input / output: alpaca, T0's prompt/completion, GSM8K as SFT …)
yields, with the probabilities in ``mix``: a *zero-shot* rephrasing (instruction first, input first,
or labelled ``Instruction:/Input:/Answer:``), a *few-shot* prompt with ``shots`` solved examples taken
from the records before it in the chunk, a *chain-of-thought* prompt whose answer gives the reasoning
then the result (only when the answer has a rationale: GSM8K's ``#### 42``, "The answer is …",
"答案是…"), and a *flipped* task — given the output, write the input. Templates are ``flan_*`` files
in en and zh. New records carry ``meta.synth`` (method ``flan``, ``template``: which one and variant).
"""

from __future__ import annotations

import random
import re
from collections import deque
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from datamill.llm import prompts
from datamill.llm.client import LLMClient
from datamill.llm.prompts import detect_lang
from datamill.ops import register
from datamill.ops.base import Generator, OpConfig, OpContext
from datamill.record import Record
from datamill.results import Drop
from datamill.synth.common import NOT_A_TASK, Task, begin, provenance, sft_record

KINDS = ("zero_shot", "few_shot", "cot", "flipped")
RATIONALE = re.compile(
    r"^(?P<why>.+?)\s*(?:\n####\s*|(?:So |Therefore,? )?the (?:final )?answer is:?\s*|所以答案是[:：]?|答案是[:：]?)"
    r"(?P<answer>[^\n]{1,80}?)[.。]?\s*$",
    re.S | re.I,
)
SO = {"en": "So the answer is {}.", "zh": "所以答案是{}。"}


def rationale(output: str) -> tuple[str, str] | None:
    """(reasoning, final answer) when the answer states both, else None."""
    m = RATIONALE.match(output.strip())
    if not m or not m.group("why").strip() or not m.group("answer").strip():
        return None
    return m.group("why").strip(), m.group("answer").strip()


@register
class FlanTemplates(Generator):
    """Zero-shot, few-shot, chain-of-thought and flipped renderings of labeled tasks (FLAN-style)."""

    name = "flan_templates"
    uses_llm: ClassVar[bool] = False

    class Config(OpConfig):
        mix: dict[Literal["zero_shot", "few_shot", "cot", "flipped"], float] = Field(
            default_factory=lambda: {"zero_shot": 1.0, "few_shot": 0.5, "cot": 1.0, "flipped": 0.2},
            description="probability that each record yields each kind",
        )
        shots: int = Field(2, ge=1, le=16, description="solved examples in a few-shot prompt")
        keep_original: bool = True

        @field_validator("mix")
        @classmethod
        def _probabilities(cls, v: dict[str, float]) -> dict[str, float]:
            bad = {k: p for k, p in v.items() if not 0 <= p <= 1}
            if bad:
                raise ValueError(f"mix values are probabilities in [0, 1]: {bad}")
            return v

    def __init__(self, config: OpConfig, context: OpContext):
        super().__init__(config, context)
        self.recent: deque[Task] = deque(maxlen=64)  # few-shot examples: earlier records of the chunk

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        c = self.config
        begun = begin(
            record, c.keep_original, "templated (keep_original: false)", f"{self.context.seed}:{self.context.step}"
        )
        if begun is None:
            return [Drop(record, NOT_A_TASK)]
        task, out, rng = begun
        lang = detect_lang(task.prompt)
        for kind in KINDS:
            if rng.random() >= c.mix.get(kind, 0.0):
                continue
            made = self._render(kind, task, lang, rng)
            if made is None:
                self.counters[f"{kind} skipped"] += 1
                continue
            prompt, answer, template = made
            self.counters[kind] += 1
            out.append(
                sft_record(prompt, "", answer, provenance("flan", None, template, kind=kind, parent_id=record.id))
            )
        self.recent.append(task)
        return out

    def _render(self, kind: str, task: Task, lang: str, rng: random.Random) -> tuple[str, str, str] | None:
        if kind == "zero_shot":
            variant = rng.randrange(3)
            text = prompts.load("flan_zero_shot", lang).text(
                instruction=task.instruction, input=task.input, variant=variant
            )
            return text, task.output, f"flan_zero_shot.{lang}#{variant}"
        if kind == "few_shot":
            pool = [t for t in self.recent if t.prompt != task.prompt]
            if len(pool) < self.config.shots:
                return None
            shots = [{"prompt": t.prompt, "output": t.output} for t in rng.sample(pool, self.config.shots)]
            text = prompts.load("flan_few_shot", lang).text(examples=shots, prompt=task.prompt)
            return text, task.output, f"flan_few_shot.{lang}"
        if kind == "cot":
            found = rationale(task.output)
            if found is None:
                return None
            why, final = found
            text = prompts.load("flan_cot", lang).text(prompt=task.prompt)
            return text, f"{why}\n{SO[lang].format(final)}", f"flan_cot.{lang}"
        text = prompts.load("flan_flipped", lang).text(output=task.output)
        return text, task.prompt, f"flan_flipped.{lang}"

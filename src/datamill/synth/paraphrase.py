"""paraphrase: more instruction variants of each SFT record, by rewording or by back-translation.

``mode: paraphrase`` asks the model to reword the prompt (the shipped ``paraphrase`` template);
``mode: backtranslate`` translates it to the pivot language and back (zh→en→zh, en→zh→en), which
keeps the meaning while changing the wording. A variant that comes back empty, identical to the
original, or in the wrong language is dropped with the reason. The answer is kept
(``answer: keep``) or written anew for the variant (``answer: regenerate``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from datamill.llm import prompts, reasoning
from datamill.llm.client import LLMClient
from datamill.llm.prompts import detect_lang
from datamill.ops import register
from datamill.ops.base import AnswerGeneratorConfig, Generator
from datamill.record import Record
from datamill.results import Drop
from datamill.synth.common import NOT_A_TASK, provenance, sft_record, task_of
from datamill.synth.parse import clean
from datamill.synth.rouge import tokenize

LANG_NAMES = {"en": {"en": "English", "zh": "Chinese"}, "zh": {"en": "英文", "zh": "中文"}}


@register
class Paraphrase(Generator):
    """Add reworded (or back-translated) variants of each instruction; keep or regenerate the answer."""

    name = "paraphrase"

    class Config(AnswerGeneratorConfig):
        mode: Literal["paraphrase", "backtranslate"] = "paraphrase"
        variants: int = Field(1, ge=1, le=10, description="variants per record")
        answer: Literal["keep", "regenerate"] = "keep"
        pivot: Literal["auto", "en", "zh"] = Field("auto", description="backtranslate: auto = the other language")

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        assert llm is not None
        c = self.config
        task = task_of(record)
        if task is None:
            return [Drop(record, NOT_A_TASK)]
        out: list[Record | Drop] = [record]
        lang = detect_lang(task.prompt)
        seen = {" ".join(tokenize(task.prompt))}
        for k in range(c.variants):
            params = {"temperature": 0.9, "seed": k} if c.variants > 1 else {}
            if c.mode == "paraphrase":
                template: str | list[str] = f"paraphrase.{lang}"
                variant = (await llm.chat(prompts.load("paraphrase", lang).messages(text=task.prompt), **params)).text
                pivot = None
            else:
                pivot = c.pivot if c.pivot != "auto" else ("en" if lang == "zh" else "zh")
                there = await self._translate(llm, task.prompt, lang, pivot, params)
                variant = await self._translate(llm, there, pivot, lang, params)
                template = [f"translate.{lang}", f"translate.{pivot}"]
            variant = clean(variant)
            answer = reasoning.Answer(task.output, None, c.reasoning)
            if variant and c.answer == "regenerate":
                answer = await reasoning.answer(llm, variant, c.reasoning)
            prov = provenance(c.mode, c.llm, template, parent_id=record.id, variant=k + 1, pivot=pivot)
            rec = sft_record(variant, "", answer.written, prov, **answer.meta)
            key = " ".join(tokenize(variant))
            if answer.problem:
                out.append(Drop(rec, answer.problem))
            elif not variant or not answer.text:
                out.append(Drop(rec, "empty variant or answer"))
            elif key in seen:
                out.append(Drop(rec, "variant identical to the original"))
            elif detect_lang(variant) != lang:
                out.append(Drop(rec, "variant in the wrong language"))
            else:
                seen.add(key)
                out.append(rec)
        return out

    async def _translate(self, llm: LLMClient, text: str, src: str, dst: str, params: dict) -> str:
        msgs = prompts.load("translate", src).messages(text=text, target=LANG_NAMES[src][dst])
        return (await llm.chat(msgs, **params)).text.strip()

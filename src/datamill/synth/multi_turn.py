"""multi_turn: longer dialogues. A conversation ending in an answer gets ``turns`` more exchanges (the
model writes the user's in-character follow-up, then answers it with the whole history); a document
(``text``) becomes a dialogue whose answers come from it. The result is a new record with the full
message list (alpaca writes it with ``history``); the source record is kept (``keep_source``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from datamill.llm import prompts, reasoning
from datamill.llm.client import LLMClient
from datamill.llm.prompts import detect_lang
from datamill.ops import register
from datamill.ops.base import AnswerGeneratorConfig, Generator
from datamill.record import Message, Record
from datamill.results import Drop
from datamill.synth.common import provenance
from datamill.synth.parse import clean, dialogue


@register
class MultiTurn(Generator):
    """Extend conversations with follow-up exchanges, or turn documents into dialogues."""

    name = "multi_turn"

    class Config(AnswerGeneratorConfig):
        turns: int = Field(2, ge=1, le=20, description="exchanges to add (or to write from a document)")
        keep_source: bool = True
        max_doc_chars: int = Field(3000, ge=100, description="documents are cut to this many characters")
        lang: Literal["auto", "en", "zh"] = "auto"

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        assert llm is not None
        c = self.config
        keep: Record | Drop = record if c.keep_source else Drop(record, "extended into a dialogue")
        if record.text is not None:
            return [keep, await self._from_text(record, llm)]
        msgs = record.messages
        if record.kind != "sft" or len(msgs) < 2 or msgs[-1].role != "assistant" or msgs[-2].role != "user":
            return [Drop(record, "not a conversation ending in an answer")]
        lang = c.lang if c.lang != "auto" else detect_lang(" ".join(m.content for m in msgs))
        convo = list(msgs)  # what the model sees: answers without their thinking
        written, thoughts = list(msgs), []  # what the record holds
        reason = None
        for _ in range(c.turns):
            shown = [m.to_dict() for m in convo if m.role in ("user", "assistant")]
            follow = clean((await llm.chat(prompts.load("multi_turn_followup", lang).messages(messages=shown))).text)
            if not follow or any(follow == m.content for m in convo if m.role == "user"):
                reason = "no new follow-up question"
                break
            history = [m.to_dict() for m in convo] + [{"role": "user", "content": follow}]
            answer = await reasoning.answer(llm, history, c.reasoning, system=record.system)
            if answer.problem or not answer.text:
                reason = answer.problem or "empty answer to the follow-up"
                break
            convo += [Message("user", follow), Message("assistant", answer.text)]
            written += [Message("user", follow), Message("assistant", answer.written)]
            thoughts.append(answer.meta.get("reasoning"))
        added = (len(convo) - len(msgs)) // 2
        rec = Record(messages=written, system=record.system, tools=record.tools)
        if any(thoughts):  # field: one per added assistant turn, in order
            rec.meta["reasoning"] = thoughts
        rec.meta["synth"] = provenance(
            "multi_turn", c.llm, f"multi_turn_followup.{lang}", parent_id=record.id, turns_added=added
        )
        rec.id = rec.compute_id()
        self.counters["exchanges added"] += added
        if added == 0:
            return [keep, Drop(rec, reason or "no exchange added")]
        return [keep, rec]

    async def _from_text(self, record: Record, llm: LLMClient) -> Record | Drop:
        c = self.config
        text = (record.text or "").strip()[: c.max_doc_chars]
        lang = c.lang if c.lang != "auto" else detect_lang(text)
        answer = await llm.chat(prompts.load("text_to_dialogue", lang).messages(text=text, turns=c.turns))
        turns = dialogue(answer.text)
        rec = Record(messages=[Message(role, content) for role, content in turns])
        rec.meta["synth"] = provenance(
            "multi_turn", c.llm, f"text_to_dialogue.{lang}", parent_id=record.id, turns_added=len(turns) // 2
        )
        rec.id = rec.compute_id()
        return rec if turns else Drop(rec, "no dialogue in the answer")

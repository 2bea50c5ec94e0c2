"""A reasoning model's thinking, apart from its answer.

Reasoning models (DeepSeek-R1, Qwen3, QwQ, gpt-oss …) think before they answer. Servers hand the
thinking over in one of three ways: a ``reasoning_content`` or ``reasoning`` field next to
``content`` (vLLM, SGLang and DeepSeek's API with a reasoning parser), a ``<think>…</think>`` block at
the start of ``content`` (no parser), or only the closing ``</think>`` (the chat template put the
opening tag into the prompt, as Qwen3's and DeepSeek-R1's do). :func:`split` turns each into
``(answer, reasoning)``, so judges, structured output and every operator read the answer alone — a
``{"score": 1}`` the model considered while thinking is not its verdict.

What becomes of the thinking in the records an operator writes is the step's ``reasoning`` option
(:data:`Mode`), applied by :func:`answer`: ``drop`` it, ``keep`` it as a ``<think>`` block in the
assistant turn (the form LLaMA-Factory's reasoning templates train on), or put it in ``meta``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from datamill.llm.client import LLMClient, Messages

OPEN, CLOSE = "<think>", "</think>"
FIELDS = ("reasoning_content", "reasoning")  # SGLang, DeepSeek, llama.cpp, vLLM < 0.11; vLLM >= 0.11, OpenRouter
TRUNCATED = "reasoning truncated at max_tokens: no answer"
UNANSWERED = "reasoning but no answer"
Mode = Literal["drop", "keep", "field"]
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def message_reasoning(message: dict[str, Any]) -> str | None:
    """The reasoning a chat response message carries in a field of its own, if any."""
    for name in FIELDS:
        value = message.get(name)
        if isinstance(value, str):
            return value
    return None


def split(content: str | None, field: str | None = None) -> tuple[str | None, str | None]:
    """``(answer, reasoning)`` of one reply. ``reasoning`` is None when the model did not think (or
    its server hid the thinking), ``""`` for an empty think block; the answer is ``content`` unchanged
    when there is no thinking in it. An unclosed ``<think>`` (cut off at ``max_tokens``) is all
    reasoning and no answer. ``answer`` is None only when the reply has neither (no answer at all)."""
    reasoning = (field.strip() or None) if isinstance(field, str) else None  # "": none reported
    if content is None:
        return ("" if reasoning is not None else None), reasoning
    head = content.lstrip()
    if head.startswith(OPEN):
        body = head[len(OPEN) :]
        end = body.find(CLOSE)
        thought, answer = (body, "") if end < 0 else (body[:end], body[end + len(CLOSE) :].lstrip())
    elif (end := content.find(CLOSE)) >= 0 and OPEN not in content[:end]:  # the opening tag was in the prompt
        thought, answer = content[:end], content[end + len(CLOSE) :].lstrip()
    else:
        return content, reasoning
    thought = thought.strip()
    return answer, thought if reasoning is None else "\n\n".join(p for p in (reasoning, thought) if p)


def missing_answer(answer: str, reasoning: str | None, finish_reason: str | None) -> str | None:
    """Why a reply that thought has no answer (a drop reason), or None when it has one (or did not think)."""
    if reasoning is None or answer.strip():
        return None
    return TRUNCATED if finish_reason == "length" else UNANSWERED


def estimate_tokens(text: str) -> int:
    """Tokens of a text when the server does not report them: a CJK character is about one token,
    other text about four characters a token (BPE vocabularies of Qwen, DeepSeek, Llama)."""
    cjk = len(_CJK.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


def think_block(reasoning: str, answer: str) -> str:
    """The assistant turn with its thinking, as LLaMA-Factory's ``ReasoningTemplate`` (``qwen3``,
    ``deepseekr1`` …) reads it: its default ``thought_words`` are ``("<think>\\n", "\\n</think>\\n\\n")``."""
    return f"{OPEN}\n{reasoning.strip()}\n{CLOSE}\n\n{answer.strip()}"


@dataclass(frozen=True)
class Answer:
    """A model's answer for a record: ``text`` to check (the answer alone), ``written`` to store,
    ``meta`` to merge into the record's meta; ``problem`` is the drop reason when there is no answer."""

    text: str
    reasoning: str | None
    mode: Mode
    problem: str | None = None

    @property
    def written(self) -> str:
        if self.mode == "keep" and self.reasoning and self.problem is None:
            return think_block(self.reasoning, self.text)
        return self.text

    @property
    def meta(self) -> dict[str, str]:
        return {"reasoning": self.reasoning} if self.mode == "field" and self.reasoning else {}


async def answer(llm: LLMClient, messages: Messages, mode: Mode = "drop", **params: Any) -> Answer:
    """Ask ``llm`` (``chat``) for the answer a record will hold, its thinking handled as ``mode`` says.
    A reply that thought but never answered comes back with ``problem`` set instead of raising, so
    the operator drops just that candidate; other failures raise as usual."""
    from datamill.llm.client import NoAnswer

    try:
        reply = await llm.chat(messages, **params)
    except NoAnswer as e:
        thought = e.completion.reasoning if e.completion is not None else None
        return Answer("", thought, mode, e.reason)
    return Answer(reply.text.strip(), reply.reasoning, mode)

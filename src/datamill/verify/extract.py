"""The final answer of a worked solution — what a verifier compares with the reference, not the reasoning
before it. Tried in order: GSM8K's ``#### 1,234``, the last ``\\boxed{…}`` (braces may nest), the last
"The answer is …" / "Answer: …" / "答案是 …" (up to the sentence's end), the whole text when it is a short
answer rather than prose, else the last number in the text. A reasoning model's ``<think>…</think>`` is
skipped: only what follows it is the answer."""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_END = "</think>"
GSM8K_FINAL = re.compile(r"####[ \t]*([^\n]*\S)")
BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
ANSWER_IS = re.compile(r"\b(?:final\s+)?answer\s*(?:is\b|:|=)[\s:]*([^\n]*\S)|答案\s*(?:是|为|:|：)\s*([^\n]*\S)", re.I)
SENTENCE_END = re.compile(r"\.(?!\d)|[;。！？!?]|\s+(?:because|since|as|so)\b", re.I)
NUMBER = re.compile(
    r"[-−]?[$€£¥]?[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?\s*(?:%|\\%)?|[-−]?\.\d+",
)
WORD = r"(?<![\\A-Za-z])[A-Za-z]{2,}"  # a word, not a LaTeX command (\frac, \sqrt)
PROSE = re.compile(rf"{WORD}.*?{WORD}|[\u3400-\u9fff]{{3,}}")  # two words (or CJK): a sentence, not an answer
SHORT = 80  # characters: a one-line answer this short, not prose, is the answer itself


@dataclass(frozen=True, slots=True)
class Final:
    text: str  # the answer as written (stripped), for the comparer and for people to read
    how: str  # gsm8k | boxed | answer_is | whole | last_number


def after_thinking(text: str) -> str:
    """What a reasoning model says after its ``</think>`` (all of ``text`` when it has none)."""
    i = text.rfind(THINK_END)
    return text[i + len(THINK_END) :] if i >= 0 else text


def boxed(text: str) -> str | None:
    """The contents of the last ``\\boxed{…}`` (or ``\\fbox{…}``), nested braces included; None without one
    (or when its braces never close)."""
    starts = [m.end() for m in BOXED.finditer(text)]
    for start in reversed(starts):
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start : i - 1].strip()
    return None


def _answer_scope(text: str) -> str:
    """What follows the last "the answer is" (innermost: "Answer: The final answer is 7" gives 7), to the
    end of its sentence; "" without one."""
    scope = None
    while found := ANSWER_IS.findall(scope if scope is not None else text):
        en, zh = found[-1]
        scope = en or zh
    return _sentence(scope) if scope else ""


def _sentence(scope: str) -> str:
    m = SENTENCE_END.search(scope)
    return (scope[: m.start()] if m else scope).strip().rstrip(",:")


def final_answer(text: str, *, last_number: bool = True) -> Final | None:
    """The final answer of ``text`` (see the module doc); None when there is none. ``last_number: false``
    (short-answer matching) stops before the last-number fallback."""
    text = after_thinking(text or "").strip()
    if not text:
        return None
    if found := GSM8K_FINAL.findall(text):
        return Final(found[-1].strip(), "gsm8k")
    if (b := boxed(text)) is not None:
        return Final(b, "boxed")
    if scope := _answer_scope(text):
        return Final(boxed(scope) or scope, "answer_is")
    if len(text) <= SHORT and "\n" not in text and not PROSE.search(text):
        return Final(text.rstrip("."), "whole")
    if last_number and (numbers := NUMBER.findall(text)):
        return Final(numbers[-1].strip(), "last_number")
    return None

"""Instruction types as in the Self-Instruct paper: the root verb of an instruction and its direct
object ("write → essay", "写 → 文章"), counted over a dataset to show what kinds of tasks it holds.

The paper used a constituency parser; this is a lighter reading that needs no model download:

- English: instructions are mostly imperative, so the verb is the first word once politeness
  ("please", "can you", "I want you to") is removed, and the object is the first following word that
  is not a determiner, pronoun, number or common modifier. Questions ("What is …", "How do …") have no
  verb–object pair and are counted as ``(question)``.
- Chinese: jieba's part-of-speech tagger (``pip install jieba``) gives the first verb and the first
  noun after it; leading 请 / 帮我 / 能否 are skipped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import cache

WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
POLITE = (
    "please",
    "kindly",
    "can you",
    "could you",
    "would you",
    "will you",
    "i want you to",
    "i need you to",
    "help me",
    "i would like you to",
)
_QUESTION_WORDS = (
    "what how why who whom whose which where when is are was were do does did can could would should will "
    "shall may might have has had am if "
)
QUESTION = frozenset(_QUESTION_WORDS.split())
_SKIP_WORDS = (
    "a an the some me us him her them it this that these those my your his its our their one two three "
    "four five six seven eight nine ten few several each every all any more most following given short "
    "brief new simple good great different possible up out down for of to about on in with and or 3 5 10 "
)
SKIP = frozenset(_SKIP_WORDS.split())
ZH_POLITE = ("请你", "请", "帮我", "帮忙", "能否", "可以", "能不能", "你能", "麻烦")
CONTEXT = ("given", "using", "based on", "according to", "for", "in", "with", "after", "from")  # "Given X, do Y"
ZH_CONTEXT = ("给定", "根据", "基于", "对于", "针对", "按照", "使用")


def english(text: str) -> tuple[str, str] | None:
    """(verb, object) of an English instruction; ("(question)", "") for a question; None if empty."""
    first = text.strip().split("\n", 1)[0].strip().lower()
    changed = True
    while changed:
        changed = False
        for p in POLITE:
            if first.startswith(p + " ") or first.startswith(p + ","):
                first = first[len(p) :].lstrip(" ,")
                changed = True
    if first.startswith(CONTEXT) and "," in first:
        first = first.split(",", 1)[1].strip()
    words = WORD.findall(first)
    if not words:
        return None
    if words[:2] == ["you", "are"] or words[:2] == ["act", "as"]:
        return ("(role)", "")
    if words[0] in QUESTION or first.rstrip().endswith("?"):
        return ("(question)", "")
    verb = words[0]
    obj = next((w for w in words[1:6] if w not in SKIP and len(w) > 1), "")
    return verb, obj


@cache
def _posseg():
    try:
        import logging

        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)
        return jieba.posseg
    except ImportError:
        return None


def chinese(text: str) -> tuple[str, str] | None:
    """(verb, object) of a Chinese instruction, or None (no verb near the start, or no jieba)."""
    pseg = _posseg()
    if pseg is None:
        return None
    first = text.strip().split("\n", 1)[0].strip()
    if first.startswith(ZH_CONTEXT):
        for comma in ("，", ","):
            if comma in first:
                first = first.split(comma, 1)[1]
                break
    for p in ZH_POLITE:
        if first.startswith(p):
            first = first[len(p) :]
            break
    tokens = [(t.word, t.flag) for t in pseg.cut(first[:80])]
    if any(w in ("什么", "怎么", "为什么", "如何", "吗", "哪", "谁", "多少") for w, _ in tokens[:6]) or first.endswith(
        ("？", "?")
    ):
        return ("(问题)", "")
    for i, (word, flag) in enumerate(tokens[:5]):
        if flag.startswith("v") and word not in ZH_POLITE:
            obj = next((w for w, f in tokens[i + 1 : i + 8] if f.startswith("n") or f == "vn"), "")
            return word, obj
    return None


def instruction_types(items: Iterable[tuple[str, str]]) -> dict[str, Counter]:
    """Count (verb, object) pairs per language over (lang, instruction) items: {lang: Counter}."""
    out: dict[str, Counter] = {}
    for lang, text in items:
        pair = chinese(text) if lang == "zh" else english(text) if lang == "en" else None
        if pair is not None:
            out.setdefault(lang, Counter())[pair] += 1
    return out

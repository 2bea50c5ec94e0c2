"""Verifiable instruction constraints (IFEval-style): a checker per constraint — pure functions of the
response — and the sentence that states the constraint in English or Chinese.

A constraint is a dict ``{"type": ..., **params}``, e.g. ``{"type": "words", "max": 50}`` or
``{"type": "keywords", "words": ["solar", "wind"]}``; ``failed(response, constraints)`` lists the
types a response breaks. The same dicts are stored in the records' ``meta.synth.constraints`` so a
later step (evaluation, re-checking) can run the checkers again."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from datamill.llm.prompts import detect_lang
from datamill.synth.rouge import CJK

WORD = re.compile(rf"[A-Za-z0-9]+(?:['’\-][A-Za-z0-9]+)*|[{CJK}]")
BULLET = re.compile(r"^[ \t]*[*\-•][ \t]+\S", re.M)
NUMBERED = re.compile(r"^[ \t]*\d{1,3}[.)、．][ \t]*\S", re.M)
FENCE = re.compile(r"^```(?:json|JSON)?\s*\n?(.*?)\n?```$", re.S)


def word_count(text: str) -> int:
    """Words, with each CJK character counted as one (Chinese has no spaces between words)."""
    return len(WORD.findall(text))


def _between(n: int, lo: int | None, hi: int | None) -> bool:
    return (lo is None or n >= lo) and (hi is None or n <= hi)


def check_words(text: str, min: int | None = None, max: int | None = None) -> bool:  # noqa: A002
    return _between(word_count(text), min, max)


def check_chars(text: str, min: int | None = None, max: int | None = None) -> bool:  # noqa: A002
    return _between(len(text.strip()), min, max)


def _contains(text: str, word: str) -> bool:
    w = word.strip().lower()
    if not w:
        return True
    if re.search(f"[{CJK}]", w):
        return w in text.lower()
    return re.search(rf"(?<![a-z0-9]){re.escape(w)}(?![a-z0-9])", text.lower()) is not None


def check_keywords(text: str, words: list[str]) -> bool:
    return all(_contains(text, w) for w in words)


def check_forbidden_words(text: str, words: list[str]) -> bool:
    return not any(_contains(text, w) for w in words if w.strip())


def check_json(text: str) -> bool:
    """The whole response is JSON (a ```json fence around it is allowed, as IFEval allows)."""
    s = text.strip()
    m = FENCE.match(s)
    if m:
        s = m.group(1).strip()
    try:
        json.loads(s)
    except ValueError:
        return False
    return True


def check_bullets(text: str, n: int) -> bool:
    """Exactly ``n`` Markdown bullet points (``*``/``-``/``•`` at a line start)."""
    return len(BULLET.findall(text)) == n


def check_numbered_list(text: str, min: int = 2) -> bool:  # noqa: A002
    return len(NUMBERED.findall(text)) >= min


def check_language(text: str, lang: str) -> bool:
    return bool(text.strip()) and detect_lang(text) == lang


def check_no_commas(text: str) -> bool:
    return "," not in text and "，" not in text


def check_lowercase(text: str) -> bool:
    return any(c.isalpha() for c in text) and text == text.lower()


def check_end_with(text: str, phrase: str) -> bool:
    return text.strip().strip('"').lower().endswith(phrase.strip().lower())


def check_title(text: str) -> bool:
    """A title in double angular brackets, ``<<like this>>``."""
    return re.search(r"<<[^\n<>]+>>", text) is not None


def check_quotation(text: str) -> bool:
    s = text.strip()
    return len(s) > 1 and ((s[0] == '"' and s[-1] == '"') or (s[0] == "“" and s[-1] == "”"))


CHECKERS: dict[str, Callable[..., bool]] = {
    "words": check_words,
    "chars": check_chars,
    "keywords": check_keywords,
    "forbidden_words": check_forbidden_words,
    "json": check_json,
    "bullets": check_bullets,
    "numbered_list": check_numbered_list,
    "language": check_language,
    "no_commas": check_no_commas,
    "lowercase": check_lowercase,
    "end_with": check_end_with,
    "title": check_title,
    "quotation": check_quotation,
}
# one of these shapes the whole response, so two of them cannot both hold
FORMAT_TYPES = frozenset({"json", "bullets", "numbered_list", "quotation"})
CONFLICTS = {("json", "no_commas"), ("json", "lowercase"), ("json", "title"), ("json", "end_with")}


def check(response: str, constraint: dict[str, Any]) -> bool:
    params = {k: v for k, v in constraint.items() if k != "type"}
    try:
        fn = CHECKERS[constraint["type"]]
    except KeyError:
        raise ValueError(f"unknown constraint type {constraint.get('type')!r}; known: {', '.join(CHECKERS)}") from None
    return fn(response, **params)


def failed(response: str, constraints: list[dict[str, Any]]) -> list[str]:
    """Types of the constraints the response breaks (empty: it passes them all)."""
    return [c["type"] for c in constraints if not check(response, c)]


def compatible(types: list[str]) -> bool:
    if sum(t in FORMAT_TYPES for t in types) > 1:
        return False
    return not any((a, b) in CONFLICTS or (b, a) in CONFLICTS for a in types for b in types)


def _range(c: dict[str, Any], unit_en: str, unit_zh: str, lang: str) -> str:
    lo, hi = c.get("min"), c.get("max")
    if lang == "zh":
        if lo is not None and hi is not None:
            return f"回答长度在 {lo} 到 {hi} 个{unit_zh}之间。"
        return f"回答不少于 {lo} 个{unit_zh}。" if lo is not None else f"回答不超过 {hi} 个{unit_zh}。"
    if lo is not None and hi is not None:
        return f"Answer in {lo} to {hi} {unit_en}."
    return f"Answer in at least {lo} {unit_en}." if lo is not None else f"Answer in at most {hi} {unit_en}."


PHRASES = {
    "en": {
        "keywords": "Include the keywords {quoted} in your answer.",
        "forbidden_words": "Do not use the words {quoted}.",
        "json": "Wrap your entire answer in JSON format.",
        "bullets": "Your answer must contain exactly {n} bullet points, each starting with '* '.",
        "numbered_list": "Answer as a numbered list of at least {min} items.",
        "language": "Answer only in {lang_name}.",
        "no_commas": "Do not use any commas in your answer.",
        "lowercase": "Your entire answer must be in lowercase letters.",
        "end_with": 'End your answer with the exact phrase "{phrase}".',
        "title": "Give your answer a title wrapped in double angular brackets, like <<title>>.",
        "quotation": "Wrap your entire answer in double quotation marks.",
    },
    "zh": {
        "keywords": "回答中必须包含这些词：{quoted}。",
        "forbidden_words": "回答中不要出现这些词：{quoted}。",
        "json": "整个回答用 JSON 格式。",
        "bullets": "回答恰好包含 {n} 个以“* ”开头的要点。",
        "numbered_list": "用至少 {min} 项的编号列表回答。",
        "language": "只用{lang_name}回答。",
        "no_commas": "回答中不要使用任何逗号。",
        "lowercase": "回答全部使用小写英文字母。",
        "end_with": "回答必须以“{phrase}”结尾。",
        "title": "给回答加一个用双尖括号括起来的标题，例如 <<标题>>。",
        "quotation": "把整个回答放在双引号中。",
    },
}
LANG_NAMES = {"en": {"en": "English", "zh": "Chinese"}, "zh": {"en": "英文", "zh": "中文"}}


def describe(c: dict[str, Any], lang: str = "en") -> str:
    """The sentence added to an instruction to state the constraint (``lang``: en or zh)."""
    t = c["type"]
    if t == "words":
        return _range(c, "words", "字", lang)
    if t == "chars":
        return _range(c, "characters", "字符", lang)
    if t not in PHRASES[lang]:
        raise ValueError(f"unknown constraint type {t!r}")
    values = {
        "quoted": ", ".join(f'"{w}"' for w in c.get("words", [])),
        "lang_name": LANG_NAMES[lang].get(c.get("lang", ""), ""),
        "min": c.get("min", 2),
        "n": c.get("n", ""),
        "phrase": c.get("phrase", ""),
    }
    return PHRASES[lang][t].format(**values)

"""Script, word and language helpers for Chinese and English text.

Chinese has no spaces, so every rule that counts "words" for English counts CJK characters for
Chinese (``words``): one CJK character is one word, a run of other non-space characters is one word.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from importlib import resources

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_CHAR = re.compile(f"[{CJK}]")
CJK_RUN = re.compile(f"[{CJK}]+")
WORD = re.compile(f"[{CJK}]|[^\\s{CJK}]+")
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
LETTER = re.compile(rf"[A-Za-z{CJK}]")
CODE_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
INLINE_CODE = re.compile(r"`[^`\n]+`")

EN_FUNCTION_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "of",
        "to",
        "and",
        "in",
        "on",
        "for",
        "with",
        "that",
        "this",
        "it",
        "as",
        "by",
        "at",
        "from",
        "or",
        "not",
        "you",
        "your",
        "we",
        "our",
        "they",
        "their",
        "he",
        "she",
        "his",
        "her",
        "i",
        "my",
        "can",
        "will",
        "would",
        "should",
        "could",
        "have",
        "has",
        "had",
        "do",
        "does",
        "there",
        "these",
        "those",
        "which",
        "who",
        "what",
        "when",
        "where",
        "how",
        "if",
        "but",
        "so",
        "than",
        "then",
        "also",
    ]
)


@lru_cache(maxsize=8)
def _words(text: str) -> tuple[str, ...]:
    return tuple(WORD.findall(text))


def words(text: str) -> list[str]:
    """Latin words and CJK characters (each CJK character one word). The last few results are cached:
    several filters in a row tokenize the same text."""
    return list(_words(text))


def cjk_count(text: str) -> int:
    """CJK characters in ``text``: removing whole runs is 3× faster than matching characters one by one."""
    return len(text) - len(CJK_RUN.sub("", text))


def strip_code(text: str) -> str:
    """Text without fenced code blocks and inline code (prose only)."""
    return INLINE_CODE.sub(" ", CODE_FENCE.sub(" ", text))


def script_lang(text: str, min_letters: int = 8, strict: bool = True) -> str | None:
    """``zh`` / ``en`` from the script of the prose (code removed), or None when undecided:
    too little text, or (``strict``) Latin text that does not read as English (code, names, numbers)."""
    prose = strip_code(text)
    cjk = cjk_count(prose)
    latin = LATIN_WORD.findall(prose)
    latin_chars = sum(len(w) for w in latin)
    if cjk + latin_chars < min_letters:
        return None
    if cjk >= 0.3 * (cjk + latin_chars):
        return "zh"
    if cjk == 0 or cjk < 0.05 * (cjk + latin_chars):
        if not strict:
            return "en"
        lower = [w.lower() for w in latin]
        function = sum(w in EN_FUNCTION_WORDS for w in lower)
        if function >= 3 and function >= 0.12 * len(lower):
            return "en"
    return None


@cache
def word_list(name: str) -> frozenset[str]:
    """A word list shipped in ``datamill/resources`` (one entry a line, ``#`` comments)."""
    text = resources.files("datamill.resources").joinpath(name).read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


_COUNTED_WORD = re.compile(  # a CJK character or a run of other non-space characters
    r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+")


def count_words(text: str) -> int:
    """Words for length limits: a CJK character counts as one, other runs between spaces as one each."""
    if text.isascii():  # fast path, same count: no CJK characters can be there
        return len(text.split())
    return len(_COUNTED_WORD.findall(text))

"""Heuristic quality filters for pretraining text (Gopher, C4 and FineWeb-style), adapted for Chinese:
where English counts words, Chinese counts characters (a CJK character is one word), so one rule works
for both and for mixed text. Defaults follow the papers' thresholds (Gopher: Rae et al. 2021, Appendix
A; C4: Raffel et al. 2020) as datatrove implements them.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

import numpy as np

from datamill.clean.text import CJK, cjk_count, word_list, words
from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record

Part = Literal["all", "prompt", "answer", "text"]
PUNCT_WORD = re.compile(r"^[\W_]+$")
ALPHA = re.compile(rf"[A-Za-z{CJK}]")
BULLET = re.compile(r"^\s*(?:[-*•●◦▪‣·]|\d+[.)、])\s")
ELLIPSIS_END = re.compile(r"(?:\.\.\.|…|。。。)\s*$")
STOP_EN = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
STOP_ZH = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "和",
        "有",
        "我",
        "不",
        "这",
        "也",
        "就",
        "人",
        "都",
        "一",
        "他",
        "们",
        "中",
        "上",
        "说",
        "要",
    ]
)


_PUNCT_TOKEN = re.compile(rf"(?<![^\s{CJK}])(?:[^\w\s]|_)+(?![^\s{CJK}])")
_NO_ALPHA_TOKEN = re.compile(rf"(?<![^\s{CJK}])[^\s{CJK}A-Za-z]+(?![^\s{CJK}])")


def _is_zh(text: str, ws: list[str]) -> bool:
    return cjk_count(text) >= 0.3 * max(1, len(ws))


class TextFilter(Filter):
    class Config(OpConfig):
        part: Part = "all"

    def reason(self, record: Record) -> str | None:
        text = record.part(self.config.part)
        return self.check(text)

    def check(self, text: str) -> str | None:
        raise NotImplementedError


@register
class GopherQualityFilter(TextFilter):
    """Gopher quality rules (length, word length, symbols, bullets, stop words); zh by character.

    Gopher quality rules: word count (CJK characters for Chinese), mean word length (English),
    symbol-to-word ratio (# and …), share of bullet lines and of lines ending in an ellipsis, share of
    words with a letter, and at least ``min_stop_words`` stop words (en: the, be, to, of, and, that,
    have, with; zh: 的 了 是 在 和 有 我 不 这 …)."""

    name = "gopher_quality_filter"

    class Config(TextFilter.Config):
        min_words: int = 50
        max_words: int = 100_000
        min_mean_word_length: float = 3
        max_mean_word_length: float = 10
        max_symbol_word_ratio: float = 0.1
        max_bullet_lines: float = 0.9
        max_ellipsis_lines: float = 0.3
        min_alpha_words: float = 0.8
        min_stop_words: int = 2

    def check(self, text: str) -> str | None:
        c = self.config
        ws = words(text)
        n = len(ws)
        if n < c.min_words:
            return "gopher: too few words"
        if n > c.max_words:
            return "gopher: too many words"
        zh = _is_zh(text, ws)
        punct = _PUNCT_TOKEN.findall(text)  # tokens made only of punctuation/symbols
        n_words = n - len(punct)
        if not zh and n_words:
            mean = (sum(map(len, ws)) - sum(map(len, punct))) / n_words
            if not c.min_mean_word_length <= mean <= c.max_mean_word_length:
                return "gopher: mean word length"
        if (text.count("#") + text.count("...") + text.count("…")) / n > c.max_symbol_word_ratio:
            return "gopher: symbol-to-word ratio"
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines:
            if sum(bool(BULLET.match(ln)) for ln in lines) / len(lines) > c.max_bullet_lines:
                return "gopher: bullet lines"
            if sum(bool(ELLIPSIS_END.search(ln)) for ln in lines) / len(lines) > c.max_ellipsis_lines:
                return "gopher: ellipsis lines"
        # share of words with a letter; Chinese punctuation stands alone, so it is not a word there
        no_alpha = len(_NO_ALPHA_TOKEN.findall(text)) - (len(punct) if zh else 0)
        scored = n_words if zh else n
        if scored and 1 - no_alpha / scored < c.min_alpha_words:
            return "gopher: few alphabetic words"
        stops = STOP_ZH if zh else STOP_EN
        if sum(w.lower() in stops for w in ws) < c.min_stop_words:
            return "gopher: no stop words"
        return None


def _dup_stats(items: list[str]) -> tuple[float, float]:
    """(share of items that are repeats, share of characters in repeats)."""
    seen: set[str] = set()
    dup = dup_chars = 0
    for x in items:
        if x in seen:
            dup += 1
            dup_chars += len(x)
        else:
            seen.add(x)
    total = sum(len(x) for x in items) or 1
    return dup / max(1, len(items)), dup_chars / total


def _top_ngram_share(ws: list[str], n: int, total_chars: int) -> float:
    grams = Counter(zip(*(ws[i:] for i in range(n)), strict=False))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    if count < 2:
        return 0.0
    return sum(map(len, gram)) * count / max(1, total_chars)


def _word_ids(ws: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids: dict[str, int] = {}
    arr = np.fromiter((ids.setdefault(w, len(ids)) for w in ws), dtype=np.uint64, count=len(ws))
    return arr, np.fromiter(map(len, ws), dtype=np.int64, count=len(ws))


_MULT = np.uint64(0x9E3779B97F4A7C15)


def _dup_ngram_share(ids: np.ndarray, lens: np.ndarray, n: int, total_chars: int) -> float:
    """Share of characters in words covered by an n-gram that occurred earlier in the text (Gopher's
    definition; overlapping duplicates count each word once). Vectorized with 64-bit n-gram hashes."""
    m = len(ids) - n + 1
    if m <= 1:
        return 0.0
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _MULT + ids[k : k + m] + np.uint64(1)
    _, first = np.unique(h, return_index=True)
    dup_start = np.ones(m, dtype=bool)
    dup_start[first] = False
    if not dup_start.any():
        return 0.0
    # word j is covered when a duplicate n-gram starts in [j-n+1, j]
    starts = np.concatenate([dup_start, np.zeros(n - 1, dtype=bool)]).astype(np.int32)
    window = np.convolve(starts, np.ones(n, dtype=np.int32))[: len(ids)]
    return float(lens[window > 0].sum()) / max(1, total_chars)


@register
class GopherRepetitionFilter(TextFilter):
    """Gopher repetition rules: duplicate lines, paragraphs and n-grams.

    Gopher repetition rules: duplicate lines and paragraphs (by count and by characters), the most
    frequent 2/3/4-gram's share of characters, and the share of characters inside duplicated 5–10-grams.
    For Chinese the n-grams are of characters (``words`` counts each CJK character)."""

    name = "gopher_repetition_filter"

    class Config(TextFilter.Config):
        dup_line_frac: float = 0.3
        dup_para_frac: float = 0.3
        dup_line_char_frac: float = 0.2
        dup_para_char_frac: float = 0.2
        top_ngram: dict[int, float] = {2: 0.2, 3: 0.18, 4: 0.16}
        dup_ngram: dict[int, float] = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

    def check(self, text: str) -> str | None:
        c = self.config
        paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
        frac, chars = _dup_stats(paras)
        if frac > c.dup_para_frac:
            return "gopher: duplicate paragraphs"
        if chars > c.dup_para_char_frac:
            return "gopher: duplicate paragraph characters"
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        frac, chars = _dup_stats(lines)
        if frac > c.dup_line_frac:
            return "gopher: duplicate lines"
        if chars > c.dup_line_char_frac:
            return "gopher: duplicate line characters"
        ws = [w for w in words(text) if not PUNCT_WORD.match(w)]
        if _is_zh(text, ws):
            # two-character "words" make character n-grams comparable to English word n-grams
            ws = ["".join(ws[i : i + 2]) for i in range(0, len(ws), 2)]
        total = sum(map(len, ws))
        for n, limit in sorted(c.top_ngram.items()):
            if _top_ngram_share(ws, n, total) > limit:
                return f"gopher: top {n}-gram"
        ids, lens = _word_ids(ws)
        for n, limit in sorted(c.dup_ngram.items()):
            if _dup_ngram_share(ids, lens, n, total) > limit:
                return f"gopher: duplicate {n}-grams"
        return None


TERMINAL_PUNCT = (".", "!", "?", '"', "'", "”", "’", "。", "！", "？", "…", "」", "』", "）", ")")
C4_BOILERPLATE = re.compile(
    r"javascript|cookie|terms of use|privacy policy|all rights reserved|lorem ipsum|log ?in|sign ?up|"
    r"subscribe|copyright|©|版权所有|隐私政策|登录|注册|点击|免责声明|Cookie",
    re.I,
)


_LAST_TERMINAL = re.compile(r"[.!?。！？…](?:[\"'”’」』）)]*)(?!.*[.!?。！？…])", re.S)


def _finished_chars(line: str) -> int:
    if line.endswith(TERMINAL_PUNCT):
        return len(line)
    m = _LAST_TERMINAL.search(line)
    return m.end() if m else 0


@register
class C4QualityFilter(TextFilter):
    """C4 rules: terminal punctuation, sentences, boilerplate lines, lorem ipsum.

    C4 rules at document level: enough lines end in terminal punctuation (。！？ count for Chinese),
    enough sentences, no "lorem ipsum", and not mostly boilerplate lines (javascript, cookie, privacy
    policy, terms of use, 版权所有, 登录 …). ``curly_bracket: true`` also drops documents with ``{`` as C4 did
    (it removes code)."""

    name = "c4_quality_filter"

    class Config(TextFilter.Config):
        min_terminal_lines: float = 0.5  # share of lines (with 3+ words) ending in terminal punctuation
        min_sentences: int = 3
        max_boilerplate_lines: float = 0.3
        curly_bracket: bool = False

    def check(self, text: str) -> str | None:
        c = self.config
        low = text.lower()
        if "lorem ipsum" in low:
            return "c4: lorem ipsum"
        if c.curly_bracket and "{" in text:
            return "c4: curly bracket"
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        long_lines = [ln for ln in lines if len(ln.split()) >= 3 or cjk_count(ln) >= 3]
        if not long_lines:
            return "c4: no sentence lines"
        # characters up to the last terminal punctuation of each line: a long paragraph cut at the end
        # still counts as finished text, a navigation line counts as nothing
        finished = sum(_finished_chars(ln) for ln in long_lines)
        if finished / sum(len(ln) for ln in long_lines) < c.min_terminal_lines:
            return "c4: lines without terminal punctuation"
        if (
            sum(bool(C4_BOILERPLATE.search(ln)) and len(ln) < 200 for ln in lines) / len(lines)
            > c.max_boilerplate_lines
        ):
            return "c4: boilerplate lines"
        sentences = len(re.findall(r"[。！？]+|[.!?]+(?:\s|$|[\"'”’」])", text + " "))
        if sentences < c.min_sentences:
            return "c4: too few sentences"
        return None


_SPACE = re.compile(r"\s")
_DIGIT = re.compile(r"\d")
_LATIN = re.compile(r"[A-Za-z]")
_UPPER = re.compile(r"[A-Z]")
_SYMBOL = re.compile(r"[^\w\s.,;:!?'\"()\-，。；：！？、“”‘’（）《》【】…—]|_")


@register
class CharRatioFilter(TextFilter):
    """Drop text with too many digits, uppercase letters or symbols.

    Character-class ratios: digits, uppercase among Latin letters, and symbols (neither letter, digit,
    space, CJK nor common punctuation) — high values mean tables of numbers, shouting or markup debris."""

    name = "char_ratio_filter"

    class Config(TextFilter.Config):
        max_digit_ratio: float = 0.25
        max_upper_ratio: float = 0.3
        max_symbol_ratio: float = 0.15
        min_chars: int = 20  # shorter texts are not judged

    def check(self, text: str) -> str | None:
        c = self.config
        n = len(text) - len(_SPACE.findall(text))
        if n < c.min_chars:
            return None
        if len(_DIGIT.findall(text)) / n > c.max_digit_ratio:
            return "too many digits"
        latin = len(_LATIN.findall(text))
        if latin >= c.min_chars and len(_UPPER.findall(text)) / latin > c.max_upper_ratio:
            return "too many uppercase letters"
        if len(_SYMBOL.findall(text)) / n > c.max_symbol_ratio:
            return "too many symbols"
        return None


@register
class BadWordsFilter(TextFilter):
    """Drop text with words from the shipped zh/en bad-word lists.

    Drop text with ``min_hits`` or more hits from the bad-word lists shipped in
    ``datamill/resources`` (``badwords_en.txt``, ``badwords_zh.txt``; sources in their headers).
    English matches whole words/phrases; Chinese matches substrings (multi-character entries only)."""

    name = "bad_words_filter"

    class Config(TextFilter.Config):
        min_hits: int = 2
        languages: list[Literal["en", "zh"]] = ["en", "zh"]

    _en: re.Pattern | None = None

    def check(self, text: str) -> str | None:
        hits = 0
        low = text.lower()
        if "en" in self.config.languages:
            if self._en is None:
                terms = sorted(word_list("badwords_en.txt"), key=len, reverse=True)
                self._en = re.compile(r"\b(?:" + "|".join(map(re.escape, terms)) + r")\b")
            hits += len(self._en.findall(low))
        if "zh" in self.config.languages and cjk_count(text):
            hits += sum(low.count(t) for t in word_list("badwords_zh.txt"))
        return "bad words" if hits >= self.config.min_hits else None

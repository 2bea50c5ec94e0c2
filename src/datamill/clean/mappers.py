"""Cleaning mappers: HTML → main text, unicode repair, width, traditional ↔ simplified Chinese,
whitespace/control characters, URL/email/citation removal, date normalization.

Every mapper rewrites the same fields (each turn, the system prompt, the document text and the
preference pair) and, when it changed something, adds its name to ``meta["cleaned"]``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from decimal import Decimal
from typing import Literal

from datamill.clean.html import html_fragment_to_text, html_page_to_text, looks_like_page
from datamill.ops import register
from datamill.ops.base import Mapper, OpConfig
from datamill.record import Record

Part = Literal["all", "prompt", "answer", "text"]


class TextMapper(Mapper):
    """Applies ``clean(str) -> str`` to the chosen part of a record."""

    class Config(OpConfig):
        part: Part = "all"

    def clean(self, s: str) -> str:
        raise NotImplementedError

    def map(self, record: Record) -> Record:
        changed = [False]

        def apply(s: str) -> str:
            out = self.clean(s)
            changed[0] = changed[0] or out != s
            return out

        record.rewrite(self.config.part, apply, skip_roles=("function",))  # tool-call JSON is not prose
        if changed[0]:
            record.meta["cleaned"] = [*record.meta.get("cleaned", []), self.name]
        return record


# ------------------------------------------------------------------------------------------------ HTML

ABOUT_HTML = re.compile(r"html|web ?page|website|网页|网站|标签|xml|svg|jsx|<[a-z]+", re.I)


@register
class HtmlToText(TextMapper):
    """HTML pages → main text (trafilatura); HTML fragments in answers → plain text.

    HTML → text. A whole page (``<html>``/``<body>``/doctype) goes through trafilatura, which keeps
    the main content and drops navigation, ads, scripts and boilerplate; HTML fragments inside other
    text (e.g. an SFT answer) lose their tags, scripts and ad blocks, code blocks stay as written."""

    name = "html_to_text"

    class Config(TextMapper.Config):
        favor: Literal["precision", "recall", "balanced"] = "precision"

    def map(self, record: Record) -> Record:
        # an answer to a question about HTML (or a request for a web page) is HTML on purpose
        if self.config.part in ("answer", "all") and record.text is None and ABOUT_HTML.search(record.part("prompt")):
            return record
        return super().map(record)

    def clean(self, s: str) -> str:
        if "<" not in s:
            return s
        if looks_like_page(s):
            return html_page_to_text(s, self.config.favor)
        return html_fragment_to_text(s)


# --------------------------------------------------------------------------------------------- unicode

# NFKC folds compatibility forms; these are the ones it would change that carry meaning in text we keep
_NFKC_KEEP = set("…™①②③④⑤⑥⑦⑧⑨⑩¹²³⁰⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉½¼¾")
_NFKC_KEEP_RE = re.compile("[" + "".join(sorted(_NFKC_KEEP)) + "]")


def nfkc_safe(s: str) -> str:
    """NFKC except for characters whose folding changes meaning (superscripts, circled numbers,
    fractions, ellipsis, ™): x² stays x², not x2."""
    if s.isascii():
        return s
    if not _NFKC_KEEP_RE.search(s):
        return unicodedata.normalize("NFKC", s)
    return "".join(ch if ch in _NFKC_KEEP else unicodedata.normalize("NFKC", ch) for ch in s)


@register
class FixUnicode(TextMapper):
    """Repair mojibake with ftfy and apply NFKC where it is safe.

    Repair mojibake and broken unicode with ftfy ("â€™" → "’", "Ã©" → "é", HTML entities left alone),
    then NFKC normalization where it is safe (``nfkc: true``): full-width letters and digits become
    ASCII, compatibility ligatures split; superscripts, circled numbers and fractions are kept.
    Chinese punctuation is not touched by ftfy; NFKC turns full-width ，：；！？ into ASCII, so
    ``nfkc`` keeps CJK punctuation full-width (``keep_cjk_punct``)."""

    name = "fix_unicode"

    class Config(TextMapper.Config):
        nfkc: bool = True
        keep_cjk_punct: bool = True

    def clean(self, s: str) -> str:
        import ftfy

        if not s.isascii() and not untouched_by_ftfy(s):
            s = ftfy.fix_text(
                s, unescape_html=False, normalization="NFC", uncurl_quotes=False, fix_character_width=False
            )
        if self.config.nfkc and not s.isascii():
            s = _NOT_CJK_PUNCT.sub(lambda m: nfkc_safe(m.group(0)), s) if self.config.keep_cjk_punct else nfkc_safe(s)
        return s


_NOT_CJK_PUNCT = re.compile("[^，。：；！？（）【】「」『』《》、～￥]+")


@functools.cache
def _ftfy_targets() -> re.Pattern:
    """Every character one of ftfy's character fixers acts on (with FixUnicode's settings): C1
    controls, line and paragraph separators, carriage returns, surrogates, the escape that opens a
    terminal code, ligatures and the control characters it removes — from ftfy's own tables."""
    from ftfy import chardata

    points = {*chardata.LIGATURES, *chardata.CONTROL_CHARS, *range(0x80, 0xA0), *range(0xD800, 0xE000)}
    points = sorted(points | {ord(ch) for ch in "\r\x1b\u2028\u2029"})
    starts = [p for i, p in enumerate(points) if i == 0 or points[i - 1] != p - 1]
    ends = [p for i, p in enumerate(points) if i == len(points) - 1 or points[i + 1] != p + 1]
    return re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in zip(starts, ends, strict=True)) + "]")


def untouched_by_ftfy(s: str) -> bool:
    """Whether ``ftfy.fix_text`` (with FixUnicode's settings) would give ``s`` back as it is: no
    mojibake by ftfy's own test (``badness.is_bad``, which ``fix_encoding`` asks first), none of the
    characters its other fixers change, already NFC. Three scans in C instead of ftfy's dozen Python
    steps per line; tests/test_clean_unicode_fast.py checks it against ftfy on real and broken text."""
    from ftfy.badness import is_bad

    return not is_bad(s) and _ftfy_targets().search(s) is None and unicodedata.is_normalized("NFC", s)


# ------------------------------------------------------------------------------------------------ width

_FULL = {i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)}
_FULL[0x3000] = 0x20
_HALF = {v: k for k, v in _FULL.items() if k != 0x3000}


@register
class NormalizeWidth(TextMapper):
    """Full-width ↔ half-width letters, digits and punctuation.

    Full-width ↔ half-width. ``to: half`` turns Ａ１！ into A1! (``keep_cjk_punct`` keeps ，。：；！？（）
    full-width when they follow a CJK character, as Chinese typesetting wants); ``to: full`` the reverse
    for ASCII letters, digits and punctuation."""

    name = "normalize_width"

    class Config(TextMapper.Config):
        to: Literal["half", "full"] = "half"
        keep_cjk_punct: bool = True

    def clean(self, s: str) -> str:
        if self.config.to == "full":
            return s.translate(_HALF)
        if not self.config.keep_cjk_punct:
            return s.translate(_FULL)
        out = []
        for i, ch in enumerate(s):
            near = s[max(0, i - 1) : i] + s[i + 1 : i + 2]
            if ch in "，。：；！？（）" and re.search(r"[\u3400-\u9fff，。：；！？（）「」『』《》、]", near):
                out.append(ch)
            else:
                out.append(ch.translate(_FULL))
        return "".join(out)


# ---------------------------------------------------------------------------------------------- OpenCC


@register
class ConvertChinese(TextMapper):
    """Traditional ↔ simplified Chinese with OpenCC (t2s, s2t, tw2sp …).

    Traditional ↔ simplified Chinese with OpenCC: ``config`` is an OpenCC conversion such as ``t2s``
    (traditional → simplified), ``s2t``, ``tw2sp`` (Taiwan → mainland, with phrases: 軟體 → 软件),
    ``s2twp``, ``hk2s``, ``s2hk``."""

    name = "convert_chinese"

    class Config(TextMapper.Config):
        config: Literal["t2s", "s2t", "tw2s", "tw2sp", "s2tw", "s2twp", "hk2s", "s2hk", "t2tw", "t2hk"] = "t2s"

    _converter = None

    def clean(self, s: str) -> str:
        if not re.search(r"[\u3400-\u9fff]", s):
            return s
        if self._converter is None:
            import opencc

            self._converter = opencc.OpenCC(self.config.config)
        return self._converter.convert(s)


# ----------------------------------------------------------------------------------------- whitespace

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")


def normalize_whitespace(s: str, keep_indent: bool = True) -> str:
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    s = _CONTROL.sub("", s)
    lines = []
    in_code = False
    for line in s.split("\n"):
        if line.lstrip().startswith("```"):
            in_code = not in_code
        if in_code:
            lines.append(line.rstrip())
            continue
        indent = re.match(r"[ \t]*", line).group(0) if keep_indent else ""
        lines.append(indent + _SPACES.sub(" ", line[len(indent) :]).rstrip())
    out = "\n".join(lines)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return out.strip()


@register
class NormalizeWhitespace(TextMapper):
    """Remove control/zero-width characters and normalize spaces and blank lines.

    Remove control and zero-width characters, turn exotic spaces (NBSP, ideographic space …) into one
    space, strip trailing spaces, collapse 3+ blank lines to one, strip the ends; line indentation and
    code blocks are kept."""

    name = "normalize_whitespace"

    def clean(self, s: str) -> str:
        return normalize_whitespace(s)


# ----------------------------------------------------------------------------------- URLs, emails, refs

URL = re.compile(r"(?<![A-Za-z0-9])(?:https?://|ftp://|www\.)[^\s<>\"'）)\]】，。]+", re.I)
EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
CITATION = re.compile(r"\[(?:\d+(?:[,–-]\s*\d+)*|citation needed|编辑|來源請求|来源请求)\]|\[\^?\d+\]")


@register
class RemoveUrls(TextMapper):
    """Remove URLs, email addresses and citation markers.

    Remove URLs, email addresses and citation markers ([1], [2-4], [citation needed], [编辑]) — each
    switch on by default; set one false to keep that kind."""

    name = "remove_urls"

    class Config(TextMapper.Config):
        urls: bool = True
        emails: bool = True
        citations: bool = True

    def clean(self, s: str) -> str:
        c = self.config
        n = 0
        if c.emails and "@" in s:
            s, k = EMAIL.subn("\x00", s)
            n += k
        if c.urls:
            s, k = URL.subn("\x00", s)
            n += k
        if c.citations and "[" in s:
            s, k = CITATION.subn("\x00", s)
            n += k
        if not n:
            return s
        # tidy only around what was removed: "see \x00 now" → "see now", "mail \x00." → "mail."
        s = re.sub(r"^\x00[ \t]*", "", s, flags=re.M)
        return re.sub(r"[ \t]*\x00(?:[ \t]*\x00)*", "", s)


# ---------------------------------------------------------------------------------------------- dates

MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for m in names
}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
ZH_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]")
EN_DATE_MDY = re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)
EN_DATE_DMY = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\.?,?\s+(\d{{4}})\b", re.I)
ZH_DIGITS = dict(zip("〇零一二三四五六七八九", [0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9], strict=True))
NUM_COMMAS = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])")


def _iso(y: str | int, m: int, d: str | int) -> str | None:
    y, d = int(y), int(d)
    if 1 <= m <= 12 and 1 <= d <= 31:
        return f"{y:04d}-{m:02d}-{d:02d}"
    return None


def normalize_dates(s: str) -> str:
    s = ZH_DATE.sub(lambda m: _iso(m.group(1), int(m.group(2)), m.group(3)) or m.group(0), s)
    s = EN_DATE_MDY.sub(lambda m: _iso(m.group(3), MONTHS[m.group(1).lower()], m.group(2)) or m.group(0), s)
    s = EN_DATE_DMY.sub(lambda m: _iso(m.group(3), MONTHS[m.group(2).lower()], m.group(1)) or m.group(0), s)
    return s


@register
class NormalizeDates(TextMapper):
    """Rewrite zh/en dates as ISO 8601 (2024年3月5日, March 5, 2024 → 2024-03-05).

    Rewrite full dates as ISO 8601: "2024年3月5日" / "2024年3月5号", "March 5, 2024", "Mar. 5th 2024",
    "5 March 2024" → "2024-03-05"; ``numbers: true`` also drops thousands separators (1,234,567 → 1234567).
    Partial dates (no year, or no day) are left alone."""

    name = "normalize_dates"

    class Config(TextMapper.Config):
        numbers: bool = False

    def clean(self, s: str) -> str:
        s = normalize_dates(s)
        if self.config.numbers:
            s = NUM_COMMAS.sub(lambda m: m.group(0).replace(",", ""), s)
        return s


# ---------------------------------------------------------------------------------------------- money

_AMOUNT = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_SCALE_EN = {"thousand": 10**3, "k": 10**3, "million": 10**6, "m": 10**6, "mn": 10**6, "billion": 10**9, "bn": 10**9}
_SCALE_ZH = {"千": 10**3, "万": 10**4, "十万": 10**5, "百万": 10**6, "千万": 10**7, "亿": 10**8}
SYMBOLS = {"$": "USD", "US$": "USD", "¥": "CNY", "￥": "CNY", "RMB": "CNY", "€": "EUR", "£": "GBP", "HK$": "HKD"}
CODES = ("USD", "CNY", "RMB", "EUR", "GBP", "JPY", "HKD")
ZH_UNITS = {
    "元": "CNY",
    "块钱": "CNY",
    "块": "CNY",
    "人民币": "CNY",
    "美元": "USD",
    "美金": "USD",
    "欧元": "EUR",
    "英镑": "GBP",
    "日元": "JPY",
    "港币": "HKD",
    "港元": "HKD",
}
EN_UNITS = {
    "dollars": "USD",
    "dollar": "USD",
    "euros": "EUR",
    "euro": "EUR",
    "pounds": "GBP",
    "yuan": "CNY",
    "rmb": "CNY",
    "yen": "JPY",
}


def _alternatives(words) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_EN_SCALE = r"(?:\s*(thousand|million|billion|bn|mn|k|m)\b)?"
_ZH_SCALE = rf"(?:\s*({_alternatives(_SCALE_ZH)}))?"
MONEY_PREFIX = re.compile(
    rf"(?<![A-Za-z0-9$])(?:({_alternatives(SYMBOLS)})\s?|({'|'.join(CODES)})\s+){_AMOUNT}{_EN_SCALE}{_ZH_SCALE}(?:\s*元)?",
    re.I,
)
MONEY_ZH = re.compile(rf"(?:人民币)?{_AMOUNT}{_ZH_SCALE}\s*({_alternatives(ZH_UNITS)})")
MONEY_EN = re.compile(rf"(?<![\w.]){_AMOUNT}{_EN_SCALE}\s+({_alternatives(EN_UNITS)})\b", re.I)


def _money(code: str, amount: str, scale: int = 1) -> str:
    value = Decimal(amount.replace(",", "")) * scale
    text = format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")
    return f"{code} {text}"


def normalize_currency(s: str) -> str:
    def prefix(m: re.Match) -> str:
        code = SYMBOLS[m.group(1).upper()] if m.group(1) else m.group(2).upper()
        code = "CNY" if code == "RMB" else code
        scale = _SCALE_EN.get((m.group(4) or "").lower(), 1) * _SCALE_ZH.get(m.group(5) or "", 1)
        return _money(code, m.group(3), scale)

    s = MONEY_PREFIX.sub(prefix, s)
    s = MONEY_ZH.sub(lambda m: _money(ZH_UNITS[m.group(3)], m.group(1), _SCALE_ZH.get(m.group(2) or "", 1)), s)
    return MONEY_EN.sub(
        lambda m: _money(EN_UNITS[m.group(3).lower()], m.group(1), _SCALE_EN.get((m.group(2) or "").lower(), 1)), s
    )


@register
class NormalizeCurrency(TextMapper):
    """Rewrite money amounts as ISO 4217 code + plain number ($1,200.50, ¥3,000, 3.5万元, 20 dollars →
    USD 1200.50, CNY 3000, CNY 35000, USD 20). Symbols, codes, zh units (元/块/美元/欧元/英镑/日元/港币,
    with 千/万/亿) and en words (dollars/euros/pounds/yuan, with thousand/million/billion) are understood."""

    name = "normalize_currency"

    def clean(self, s: str) -> str:
        return normalize_currency(s)

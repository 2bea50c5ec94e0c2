"""Script, word and language helpers for Chinese and English text.

Chinese has no spaces, so every rule that counts "words" for English counts CJK characters for
Chinese (``words``): one CJK character is one word, a run of other non-space characters is one word.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache, cached_property, lru_cache
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


_COUNTED_CJK_RUN = re.compile("[\u3400-\u9fff\uf900-\ufaff]+")


def count_words(text: str) -> int:
    """Words for length limits: a CJK character counts as one, other runs between spaces as one each.
    One regex pass: each CJK run becomes a space (``subn`` counts the runs, the length lost gives their
    characters) and what is left splits on whitespace — 2.9x faster than finding every word."""
    if text.isascii():  # fast path, same count: no CJK characters can be there
        return len(text.split())
    spaced, runs = _COUNTED_CJK_RUN.subn(" ", text)
    return len(text) - len(spaced) + runs + len(spaced.split())


# ------------------------------------------------------------------ spaCy's English word split, without spaCy


class SpacyEnglish:
    """spaCy's English tokenizer (``spacy.blank("en")``, which datatrove's Gopher and C4 filters split words
    with) on spaCy's own rules, shipped in ``resources/spacy_en_tokenizer.txt``: the same prefix / suffix /
    infix / URL patterns, special cases and affix loop, per whitespace-separated chunk, so ``preset:
    datatrove`` counts the words datatrove counts without spaCy installed: identical word lists and
    sentence counts on the 33,735 texts of the demo corpora. Not emulated: spaCy's special-case matcher also
    finds a case across whitespace (``) :)``), which changes nothing there but can stop a merge inside the
    next chunk (``:)`` stays ``:`` ``)``); 11 of 30,000 random strings of emoticons and punctuation split
    differently for that."""

    def __init__(self) -> None:
        text = resources.files("datamill.resources").joinpath("spacy_en_tokenizer.txt").read_text(encoding="utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.startswith("[")]
        one = {row[0]: row[1] for row in rows if row[0] not in ("special", "merge")}
        self.prefix = re.compile(one["prefix"]).match  # anchored at the start: match = spaCy's search
        self._suffix = re.compile(one["suffix"]).search
        self._suffix_window = one["suffix_window"]
        self.infix = re.compile(one["infix"]).finditer
        self.url = re.compile(one["url"]).match
        self.sentence_punct = frozenset(one["sentence_punct"])
        self.datatrove_punct = frozenset(one["datatrove_punct"])
        self.specials = {row[1]: tuple(row[2]) for row in rows if row[0] == "special"}
        self.merges = {tuple(row[1]): tuple(row[2]) for row in rows if row[0] == "merge"}
        self._merge_len = max(map(len, self.merges))
        self._merge_first = frozenset(k[0] for k in self.merges)

    def split(self, chunk: str) -> tuple[str, ...]:
        """The tokens of one chunk without whitespace (spaCy's ``_split_affixes`` + ``_attach_tokens`` +
        its special-case matcher), remembered."""
        return self._splits[chunk]

    @cached_property
    def _splits(self) -> Memo:
        return Memo(self._split)

    def _split(self, chunk: str) -> tuple[str, ...]:
        specials = self.specials
        if chunk in specials:
            return specials[chunk]
        if chunk.isascii():  # shortcuts, same result: no affix or infix rule matches ASCII letters or digits alone
            if chunk.isalpha() or chunk.isdigit():
                return (chunk,)
            core, last = chunk[:-1], chunk[-1]
            if (core.isalpha() or core.isdigit()) and (last in ",;:!?" or last == "." and not core[-1].isupper()):
                return (*self.split(core), last)  # always a suffix there (a period: after a lower-case letter)
        s, prefixes, suffixes, last = chunk, [], [], -1
        while s and len(s) != last and s not in specials:
            last = len(s)
            m = self.prefix(s)
            pre = m.end() - m.start() if m else 0
            if pre and s[pre:] in specials:
                prefixes.append(s[:pre])
                s = s[pre:]
                break
            suf = self._suffix_len(s[pre:])
            if suf and s[:-suf] in specials:
                suffixes.append(s[-suf:])
                s = s[:-suf]
                break
            if pre and suf and pre + suf <= len(s):
                prefixes.append(s[:pre])
                suffixes.append(s[-suf:])
                s = s[pre:-suf]
            elif pre:
                prefixes.append(s[:pre])
                s = s[pre:]
            elif suf:
                suffixes.append(s[-suf:])
                s = s[:-suf]
        tokens = prefixes
        if s in specials:
            tokens.extend(specials[s])
        elif s:
            tokens.extend(self._infixes(s))
        tokens.extend(reversed(suffixes))
        return self._merge(tokens) if len(tokens) > 1 and self._merge_first.intersection(tokens) else tuple(tokens)

    def _suffix_len(self, s: str) -> int:
        """The length of spaCy's suffix match, searched in the last characters first: every suffix but a run
        of one repeated character (``..+``) is at most ``suffix_window`` long, and such a run that starts
        further left also matches where the window starts; only then the whole string is searched."""
        start = max(0, len(s) - self._suffix_window)
        m = self._suffix(s, start)
        if m and start and m.start() == start:
            m = self._suffix(s)
        return m.end() - m.start() if m else 0

    def _infixes(self, s: str) -> list[str]:
        if self.url(s):
            return [s]
        out, start = [], 0
        for m in self.infix(s):
            a, b = m.start(), m.end()
            if a == 0:
                continue
            if a != start:
                out.append(s[start:a])
            if a != b:
                out.append(s[a:b])
            start = b
        if s[start:]:
            out.append(s[start:])
        return out

    def _merge(self, tokens: list[str]) -> tuple[str, ...]:
        """Special cases that affix splitting broke up (``:)``, ``a.m.`` …), merged back longest first."""
        spans = [
            (j - i, -i, i, j)
            for i in range(len(tokens))
            for j in range(i + 1, min(len(tokens), i + self._merge_len) + 1)
            if tuple(tokens[i:j]) in self.merges
        ]
        seen: set[int] = set()
        chosen = []
        for _, _, i, j in sorted(spans, reverse=True):
            if i not in seen and j - 1 not in seen:
                chosen.append((i, j))
            seen.update(range(i, j))
        for i, j in sorted(chosen, reverse=True):
            tokens[i:j] = self.merges[tuple(tokens[i:j])]
        return tuple(tokens)

    def words(self, text: str) -> list[str]:
        """datatrove's ``split_into_words(text)`` for English: spaCy's tokens, whitespace tokens left out."""
        return [t for chunk in text.split() for t in self.split(chunk)]

    def sentence_code(self, chunk: str) -> str:
        """The chunk's tokens as spaCy's sentencizer sees them: ``p`` for sentence-ending punctuation, ``w``
        for a token that starts a sentence after one; other punctuation, which neither ends nor starts one,
        is left out."""
        code = []
        for t in self.split(chunk):
            if t in self.sentence_punct:
                code.append("p")
            elif not all(unicodedata.category(c).startswith("P") for c in t):  # spaCy's is_punct
                code.append("w")
        return "".join(code)

    @cached_property
    def _codes(self) -> dict[str, str]:
        return {}

    def sentences(self, line: str, chunks: list[str] | None = None) -> int:
        """How many sentences datatrove's ``split_into_sentences`` finds in one line (spaCy's sentencizer):
        one, plus one at each word that follows sentence-ending punctuation. ``chunks``: ``line.split()``,
        when the caller has it. A whitespace run other than one space is a token of its own (a ``w``)."""
        chunks = line.split() if chunks is None else chunks
        codes = self._codes
        found = list(map(codes.get, chunks))
        if None in found:
            if len(codes) > CACHE_LIMIT:
                codes.clear()
            found = [
                codes.setdefault(chunk, self.sentence_code(chunk)) if f is None else f
                for f, chunk in zip(found, chunks, strict=True)
            ]
        if " ".join(chunks) != line:  # a whitespace run other than one space: a token of its own
            parts = _SPACE_RUN.split(line)
            found = [
                codes.get(p) or self.sentence_code(p) if i % 2 == 0 else "w"
                for i, p in enumerate(parts)
                if p != " " and p
            ]
        return 1 + "".join(found).count("pw")


_SPACE_RUN = re.compile(r"(\s+)")
CACHE_LIMIT = 200_000  # chunks remembered per cache (tens of MB)


class Memo(dict):
    """A dict that computes a missing value with ``fn`` once; past ``limit`` entries it starts over, so a
    long run's memory stays flat."""

    def __init__(self, fn, limit: int = CACHE_LIMIT) -> None:
        super().__init__()
        self.fn, self.limit = fn, limit

    def __missing__(self, key):
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.fn(key)
        return value


@cache
def spacy_english() -> SpacyEnglish:
    """The shared instance (its rules load on first use)."""
    return SpacyEnglish()

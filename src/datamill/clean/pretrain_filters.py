"""Heuristic quality filters for pretraining text (Gopher, C4 and FineWeb-style), adapted for Chinese:
where English counts words, Chinese counts characters (a CJK character is one word), so one rule works
for both and for mixed text. Defaults follow the papers' thresholds (Gopher: Rae et al. 2021, Appendix
A; C4: Raffel et al. 2020) as datatrove implements them.

``preset: datatrove`` on the Gopher and C4 filters applies datatrove's own rules instead (English words
split as spaCy splits them, its definitions of lines, bullets and n-gram duplicates, its reasons), so a
run can be compared with datatrove decision for decision. Both presets count words through one
:class:`Lexicon` per word definition: a document is split once per stage and every filter after the
first reuses its token ids.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from functools import cached_property
from itertools import chain, islice
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import model_validator

from datamill.clean.text import CJK, CJK_CHAR, WORD, Memo, cjk_count, spacy_english, word_list
from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record

Part = Literal["all", "prompt", "answer", "text"]
Preset = Literal["datamill", "datatrove"]
PUNCT_WORD = re.compile(r"^[\W_]+$")
ALPHA = re.compile(rf"[A-Za-z{CJK}]")
ASCII_LETTER = re.compile("[A-Za-z]")
BULLET = re.compile(r"^\s*(?:[-*•●◦▪‣·]|\d+[.)、])\s")
ELLIPSIS_END = re.compile(r"(?:\.\.\.|…|。。。)\s*$")
STOP_EN = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])
STOP_ZH = frozenset("的了是在和有我不这也就人都一他们中上说要")
DATATROVE_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # case-sensitive there


# ------------------------------------------------------------------------------------- shared word ids


# two 31-bit prime moduli: products of residues stay below 2**62, so numpy int64 never overflows
_PRIMES = (2_147_483_647, 2_147_483_629)
_BASES = (1_000_003, 911_382_323)


class _Powers:
    """``base ** k mod p`` for any k, from a table grown by doubling (kept up to ``KEEP`` entries: a huge
    document does not leave a huge table behind)."""

    KEEP = 1 << 22

    def __init__(self, base: int, p: int):
        self.base, self.p, self.table = base, p, np.ones(1, dtype=np.int64)

    def first(self, n: int) -> np.ndarray:
        """``base ** k mod p`` for k in 0..n-1."""
        table = self.table
        while len(table) < n:
            table = np.concatenate([table, table * pow(self.base, len(table), self.p) % self.p])
        if len(table) <= self.KEEP:
            self.table = table
        return table[:n]

    def __getitem__(self, k: np.ndarray) -> np.ndarray:
        return self.first(int(k.max()) + 1 if len(k) else 0)[k]


_POW = [_Powers(b, p) for b, p in zip(_BASES, _PRIMES, strict=True)]
_INV_POW = [_Powers(pow(b, -1, p), p) for b, p in zip(_BASES, _PRIMES, strict=True)]


_MIX = np.uint64(0xFF51AFD7ED558CCD)  # an odd constant: multiplying by it mixes low bits upwards


class _Growing:
    """A numpy array that grows by doubling, filled from Python values in batches."""

    def __init__(self, dtype: Any):
        self.a, self.n = np.zeros(1024, dtype=dtype), 0

    def extend(self, values: Any) -> None:
        values = np.asarray(values, dtype=self.a.dtype)
        end = self.n + len(values)
        if end > len(self.a):
            self.a = np.concatenate([self.a, np.zeros(max(end, 2 * len(self.a)) - len(self.a), self.a.dtype)])
        self.a[self.n : end] = values
        self.n = end


_IS_SPACE = np.array([chr(c).isspace() for c in range(0x3002)])  # str.split()'s whitespace: none above U+3000


class _Index:
    """An open-addressing hash table from 62-bit keys to ints, looked up for a whole array of keys at once
    (one gather per probe round instead of a Python dict lookup per key)."""

    def __init__(self, bits: int = 16):
        self.bits, self.n = bits, 0
        self.keys = np.full(1 << bits, -1, dtype=np.int64)
        self.values = np.zeros(1 << bits, dtype=np.int64)

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (keys.astype(np.uint64) * _MIX >> np.uint64(64 - self.bits)).astype(np.int64)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, -1 where it is absent."""
        out = np.full(len(keys), -1, dtype=np.int64)
        todo, slot, mask = np.arange(len(keys)), self._slots(keys), len(self.keys) - 1
        for _ in range(2):  # most keys are settled in the first round or the second
            found = self.keys[slot]
            hit = found == keys[todo]
            out[todo[hit]] = self.values[slot[hit]]
            more = ~hit & (found != -1)  # another key sits there: probe the next slot
            todo, slot = todo[more], (slot[more] + 1) & mask
        table, values = self.keys, self.values
        for i, j in zip(todo.tolist(), slot.tolist(), strict=True):  # the few left, one by one
            key = int(keys[i])
            while table[j] != -1 and table[j] != key:
                j = (j + 1) & mask
            out[i] = values[j] if table[j] == key else -1
        return out

    def put(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add keys that are absent (distinct)."""
        if 2 * (self.n + len(keys)) > len(self.keys):  # keep it at most half full
            old = self.keys != -1
            grown = _Index(self.bits + max(1, int(np.log2(2 * (self.n + len(keys)) / len(self.keys))) + 1))
            grown.put(self.keys[old], self.values[old])
            self.bits, self.keys, self.values = grown.bits, grown.keys, grown.values
        mask = len(self.keys) - 1
        for key, value, slot in zip(keys.tolist(), values.tolist(), self._slots(keys).tolist(), strict=True):
            while self.keys[slot] != -1:
                slot = (slot + 1) & mask
            self.keys[slot], self.values[slot] = key, value
        self.n += len(keys)


_B64 = 0x100000001B3  # odd, so invertible modulo 2**64
_INV64 = pow(_B64, -1, 1 << 64)
_B64_POW, _B64_INV_POW = [np.ones(1, dtype=np.uint64)], [np.ones(1, dtype=np.uint64)]


def _pow64(table: list[np.ndarray], base: int, n: int) -> np.ndarray:
    """``base ** k mod 2**64`` for k in 0..n-1 (uint64 arithmetic wraps), grown by doubling."""
    t = table[0]
    with np.errstate(over="ignore"):
        while len(t) < n:
            t = np.concatenate([t, t * np.uint64(pow(base, len(t), 1 << 64))])
    if len(t) <= _Powers.KEEP:
        table[0] = t
    return t[:n]


def _chunk_keys(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 62-bit key per chunk ``codes[start:end]``: a polynomial hash of its characters modulo 2**64."""
    n = len(codes)
    with np.errstate(over="ignore"):
        prefix = np.concatenate([[np.uint64(0)], np.cumsum((codes + np.uint32(1)) * _pow64(_B64_INV_POW, _INV64, n))])
        h = (prefix[ends] - prefix[starts]) * _pow64(_B64_POW, _B64, n)[starts]
        return (h * _MIX >> np.uint64(2)).astype(np.int64)  # mixed first: chunks differing early differ in low bits


class Lexicon:
    """Token ids for one way of splitting words, shared by every filter of a stage. A whitespace-separated
    chunk is split once per process (found again by a hash of its characters, computed for a whole
    document in numpy), a document's ids once per stage (kept, keyed on its text, for the next filter over
    the same chunk of records), and what the rules ask of a token is a numpy column indexed by id, so
    filters count with array sums instead of Python loops over words. Past ``MAX_TOKENS`` distinct tokens
    or chunks everything starts over, so memory stays flat on long runs. (Two chunks with the same 62-bit
    key would share their tokens: for natural text about one chance in 10**12 per new chunk.)"""

    MAX_TOKENS = 1_000_000  # distinct tokens, and distinct chunks: ~100 MB at most
    MAX_DOCS = 32_768  # documents whose ids are kept: more than one chunk of records (10,000 by default)
    MAX_DOC_TOKENS = 16_000_000
    SHORT = 256  # characters: shorter texts take the dict path

    def __init__(self, split: Callable[[str], tuple[str, ...]], columns: dict[str, tuple[Any, Callable]]):
        """``columns``: name → (dtype, function of a list of new tokens giving their values)."""
        self.split, self.spec = split, columns
        self._reset()

    def _reset(self) -> None:
        self.ids: dict[str, int] = {}
        self.tokens: list[str] = []
        self.index = _Index()  # chunk key → chunk number; its token ids are flat[start : start + size]
        self.n_chunks = 0
        self._flat, self._start, self._size = _Growing(np.int32), _Growing(np.int64), _Growing(np.int64)
        self.docs: OrderedDict[str, np.ndarray] = OrderedDict()
        self.doc_tokens = 0
        self.__dict__.pop("_short_chunks", None)
        self._cols = {name: _Growing(dtype) for name, (dtype, _) in self.spec.items()}

    def id(self, token: str) -> int:
        i = self.ids.get(token)
        if i is None:
            i = self.ids[token] = len(self.tokens)
            self.tokens.append(token)
        return i

    @property
    def col(self) -> dict[str, np.ndarray]:
        """The per-token columns, filled for every token seen so far (new tokens in one batch)."""
        done = self._cols["len"].n
        if done < len(self.tokens):
            new = self.tokens[done:]
            for name, (dtype, fn) in self.spec.items():
                values = fn(new)
                self._cols[name].extend(values if isinstance(values, np.ndarray) else np.fromiter(values, dtype))
        return {name: g.a for name, g in self._cols.items()}

    def _add_chunks(self, keys: np.ndarray, chunks: list[str]) -> None:
        split = [tuple(map(self.id, self.split(chunk))) for chunk in chunks]
        sizes = list(map(len, split))
        self._start.extend(np.cumsum([0, *sizes[:-1]]) + self._flat.n)
        self._size.extend(sizes)
        self._flat.extend(list(chain.from_iterable(split)))
        self.index.put(keys, np.arange(self.n_chunks, self.n_chunks + len(chunks)))
        self.n_chunks += len(chunks)

    def doc(self, text: str) -> np.ndarray:
        """The ids of every token of ``text`` (int32), computed once per stage."""
        ids = self.docs.get(text)
        if ids is None:
            if len(self.tokens) > self.MAX_TOKENS or self.n_chunks > self.MAX_TOKENS:
                self._reset()
            ids = self._short(text) if len(text) < self.SHORT else self._long(text)
            self.docs[text] = ids
            self.doc_tokens += len(ids)
            while len(self.docs) > self.MAX_DOCS or self.doc_tokens > self.MAX_DOC_TOKENS:
                self.doc_tokens -= len(self.docs.popitem(last=False)[1])
        return ids

    def _short(self, text: str) -> np.ndarray:
        """A short text: chunk by chunk from a dict (the numpy path costs more than it saves)."""
        return np.fromiter(chain.from_iterable(map(self._short_chunks.__getitem__, text.split())), dtype=np.int32)

    @cached_property
    def _short_chunks(self) -> Memo:
        return Memo(lambda chunk: tuple(map(self.id, self.split(chunk))))

    def _long(self, text: str) -> np.ndarray:
        """A document: its chunks found by their keys in the index, all at once."""
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        word = ~_IS_SPACE[np.minimum(codes, len(_IS_SPACE) - 1)]
        edge = np.flatnonzero(np.diff(word, prepend=False, append=False))  # chunks: [start, end) pairs
        starts, ends = edge[::2], edge[1::2]
        keys = _chunk_keys(codes, starts, ends)
        numbers = self.index.get(keys)
        if (numbers < 0).any():
            new, first = np.unique(keys[numbers < 0], return_index=True)
            at = np.flatnonzero(numbers < 0)[first]
            self._add_chunks(new, [text[a:b] for a, b in zip(starts[at].tolist(), ends[at].tolist(), strict=True)])
            numbers = self.index.get(keys)
        sizes, begin = self._size.a[numbers], self._start.a[numbers]
        total = int(sizes.sum())
        if total != len(numbers):  # some chunks are several tokens: expand each to its range
            begin = np.repeat(begin - (np.cumsum(sizes) - sizes), sizes) + np.arange(total)
        return self._flat.a[begin]


def _each(fn: Callable[[str], Any]) -> Callable[[list[str]], Any]:
    """A column from a function of one token."""
    return lambda tokens: map(fn, tokens)


def _default_split(chunk: str) -> tuple[str, ...]:
    return tuple(WORD.findall(chunk)) if CJK_CHAR.search(chunk) else (chunk,)


def _datamill_lexicon() -> Lexicon:
    """``words`` (a CJK character or a run of other non-space characters) with what datamill's rules count."""
    return Lexicon(
        _default_split,
        {
            "len": (np.int64, _each(len)),
            "punct": (bool, _each(lambda t: bool(PUNCT_WORD.match(t)))),
            "no_alpha": (bool, _each(lambda t: not CJK_CHAR.match(t) and not ASCII_LETTER.search(t))),
            "cjk": (bool, _each(lambda t: bool(CJK_CHAR.match(t)))),
            "stop_en": (bool, _each(lambda t: t.lower() in STOP_EN)),
            "stop_zh": (bool, _each(STOP_ZH.__contains__)),
        },
    )


def _char_hashes(k: int) -> Callable[[list[str]], np.ndarray]:
    """Each token's characters as a polynomial in ``1/base`` mod p (so n-gram hashes can be summed from them)."""

    def column(tokens: list[str]) -> np.ndarray:
        lens = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        starts = np.cumsum(lens) - lens
        codes = np.frombuffer("".join(tokens).encode("utf-32-le"), dtype=np.uint32).astype(np.int64) + 1
        at = np.arange(len(codes)) - np.repeat(starts, lens)  # position of each character in its token
        return np.add.reduceat(codes * _INV_POW[k][at] % _PRIMES[k], starts) % _PRIMES[k]

    return column


def _stop_bit(token: str) -> int:
    """One bit per datatrove stop word, so the distinct stop words of a document are an OR of its tokens."""
    return 1 << DATATROVE_STOP_WORDS.index(token) if token in DATATROVE_STOP_WORDS else 0


def _datatrove_lexicon() -> Lexicon:
    """datatrove's ``split_into_words`` (spaCy's English tokens) with what its Gopher rules ask of a word."""
    sp = spacy_english()
    punct = sp.datatrove_punct
    return Lexicon(
        sp.split,
        {
            "len": (np.int64, _each(len)),
            "non_symbol": (bool, _each(lambda t: not punct.issuperset(t))),
            "alpha": (bool, _each(lambda t: t.lower() != t.upper() if t.isascii() else any(map(str.isalpha, t)))),
            "stop": (np.uint8, _each(_stop_bit)),
            "h0": (np.int64, _char_hashes(0)),
            "h1": (np.int64, _char_hashes(1)),
        },
    )


_LEXICONS: dict[str, Lexicon] = {}


def lexicon(preset: Preset) -> Lexicon:
    """The process-wide lexicon of a preset (built on first use)."""
    if preset not in _LEXICONS:
        _LEXICONS[preset] = _datatrove_lexicon() if preset == "datatrove" else _datamill_lexicon()
    return _LEXICONS[preset]


# ------------------------------------------------------------------------------------- n-gram statistics

_MULT = np.uint64(0x9E3779B97F4A7C15)


class _NGrams:
    """64-bit hashes of every n-gram of a token sequence (equal tuples, equal hashes), for growing n: the
    hashes of n-grams extend those of (n-1)-grams by one multiply-add."""

    def __init__(self, ids: np.ndarray):
        self.x = ids.astype(np.uint64) + np.uint64(1)
        self.n, self.h = 0, np.zeros(len(ids), dtype=np.uint64)

    def __call__(self, n: int) -> np.ndarray:
        if n < self.n:
            self.n, self.h = 0, np.zeros(len(self.x), dtype=np.uint64)
        with np.errstate(over="ignore"):
            while self.n < min(n, len(self.x)):
                self.h = self.h[: len(self.x) - self.n] * _MULT + self.x[self.n :]
                self.n += 1
        return self.h if n <= len(self.x) else self.h[:0]


_PAD = np.uint32(1 << 31)


def _sorted_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of 31-bit hashes as one 2-D uint32 array, each row sorted (one numpy call for all, and 32-bit
    values sort several times faster than 64-bit ones). A short row is padded with distinct values above
    2**31, equal to no hash and to no other pad."""
    out = np.tile(np.arange(max(map(len, rows)), dtype=np.uint32) + _PAD, (len(rows), 1))
    for r, h in enumerate(rows):
        out[r, : len(h)] = h
    out.sort(axis=1)
    return out


def _repeats_by_row(rows: list[np.ndarray]) -> list[int]:
    """For each row: how many of its hashes equal an earlier one."""
    if not rows:
        return []
    s = _sorted_rows(rows)
    return np.count_nonzero(s[:, 1:] == s[:, :-1], axis=1).tolist()


def _most_by_row(rows: list[np.ndarray]) -> list[int]:
    """For each row: the count of its most frequent hash."""
    if not rows:
        return []
    s = _sorted_rows(rows)
    at = np.arange(s.shape[1])
    start = np.ones(s.shape, dtype=bool)
    start[:, 1:] = s[:, 1:] != s[:, :-1]
    run_start = np.maximum.accumulate(np.where(start, at, 0), axis=1)
    return (at - run_start + 1).max(axis=1).tolist()


def _screens(grams: _NGrams, ns: list[int]) -> list[np.ndarray]:
    """The n-grams' 64-bit hashes for each n, mixed (times an odd constant) and cut to 31 bits: equal n-grams
    stay equal, so repeats counted from them are upper bounds."""
    with np.errstate(over="ignore"):
        return [(grams(n) * _MIX >> np.uint64(33)).astype(np.uint32) for n in ns]


def _largest_sum(values: np.ndarray, k: int) -> int:
    """The sum of the ``k`` largest values."""
    return int(values.sum() if k >= len(values) else np.partition(values, len(values) - k)[len(values) - k :].sum())


def _top_ngram(h: np.ndarray) -> tuple[int, int]:
    """(count of the most frequent n-gram, index of its first occurrence) — ties go to the n-gram seen
    first, as ``Counter.most_common(1)`` does."""
    _, first, counts = np.unique(h, return_index=True, return_counts=True)
    best = int(counts.max())
    return best, int(first[counts == best].min())


def _spans(cum: np.ndarray, n: int) -> np.ndarray:
    """Characters in the tokens of each n-gram, from the cumulative token lengths ``cum`` (0 first)."""
    return cum[n:] - cum[:-n]


def _dup_ngram_share(h: np.ndarray, lens: np.ndarray, n: int, total_chars: int) -> float:
    """Share of characters in words covered by an n-gram that occurred earlier in the text (Gopher's
    definition; overlapping duplicates count each word once), from the n-grams' hashes ``h``."""
    _, first = np.unique(h, return_index=True)
    dup_start = np.ones(len(h), dtype=bool)
    dup_start[first] = False
    # word j is covered when a duplicate n-gram starts in [j-n+1, j]
    starts = np.concatenate([dup_start, np.zeros(n - 1, dtype=bool)]).astype(np.int32)
    window = np.convolve(starts, np.ones(n, dtype=np.int32))[: len(lens)]
    return float(lens[window > 0].sum()) / max(1, total_chars)


class _Concat:
    """Hashes of the *concatenated* text of every n-gram of a document's tokens (datatrove compares
    ``"".join(words[i:i+n])``), summed from per-token character hashes: a 31-bit polynomial hash per prime;
    the first alone rules most documents out, the pair decides."""

    def __init__(self, lex: Lexicon, ids: np.ndarray, cum: np.ndarray):
        self.lex, self.ids, self.cum = lex, ids, cum
        self._parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _part(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._parts:
            at = self.cum[:-1]  # character offset of each token
            weighted = self.lex.col[f"h{k}"][self.ids] * _INV_POW[k][at] % _PRIMES[k]
            self._parts[k] = np.concatenate([[0], np.cumsum(weighted)]), _POW[k][at]
        return self._parts[k]

    def hashes(self, n: int, k: int = 0, at: np.ndarray | None = None) -> np.ndarray:
        """Hash ``k`` of the n-grams starting at ``at`` (default: every one)."""
        prefix, scale = self._part(k)
        if at is None:
            m = len(self.ids) - n + 1
            return (prefix[n:] - prefix[:m]) % _PRIMES[k] * scale[:m] % _PRIMES[k]
        return (prefix[at + n] - prefix[at]) % _PRIMES[k] * scale[at] % _PRIMES[k]

    def greedy_duplicate_chars(self, n: int, h0: np.ndarray) -> int:
        """datatrove's ``find_all_duplicate``: scan n-grams left to right; one seen before adds its characters
        and jumps n tokens ahead (the n-grams it jumps over are never remembered). ``h0``: ``hashes(n)`` as
        uint32.
        Only n-grams whose first hash repeats can count, or change the scan: the loop visits those alone,
        comparing both hashes."""
        order = np.argsort(h0, kind="stable")
        same = h0[order[1:]] == h0[order[:-1]]
        repeated = np.zeros(len(h0), dtype=bool)
        repeated[order[1:][same]] = repeated[order[:-1][same]] = True
        at = np.flatnonzero(repeated)
        exact = (h0[at].astype(np.int64) << 31 | self.hashes(n, 1, at)).tolist()
        seen: set[int] = set()
        nxt = chars = 0
        for i, h in zip(at.tolist(), exact, strict=True):
            if i < nxt:
                continue
            if h in seen:
                chars += int(self.cum[i + n] - self.cum[i])
                nxt = i + n
            else:
                seen.add(h)
                nxt = i + 1
        return chars


def _find_duplicates(items: list[str]) -> tuple[int, int]:
    """(items that repeat an earlier one, their characters)."""
    if len(set(items)) == len(items):
        return 0, 0
    seen: set[str] = set()
    dup = dup_chars = 0
    for x in items:
        if x in seen:
            dup += 1
            dup_chars += len(x)
        else:
            seen.add(x)
    return dup, dup_chars


def _dup_stats(items: list[str]) -> tuple[float, float]:
    """(share of items that are repeats, share of characters in repeats)."""
    dup, dup_chars = _find_duplicates(items)
    return dup / max(1, len(items)), dup_chars / (sum(map(len, items)) or 1)


# ------------------------------------------------------------------------------------------- filters


class TextFilter(Filter):
    class Config(OpConfig):
        part: Part = "all"

    def reason(self, record: Record) -> str | None:
        text = record.part(self.config.part)
        return self.check(text)

    def check(self, text: str) -> str | None:
        raise NotImplementedError


class PresetConfig(TextFilter.Config):
    """Options of a filter with a ``datatrove`` preset. Under it, options datatrove sets differently take
    datatrove's value unless given (``DATATROVE``); an option only the other preset reads is an error
    unless it has its default value (the runner passes every option on to its workers)."""

    preset: Preset = "datamill"

    DATATROVE: ClassVar[dict[str, Any]] = {}
    ONLY: ClassVar[dict[str, frozenset[str]]] = {}  # preset → the options only it reads

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "datamill")
        other = "datamill" if preset == "datatrove" else "datatrove"
        fields = cls.model_fields
        foreign = sorted(k for k in cls.ONLY.get(other, ()) if k in data and data[k] != fields[k].default)
        if foreign:
            raise ValueError(f"{', '.join(foreign)}: only read under preset {other}")
        return {**cls.DATATROVE, **data} if preset == "datatrove" else data


class PresetFilter(TextFilter):
    """A filter whose rules come in two presets: ``check`` picks ``datamill`` or ``datatrove``."""

    def check(self, text: str) -> str | None:
        return self.datatrove(text) if self.config.preset == "datatrove" else self.datamill(text)

    def datamill(self, text: str) -> str | None:
        raise NotImplementedError

    def datatrove(self, text: str) -> str | None:
        raise NotImplementedError


@register
class GopherQualityFilter(PresetFilter):
    """Gopher quality rules (length, word length, symbols, bullets, stop words); zh by character.

    Gopher quality rules: word count (CJK characters for Chinese), mean word length (English),
    symbol-to-word ratio (# and …), share of bullet lines and of lines ending in an ellipsis, share of
    words with a letter, and at least ``min_stop_words`` stop words (en: the, be, to, of, and, that,
    have, with; zh: 的 了 是 在 和 有 我 不 这 …). ``preset: datatrove``: datatrove's GopherQualityFilter
    (spaCy's English words, its reasons such as ``gopher_short_doc``; an option set to 0 turns its rule off)."""

    name = "gopher_quality_filter"

    class Config(PresetConfig):
        min_words: int = 50
        max_words: int = 100_000
        min_mean_word_length: float = 3
        max_mean_word_length: float = 10
        max_symbol_word_ratio: float = 0.1
        max_bullet_lines: float = 0.9
        max_ellipsis_lines: float = 0.3
        min_alpha_words: float = 0.8
        min_stop_words: int = 2

    def datamill(self, text: str) -> str | None:
        c = self.config
        lex = lexicon("datamill")
        ids = lex.doc(text)
        n = len(ids)
        if n < c.min_words:
            return "gopher: too few words"
        if n > c.max_words:
            return "gopher: too many words"
        col = lex.col
        zh = int(col["cjk"][ids].sum()) >= 0.3 * max(1, n)  # as _is_zh: CJK characters against words
        punct = col["punct"][ids]  # tokens made only of punctuation/symbols
        n_punct = int(punct.sum())
        n_words = n - n_punct
        if not zh and n_words:
            lens = col["len"][ids]
            mean = (int(lens.sum()) - int(lens[punct].sum())) / n_words
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
        no_alpha = int(col["no_alpha"][ids].sum()) - (n_punct if zh else 0)
        scored = n_words if zh else n
        if scored and 1 - no_alpha / scored < c.min_alpha_words:
            return "gopher: few alphabetic words"
        if int(col["stop_zh" if zh else "stop_en"][ids].sum()) < c.min_stop_words:
            return "gopher: no stop words"
        return None

    def datatrove(self, text: str) -> str | None:
        c = self.config
        lex = lexicon("datatrove")
        ids = lex.doc(text)
        col = lex.col
        n_words = max(1, len(ids))
        non_symbol = col["non_symbol"][ids]  # a word with a character outside datatrove's PUNCTUATION_SET
        n = int(non_symbol.sum())
        if c.min_words and n < c.min_words:
            return "gopher_short_doc"
        if c.max_words and n > c.max_words:
            return "gopher_long_doc"
        mean = col["len"][ids][non_symbol].mean() if n else float("nan")
        if c.min_mean_word_length and mean < c.min_mean_word_length:
            return "gopher_below_avg_threshold"
        if c.max_mean_word_length and mean > c.max_mean_word_length:
            return "gopher_above_avg_threshold"
        if c.max_symbol_word_ratio and text.count("#") / n_words > c.max_symbol_word_ratio:
            return "gopher_too_many_hashes"
        if c.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > c.max_symbol_word_ratio:
            return "gopher_too_many_ellipsis"
        lines = text.splitlines() or [""]  # every line, empty ones included
        if c.max_bullet_lines and sum(s.lstrip().startswith(("•", "-")) for s in lines) / len(lines) > (
            c.max_bullet_lines
        ):
            return "gopher_too_many_bullets"
        if c.max_ellipsis_lines and sum(s.rstrip().endswith(("...", "…")) for s in lines) / len(lines) > (
            c.max_ellipsis_lines
        ):
            return "gopher_too_many_end_ellipsis"
        if c.min_alpha_words and int(col["alpha"][ids].sum()) / n_words < c.min_alpha_words:
            return "gopher_below_alpha_threshold"
        stop_bits = int(np.bitwise_or.reduce(col["stop"][ids], initial=0))  # distinct stop words present
        if c.min_stop_words and stop_bits.bit_count() < c.min_stop_words:
            return "gopher_enough_stop_words"
        return None


_PARAGRAPHS = re.compile(r"\n\s*\n")


def _paragraphs(text: str) -> list[str]:
    """``re.split(r"\\n{2,}", text)`` with ``str`` methods (8× faster): runs of newlines cut to two, then split."""
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.split("\n\n")


def _lines(text: str) -> list[str]:
    """``re.split("\\n+", text)`` with ``str`` methods: the empty pieces between two newlines left out."""
    pieces = text.split("\n")
    return [pieces[0], *filter(None, pieces[1:-1]), pieces[-1]] if len(pieces) > 2 else pieces


@register
class GopherRepetitionFilter(PresetFilter):
    """Gopher repetition rules: duplicate lines, paragraphs and n-grams.

    Gopher repetition rules: duplicate lines and paragraphs (by count and by characters), the most
    frequent 2/3/4-gram's share of characters, and the share of characters inside duplicated 5–10-grams.
    For Chinese the n-grams are of characters (``words`` counts each CJK character). ``preset:
    datatrove``: datatrove's GopherRepetitionFilter (spaCy's English words, raw ``\\n+`` lines, shares of
    the whole text's characters, its greedy duplicate n-gram scan, reasons such as ``dup_line_frac``)."""

    name = "gopher_repetition_filter"

    class Config(PresetConfig):
        dup_line_frac: float = 0.3
        dup_para_frac: float = 0.3
        dup_line_char_frac: float = 0.2
        dup_para_char_frac: float = 0.2
        top_ngram: dict[int, float] = {2: 0.2, 3: 0.18, 4: 0.16}
        dup_ngram: dict[int, float] = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}

    def datamill(self, text: str) -> str | None:
        c = self.config
        paras = [p.strip() for p in _PARAGRAPHS.split(text) if p.strip()]
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
        lex = lexicon("datamill")
        ids = lex.doc(text)
        ws = ids[~lex.col["punct"][ids]]
        if int(lex.col["cjk"][ids].sum()) >= 0.3 * max(1, len(ws)):  # Chinese, as _is_zh
            # two-character "words" make character n-grams comparable to English word n-grams
            tokens, wl = lex.tokens, ws.tolist()
            pairs = ["".join(tokens[i] for i in wl[k : k + 2]) for k in range(0, len(wl), 2)]
            ws = np.fromiter(map(lex.id, pairs), dtype=np.int32, count=len(pairs))
        lens = lex.col["len"][ws]
        total = max(1, int(lens.sum()))
        cum = np.concatenate([[0], np.cumsum(lens)])
        grams = _NGrams(ws)
        # each share is bounded first (count or repeats times the longest n-gram); exact only when it could exceed
        tops = [(n, limit) for n, limit in sorted(c.top_ngram.items()) if len(ws) >= n]
        for (n, limit), count in zip(tops, _most_by_row(_screens(grams, [n for n, _ in tops])), strict=True):
            if count >= 2 and count * int(_spans(cum, n).max()) / total > limit:
                count, i = _top_ngram(grams(n))
                if int(_spans(cum, n)[i]) * count / total > limit:
                    return f"gopher: top {n}-gram"
        dups = [(n, limit) for n, limit in sorted(c.dup_ngram.items()) if len(ws) - n + 1 > 1]
        for (n, limit), k in zip(dups, _repeats_by_row(_screens(grams, [n for n, _ in dups])), strict=True):
            # covered words lie in at most k duplicate n-grams
            if (
                k
                and _largest_sum(_spans(cum, n), k) / total > limit
                and _dup_ngram_share(grams(n), lens, n, total) > limit
            ):
                return f"gopher: duplicate {n}-grams"
        return None

    def datatrove(self, text: str) -> str | None:
        c = self.config
        if not text:
            return "empty"
        paragraphs = _paragraphs(text.strip())
        dup, chars = _find_duplicates(paragraphs)
        if c.dup_para_frac and dup / len(paragraphs) > c.dup_para_frac:
            return "dup_para_frac"
        if c.dup_para_char_frac and chars / len(text) > c.dup_para_char_frac:
            return "dup_para_char_frac"
        lines = _lines(text)
        dup, chars = _find_duplicates(lines)
        if c.dup_line_frac and dup / len(lines) > c.dup_line_frac:
            return "dup_line_frac"
        if c.dup_line_char_frac and chars / len(text) > c.dup_line_char_frac:
            return "dup_line_char_frac"
        lex = lexicon("datatrove")
        ids = lex.doc(text)
        cum = np.concatenate([[0], np.cumsum(lex.col["len"][ids])])
        size = len(text)
        # each share is bounded first (count or repeats times the longest n-gram); exact only when it could exceed
        grams = _NGrams(ids)
        tops = [(n, limit) for n, limit in c.top_ngram.items() if len(ids) >= n]  # the n-gram: " ".join(words)
        for (n, limit), count in zip(tops, _most_by_row(_screens(grams, [n for n, _ in tops])), strict=True):
            spans = _spans(cum, n) + (n - 1)
            if count == 1:  # every n-gram once: Counter.most_common keeps the first
                top = int(spans[0])
            elif count * int(spans.max()) / size > limit:
                count, i = _top_ngram(grams(n))
                top = int(spans[i]) * count
            else:
                continue
            if top / size > limit:
                return f"top_{n}_gram"
        concat = _Concat(lex, ids, cum)
        dups = [(n, limit) for n, limit in c.dup_ngram.items() if len(ids) >= n]  # the n-gram: "".join(words)
        screens = [concat.hashes(n).astype(np.uint32) for n, _ in dups]  # 31 bits: equal n-grams, equal values
        for (n, limit), h0, k in zip(dups, screens, _repeats_by_row(screens), strict=True):
            k = min(k, -(-(len(ids) - n + 1) // n))  # repeats the scan can count, n tokens apart
            if (
                k
                and _largest_sum(_spans(cum, n), k) / size > limit
                and concat.greedy_duplicate_chars(n, h0) / size > limit
            ):
                return f"duplicated_{n}_n_grams"
        return None


TERMINAL_PUNCT = (".", "!", "?", '"', "'", "”", "’", "。", "！", "？", "…", "」", "』", "）", ")")
C4_BOILERPLATE = re.compile(
    r"javascript|cookie|terms of use|privacy policy|all rights reserved|lorem ipsum|log ?in|sign ?up|"
    r"subscribe|copyright|©|版权所有|隐私政策|登录|注册|点击|免责声明|Cookie",
    re.I,
)
_TERMINAL_CHARS = ".!?。！？…"
_CLOSING_QUOTES = "\"'”’」』）)"
_SENTENCE_END = re.compile(r"[。！？]+|[.!?]+(?:\s|$|[\"'”’」])")
DT_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
DT_END_PUNCTUATION = (".", "?", "!", '"', "'")
DT_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


_BOILERPLATE_ASCII = (  # C4_BOILERPLATE's alternatives that ASCII text can match, lower-cased
    "javascript",
    "cookie",
    "terms of use",
    "privacy policy",
    "all rights reserved",
    "lorem ipsum",
    "login",
    "log in",
    "signup",
    "sign up",
    "subscribe",
    "copyright",
)


_BOILERPLATE_OTHER = ("©", "版权所有", "隐私政策", "登录", "注册", "点击", "免责声明")
_CASE_FOLDS_TO_ASCII = "ıſİ"  # letters the case-insensitive regex matches to i or s, which lower() keeps apart


def _boilerplate(text: str) -> bool:
    """``C4_BOILERPLATE.search(text)`` by substring tests on the lower-cased text (the case-insensitive
    regex is slow); the regex itself only for text with a letter that ``lower()`` does not fold its way."""
    if not text.isascii() and any(ch in text for ch in _CASE_FOLDS_TO_ASCII):
        return C4_BOILERPLATE.search(text) is not None
    low = text.lower()
    return any(w in low for w in _BOILERPLATE_ASCII) or (
        not text.isascii() and any(w in text for w in _BOILERPLATE_OTHER)
    )


def _finished_chars(line: str) -> int:
    """Characters up to the line's last terminal punctuation and the closing quotes after it."""
    if line.endswith(TERMINAL_PUNCT):
        return len(line)
    last = max(map(line.rfind, _TERMINAL_CHARS))
    return len(line) - len(line[last + 1 :].lstrip(_CLOSING_QUOTES)) if last >= 0 else 0


@register
class C4QualityFilter(PresetFilter):
    """C4 rules: terminal punctuation, sentences, boilerplate lines, lorem ipsum.

    C4 rules at document level: enough lines end in terminal punctuation (。！？ count for Chinese),
    enough sentences, no "lorem ipsum", and not mostly boilerplate lines (javascript, cookie, privacy
    policy, terms of use, 版权所有, 登录 …). ``curly_bracket: true`` also drops documents with ``{`` as C4 did
    (it removes code). ``preset: datatrove``: datatrove's C4QualityFilter line by line (its options by
    its names, ``min_sentences`` 5, ``curly_bracket`` on); the lines it would remove are only removed
    from documents with ``remove_lines: true``."""

    name = "c4_quality_filter"

    class Config(PresetConfig):
        min_terminal_lines: float = 0.5  # share of lines (with 3+ words) ending in terminal punctuation
        min_sentences: int = 3
        max_boilerplate_lines: float = 0.3
        curly_bracket: bool = False
        # preset datatrove: datatrove's C4QualityFilter options (split_paragraph=True only)
        remove_citations: bool = True
        filter_no_terminal_punct: bool = True
        min_words_per_line: int = 3
        max_word_length: int = 1000
        filter_lorem_ipsum: bool = True
        filter_javascript: bool = True
        filter_policy: bool = True
        remove_lines: bool = False  # write the kept lines back into the document, as datatrove does

        DATATROVE: ClassVar[dict[str, Any]] = {"min_sentences": 5, "curly_bracket": True}
        ONLY: ClassVar[dict[str, frozenset[str]]] = {
            "datamill": frozenset({"min_terminal_lines", "max_boilerplate_lines"}),
            "datatrove": frozenset(
                {
                    "remove_citations",
                    "filter_no_terminal_punct",
                    "min_words_per_line",
                    "max_word_length",
                    "filter_lorem_ipsum",
                    "filter_javascript",
                    "filter_policy",
                    "remove_lines",
                }
            ),
        }

    def reason(self, record: Record) -> str | None:
        c = self.config
        if c.preset != "datatrove":
            return self.datamill(record.part(c.part))
        why, kept = self.datatrove_lines(record.part(c.part))
        if why is None and c.remove_lines and record.text is not None and c.part in ("all", "text"):
            text = "\n".join(kept).strip()
            if text != record.text:
                record.text = text
                record.meta["cleaned"] = [*record.meta.get("cleaned", []), self.name]
        return why

    def datamill(self, text: str) -> str | None:
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
        finished = sum(map(_finished_chars, long_lines))
        if finished / sum(map(len, long_lines)) < c.min_terminal_lines:
            return "c4: lines without terminal punctuation"
        if (
            _boilerplate(text)  # no boilerplate word anywhere: none in a line
            and sum(len(ln) < 200 and _boilerplate(ln) for ln in lines) / len(lines) > c.max_boilerplate_lines
        ):
            return "c4: boilerplate lines"
        if sum(1 for _ in islice(_SENTENCE_END.finditer(text + " "), c.min_sentences)) < c.min_sentences:
            return "c4: too few sentences"
        return None

    def datatrove(self, text: str) -> str | None:
        return self.datatrove_lines(text)[0]

    def datatrove_lines(self, text: str) -> tuple[str | None, list[str]]:
        """datatrove's C4QualityFilter: (reason or None, the lines it keeps). Lines too long, without
        terminal punctuation, with fewer than 3 words, mentioning javascript or a cookie/terms policy are
        removed; "lorem ipsum" or ``{`` in a line that got that far drops the document, and so do fewer than
        5 sentences (spaCy's sentencizer) in the lines kept."""
        c = self.config
        # what the line checks look for, searched once in the whole text first
        clean = DT_CITATION.sub("", text) if c.remove_citations and "[" in text else text
        low = clean.lower()
        lorem = c.filter_lorem_ipsum and "lorem ipsum" in low
        javascript = c.filter_javascript and "javascript" in low
        curly = c.curly_bracket and "{" in clean
        policy = c.filter_policy and any(p in low for p in DT_POLICY)
        sentences = spacy_english().sentences
        n_sentences = 0
        kept = []
        for line in text.splitlines():
            line = words = line.strip()  # words: split when first needed (most lines fail a test first)
            if c.max_word_length != -1 and len(line) > c.max_word_length:
                words = line.split()
                if max(map(len, words)) > c.max_word_length:
                    continue
            cited = 0
            if c.remove_citations and "[" in line:
                line, cited = DT_CITATION.subn("", line)
            if c.filter_no_terminal_punct and (not line.endswith(DT_END_PUNCTUATION) or line.endswith("...")):
                continue
            if isinstance(words, str):
                words = words.split()
            if len(words) < c.min_words_per_line:
                continue
            if lorem or javascript or curly or policy:
                line_l = line.lower()
                if lorem and "lorem ipsum" in line_l:
                    return "lorem_ipsum", []
                if javascript and "javascript" in line_l:
                    continue
                if curly and "{" in line:
                    return "curly_bracket", []
                if policy and any(p in line_l for p in DT_POLICY):
                    continue
            if n_sentences < c.min_sentences:  # past the minimum the count no longer matters
                n_sentences += sentences(line, None if cited else words)
            kept.append(line)
        if n_sentences < c.min_sentences:
            return "too_few_sentences", []
        return None, kept


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

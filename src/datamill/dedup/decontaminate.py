"""decontaminate: drop (or flag) training records that overlap benchmark test items.

Benchmarks are files in any format ``datamill.read`` understands; a file it cannot classify (for
example GSM8K's ``{"question", "answer"}`` JSONL) is read as raw rows and every string field is used.
Each field of each benchmark item is tokenized like the training text — NFKC, lowercase, split on
whitespace and punctuation (``1,000`` → ``1000``, ``5.00`` → ``5``), words for space-separated text and
characters for CJK — and its n-grams (``n`` words, ``char_n`` characters) are hashed into a sorted
on-disk-friendly array (8 + 4 bytes per n-gram). A training record is contaminated when at least
``min_overlap`` of its n-grams appear in one benchmark item. Items shorter than ``n`` tokens, and
every item in ``mode: exact``, are matched by their whole normalized text against each message
(the normalized-exact mode). ``mode: fuzzy`` catches paraphrases that keep few long n-grams: a
field is contaminated when it contains at least ``fuzzy_threshold`` of one item's short n-grams
(``fuzzy_n`` words / ``fuzzy_char_n`` characters), however much text surrounds them.

The reason names the benchmark item (``test.jsonl#17``), and ``meta.contamination`` holds
``{"benchmark", "index", "overlap"}``; with ``action: flag`` the record is kept with that meta.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

import datamill
from datamill.dedup import minhash as mh
from datamill.dedup.lookup import equal_keys
from datamill.dedup.minhash import xxh3_64_intdigest
from datamill.errors import DatamillError
from datamill.io.readers import iter_rows
from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
LETTER = re.compile(r"[^\W_]")


def record_fields(rec: Record) -> list[str]:
    """Every piece of text of a record, separately (n-grams never span two of them)."""
    pieces = [rec.system or "", rec.text or ""] + [m.content for m in rec.messages]
    pieces += [m.content for m in (rec.chosen, rec.rejected) if m is not None]
    return [p for p in pieces if p and p.strip()]


def benchmark_items(path: Path) -> Iterator[list[str]]:
    """The string fields of each item of a benchmark file, in file order."""
    try:
        items = list(datamill.read(path))
    except DatamillError:
        items = None
    if items is not None:
        for item in items:
            yield record_fields(item) if isinstance(item, Record) else []
        return
    for raw in iter_rows(path):
        row = raw.row or {}
        yield [v for v in row.values() if isinstance(v, str) and v.strip()]


@register
class Decontaminate(Filter):
    """Drop (or flag) records sharing an n-gram (13 words / 25 CJK characters by default) or the
    whole normalized text with an item of a benchmark test set."""

    name = "decontaminate"

    class Config(OpConfig):
        benchmarks: list[str] = Field(min_length=1)  # files in any format datamill reads
        n: int = Field(13, ge=1, le=64)  # words per n-gram
        char_n: int = Field(25, ge=1, le=64)  # characters per n-gram for CJK text
        mode: Literal["ngram", "exact", "fuzzy"] = "ngram"  # exact: whole text only; fuzzy: see fuzzy_*
        min_overlap: int = Field(1, ge=1)  # n-grams shared with one item needed to count
        action: Literal["drop", "flag"] = "drop"
        part: Literal["all", "prompt", "answer", "text"] = "all"
        skip_missing: bool = False  # a benchmark file that does not exist is noted in stats, not an error
        fuzzy_n: int = Field(3, ge=1, le=16)  # words per n-gram in fuzzy mode
        fuzzy_char_n: int = Field(5, ge=1, le=32)  # characters per n-gram in fuzzy mode (CJK)
        fuzzy_threshold: float = Field(0.5, gt=0, le=1)  # share of an item's n-grams found in one field
        fuzzy_min_ngrams: int = Field(8, ge=1)  # items with fewer distinct n-grams: exact match only

    def __init__(self, config, context):
        super().__init__(config, context)
        self._index: tuple[np.ndarray, np.ndarray] | None = None
        self._exact: dict[int, int] = {}
        self._names: list[tuple[str, int]] = []  # item number → (benchmark file, index in file)
        self._sizes: np.ndarray = np.zeros(0, np.int64)  # fuzzy: distinct n-grams per benchmark field
        self._units: np.ndarray = np.zeros(0, np.int64)  # fuzzy: benchmark field → item number

    # ---- tokens and n-grams (plain Python: one record at a time, as a filter sees them) -----------
    def _tokens(self, text: str) -> tuple[list[str], bool]:
        """Normalized tokens of one field, and whether they are CJK characters."""
        cjk = False
        if not text.isascii():
            n_cjk = len(CJK.findall(text))
            cjk = n_cjk > 0 and n_cjk >= 0.3 * max(1, len(LETTER.findall(text)))
        if cjk:
            return [t for t in (mh.normalize_token(ch) for ch in text) if t], True
        return [t for t in (mh.normalize_token(w) for w in mh.PUNCT_SPLIT.sub(" ", text).split()) if t], False

    def _ngrams(self, toks: list[str], cjk: bool) -> list[int]:
        c = self.config
        fuzzy = c.mode == "fuzzy"
        n = (c.fuzzy_char_n if fuzzy else c.char_n) if cjk else (c.fuzzy_n if fuzzy else c.n)
        return [xxh3_64_intdigest(" ".join(toks[i : i + n]).encode()) for i in range(len(toks) - n + 1)]

    @staticmethod
    def _exact_key(toks: list[str]) -> int | None:
        return xxh3_64_intdigest(("\x00" + " ".join(toks)).encode()) if toks else None

    # ---- the benchmark index -------------------------------------------------------------------
    def _build(self) -> None:
        keys: list[int] = []
        owners: list[int] = []  # item number, or in fuzzy mode unit (field) number
        units: list[int] = []  # fuzzy: unit number → item number
        for bench in self.config.benchmarks:
            path = Path(bench)
            if not path.exists() and self.config.skip_missing:
                self.counters[f"benchmark missing: {bench}"] = 1
                continue
            if not path.exists():
                raise DatamillError(f"decontaminate: benchmark file {bench} does not exist")
            for index, fields in enumerate(benchmark_items(path)):
                item = len(self._names)
                self._names.append((path.name, index))
                for text in fields:
                    toks, cjk = self._tokens(text)
                    key = self._exact_key(toks)
                    if key is not None:
                        self._exact.setdefault(key, item)
                    if self.config.mode == "fuzzy":  # each field is its own unit: share of *its* n-grams
                        grams = sorted(set(self._ngrams(toks, cjk)))
                        keys += grams
                        owners += [len(units)] * len(grams)
                        units.append(item)
                    elif self.config.mode == "ngram":  # a field shorter than n has no n-gram: exact only
                        grams = self._ngrams(toks, cjk)
                        keys += grams
                        owners += [item] * len(grams)
        if self.config.mode == "fuzzy":
            self._units = np.array(units, dtype=np.int64)
            self._sizes = np.bincount(np.array(owners, dtype=np.int64), minlength=len(units))
        k = np.array(keys, dtype=np.uint64)
        order = np.argsort(k, kind="stable")
        self._index = (k[order], np.array(owners, dtype=np.int32)[order])

    # ---- matching --------------------------------------------------------------------------------
    def match(self, rec: Record) -> tuple[int, str] | None:
        """(benchmark item number, overlap kind) of the most overlapping item, or None."""
        if self._index is None:
            self._build()
        fields = record_fields(rec) if self.config.part == "all" else [rec.part(self.config.part)]
        tokenized = [self._tokens(f) for f in fields if f.strip()]
        for toks, _ in tokenized:
            key = self._exact_key(toks)
            if key is not None and key in self._exact:
                return self._exact[key], "exact"
        keys, owners = self._index
        if self.config.mode == "exact" or not len(keys):
            return None
        if self.config.mode == "fuzzy":
            return self._fuzzy(tokenized)
        best: tuple[int, int, bool] | None = None  # (shared n-grams, item, cjk)
        for toks, cjk in tokenized:
            grams = np.array(self._ngrams(toks, cjk), dtype=np.uint64)
            if not len(grams):
                continue
            pos = np.minimum(np.searchsorted(keys, grams), len(keys) - 1)
            hit = keys[pos] == grams
            if not hit.any():
                continue
            counts = np.bincount(owners[pos[hit]])
            item = int(np.argmax(counts))
            if best is None or counts[item] > best[0]:
                best = (int(counts[item]), item, cjk)
        if best is None or best[0] < self.config.min_overlap:
            return None
        shared, item, cjk = best
        unit = f"{self.config.char_n}-char" if cjk else f"{self.config.n}-word"
        return item, f"{shared} shared {unit} n-grams"

    def _fuzzy(self, tokenized: list[tuple[list[str], bool]]) -> tuple[int, str] | None:
        """The item one of whose fields has the largest share of its short n-grams inside one field of
        the record, if that share reaches the threshold."""
        keys, owners = self._index
        c = self.config
        best: tuple[float, int, bool] | None = None
        for toks, cjk in tokenized:
            grams = np.unique(np.array(self._ngrams(toks, cjk), dtype=np.uint64))
            if not len(grams):
                continue
            _, positions = equal_keys(keys, grams)
            if not len(positions):
                continue
            shared = np.bincount(owners[positions], minlength=len(self._sizes))
            share = np.where(self._sizes >= c.fuzzy_min_ngrams, shared / np.maximum(self._sizes, 1), 0.0)
            unit = int(np.argmax(share))
            if share[unit] >= c.fuzzy_threshold and (best is None or share[unit] > best[0]):
                best = (float(share[unit]), int(self._units[unit]), cjk)
        if best is None:
            return None
        share, item, cjk = best
        unit_name = f"{c.fuzzy_char_n}-char" if cjk else f"{c.fuzzy_n}-word"
        return item, f"{share:.0%} of its {unit_name} n-grams"

    def reason(self, record: Record) -> str | None:
        found = self.match(record)
        if found is None:
            return None
        item, overlap = found
        bench, index = self._names[item]
        record.meta["contamination"] = {"benchmark": bench, "index": index, "overlap": overlap}
        if self.config.action == "flag":
            return None
        return f"benchmark overlap: {bench}#{index}"

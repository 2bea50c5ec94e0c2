"""decontaminate: drop (or flag) training records that overlap benchmark test items — the last step of
every synthesis recipe, since a model asked for "maths word problems" writes GSM8K back.

Benchmarks and what an item's text is: :mod:`datamill.dedup.benchmarks` (files in any format
datamill reads, C-Eval / CMMLU multiple-choice rows, raw rows such as GSM8K's; ``builtin:gsm8k``).
Text is tokenized like the training text — NFKC, lowercase, split on whitespace and punctuation
(``1,000`` → ``1000``, ``5.00`` → ``5``), words for space-separated text and characters for CJK. Modes
(``mode``: one, a list, or ``"ngram,fuzzy"`` from a ``${VAR}``), each reported with its score:

- normalized exact, always on: a record field equal to an item field (every item shorter than ``n``
  tokens is caught this way);
- ``ngram``: at least ``min_overlap`` of the record's ``n``-word / ``char_n``-character n-grams belong
  to one item (hashed into one sorted array, 12 bytes per n-gram, binary-searched);
- ``fuzzy``: a record field holds at least ``fuzzy_threshold`` of one item field's short n-grams
  (``fuzzy_n`` words / ``fuzzy_char_n`` characters), however much text surrounds them — rewordings
  that break every long n-gram;
- ``semantic``: a record field's sentence embedding (:mod:`datamill.llm.embeddings`: the local MiniLM,
  or an endpoint through ``embed``) has cosine ≥ ``semantic_threshold`` with an item's prompt —
  paraphrases that keep no n-gram at all.

A filter, run by the chunk workers on every core: each record is checked against a fixed index, so
the work parallelizes perfectly. The index (and, for ``semantic``, the embedding model and the
benchmark's vectors, kept on disk) is built once per worker process; the engine hands the step each
chunk's records first (``prepare``, see :mod:`datamill.pipeline.chunks`), so records are matched and
embedded ``batch_size`` at a time. Every match (record, benchmark item, mode, score) is one line of the
chunk's part of ``leakage.jsonl`` (``publish/leakage/chunk-NNNNNN.jsonl`` in the step's work folder,
rewritten whole when a chunk is redone); the runner concatenates the parts in chunk order into the
run's output folder (report.html shows it). Notes about the benchmarks (items checked, one skipped) are
counted by chunk 0 only, so the step's counters say them once. The reason names the item
(``test.jsonl#17``); ``meta.contamination`` holds the strongest match (``{"benchmark", "index",
"overlap", "mode", "score"}``); with ``action: flag`` the record is kept with that meta.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import Field, field_validator

from datamill.dedup import minhash as mh
from datamill.dedup.benchmarks import items, record_fields, resolve
from datamill.dedup.lookup import equal_keys
from datamill.dedup.minhash import xxh3_64_intdigest
from datamill.errors import DatamillError
from datamill.io.atomic import open_atomic
from datamill.io.writers import JsonlWriter
from datamill.llm.client import default_cache_dir
from datamill.llm.embeddings import EmbedConfig, get_embedder
from datamill.llm.record_vectors import embed_rows
from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.pipeline.chunks import chunk_name
from datamill.record import Record
from datamill.results import Drop

CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
LETTER = re.compile(r"[^\W_]")
EXCERPT = 300  # characters of the record and of the item in each leakage line
LEAKAGE = "leakage"  # publish/leakage/chunk-NNNNNN.jsonl → OUTDIR/leakage.jsonl


@dataclass(frozen=True)
class Match:
    item: int  # item number over all benchmarks
    mode: str
    score: float  # exact: 1; ngram: shared n-grams; fuzzy: share of the item field's n-grams; semantic: cosine
    overlap: str  # the same in words
    field: int  # which of the record's fields


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


@functools.lru_cache(maxsize=1 << 17)
def _token_hash(token: str) -> int:
    return xxh3_64_intdigest(token.encode())


def _sorted_index(keys: list[np.ndarray], owners: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    k = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
    order = np.argsort(k, kind="stable")
    return k[order], (np.concatenate(owners) if owners else np.zeros(0, np.int64)).astype(np.int32)[order]


@register
class Decontaminate(Filter):
    """Drop (or flag) records that share the normalized text, an n-gram (13 words / 25 CJK characters),
    most short n-grams of a field (fuzzy) or the meaning (semantic) with an item of a benchmark test set."""

    name = "decontaminate"

    class Config(OpConfig):
        benchmarks: list[str] = Field(min_length=1)  # files in any format datamill reads, or builtin:gsm8k
        mode: list[Literal["exact", "ngram", "fuzzy", "semantic"]] = Field(["ngram"], min_length=1)
        n: int = Field(13, ge=1, le=64)  # words per n-gram
        char_n: int = Field(25, ge=1, le=64)  # characters per n-gram for CJK text
        min_overlap: int = Field(1, ge=1)  # n-grams shared with one item needed to count
        action: Literal["drop", "flag"] = "drop"
        part: Literal["all", "prompt", "answer", "text"] = "all"
        skip_missing: bool = False  # a named file that does not exist is noted in stats, not an error
        fuzzy_n: int = Field(3, ge=1, le=16)  # words per n-gram in fuzzy mode
        fuzzy_char_n: int = Field(4, ge=1, le=32)  # characters per n-gram in fuzzy mode (CJK)
        fuzzy_threshold: float = Field(0.5, gt=0, le=1)  # share of an item field's n-grams found in one field
        fuzzy_min_ngrams: int = Field(8, ge=1)  # item fields with fewer distinct n-grams: exact match only
        semantic_threshold: float = Field(0.85, gt=0, le=1)  # cosine of a record field and an item's prompt
        embed: EmbedConfig = EmbedConfig()  # backend local (MiniLM, English) or openai (/v1/embeddings)
        batch_size: int = Field(256, ge=1)  # records of a chunk matched (and embedded) at a time

        @field_validator("benchmarks", "mode", mode="before")
        @classmethod
        def _comma_lists(cls, value: Any) -> Any:
            """A ``${VAR}`` gives one string: ``"ceval.csv,cmmlu.csv"`` / ``"ngram,fuzzy"`` is a list."""
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list | tuple):
                return value
            return [p.strip() for v in values for p in (v.split(",") if isinstance(v, str) else [v]) if p.strip()]

    def __init__(self, config, context):
        super().__init__(config, context)
        self.modes = set(config.mode)
        self._names: list[tuple[str, int]] = []  # item number → (benchmark label, index in its file)
        self._prompts: list[str] = []  # item number → prompt (embedded, and shown in the leakage report)
        self._exact: dict[int, int] = {}
        self._ngram = _sorted_index([], [])
        self._fuzzy = _sorted_index([], [])  # owners: fuzzy units (one per item field)
        self._units: np.ndarray = np.zeros(0, np.int64)  # fuzzy unit → item number
        self._sizes: np.ndarray = np.zeros(0, np.int64)  # fuzzy unit → distinct n-grams
        self._vectors: np.ndarray = np.zeros((0, 0), np.float32)  # semantic: one row per embedded item prompt
        self._vector_items: np.ndarray = np.zeros(0, np.int64)
        self._embedder = None
        self._built = False  # the index is built once per process (the engine keeps one op per worker)
        self._notes: Counter[str] = Counter()  # items per benchmark, skipped ones: counted by chunk 0
        self._found: dict[int, list[Match]] = {}  # id(record) → its matches, for the chunk being run

    # ---- tokens and n-grams ----------------------------------------------------------------------
    @staticmethod
    def _tokens(text: str) -> tuple[list[str], bool]:
        """Normalized tokens of one field, and whether they are CJK characters."""
        cjk = False
        if not text.isascii():
            n_cjk = len(CJK.findall(text))
            cjk = n_cjk > 0 and n_cjk >= 0.3 * max(1, len(LETTER.findall(text)))
        if cjk:
            return list(filter(None, map(mh.normalize_token, text))), True
        return list(filter(None, map(mh.normalize_token, mh.PUNCT_SPLIT.sub(" ", text).split()))), False

    def _ngrams(self, toks: list[str], cjk: bool, fuzzy: bool) -> np.ndarray:
        """The hashes of a field's n-grams (none when it has fewer than n tokens), in numpy."""
        c = self.config
        n = (c.fuzzy_char_n if fuzzy else c.char_n) if cjk else (c.fuzzy_n if fuzzy else c.n)
        if len(toks) < n:
            return np.zeros(0, np.uint64)
        return mh.ngram_hashes(np.fromiter(map(_token_hash, toks), np.uint64, len(toks)), n)

    @staticmethod
    def _exact_key(toks: list[str]) -> int | None:
        return xxh3_64_intdigest(("\x00" + " ".join(toks)).encode()) if toks else None

    # ---- the benchmark index -------------------------------------------------------------------
    def _build(self) -> None:
        if self._built:
            return
        self._built = True
        c = self.config
        ngram_keys: list[np.ndarray] = []
        ngram_items: list[np.ndarray] = []
        fuzzy_keys: list[np.ndarray] = []
        fuzzy_units: list[np.ndarray] = []
        units: list[int] = []  # fuzzy unit number → item number
        benches = [bench for spec in c.benchmarks for bench in resolve(spec)]
        labels = Counter(bench.label for bench in benches)  # two files of one name: their paths tell them apart
        for bench in benches:
            if not bench.path.exists():
                if bench.shipped:
                    self._notes[f"benchmark skipped: {bench.spec} is not installed with this datamill"] = 1
                    continue
                if c.skip_missing:
                    self._notes[f"benchmark missing: {bench.spec}"] = 1
                    continue
                raise DatamillError(
                    f"decontaminate: benchmark file {bench.spec} does not exist (relative paths are relative to "
                    "the directory datamill runs in)"
                )
            label = bench.label if labels[bench.label] == 1 else str(bench.path)
            start = len(self._names)
            for index, item in enumerate(items(bench.path)):
                number = len(self._names)
                self._names.append((label, index))
                self._prompts.append(item.prompt)
                for text in item.fields:
                    toks, cjk = self._tokens(text)
                    key = self._exact_key(toks)
                    if key is not None:
                        self._exact.setdefault(key, number)
                    if "ngram" in self.modes:  # a field shorter than n has no n-gram: exact only
                        grams = self._ngrams(toks, cjk, fuzzy=False)
                        ngram_keys.append(grams)
                        ngram_items.append(np.full(len(grams), number, np.int64))
                    if "fuzzy" in self.modes:  # each field is its own unit: share of *its* n-grams
                        grams = np.unique(self._ngrams(toks, cjk, fuzzy=True))
                        fuzzy_keys.append(grams)
                        fuzzy_units.append(np.full(len(grams), len(units), np.int64))
                        units.append(number)
            self._notes[f"benchmark items: {label}"] += len(self._names) - start
        self._ngram = _sorted_index(ngram_keys, ngram_items)
        self._fuzzy = _sorted_index(fuzzy_keys, fuzzy_units)
        self._units = np.array(units, dtype=np.int64)
        self._sizes = np.bincount(self._fuzzy[1].astype(np.int64), minlength=len(units))
        if "semantic" in self.modes:
            rows = [i for i, p in enumerate(self._prompts) if p.strip()]
            self._vector_items = np.array(rows, dtype=np.int64)
            if rows:
                self._vectors = self._benchmark_vectors([self._prompts[i] for i in rows])

    def _benchmark_vectors(self, texts: list[str]) -> np.ndarray:
        """The item prompts' embeddings, kept on disk by model and text (``embed.cache``): a benchmark is
        embedded once, not on every run — GSM8K's 1,319 questions take MiniLM a minute on 2 cores."""
        e = self.config.embed
        if not e.cache:
            return self._embed(texts)
        key = orjson.dumps([e.backend, e.model, e.base_url if e.backend == "openai" else "", texts])
        name = f"{hashlib.blake2b(key, digest_size=16).hexdigest()}.npy"
        path = Path(e.cache_dir or default_cache_dir()) / "benchmark-embeddings" / name
        with contextlib.suppress(OSError, ValueError, EOFError):  # absent or unreadable: embed again
            return np.load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{name}.lock"), "a") as lock:  # the other workers wait, then load it
            fcntl.flock(lock, fcntl.LOCK_EX)
            with contextlib.suppress(OSError, ValueError, EOFError):
                return np.load(path)
            vectors = self._embed(texts)
            with open_atomic(path) as f:
                np.save(f, vectors)
        return vectors

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._embedder is None:
            self._embedder = get_embedder(self.config.embed)
        return embed_rows(self._embedder, texts, self._vectors.shape[1], who="decontaminate")

    # ---- matching one record (exact, ngram, fuzzy) -------------------------------------------------
    def _lexical(self, tokenized: list[tuple[list[str], bool]]) -> list[Match]:
        found: list[Match] = []
        for f, (toks, _) in enumerate(tokenized):
            key = self._exact_key(toks)
            if key is not None and key in self._exact:
                found.append(Match(self._exact[key], "exact", 1.0, "exact", f))
                break
        if "ngram" in self.modes and len(self._ngram[0]):
            found += self._ngram_match(tokenized)
        if "fuzzy" in self.modes and len(self._fuzzy[0]):
            found += self._fuzzy_match(tokenized)
        return found

    def _ngram_match(self, tokenized: list[tuple[list[str], bool]]) -> list[Match]:
        """The item sharing the most n-grams with one field of the record, if at least ``min_overlap``."""
        keys, owners = self._ngram
        best: tuple[int, int, bool, int] | None = None  # (shared n-grams, item, cjk, field)
        for f, (toks, cjk) in enumerate(tokenized):
            grams = self._ngrams(toks, cjk, fuzzy=False)
            if not len(grams):
                continue
            pos = np.minimum(np.searchsorted(keys, grams), len(keys) - 1)
            hit = keys[pos] == grams
            if not hit.any():
                continue
            counts = np.bincount(owners[pos[hit]])
            item = int(np.argmax(counts))
            if best is None or counts[item] > best[0]:
                best = (int(counts[item]), item, cjk, f)
        if best is None or best[0] < self.config.min_overlap:
            return []
        shared, item, cjk, f = best
        unit = f"{self.config.char_n}-char" if cjk else f"{self.config.n}-word"
        return [Match(item, "ngram", shared, f"{shared} shared {unit} n-grams", f)]

    def _fuzzy_match(self, tokenized: list[tuple[list[str], bool]]) -> list[Match]:
        """The item one of whose fields has the largest share of its short n-grams inside one field of
        the record, if that share reaches the threshold."""
        keys, owners = self._fuzzy
        c = self.config
        best: tuple[float, int, bool, int] | None = None  # (share, item, cjk, field)
        for f, (toks, cjk) in enumerate(tokenized):
            grams = np.unique(self._ngrams(toks, cjk, fuzzy=True))
            if not len(grams):
                continue
            _, positions = equal_keys(keys, grams)
            if not len(positions):
                continue
            shared = np.bincount(owners[positions], minlength=len(self._sizes))
            share = np.where(self._sizes >= c.fuzzy_min_ngrams, shared / np.maximum(self._sizes, 1), 0.0)
            unit = int(np.argmax(share))
            if share[unit] >= c.fuzzy_threshold and (best is None or share[unit] > best[0]):
                best = (float(share[unit]), int(self._units[unit]), cjk, f)
        if best is None:
            return []
        share, item, cjk, f = best
        unit_name = f"{c.fuzzy_char_n}-char" if cjk else f"{c.fuzzy_n}-word"
        return [Match(item, "fuzzy", round(share, 4), f"{share:.0%} of its {unit_name} n-grams", f)]

    # ---- matching a batch (semantic) ---------------------------------------------------------------
    def _semantic_match(self, fields: list[list[tuple[str, str]]]) -> list[Match | None]:
        """Per record, the item whose prompt is closest to one of its fields, if the cosine reaches the
        threshold: every field of the batch embedded in one call, one matrix product."""
        flat = [(r, f, text) for r, fs in enumerate(fields) for f, (_, text) in enumerate(fs)]
        best: list[tuple[float, int, int] | None] = [None] * len(fields)  # (cosine, item, field) per record
        if flat and len(self._vectors):
            sims = self._embed([text for _, _, text in flat]) @ self._vectors.T
            columns = sims.argmax(axis=1)
            for (r, f, _), column, score in zip(flat, columns, sims[np.arange(len(flat)), columns], strict=True):
                if score >= self.config.semantic_threshold - 1e-6 and (best[r] is None or score > best[r][0]):
                    best[r] = (round(float(score), 4), int(self._vector_items[column]), f)
        return [b and Match(b[1], "semantic", b[0], f"cosine {b[0]:.3f}", b[2]) for b in best]

    # ---- the operator --------------------------------------------------------------------------
    def _fields(self, rec: Record) -> list[tuple[str, str]]:
        if self.config.part == "all":
            return record_fields(rec)
        text = rec.part(self.config.part)
        return [(self.config.part, text)] if text.strip() else []

    def matches(self, batch: list[Record]) -> list[list[Match]]:
        """Every mode's best match for each record of a batch, strongest first: exact, ngram, fuzzy, semantic."""
        fields = [self._fields(rec) for rec in batch]
        found = [self._lexical([self._tokens(text) for _, text in fs]) for fs in fields]
        if "semantic" in self.modes:
            for row, match in zip(found, self._semantic_match(fields), strict=True):
                if match is not None:
                    row.append(match)
        return found

    def _leak_rows(self, rec: Record, fields: list[tuple[str, str]], found: list[Match]) -> Iterator[dict]:
        for m in found:
            bench, index = self._names[m.item]
            yield {
                "id": rec.id,
                "step": self.context.step,
                "action": self.config.action,
                "mode": m.mode,
                "score": m.score,
                "overlap": m.overlap,
                "benchmark": bench,
                "index": index,
                "benchmark_text": _excerpt(self._prompts[m.item]),
                "field": fields[m.field][0],
                "record_text": _excerpt(fields[m.field][1]),
            }

    def prepare(self, records: list[Record], chunk: int) -> None:
        """The engine's per-chunk hook, before ``reason`` is asked about each record: matches the chunk's
        records ``batch_size`` at a time (one embedding call per batch) and writes the chunk's leakage
        lines, whole, to ``publish/leakage/chunk-NNNNNN.jsonl`` (before the chunk counts as done, so a
        redone chunk rewrites its own part)."""
        self._build()
        if chunk == 0:  # once per step, whichever worker builds the index how often
            self.counters.update(self._notes)
        self._found = {}
        leakage = JsonlWriter(self.context.workdir / "publish" / LEAKAGE / f"{chunk_name(chunk)}.jsonl")
        try:
            for start in range(0, len(records), self.config.batch_size):
                batch = records[start : start + self.config.batch_size]
                for rec, found in zip(batch, self.matches(batch), strict=True):
                    self._found[id(rec)] = found
                    for row in self._leak_rows(rec, self._fields(rec), found):
                        leakage.write(row)
                        self.counters[f"leaked ({row['mode']})"] += 1
            leakage.commit()
        except BaseException:
            leakage.abort()
            raise

    def reason(self, record: Record) -> str | None:
        found = self._found.pop(id(record), None)
        if found is None:  # asked without ``prepare`` (not by the engine): matched alone, no leakage line
            self._build()
            (found,) = self.matches([record])
        if not found:
            return None
        top = found[0]
        bench, index = self._names[top.item]
        record.meta["contamination"] = {
            "benchmark": bench,
            "index": index,
            "overlap": top.overlap,
            "mode": top.mode,
            "score": top.score,
        }
        return None if self.config.action == "flag" else f"benchmark overlap: {bench}#{index}"

    def check(self, records: list[Record], chunk: int = 0) -> list[Record | Drop]:
        """The step over a list of records as the engine runs it over one chunk (library use, tests)."""
        self.prepare(records, chunk)
        return [rec if (why := self.reason(rec)) is None else Drop(rec, why) for rec in records]

"""``datamill report OUTDIR``: OUTDIR/report.html (one self-contained page) and OUTDIR/README.md (a
Hugging Face-style dataset card), both regenerated from what a run left behind: stats.json (the
funnel, counters, split sizes, mix ratios), dropped.jsonl (examples per drop reason),
recipe.lock.yaml (sources and processing steps) and the data files (token lengths, languages,
sources, turns, scores). Numbers shown for steps come from stats.json verbatim.

Cost at scale: one streaming pass over the kept records counts records, kinds, languages, sources,
turns and scores exactly. Token lengths are exact too when every record carries the ``meta.tokens``
that ``count_tokens`` (or ``cutoff_len``) stored; otherwise the tokenizer only sees a seeded uniform
sample of ``sample`` records (bottom-k of a key fixed by seed, file and position, so the same
whatever the split over processes), and the report says so with the sample's precision. The
instruction-type figure (jieba part-of-speech tagging) uses the first ``INSTRUCTION_SAMPLE`` of that
sample. The pass runs in worker processes that claim files one at a time. A run starts it over
its last stage's chunk files while it writes the shards (the writer is one process; the pass takes
the other cores, and the writer's once the write is done): they hold the full records with meta
(``source``, ``tokens``, ``lang``, scores) even when the output format keeps none. A later
``datamill report`` reads the data files, where a source the format did not keep shows as
"(not recorded)", never as the output file. The sample's tokenizing
runs in worker processes too."""

from __future__ import annotations

import functools
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml

from datamill.errors import DatamillError
from datamill.io import outputs
from datamill.record import Record
from datamill.report.svg import PALETTE, hbars, histogram

EXAMPLES_PER_REASON = 3
SAMPLE_SIZE = 10_000  # records whose token lengths are measured when meta.tokens is missing
PROGRESS_EVERY = 2_000
Progress = Callable[[str, int, "int | None"], None]


@dataclass
class ReportData:
    outdir: Path
    stats: dict[str, Any]
    lock: dict[str, Any]
    drops: dict[tuple[int, str, str], int] = field(default_factory=dict)  # (step, op, reason) → n
    examples: dict[tuple[int, str, str], list[str]] = field(default_factory=dict)
    records: int = 0
    prompt_len: list[int] = field(default_factory=list)
    response_len: list[int] = field(default_factory=list)
    length_unit: str = "tokens"
    langs: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    turns: Counter = field(default_factory=Counter)
    scores: dict[str, list[float]] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    mixes: list[tuple[int, dict[str, dict[str, float]]]] = field(default_factory=list)
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (lang, first user turn)
    dataset_name: str = ""
    data_files: list[str] = field(default_factory=list)
    length_sample: int = 0  # records the lengths come from when sampled; 0 = every record (exact)
    instruction_sample: int = 0  # same for the instruction types; 0 = every record

    def sample_note(self, n: int) -> str:
        """'from a … sample of N of M records' and the 95% margin of any share read off it."""
        margin = _margin(n, self.records) * 100
        return (
            f"from a seeded uniform sample of {n:,} of {self.records:,} records (any share ±{margin:.1f} points, 95%)"
        )


def _margin(n: int, population: int) -> float:
    """Worst-case (p = ½) 95% half-width of a share estimated from n of population, without replacement."""
    if n <= 0 or n >= population:
        return 0.0
    return 1.96 * 0.5 / math.sqrt(n) * math.sqrt((population - n) / max(population - 1, 1))


def _trace_head(outdir: Path, drop: dict[str, Any]) -> str:
    """A drop example's first line: its id, its source and the ``datamill trace`` command for its lineage."""
    meta = (drop.get("record") or {}).get("meta") or {}
    at = f" line {meta['line']}" if "line" in meta else f" record {meta['index'] + 1}" if "index" in meta else ""
    source = f" ← {meta['source']}{at}" if "source" in meta else ""
    return f"{drop.get('id')}{source} · datamill trace {outdir} {drop.get('id')}\n"


def _preview(record: dict[str, Any], limit: int = 240) -> str:
    if record.get("text") is not None:
        text = record["text"]
    else:
        text = " ⏎ ".join(f"{m.get('role')}: {m.get('content')}" for m in record.get("messages") or [])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lengths_counter(tokenizer: str):
    """A function text → length, and its unit: the tokenizer's tokens, or words when none loads."""
    try:
        from datamill.select.tokenizer import get_tokenizer

        tok = get_tokenizer(tokenizer)
        tok.count("probe")
        return tok.count, "tokens"
    except (DatamillError, ImportError):
        from datamill.clean.text import count_words

        return count_words, "words"


def collect(
    outdir: str | Path,
    tokenizer: str = "embedded",
    *,
    tally: list[_Partial] | None = None,
    sample: int = SAMPLE_SIZE,
    seed: int = 0,
    progress: Progress | None = None,
    workers: int | None = None,
) -> ReportData:
    """Everything the report shows. ``tally``: what a run counted while it wrote the data (a ``Pass``
    over its last stage's chunk files: full records with meta), instead of a pass over the output's
    data files;
    ``sample``: how many records' token lengths (and instructions) to measure when they carry no
    ``meta.tokens``; ``progress(label, done, total)``; ``workers``: processes for the pass over the
    records and for the tokenizing (default: the CPUs; 1 = this process only)."""
    from datamill.select.mixing import effective_ratio

    out = Path(outdir)
    stats_path = out / "stats.json"
    if not stats_path.exists():
        raise DatamillError(f"{out}: no stats.json here; give the output directory of a `datamill run`")
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    lock_path = out / "recipe.lock.yaml"
    lock = yaml.safe_load(lock_path.read_text(encoding="utf-8")) if lock_path.exists() else {}
    data = ReportData(out, stats, lock or {})
    dropped = out / "dropped.jsonl"
    if dropped.exists():
        with open(dropped, "rb") as f:
            for n, line in enumerate(f, 1):
                try:
                    d = orjson.loads(line)
                    key = (int(d["step"]), str(d["op"]), str(d["reason"]))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    raise DatamillError(f"{dropped}:{n}: not a datamill drop entry") from None
                data.drops[key] = data.drops.get(key, 0) + 1
                ex = data.examples.setdefault(key, [])
                if len(ex) < EXAMPLES_PER_REASON:
                    ex.append(_trace_head(out, d) + _preview(d.get("record") or {}))
    info_path = out / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    data.dataset_name = next(iter(info), stats.get("recipe", "dataset"))
    data.data_files = sorted(p.name for p in out.glob("data-*") if p.is_file())
    report = progress or (lambda label, done, total: None)
    total = stats.get("kept") if isinstance(stats.get("kept"), int) else None
    k = max(int(sample), 1)
    if tally is not None:
        parts = tally
    else:
        files = [str(out / name) for name in data.data_files]
        parts = _count_all(files, k, seed, workers, total, report)
    sampled = _merge(data, parts, k)
    if sampled is not None:
        _measure_sample(data, sampled, tokenizer, report, workers)
    for step in stats.get("steps", []):
        counters = step.get("counters") or {}
        if step.get("op") == "split":
            data.splits = {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("split:")}
        if step.get("op") == "mix":
            data.mixes.append((step["step"], effective_ratio(counters)))
    return data


INSTRUCTION_SAMPLE = 2_000  # first user turns parsed for instruction types (jieba tagging is slow)


@dataclass
class _Sampled:
    dialogue: bool  # not a pretraining document: it has a prompt
    tokens: tuple[int, int] | None  # (prompt, response) from meta.tokens
    prompt: str
    answer: str
    instruction: tuple[str, str] | None  # (lang, first user turn)


@dataclass
class _Partial:
    """What one pass over some of the files counted; partials merge in file order."""

    records: int = 0
    kinds: Counter = field(default_factory=Counter)
    turns: Counter = field(default_factory=Counter)
    langs: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    scores: dict[str, list[float]] = field(default_factory=dict)
    untokenized: int = 0  # records without a usable meta.tokens
    prompt_len: list[int] = field(default_factory=list)  # from meta.tokens, while untokenized == 0
    response_len: list[int] = field(default_factory=list)
    candidates: list[tuple[float, int, _Sampled]] = field(default_factory=list)  # bottom-k by key


ASCII_LETTERS_8 = re.compile(r"(?:[^A-Za-z]*[A-Za-z]){8}")  # ≥ 8 letters: Latin text enough to decide


def _lang(text: str) -> str | None:
    """``script_lang(text, strict=False)`` of datamill.clean.text, the same answer, counted faster: no
    code to strip without a backtick, ASCII text is English once it has 8 letters, counts by
    substitution (no list of matches)."""
    from datamill.clean.text import LATIN_WORD, cjk_count, strip_code

    prose = strip_code(text) if "`" in text else text
    if prose.isascii() and ASCII_LETTERS_8.match(prose):
        return "en"
    n = len(prose)
    cjk = 0 if prose.isascii() else cjk_count(prose)
    latin_chars = n - len(LATIN_WORD.sub("", prose))
    if cjk + latin_chars < 8:
        return None
    if cjk >= 0.3 * (cjk + latin_chars):
        return "zh"
    if cjk == 0 or cjk < 0.05 * (cjk + latin_chars):
        return "en"
    return None


def output_records(path: str) -> Iterator[Record]:
    """An output data file's records, with meta.source as the run wrote it when the file kept meta
    (the reader would set it to the output file itself; then the source is not recorded)."""
    import datamill

    originals = _original_sources(Path(path))
    for rec in datamill.read(path):
        source = next(originals, None)
        if not isinstance(rec, Record):
            continue
        if source:
            rec.meta["source"] = source
        else:
            rec.meta.pop("source", None)
        yield rec


def chunk_records(fmt: str, container: str, path: str) -> Iterator[Record]:
    """A run's chunk file, full records with meta, less those the output (``fmt`` in ``container``)
    cannot hold and so drops: the records of the data files, as the run wrote them."""
    from datamill.dataset import expressible
    from datamill.pipeline.chunks import read_chunk

    for rec in read_chunk(Path(path)):
        if expressible(fmt, container, rec):
            yield rec


def _original_sources(path: Path):
    """meta.source as the run wrote it (the input file), per row of a jsonl output; None elsewhere."""
    if path.suffix != ".jsonl":
        while True:
            yield None
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                meta = orjson.loads(line).get("meta")
            except (orjson.JSONDecodeError, AttributeError):
                meta = None
            yield meta.get("source") if isinstance(meta, dict) else None
    while True:
        yield None


_DONE = None  # records counted so far, shared with the worker processes (a multiprocessing.Value)
_NEXT = None  # the index of the next file a worker of a Pass claims (a multiprocessing.Value)


def _init_worker(done, claim=None) -> None:
    global _DONE, _NEXT
    _DONE, _NEXT = done, claim


def _tick_shared(n: int) -> None:
    if _DONE is not None:
        with _DONE.get_lock():
            _DONE.value += n


def _claim(count: int) -> int | None:
    """The index of the next file nobody has counted yet, or None when all are taken."""
    with _NEXT.get_lock():
        index = _NEXT.value
        if index >= count:
            return None
        _NEXT.value = index + 1
    return index


@functools.lru_cache(maxsize=4096)
def _file_name(path: str) -> str:
    return Path(path).name


class Tally:
    """The report's counters fed one record at a time: exact counts, and the k records with the
    smallest keys, a key being a seeded random number fixed by (seed, file index, position), so the
    union of tallies' bottom-k is the same uniform sample however the files are split."""

    def __init__(self, k: int = SAMPLE_SIZE, seed: int = 0):
        self.k, self.seed = max(int(k), 1), seed
        self.part = _Partial()
        self._heap: list[tuple[float, int, int, _Sampled]] = []  # max-heap by key (negated)
        self._index, self._position, self._rng = 0, 0, random.Random(f"{seed}:0")

    def start_file(self, index: int) -> None:
        self._index, self._position, self._rng = index, 0, random.Random(f"{self.seed}:{index}")

    def add(self, rec: Record) -> None:
        import heapq

        part, meta = self.part, rec.meta
        position = self._position
        self._position += 1
        part.records += 1
        part.kinds[rec.kind] += 1
        dialogue = rec.text is None
        if dialogue:
            part.turns[sum(m.role == "user" for m in rec.messages)] += 1
        lang = meta.get("lang") or _lang(rec.part("all")[:2000]) or "other"
        part.langs[str(lang)] += 1
        source = meta.get("source")
        part.sources[_file_name(str(source)) if source else "(not recorded)"] += 1
        for key, value in meta.items():
            if "score" in key and isinstance(value, int | float) and not isinstance(value, bool):
                part.scores.setdefault(key, []).append(float(value))
        tokens = meta.get("tokens")
        counted = None
        if isinstance(tokens, dict) and isinstance(tokens.get("total"), int):
            prompt, response = tokens.get("prompt", 0), tokens.get("response", 0)
            if isinstance(prompt, int) and isinstance(response, int):
                counted = (prompt, response)
        if counted is None:
            part.untokenized += 1
        elif not part.untokenized:  # exact lists only matter while no record lacks meta.tokens
            if dialogue:
                part.prompt_len.append(counted[0])
            part.response_len.append(counted[1])
        key = self._rng.random()
        heap = self._heap
        if len(heap) >= self.k and -heap[0][0] <= key:
            return
        first_user = next((m.content for m in rec.messages if m.role == "user"), None)
        instruction = (str(lang), first_user[:300]) if first_user else None
        if dialogue:
            item = _Sampled(True, counted, rec.part("prompt"), rec.part("answer"), instruction)
        else:
            item = _Sampled(False, counted, "", rec.text or "", instruction)
        entry = (-key, self._index, position, item)
        if len(heap) < self.k:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)

    def result(self) -> _Partial:
        self.part.candidates = [(-neg, index * (1 << 32) + pos, item) for neg, index, pos, item in self._heap]
        return self.part


Reader = Callable[[str], Iterator[Record]]  # a file's records (picklable: it goes to worker processes)


def _count_files(
    files: list[tuple[int, str]], read: Reader, k: int, seed: int, tick: Callable[[int], None] | None = None
) -> _Partial:
    """The tally of the records of ``files`` ((index, path))."""
    tally = Tally(k, seed)
    for index, path in files:
        _count_file(tally, index, read(path), tick or _tick_shared)
    return tally.result()


def _count_file(tally: Tally, index: int, records: Iterator[Record], tick: Callable[[int], None]) -> None:
    tally.start_file(index)
    pending = 0
    for rec in records:
        tally.add(rec)
        pending += 1
        if pending == PROGRESS_EVERY:
            tick(pending)
            pending = 0
    if pending:
        tick(pending)


def _count_claimed(files: list[str], read: Reader, k: int, seed: int) -> _Partial:
    """A Pass worker: the tally of the files it claims, one at a time, until none is left."""
    tally = Tally(k, seed)
    while (index := _claim(len(files))) is not None:
        _count_file(tally, index, read(files[index]), _tick_shared)
    return tally.result()


class Pass:
    """The pass over every record of ``files`` in worker processes that claim the files one at a
    time: started now, collected by ``result``. A run starts it before it writes its shards, so the
    counting uses the cores the one-process writer leaves idle instead of adding a phase after it;
    once the write is done (``result``), the writer's core joins in on the files still unclaimed."""

    def __init__(self, files: list[str], read: Reader, k: int = SAMPLE_SIZE, seed: int = 0, workers: int = 1):
        import multiprocessing

        self.args = (files, read, k, seed)
        self.ctx = multiprocessing.get_context("fork")
        self.done, self.next = self.ctx.Value("q", 0), self.ctx.Value("q", 0)
        self.pools: list = []
        self.parts: list = []
        self._add_workers(max(1, min(workers, len(files))))

    def _add_workers(self, n: int) -> None:
        pool = self.ctx.Pool(n, initializer=_init_worker, initargs=(self.done, self.next))
        self.pools.append(pool)
        self.parts += [pool.apply_async(_count_claimed, self.args) for _ in range(n)]

    def result(self, report: Progress, total: int | None, join: int = 1) -> list[_Partial]:
        """The partials, once every file is counted; ``join`` more workers take the files still
        unclaimed (the cores that were busy writing)."""
        import time

        try:
            if join > 0 and self.next.value < len(self.args[0]):
                self._add_workers(join)
            while not all(part.ready() for part in self.parts):
                report("report", self.done.value, total)
                time.sleep(0.2)
            parts = [part.get() for part in self.parts]
        finally:
            self.cancel()
        report("report", sum(part.records for part in parts), total)
        return parts

    def cancel(self) -> None:
        for pool in self.pools:
            pool.terminate()


def _count_all(files, k, seed, workers, total, report) -> list[_Partial]:
    """The pass over every record of the data files: in this process, or in worker processes."""
    import os

    n = max(1, min(workers or os.cpu_count() or 1, len(files)))
    if n > 1:
        return Pass(files, output_records, k, seed, n).result(report, total, join=0)
    report("report", 0, total)
    seen = [0]

    def tick(m: int) -> None:
        seen[0] += m
        report("report", seen[0], total)

    return [_count_files(list(enumerate(files)), output_records, k, seed, tick)]


def _merge(data: ReportData, parts: list[_Partial], k: int) -> list[_Sampled] | None:
    """Partials into ``data``, in order. Returns the sample whose lengths are still to be measured, or
    None when meta.tokens gave them all."""
    untokenized = 0
    candidates: list[tuple[float, int, _Sampled]] = []
    for part in parts:
        data.records += part.records
        data.kinds.update(part.kinds)
        data.turns.update(part.turns)
        data.langs.update(part.langs)
        data.sources.update(part.sources)
        for key, values in part.scores.items():
            data.scores.setdefault(key, []).extend(values)
        untokenized += part.untokenized
        data.prompt_len.extend(part.prompt_len)
        data.response_len.extend(part.response_len)
        candidates.extend(part.candidates)
    candidates.sort(key=lambda c: (c[0], c[1]))
    sample = [item for _, _, item in candidates[:k]]
    sampled = data.records > len(sample)
    instructions = [item.instruction for item in sample[:INSTRUCTION_SAMPLE]]  # lowest keys: uniform too
    data.instructions = [ins for ins in instructions if ins]
    data.instruction_sample = len(instructions) if data.records > len(instructions) else 0
    if untokenized:  # lengths come from the sample (or every record, when it holds them all)
        data.prompt_len, data.response_len = [], []
        data.length_sample = len(sample) if sampled else 0
        return sample
    data.length_unit = "tokens"
    return None


def _lengths_of(
    sample: list[_Sampled], tokenizer: str | None, tick: Callable[[int], None] | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """(unit, [(prompt, response)]) of the sampled records: meta.tokens where a record has it and the
    unit is tokens, else the tokenizer (words when none loads, or when ``tokenizer`` is None)."""
    from datamill.clean.text import count_words

    tick = tick or _tick_shared
    length, unit = _lengths_counter(tokenizer) if tokenizer is not None else (count_words, "words")
    lengths = []
    for n, item in enumerate(sample, 1):
        if item.tokens is not None and unit == "tokens":
            lengths.append(item.tokens)
        else:
            lengths.append((length(item.prompt), length(item.answer)))
        if n % 250 == 0:
            tick(250)
    tick(len(sample) % 250)
    return unit, lengths


def _measure_sample(
    data: ReportData, sample: list[_Sampled], tokenizer: str, report: Progress, workers: int | None = None
) -> None:
    """Token lengths of the sampled records, split over worker processes when there are many."""
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    todo = len(sample)
    label = "report: token lengths"
    report(label, 0, todo)
    n = max(1, min(workers or os.cpu_count() or 1, todo // 1000))
    if n == 1:
        seen = [0]

        def tick(m: int) -> None:
            seen[0] += m
            report(label, seen[0], todo)

        results = [_lengths_of(sample, tokenizer, tick)]
    else:
        ctx = multiprocessing.get_context("fork")
        done = ctx.Value("q", 0)
        slices = [sample[g * todo // n : (g + 1) * todo // n] for g in range(n)]
        with ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(done,)) as pool:
            futures = [pool.submit(_lengths_of, part, tokenizer) for part in slices]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                report(label, done.value, todo)
            results = [f.result() for f in futures]
    units = {unit for unit, _ in results}
    data.length_unit = "tokens" if units == {"tokens"} else "words"
    if len(units) > 1:  # a worker could not load the tokenizer: words everywhere, measured here
        results = [_lengths_of(sample, None, lambda m: None)]
    for item, (prompt, response) in zip(sample, (pair for _, lengths in results for pair in lengths), strict=True):
        if item.dialogue:
            data.prompt_len.append(prompt)
        data.response_len.append(response)
    report(label, todo, todo)


# ---- HTML ----------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans","PingFang SC","Microsoft YaHei",sans-serif;
margin:2rem auto;max-width:980px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.cards{display:flex;gap:.8rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem}
.card b{display:block;font-size:1.4rem}.muted{color:#777}.empty{color:#999;font-style:italic}
table{border-collapse:collapse;font-size:.9rem}td,th{border-bottom:1px solid #eee;padding:.25rem .6rem;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}details{margin:.2rem 0}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.4rem;border-radius:4px;font-size:.8rem}
.ok{color:#2a7d2a}.bad{color:#b00}svg text{font-family:inherit}
"""


def _n(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else escape(str(v))


def _card(label: str, key: str, value: Any) -> str:
    return f'<div class="card"><b data-stat="{key}">{_n(value)}</b>{escape(label)}</div>'


def render_html(data: ReportData) -> str:
    s = data.stats
    name = escape(str(s.get("recipe", data.dataset_name)))
    parts = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>datamill report: {name}</title>',
        f"<style>{CSS}</style></head><body>",
        f"<h1>{name}</h1><p class='muted'>datamill report of <code>{escape(str(data.outdir))}</code></p>",
        '<div class="cards">',
        _card("records read", "input", s.get("input", 0)),
        _card("generated", "generated", s.get("generated", 0)),
        _card("kept", "kept", s.get("kept", 0)),
        _card("dropped", "dropped", s.get("dropped", 0)),
        _card("quarantined", "quarantined", s.get("quarantined", 0)),
        "</div>",
    ]
    balanced = s.get("balanced")
    parts.append(
        f"<p class='{'ok' if balanced else 'bad'}'>accounting "
        f"{'balanced' if balanced else 'NOT balanced'}: read + generated = kept + dropped + quarantined</p>"
    )
    parts.append(_funnel(data))
    parts.append(_drops(data))
    parts.append(f"<h2>Lengths ({data.length_unit})</h2>")
    if data.length_sample:
        parts.append(
            f'<p class="muted" data-sample="lengths" data-n="{data.length_sample}" data-of="{data.records}">'
            f"{escape(data.length_unit[:-1].capitalize())} lengths {escape(data.sample_note(data.length_sample))}"
            ": the histograms count the sampled records.</p>"
        )
    parts.append(f"<h3>Prompt</h3>{histogram(data.prompt_len, label=data.length_unit)}")
    parts.append(f"<h3>Response / document</h3>{histogram(data.response_len, label=data.length_unit)}")
    parts.append(f"<h2>Mix of the output ({data.records:,} records)</h2>")
    for title, counter, color in (
        ("Language", data.langs, PALETTE[1]),
        ("Source", data.sources, PALETTE[2]),
        ("Kind", data.kinds, PALETTE[4]),
    ):
        parts.append(f"<h3>{title}</h3>{hbars(counter.most_common(20), color=color)}")
    turns = sorted(data.turns.items())
    parts.append(f"<h3>User turns per dialogue</h3>{hbars([(str(k), v) for k, v in turns], color=PALETTE[5])}")
    parts.append(_instruction_types(data))
    if data.scores:
        parts.append("<h2>Scores</h2>")
        for key, values in sorted(data.scores.items()):
            parts.append(f"<h3>{escape(key)}</h3>{histogram(values, label=key)}")
    dup = sum(n for (_, _, reason), n in data.drops.items() if "duplicate" in reason)
    parts.append(f"<h2>Duplicates</h2><p><b data-stat='duplicates'>{dup:,}</b> records dropped as duplicates</p>")
    parts.append(_leakage(data))
    parts.append("<h2>Splits</h2>")
    if data.splits:
        parts.append(hbars(sorted(data.splits.items()), color=PALETTE[3]))
        parts.append(_table(["split", "records"], [(k, v) for k, v in sorted(data.splits.items())], "split"))
    else:
        parts.append('<p class="empty">no split step in this run</p>')
    for step, ratio in data.mixes:
        parts.append(f"<h2>Mix (step {step})</h2>")
        rows = [
            (
                src,
                f"{r.get('share', 0):.4%}",
                f"{r.get('target', 0):.4%}",
                int(r.get("units", 0)),
                int(r.get("records", 0)),
            )
            for src, r in ratio.items()
        ]
        parts.append(_table(["source", "effective share", "requested", "units", "records"], rows, "mix"))
    parts.append(evaluation_section(data.outdir))
    parts.append("</body></html>")
    return "\n".join(parts)


def _instruction_types(data: ReportData) -> str:
    """Root verb and verb → object of the first user turn, per language (Self-Instruct's figure)."""
    from datamill.report.instruction_types import instruction_types

    parts = ["<h2>Instruction types</h2>"]
    if data.instruction_sample:
        parts.append(
            f'<p class="muted" data-sample="instructions" data-n="{data.instruction_sample}" '
            f'data-of="{data.records}">First user turns {escape(data.sample_note(data.instruction_sample))}.</p>'
        )
    by_lang = instruction_types(data.instructions)
    if not by_lang:
        return "".join(parts) + '<p class="empty">no English or Chinese instructions</p>'
    for lang, pairs in sorted(by_lang.items()):
        verbs: Counter = Counter()
        for (verb, _), n in pairs.items():
            verbs[verb] += n
        with_object = [(f"{v} → {o}", n) for (v, o), n in pairs.most_common() if o][:15]
        parts.append(
            f"<h3>{escape(lang)}: root verbs ({sum(pairs.values()):,} instructions)</h3>"
            f"{hbars(verbs.most_common(15), color=PALETTE[6])}"
            f"<h3>{escape(lang)}: verb → object</h3>{hbars(with_object, color=PALETTE[7])}"
        )
    return "".join(parts)


def _table(head: list[str], rows: list[tuple], kind: str) -> str:
    th = "".join(f"<th{' class=n' if i else ''}>{escape(h)}</th>" for i, h in enumerate(head))
    body = "".join(
        f'<tr data-{kind}="{escape(str(r[0]))}">'
        + "".join(f"<td{' class=n' if i else ''}>{_n(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _funnel(data: ReportData) -> str:
    steps = data.stats.get("steps", [])
    rows = []
    for st in steps:
        dropped = sum(st.get("dropped", {}).values())
        rows.append(
            f'<tr data-step="{st["step"]}" data-in="{st["in"]}" data-out="{st["out"]}" data-dropped="{dropped}">'
            f"<td>{st['step']}</td><td>{escape(st['op'])}</td><td class=n>{st['in']:,}</td>"
            f"<td class=n>{st.get('generated', 0):,}</td><td class=n>{st['out']:,}</td>"
            f"<td class=n>{dropped:,}</td><td class=n>{st.get('seconds', 0):.2f}</td></tr>"
        )
    chart = hbars([(f"{st['step']} {st['op']}", st["out"]) for st in steps], unit=" kept")
    head = "<tr><th>step</th><th>op</th><th class=n>in</th><th class=n>generated</th><th class=n>out</th>"
    head += "<th class=n>dropped</th><th class=n>seconds</th></tr>"
    funnel = f"<h2>Funnel</h2>{chart}<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    return funnel + _phases(data.stats.get("phases", []))


def _phases(phases: list[dict[str, Any]]) -> str:
    """Wall time of each phase of the run (a stage of steps, the write) and the cores it ran on; a
    step's own seconds (above) are summed over the workers, so they can exceed its phase's."""
    if not phases:
        return ""
    rows = "".join(
        f'<tr data-phase="{escape(p["phase"])}"><td>{escape(p["phase"])}</td>'
        f"<td class=n>{p['seconds']:,.1f}</td><td class=n>{p['cores']}</td></tr>"
        for p in phases
    )
    head = "<tr><th>phase</th><th class=n>wall seconds</th><th class=n>cores</th></tr>"
    return f"<h3>Time per phase</h3><table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _drops(data: ReportData) -> str:
    parts = ["<h2>Drop reasons</h2>"]
    any_drop = False
    for st in data.stats.get("steps", []):
        for reason, n in sorted(st.get("dropped", {}).items(), key=lambda kv: -kv[1]):
            any_drop = True
            examples = data.examples.get((st["step"], st["op"], reason), [])
            ex = "".join(f"<pre>{escape(e)}</pre>" for e in examples) or '<p class="empty">no examples kept</p>'
            parts.append(
                f'<details data-reason="{escape(reason)}" data-step="{st["step"]}" data-count="{n}">'
                f"<summary>step {st['step']} {escape(st['op'])}: {escape(reason)} — <b>{n:,}</b></summary>"
                f"{ex}</details>"
            )
    if not any_drop:
        parts.append('<p class="empty">nothing was dropped</p>')
    return "".join(parts)


# ---- benchmark leakage (decontaminate's leakage.jsonl) -------------------------------------------
LEAKAGE_SHOWN = 200  # matches listed in report.html; leakage.jsonl holds them all


def _leakage(data: ReportData) -> str:
    """Which record matched which benchmark item, by which mode and score (OUTDIR/leakage.jsonl, one
    line per match), and what each decontaminate step checked or skipped (its counters)."""
    parts = ["<h2>Benchmark leakage</h2>"]
    steps = [st for st in data.stats.get("steps", []) if st.get("op") == "decontaminate"]
    if not steps:  # a leakage.jsonl without such a step is an earlier run's
        return parts[0] + '<p class="empty">no decontaminate step in this run</p>'
    for st in steps:
        counters = st.get("counters") or {}
        named = [(k.split(": ", 1)[0], k.split(": ", 1)[1], n) for k, n in counters.items() if ": " in k]
        checked = [f"{name} ({n:,} items)" for kind, name, n in named if kind == "benchmark items"]
        skipped = [name for kind, name, _ in named if kind in ("benchmark skipped", "benchmark missing")]
        line = f"step {st['step']}: checked {escape(', '.join(checked) or 'no benchmark')}"
        if skipped:
            line += f"; <b class=bad>skipped</b> {escape(', '.join(skipped))}"
        parts.append(f"<p data-leak-step='{st['step']}'>{line}</p>")
    path = data.outdir / "leakage.jsonl"
    rows, by_mode, ids = [], Counter(), set()
    if path.exists():
        with open(path, "rb") as f:
            for line in f:
                r = orjson.loads(line)
                by_mode[r["mode"]] += 1
                ids.add(r["id"])
                if len(rows) < LEAKAGE_SHOWN:
                    rows.append(r)
    if not rows:
        return "".join(parts) + '<p class="empty">no synthetic record matched a benchmark item</p>'
    total = sum(by_mode.values())
    parts.append(
        f"<p><b data-stat='leaked'>{len(ids):,}</b> records matched benchmark items ({total:,} matches; "
        + ", ".join(f"{mode} {n:,}" for mode, n in by_mode.most_common())
        + "): listed in <code>leakage.jsonl</code></p>"
    )
    head = ["record", "field", "record text", "benchmark item", "item text", "mode", "score", "action"]
    body = []
    for r in rows:
        item = f"{r['benchmark']}#{r['index']}"
        cells = [r["id"], r["field"], r["record_text"], item, r["benchmark_text"], r["mode"], r["score"], r["action"]]
        body.append(
            f'<tr data-leak="{escape(str(r["id"]))}" data-item="{escape(item)}" data-mode="{escape(r["mode"])}">'
            + "".join(f"<td>{escape(str(c))}</td>" for c in cells)
            + "</tr>"
        )
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    parts.append(f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    if total > len(rows):
        parts.append(f"<p class='muted'>the first {len(rows):,} of {total:,} matches</p>")
    return "".join(parts)


# ---- evaluation (datamill eval's eval.json, datamill ablate's ablate.json) -----------------------
EVAL_BEGIN, EVAL_END = "<!-- datamill:evaluation -->", "<!-- /datamill:evaluation -->"


def evaluation_files(outdir: Path, extra: tuple[Path, ...] = ()) -> tuple[list[Path], list[Path]]:
    """(eval.json files, ablate.json files) in OUTDIR and its direct subfolders (a recipe's eval: block writes
    OUTDIR/train/eval.json), plus ``extra`` eval.json files (a train: block's ``out`` elsewhere)."""
    found: dict[str, list[Path]] = {}
    for name in ("eval.json", "ablate.json"):
        here = [outdir / name, *sorted(outdir.glob(f"[!.]*/{name}"))]
        found[name] = [p for p in here if p.is_file()]
    for path in extra:
        if path.is_file() and path.resolve() not in {p.resolve() for p in found["eval.json"]}:
            found["eval.json"].append(path)
    return found["eval.json"], found["ablate.json"]


def _read_json(path: Path, required: str) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) and required in value else None


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def evaluation_section(outdir: Path, extra: tuple[Path, ...] = ()) -> str:
    """The held-out scores of models trained on this data: one row per eval.json (loss, perplexity, exact
    match, ROUGE-L, judge win rate), lm-eval's tasks base vs tuned, and each ablation's arms; with bar charts.
    Delimited by ``EVAL_BEGIN`` / ``EVAL_END`` so that ``refresh_evaluation`` can replace it alone."""
    evals, ablations = evaluation_files(outdir, extra)
    parts = [EVAL_BEGIN, "<h2>Evaluation</h2>"]
    rows, skipped = [], []
    for path in evals:
        result = _read_json(path, "loss")
        if result is None:
            skipped.append(_label(outdir, path))
        else:
            rows.append((_label(outdir, path), result))
    if not rows and not ablations:
        parts.append(
            '<p class="empty">no eval.json or ablate.json here (<code>datamill eval -o OUTDIR/eval.json</code>, '
            "a recipe's <code>eval:</code> block, <code>datamill ablate</code>)</p>"
        )
    if rows:
        parts.append(_eval_table(rows))
    for label, result in rows:
        if "lm_eval" in result:
            parts.append(_lm_eval_table(label, result["lm_eval"]))
    for path in ablations:
        result = _read_json(path, "arms")
        if result is None:
            skipped.append(_label(outdir, path))
        else:
            parts.append(_ablation(_label(outdir, path), result))
    parts += [f"<p class=bad>{escape(p)}: not datamill's (no scores read); skipped</p>" for p in skipped]
    parts.append(EVAL_END)
    return "".join(parts)


def _label(outdir: Path, path: Path) -> str:
    return str(path.relative_to(outdir)) if path.is_relative_to(outdir) else str(path)


def _eval_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    head = ["evaluation", "model", "items", "held-out loss", "perplexity", "exact match (strict)",
            "exact match (flexible)", "ROUGE-L", "judge: wins / ties / losses", "win rate (ties ½)"]  # fmt: skip
    body = []
    for label, r in rows:
        loss, em, rouge, judge = r["loss"], r.get("exact_match"), r.get("rouge_l"), r.get("judge")
        model = Path(str(r.get("model"))).name + (f" + {Path(r['adapter']).name}" if r.get("adapter") else "")
        cells = [
            label,
            model,
            f"{loss['items']:,}",
            f"{loss['mean']:.4f}",
            f"{loss['perplexity']:,.2f}",
            f"{_pct(em['strict'])} ({em['correct_strict']}/{em['items']})" if em else "–",
            f"{_pct(em['flexible'])} ({em['correct_flexible']}/{em['items']})" if em else "–",
            f"{rouge['mean']:.4f}" if rouge else "–",
            f"{judge['wins']} / {judge['ties']} / {judge['losses']} of {judge['judged']}" if judge else "–",
            _pct(judge["win_rate_ties_half"]) if judge else "–",
        ]
        body.append(
            f'<tr data-eval="{escape(label)}" data-loss="{loss["mean"]}">'
            + "".join(f"<td{' class=n' if i > 1 else ''}>{escape(c)}</td>" for i, c in enumerate(cells))
            + "</tr>"
        )
    th = "".join(f"<th{' class=n' if i > 1 else ''}>{escape(h)}</th>" for i, h in enumerate(head))
    parts = [
        f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>",
        "<p class='muted'>Loss: mean negative log-likelihood per answer token (lower is better). The judge sees "
        "each pair in both orders: a verdict that flips with the order counts as a tie (the embedded judge "
        "averages both orders' log-odds instead); ties count half.</p>",
        "<h3>Held-out loss (lower is better)</h3>",
        hbars([(label, round(r["loss"]["mean"], 4)) for label, r in rows]),
    ]
    maths = [(label, round(100 * r["exact_match"]["strict"], 1)) for label, r in rows if "exact_match" in r]
    if maths:
        parts += ["<h3>Exact match, strict (%)</h3>", hbars(maths, unit=" %", color=PALETTE[2])]
    judged = [(label, r["judge"]) for label, r in rows if "judge" in r]
    if judged:
        bars = [(f"{label}: {k}", j[k]) for label, j in judged for k in ("wins", "ties", "losses")]
        parts += ["<h3>Judge: the tuned model against its base</h3>", hbars(bars, color=PALETTE[1])]
    return "".join(parts)


def _lm_eval_table(label: str, lm: dict[str, Any]) -> str:
    """lm-evaluation-harness's metrics per task, the base model next to the tuned one; scores between 0 and 1
    (accuracies, exact match) also drawn, unbounded ones (perplexity) only listed."""
    rows, bars = [], []
    for task, by_model in lm["tasks"].items():
        base, tuned = by_model.get("base", {}), by_model.get("tuned", {})
        for metric in sorted(set(base) | set(tuned)):
            b, t = base.get(metric), tuned.get(metric)
            delta = f"{t - b:+.4g}" if b is not None and t is not None else "–"
            shown = ("–" if v is None else f"{v:.4g}" for v in (b, t))
            rows.append((f"{task} · {metric}", by_model.get("items") or "–", *shown, delta))
            scored = [(who, v) for who, v in (("base", b), ("tuned", t)) if v is not None]
            if all(0 <= v <= 1 for _, v in scored):
                bars.append(f"<p class='muted'>{escape(task)} · {escape(metric)}</p>{hbars(scored, color=PALETTE[4])}")
    limit = lm.get("limit")
    parts = [
        f"<h3>lm-eval tasks ({escape(label)}; {f'the first {limit:,} items' if limit else 'every item'})</h3>",
        _table(["task · metric", "items", "base", "tuned", "Δ"], rows, "lm-eval"),
    ]
    return "".join(parts + bars)


def _ablation(label: str, result: dict[str, Any]) -> str:
    """An ablation's arms (``datamill ablate``'s own columns) and their held-out loss and win rate."""
    from datamill.train.ablate import columns

    cols = columns(result)
    arms = result["arms"]
    body = [(a["name"], *(cell(a) for _, cell in cols[1:])) for a in arms]
    parts = [
        f"<h3>Ablation {escape(str(result.get('name', '')))} ({escape(label)}): one held-out set, "
        f"{result.get('heldout', {}).get('items', 0):,} items</h3>",
        _table([h for h, _ in cols], body, "arm"),
        hbars([(f"{a['name']} held-out loss", round(a["heldout_loss"]["mean"], 4)) for a in arms]),
    ]
    judged = [(a["name"], round(100 * (a["judge_vs"]["win_rate_ties_half"] or 0), 1)) for a in arms if "judge_vs" in a]
    if judged:
        parts += [f"<p>win rate against {escape(arms[0]['name'])} (%, ties half)</p>", hbars(judged, unit=" %")]
    return "".join(parts)


def refresh_evaluation(outdir: str | Path, extra: tuple[Path, ...] = ()) -> Path | None:
    """Replace the evaluation section of OUTDIR/report.html (after a recipe's eval: block wrote its eval.json)
    and nothing else; returns the page, or None when OUTDIR has no report.html with that section."""
    out = Path(outdir)
    path = out / "report.html"
    if not path.is_file():
        return None
    html = path.read_text(encoding="utf-8")
    start, end = html.find(EVAL_BEGIN), html.find(EVAL_END)
    if start < 0 or end < start:
        return None
    outputs.check_replace(path)
    outputs.write_text(path, html[:start] + evaluation_section(out, extra) + html[end + len(EVAL_END) :], True)
    return path


# ---- dataset card --------------------------------------------------------------------------------


def _size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return label
    return "n>1M"


def render_card(data: ReportData, license: str = "other") -> str:
    s, lock = data.stats, data.lock
    recipe = lock.get("recipe") or {}
    resolved = lock.get("resolved") or {}
    langs = [lang for lang, _ in data.langs.most_common() if lang in ("en", "zh")] or ["en"]
    kinds = set(data.kinds)
    tasks = ["text-generation"] + (["question-answering"] if "sft" in kinds else [])
    front = {
        "pretty_name": s.get("recipe", data.dataset_name),
        "license": license,
        "language": langs,
        "task_categories": tasks,
        "size_categories": [_size_category(s.get("kept", 0))],
        "tags": ["datamill", *sorted(kinds)],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data-*"}]}],
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip(), "---", ""]
    lines += [f"# {front['pretty_name']}", ""]
    desc = recipe.get("description") or "Training data built with datamill from the sources below."
    lines += [desc, ""]
    lines += [
        "## Summary",
        "",
        "| read | generated | kept | dropped | quarantined |",
        "|---:|---:|---:|---:|---:|",
        f"| {s.get('input', 0):,} | {s.get('generated', 0):,} | {s.get('kept', 0):,} | {s.get('dropped', 0):,} "
        f"| {s.get('quarantined', 0):,} |",
        "",
    ]
    lines += ["## Sources", "", "| file | bytes | blake2b |", "|---|---:|---|"]
    for fp in lock.get("input_fingerprints") or []:
        lines.append(f"| `{fp.get('path')}` | {fp.get('size', 0):,} | `{fp.get('blake2b', '')}` |")
    lines += ["", "Each source keeps its own licence; check them before publishing.", ""]
    lines += [
        "## Processing steps",
        "",
        "From `recipe.lock.yaml` (options as resolved), with the records each step kept:",
        "",
    ]
    counts = {st["step"]: st for st in s.get("steps", [])}
    for i, step in enumerate(resolved.get("steps") or recipe.get("steps") or []):
        options = {k: v for k, v in step.items() if k != "op" and v is not None}
        st = counts.get(i, {})
        dropped = ", ".join(f"{r}: {n:,}" for r, n in (st.get("dropped") or {}).items())
        flow = f" — in {st.get('in', 0):,}, out {st.get('out', 0):,}" if st else ""
        lines.append(f"{i + 1}. `{step.get('op')}` {json.dumps(options, ensure_ascii=False)}{flow}")
        if dropped:
            lines.append(f"   - dropped: {dropped}")
    lines += ["", "## Statistics", ""]
    lines += [f"- languages: {', '.join(f'{k} {v:,}' for k, v in data.langs.most_common())}"]
    lines += [f"- kinds: {', '.join(f'{k} {v:,}' for k, v in data.kinds.most_common())}"]
    if data.response_len:
        ordered = sorted(data.response_len)
        if data.length_sample:
            lines.append(
                f"- response {data.length_unit}, {data.sample_note(data.length_sample)}: "
                f"median {ordered[len(ordered) // 2]:,}, max in the sample {ordered[-1]:,}"
            )
        else:
            lines.append(f"- response {data.length_unit}: median {ordered[len(ordered) // 2]:,}, max {ordered[-1]:,}")
    if data.splits:
        lines.append(f"- splits: {', '.join(f'{k} {v:,}' for k, v in sorted(data.splits.items()))}")
    lines += ["", "## Use", ""]
    lines += [
        f"LLaMA-Factory: `dataset: {data.dataset_name}` with `dataset_dir` set to this directory "
        "(the entry is in `dataset_info.json`). Files: " + ", ".join(f"`{f}`" for f in data.data_files),
        "",
        "## License",
        "",
        f"`{license}` — set it to the most restrictive licence among the sources.",
        "",
        "See `report.html` for the full report (funnel, drop reasons with examples, length histograms).",
        "",
    ]
    return "\n".join(lines)


def write_report(
    outdir: str | Path,
    tokenizer: str = "embedded",
    license: str = "other",
    overwrite: bool = False,
    *,
    tally: list[_Partial] | None = None,
    sample: int = SAMPLE_SIZE,
    progress: Progress | None = None,
) -> tuple[Path, Path]:
    """Write OUTDIR/report.html and OUTDIR/README.md (never over files datamill did not write, unless
    ``overwrite``); returns their paths. ``tally``, ``sample``, ``progress``: see ``collect``."""
    out = Path(outdir)
    html_path, card_path = out / "report.html", out / "README.md"
    for path in (html_path, card_path):
        outputs.check_replace(path, overwrite)
    data = collect(outdir, tokenizer, tally=tally, sample=sample, progress=progress)
    outputs.write_text(html_path, render_html(data), overwrite)
    outputs.write_text(card_path, render_card(data, license), overwrite)
    return html_path, card_path


def report_command(
    outdir: Annotated[str, typer.Argument(help="output directory of a datamill run")],
    tokenizer: Annotated[str, typer.Option(help="embedded | tokenizer.json path | .gguf path")] = "embedded",
    license: Annotated[str, typer.Option(help="licence for the dataset card")] = "other",
    sample: Annotated[
        int, typer.Option(help="records whose token lengths are measured when they carry no meta.tokens")
    ] = SAMPLE_SIZE,
    overwrite: Annotated[bool, typer.Option(help="Replace a report.html / README.md datamill did not write.")] = False,
) -> None:
    """Regenerate OUTDIR/report.html and OUTDIR/README.md (dataset card) from a run's outputs."""
    try:
        html_path, card_path = write_report(outdir, tokenizer, license, overwrite, sample=max(sample, 1))
    except DatamillError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {html_path} and {card_path}")

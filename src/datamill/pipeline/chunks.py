"""The unit of work: one chunk of records through a run of mapper/filter steps.

A worker (process or Ray task) gets a ``ChunkTask``, runs it and writes the chunk's kept records,
dropped records, quarantined rows and stats into the stage directory, each atomically; the stats
file is written last and marks the chunk complete, so a killed run redoes only incomplete chunks.

A mapper or filter may define ``prepare(records, chunk)``: called once per chunk, before its per-record
calls, with the records that reach the step and the chunk's number — to work on them in batches
(decontaminate embeds them) or write the chunk's own part of a file under its workdir (before the stats
file, so a redone chunk rewrites it).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from datamill import formats, ops, validate
from datamill.errors import DatamillError, RecordError
from datamill.io import spans
from datamill.io.atomic import write_bytes_atomic
from datamill.io.spans import Span
from datamill.io.writers import JsonlWriter
from datamill.llm import LLMClient, LLMError, StructuredOutputError
from datamill.ops.base import Filter, Generator, Mapper, Op, OpContext
from datamill.pipeline.pieces import OutputSpec, PieceWriter
from datamill.record import Record
from datamill.results import Drop, drop_entry
from datamill.trace import lineage

# One input row: (file index, format name, line or None, index in file, parsed row or None, error, raw)
InputRow = tuple[int, str, int | None, int, dict[str, Any] | None, str | None, Any]


@dataclass(frozen=True)
class Segment:
    """Stage 0: input rows the worker reads itself, a byte range of one JSON Lines file (io/spans.py)."""

    file: int  # index into ChunkTask.files
    format: str
    encoding: str
    span: Span


InputPart = list[InputRow] | Segment  # rows the runner read, or a range of a file for the worker to read


@dataclass
class ChunkTask:
    stage: int
    chunk: int
    stage_dir: str
    seed: int
    work_root: str
    steps: list[tuple[int, str, dict[str, Any]]]  # (step index, op name, options)
    files: list[str] = field(default_factory=list)  # stage 0: input paths, by file index
    parts: list[InputPart] = field(default_factory=list)  # stage 0: the input rows, in order
    source: str | None = None  # later stages: the previous stage's chunk file
    run: str = ""  # the run's fingerprint, kept in the chunk's stats: a resume reuses only its own chunks
    trace: str = "changes"  # output.trace: how much of a rewritten field meta.lineage keeps (changes | full)
    output: OutputSpec | None = None  # the last stage: write the kept records as output pieces (pieces.py)
    records: bool = True  # write the kept records as a chunk file (the next stage or the report reads it)
    precompute: tuple[int, str, dict[str, Any]] | None = None  # the next (global) step's per-chunk work (Global)


def chunk_name(chunk: int) -> str:
    return f"chunk-{chunk:06d}"


def precomputed_path(stage_dir: Path, chunk: int, step: int) -> Path:
    """What the global step ``step`` precomputed for this chunk of the stage before it."""
    return stage_dir / f"{chunk_name(chunk)}.pre-{step:03d}.bin"


def stats_path(stage_dir: Path, chunk: int) -> Path:
    return stage_dir / f"{chunk_name(chunk)}.stats.json"


def read_chunk(path: Path):
    with open(path, "rb") as f:
        for line in f:
            yield Record.from_dict(orjson.loads(line))


_OPS_CACHE: dict[tuple, list[tuple[int, Op]]] = {}


def build_ops(steps: list[tuple[int, str, dict[str, Any]]], seed: int, work_root: str) -> list[tuple[int, Op]]:
    key = (orjson.dumps(steps, option=orjson.OPT_SORT_KEYS), seed, work_root)
    if key not in _OPS_CACHE:
        built = []
        for index, name, options in steps:
            cls = ops.get(name)
            context = OpContext(seed=seed, step=index, workdir=Path(work_root) / f"step-{index:03d}")
            built.append((index, cls(cls.Config.model_validate(options), context)))
        _OPS_CACHE[key] = built
    return _OPS_CACHE[key]


def _input_rows(task: ChunkTask) -> Iterator[InputRow]:
    for part in task.parts:
        if isinstance(part, Segment):
            for r in spans.span_rows(Path(task.files[part.file]), part.encoding, part.span):
                yield (part.file, part.format, r.line, r.index, r.row, r.error, r.raw)
        else:
            yield from part


def _records_from_rows(task: ChunkTask, quarantine: JsonlWriter) -> tuple[list[Record], int]:
    """Stage 0: rows → records, and how many rows there were; unreadable or invalid rows go to quarantine."""
    out, n = [], 0
    for file_index, fmt_name, line, index, row, error, raw in _input_rows(task):
        n += 1
        source = task.files[file_index]
        if row is not None:
            try:
                rec = formats.get(fmt_name).to_record(row)
                bad = validate.errors(validate.check(rec))
                if bad:
                    error, raw = "; ".join(p.message for p in bad), row
                else:
                    rec.meta["source"], rec.meta["index"] = source, index
                    if line is not None:
                        rec.meta["line"] = line
                    rec.id = rec.id or rec.compute_id()
                    out.append(rec)
                    continue
            except RecordError as e:
                error, raw = f"{fmt_name}: {e}", row
        entry: dict[str, Any] = {"file": source}
        if line is not None:
            entry["line"] = line
        quarantine.write({**entry, "index": index, "error": error, "raw": raw})
    return out, n


def run_chunk(task: ChunkTask) -> dict[str, Any]:
    """Process one chunk and write its files; returns its stats (also written to disk)."""
    stage_dir = Path(task.stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    name = chunk_name(task.chunk)
    kept = JsonlWriter(stage_dir / f"{name}.jsonl") if task.records else None
    dropped = JsonlWriter(stage_dir / f"{name}.dropped.jsonl")
    quarantine = JsonlWriter(stage_dir / f"{name}.quarantine.jsonl")
    output = PieceWriter(task.output, stage_dir, name) if task.output is not None else None
    writers = [w for w in (kept, dropped, quarantine, output) if w is not None]
    try:
        if task.source is None:
            records, n_in = _records_from_rows(task, quarantine)
        else:
            records = list(read_chunk(Path(task.source)))
            n_in = len(records)
        step_stats = []
        for index, op in build_ops(task.steps, task.seed, task.work_root):
            records, stats = _apply(op, index, records, dropped, task.trace == "full", task.chunk)
            step_stats.append(stats)
        if task.precompute is not None:
            ((step, op),) = build_ops([task.precompute], task.seed, task.work_root)
            op.precompute(records, precomputed_path(stage_dir, task.chunk, step))
        for rec in records:
            if kept is not None:
                kept.write(rec.to_dict())
            if output is not None:
                output.write(rec)  # after the chunk file: it takes meta.lineage out of the record
        for w in writers:
            w.commit()
    except BaseException:
        for w in writers:
            w.abort()
        raise
    stats = {
        "chunk": task.chunk,
        "run": task.run,
        "input": n_in,
        "quarantined": quarantine.count,
        "kept": len(records),
        "steps": step_stats,
    }
    if output is not None:
        stats["output"] = output.stats()
    write_bytes_atomic(stats_path(stage_dir, task.chunk), orjson.dumps(stats))
    return stats


def _apply(
    op: Op, index: int, records: list[Record], dropped: JsonlWriter, full: bool = False, chunk: int = 0
) -> tuple[list[Record], dict[str, Any]]:
    start = time.perf_counter()
    reasons: Counter[str] = Counter()
    out: list[Record] = []
    generated = 0
    rec = None
    try:
        prepare = getattr(op, "prepare", None) if isinstance(op, Mapper | Filter) else None
        if prepare is not None:  # the per-chunk batch hook (module docstring)
            prepare(records, chunk)
        if isinstance(op, Mapper):
            for rec in records:
                before = lineage.snapshot(rec)
                rec = op.map(rec)
                lineage.note(rec, before, index, op.name, full)
                out.append(rec)
        elif isinstance(op, Filter):
            for rec in records:
                reason = op.reason(rec)
                if reason is None:
                    out.append(rec)
                else:
                    reasons[reason] += 1
                    dropped.write(drop_entry(rec, index, op.name, reason))
        elif isinstance(op, Generator):
            befores = [lineage.snapshot(rec) for rec in records]
            for rec, before, results in zip(records, befores, asyncio.run(_generate_all(op, records)), strict=True):
                lineage.note(rec, before, index, op.name, full)  # an input handed back changed (e.g. answer cut)
                generated += _settle(op, index, rec, results, out, reasons, dropped)
        else:
            raise DatamillError(f"step {index} ({op.name}) is a {op.kind} and cannot run on a chunk")
    except DatamillError:
        raise
    except Exception as e:
        where = (
            f" on record {rec.id} ({rec.meta.get('source')}:{rec.meta.get('line', rec.meta.get('index'))})"
            if rec is not None
            else ""
        )
        raise DatamillError(f"step {index} ({op.name}) failed{where}: {e!r}") from e
    stats = {
        "step": index,
        "op": op.name,
        "in": len(records),
        "generated": generated,
        "out": len(out),
        "dropped": dict(reasons),
        "seconds": time.perf_counter() - start,
        "counters": op.take_counters(),
    }
    return out, stats


async def _generate_all(op: Generator, records: list[Record]) -> list[list[Record | Drop]]:
    """Every record of the chunk through ``op.agenerate``, at most ``llm.concurrency`` in flight; a record
    whose LLM calls fail for good is dropped with the reason instead of failing the chunk."""
    if not op.uses_llm:
        return [await op.agenerate(rec, None) for rec in records]

    async def one(rec: Record, llm: LLMClient, gate: asyncio.Semaphore) -> list[Record | Drop]:
        async with gate:
            try:
                return await op.agenerate(rec, llm)
            except (LLMError, StructuredOutputError) as e:
                return [Drop(rec, f"llm: {e.reason}")]

    async with LLMClient(op.config.llm, seed=op.context.seed) as llm:  # sampled requests seeded from the recipe
        gate = asyncio.Semaphore(max(1, op.config.llm.concurrency))
        try:
            return list(await asyncio.gather(*(one(rec, llm, gate) for rec in records)))
        finally:
            op.add_usage(llm.usage)


def _settle(
    op: Op,
    index: int,
    rec: Record,
    results: list[Record | Drop],
    out: list[Record],
    reasons: Counter[str],
    dropped: JsonlWriter,
) -> int:
    """Route one record's results; returns how many records the op made. Checks the input is accounted."""
    made, seen = 0, False
    for item in results:
        target = item.record if isinstance(item, Drop) else item
        if target is rec:
            seen = True
        else:
            made += 1
            target.id = target.id or target.compute_id()
            lineage.made(target, index, op.name)
        if isinstance(item, Drop):
            reasons[item.reason] += 1
            dropped.write(drop_entry(item.record, index, op.name, item.reason))
        else:
            out.append(item)
    if not seen:
        raise DatamillError(f"step {index} ({op.name}) neither kept nor dropped record {rec.id}")
    return made


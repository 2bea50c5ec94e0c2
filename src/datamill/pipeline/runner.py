"""Run a recipe: read inputs in chunks, push them through the steps, write the outputs.

Steps are grouped into stages: a run of mapper/filter steps is one parallel stage (chunks fan out
to the executor); each global step is a stage of its own that streams over the previous stage's
chunks in order. Every stage writes its chunks under ``OUTDIR/.datamill-work/`` atomically, with a
stats file per chunk as the completion marker, so a killed run resumes where it stopped and ends
with the same bytes as an uninterrupted one. The final stage's records are written in the chosen
format as ``OUTDIR/data-*``, with dropped.jsonl, quarantine.jsonl, stats.json and recipe.lock.yaml.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson
import xxhash
import yaml

from datamill import __version__, dataset_info, formats, ingest, ops
from datamill.dataset import DatasetWriter, detect_format
from datamill.errors import DatamillError, FileError
from datamill.io import outputs
from datamill.io.readers import RawRow, encoding_of, iter_rows
from datamill.io.spans import Spans, spannable
from datamill.io.writers import JsonlWriter
from datamill.ops.base import OpContext
from datamill.pipeline import executors, pieces
from datamill.pipeline.chunks import (
    ChunkTask,
    InputPart,
    InputRow,
    Segment,
    chunk_name,
    precomputed_path,
    read_chunk,
    run_chunk,
    stats_path,
)
from datamill.pipeline.pieces import OutputSpec
from datamill.pipeline.recipe import Recipe, Step
from datamill.record import Record
from datamill.report.build import Pass, chunk_records
from datamill.results import Drop, Generated, drop_entry
from datamill.trace import lineage

WORK = ".datamill-work"
LOCK = "recipe.lock.yaml"
RUN_LOCK = ".datamill-run.lock"  # flock'ed while a run writes the folder
LINEAGE = "lineage.jsonl"  # per kept record: id, data file, row, meta (with meta.lineage) — datamill trace
INPUT_FILE = re.compile(r"chunk-\d+(?:\.pre-\d+\.bin|\.jsonl)")  # a chunk's kept records, or precomputed on them
FIXED_OUTPUTS = ("dropped.jsonl", "quarantine.jsonl", "stats.json", LOCK, "report.html", "README.md", LINEAGE)
HASH_BLOCK = 8 << 20
LIBRARIES = ("orjson", "pyarrow", "pydantic", "PyYAML", "datasets", "ray")

Progress = Callable[[str, int, int | None], None]  # (stage label, records done, total or None)


@dataclass
class Stage:
    index: int
    kind: str  # "chunks" (mapper/filter steps, parallel) or "global" (one global step)
    steps: list[Step]

    @property
    def label(self) -> str:
        names = ", ".join(s.op for s in self.steps) or "read + validate"
        return f"stage {self.index}: {names}"


class Shard(NamedTuple):
    """One output file: its split (None without a split step), its number within the split, its writer."""

    split: str | None
    number: int
    writer: DatasetWriter


@dataclass
class RunResult:
    outdir: Path
    stats: dict[str, Any]
    up_to_date: bool = False
    resumed_chunks: int = 0
    shards: list[str] = field(default_factory=list)


def plan(steps: list[Step]) -> list[Stage]:
    """Stage 0 always reads the input (with the leading mapper/filter steps, if any)."""
    stages = [Stage(0, "chunks", [])]
    for step in steps:
        if step.kind == "global":
            stages.append(Stage(len(stages), "global", [step]))
        elif stages[-1].kind == "chunks":
            stages[-1].steps.append(step)
        else:
            stages.append(Stage(len(stages), "chunks", [step]))
    return stages


def fingerprint_file(path: Path) -> dict[str, Any]:
    """Size, mtime and a hash of every byte (xxh3-128, several GB/s): an edit that keeps the size and
    the mtime (``cp -p``, ``rsync -t``, ``touch -r``) still changes it, so a resume never serves stale output."""
    if path.is_dir():
        parts = [fingerprint_file(p) for p in sorted(path.rglob("*")) if p.is_file()]
        return {
            "path": str(path),
            "files": len(parts),
            "xxh3_128": xxhash.xxh3_128_hexdigest(orjson.dumps(parts)),
        }
    st = path.stat()
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            h.update(block)
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "xxh3_128": h.hexdigest()}


def _versions() -> dict[str, str]:
    out = {"datamill": __version__, "python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


class Runner:
    """``overwrite`` lets the run replace files in OUTDIR that datamill did not write (refused by default);
    ``input_fingerprints`` are the inputs' fingerprints when another Runner of the same inputs took them."""

    def __init__(
        self,
        recipe: Recipe,
        progress: Progress | None = None,
        keep_work: bool = False,
        ray_address: str | None = None,
        overwrite: bool = False,
        input_fingerprints: list[dict[str, Any]] | None = None,
    ):
        self.recipe = recipe
        self.overwrite = overwrite
        self.outdir = Path(recipe.output.path)
        self.work = self.outdir / WORK
        self.progress = progress or (lambda label, done, total: None)
        self.keep_work = keep_work
        self.ray_address = ray_address
        self.stages = plan(recipe.steps)
        self.inputs = input_fingerprints or [fingerprint_file(f.path) for f in recipe.inputs]
        self.fingerprint = self._fingerprint()
        self.resumed = 0
        self.planned = _Planned()  # how far stage 0's planning has gone: its total, or an estimate of it
        self.phases: list[dict[str, Any]] = []
        self.unreadable: list[dict[str, Any]] = []  # files that held no readable record: file, error

    def _fingerprint(self) -> str:
        r = self.recipe
        config = {
            "steps": [(s.index, s.op, s.config.model_dump(mode="json")) for s in r.steps],
            "inputs": [(str(f.path), f.format, f.encoding, *([f.options] if f.options else [])) for f in r.inputs],
            "output": r.output.model_dump(mode="json"),
            "seed": r.seed,
            "chunk_size": r.chunk_size,
            "fingerprints": self.inputs,
            "datamill": __version__,
        }
        return hashlib.blake2b(orjson.dumps(config, option=orjson.OPT_SORT_KEYS), digest_size=16).hexdigest()

    # ---- entry point -------------------------------------------------------------------------
    def run(self) -> RunResult:
        self._claim_outdir()
        with self._exclusive() as lock:
            previous = self._finished_lock()
            if previous is not None:
                stats = json.loads((self.outdir / "stats.json").read_text(encoding="utf-8"))
                return RunResult(self.outdir, stats, up_to_date=True, shards=previous.get("outputs", []))
            _note_pid(lock)
            self._prepare_workdir()
            executor = executors.make(self.recipe.executor, self.recipe.workers, self.ray_address)
            try:
                for stage in self.stages:
                    with self._phase(stage.label, executor.workers if stage.kind == "chunks" else 1):
                        if stage.kind == "chunks":
                            self._run_chunk_stage(stage, executor)
                        else:
                            self._run_global_stage(stage)
                    if not self.keep_work and stage.index:
                        self._release_input(stage)
            finally:
                executor.close()
            result = self._assemble()
            if not self.keep_work:
                shutil.rmtree(self.work, ignore_errors=True)
            return result

    @contextlib.contextmanager
    def _phase(self, name: str, cores: int) -> Iterator[None]:
        """Time one phase of the run (a stage, the write, the report) for stats.json and the funnel."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases.append({"phase": name, "seconds": round(time.perf_counter() - start, 3), "cores": cores})

    def check_outdir(self) -> bool:
        """What a run checks of OUTDIR before any work, writing nothing (for ``--dry-run``): a FileError for
        one it would refuse; True when it already holds this run's finished output (a run would do nothing)."""
        self._claim_outdir()
        return self._finished_lock() is not None

    def _claim_outdir(self) -> None:
        """Refuse, before any work, an OUTDIR whose files the run would replace but datamill did not write."""
        outputs.refuse_unsafe(self.outdir)
        if self.outdir.exists() and not self.outdir.is_dir():
            raise FileError(f"{self.outdir}: exists and is not a folder; a run writes a folder of outputs")
        out = self.outdir.resolve()
        for spec in self.recipe.inputs:
            p = spec.path.resolve()
            if p == out or (out in p.parents and (p.name in FIXED_OUTPUTS or p.name.startswith("data-"))):
                raise FileError(f"{spec.path}: an input that the run's outputs in {self.outdir} would replace")
        if not self.outdir.is_dir() or self.overwrite:
            return
        existing = [*sorted(self.outdir.glob("data-*")), *(self.outdir / n for n in FIXED_OUTPUTS)]
        foreign = [p.name for p in existing if os.path.lexists(p) and not outputs.is_ours(p)]
        if foreign:
            listing = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise FileError(
                f"{self.outdir}: holds {listing}, which datamill did not write (or which changed since) and a run "
                "would replace; choose a new or empty output folder, or pass --overwrite"
            )

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[IO[str]]:
        """Hold an exclusive lock on OUTDIR for the whole run: a second run into it is refused, naming the
        first one's pid. The lock is the kernel's (flock), so a killed run never leaves it behind."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        with open(self.outdir / RUN_LOCK, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "?"
                raise FileError(
                    f"{self.outdir}: another datamill run (pid {holder}) is writing here; wait for it to end "
                    "or choose another output folder"
                ) from None
            yield f

    def _finished_lock(self) -> dict[str, Any] | None:
        lock = self.outdir / LOCK
        if not lock.exists() or not (self.outdir / "stats.json").exists():
            return None
        try:
            data = yaml.safe_load(lock.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            return None
        if not isinstance(data, dict) or data.get("fingerprint") != self.fingerprint:
            return None
        if not all((self.outdir / name).exists() for name in data.get("outputs", [])):
            return None
        return data

    def _prepare_workdir(self) -> None:
        marker = self.work / "fingerprint"
        if self.work.exists() and (not marker.exists() or marker.read_text() != self.fingerprint):
            shutil.rmtree(self.work)  # another recipe or changed inputs: start over
        self.work.mkdir(parents=True, exist_ok=True)
        marker.write_text(self.fingerprint)

    def stage_dir(self, stage: Stage) -> Path:
        return self.work / f"stage-{stage.index:02d}"

    # ---- stages ------------------------------------------------------------------------------
    def _tasks(self, stage: Stage) -> Iterator[ChunkTask]:
        sdir = self.stage_dir(stage)
        steps = [(s.index, s.op, s.config.model_dump(mode="json")) for s in stage.steps]
        common = dict(
            stage=stage.index,
            stage_dir=str(sdir),
            seed=self.recipe.seed,
            work_root=str(self.work),
            steps=steps,
            run=self.fingerprint,
            trace=self.recipe.output.trace,
        )
        after = self.stages[stage.index + 1] if stage.index + 1 < len(self.stages) else None
        if after is not None and after.kind == "global" and hasattr(ops.get(after.steps[0].op), "precompute"):
            step = after.steps[0]  # its per-record work runs here, on all cores (ops.base.Global)
            common["precompute"] = (step.index, step.op, step.config.model_dump(mode="json"))
        if self._joins_pieces(stage):  # the last stage's workers write the output rows themselves
            out = self.recipe.output
            at = len(self.recipe.steps)  # the output's step number
            common["output"] = OutputSpec(out.format, str(self.outdir), out.split_key, out.media_paths, at)
            common["records"] = out.report  # the report's pass reads the kept records
        if stage.index == 0:
            files = [str(f.path) for f in self.recipe.inputs]
            for i, parts in enumerate(self._input_chunks()):
                if not self._chunk_done(sdir, i):
                    yield ChunkTask(chunk=i, files=files, parts=parts, **common)
        else:
            prev = self.stage_dir(self.stages[stage.index - 1])
            for i in range(self._chunk_count(self.stages[stage.index - 1])):
                if not self._chunk_done(sdir, i):
                    yield ChunkTask(chunk=i, source=str(prev / f"{chunk_name(i)}.jsonl"), **common)

    def _joins_pieces(self, stage: Stage) -> bool:
        """Whether the shards are joined from output pieces the last stage's workers wrote (pieces.py)."""
        return stage is self.stages[-1] and stage.kind == "chunks" and pieces.can_join(self.recipe.output.container)

    def _chunk_done(self, sdir: Path, chunk: int) -> bool:
        """A chunk is reused only when its stats file says this very run (recipe + inputs) made it."""
        try:
            done = orjson.loads(stats_path(sdir, chunk).read_bytes()).get("run") == self.fingerprint
        except (OSError, orjson.JSONDecodeError):
            return False
        self.resumed += done
        return done

    def _input_chunks(self) -> Iterator[list[InputPart]]:
        """The input in chunks of ``chunk_size`` rows: rows read here, or byte ranges of a JSON Lines file
        that the worker reads (the planner only counts line breaks)."""
        size, planned = self.recipe.chunk_size, self.planned
        parts: list[InputPart] = []
        room = size
        for item in self._input_items():
            if isinstance(item, _SpannedFile):
                while (span := item.planner.take(room)) is not None:
                    parts.append(Segment(item.file, item.format, item.planner.encoding, span))
                    room -= span.rows
                    planned.rows, planned.bytes = planned.rows + span.rows, planned.bytes + span.end - span.start
                    if not room:
                        yield parts
                        parts, room = [], size
                continue
            if not parts or isinstance(parts[-1], Segment):
                parts.append([])
            parts[-1].append(item)
            room -= 1
            planned.rows, planned.unsized = planned.rows + 1, True
            if not room:
                yield parts
                parts, room = [], size
        planned.done = True
        if parts:
            yield parts

    def _stage0_total(self) -> int | None:
        """Stage 0's rows once its planning is through; before, while every row so far came from byte ranges,
        the rows planned scaled by the input's bytes (for the progress bar's time left)."""
        p = self.planned
        if p.done:
            return p.rows
        sizes = [f.get("size") for f in self.inputs]
        if p.unsized or not p.bytes or None in sizes:
            return None
        return max(p.rows, round(p.rows * sum(sizes) / p.bytes))

    def _input_items(self) -> Iterator[InputRow | _SpannedFile]:
        self.unreadable = list(self.recipe.unreadable)
        for file_index, spec in enumerate(self.recipe.inputs):
            if ingest.is_pipeline_document(spec.path, spec.format):  # PDF, DOCX, HTML …: one row per section
                rows, fmt = self._document_rows(spec.path, spec.format, spec.options), "datamill"
            else:
                rows, fmt = self._dataset_rows(spec)
            if isinstance(rows, Spans):
                yield _SpannedFile(file_index, fmt, rows)
                continue
            for r in rows:
                yield _input_row(file_index, fmt, r)

    def _file_failed(self, path: Path, error: str) -> None:
        """A file (or the rest of one) that yields no records: counted as a file, not as records."""
        self.unreadable.append({"file": str(path), "error": error})

    def _document_rows(self, path: Path, fmt: str | None = None, options: dict | None = None) -> Iterator[RawRow]:
        # a bad archive member, a code tree's unreadable file or a dump's bad row is a quarantined row
        archive = (ingest.warc.is_archive(path) and path.is_file()) or fmt == "code"
        archive = archive or ingest.quarantines_rows(path, fmt)
        for r in ingest.raw_rows(path, fmt, source_options=options):
            if r.row is None and not archive:
                self._file_failed(path, r.error or "unreadable")
            else:
                yield r

    def _dataset_rows(self, spec) -> tuple[Iterator[RawRow] | Spans, str]:
        """The rows of a dataset file (or, for plain JSON Lines, its planner of byte ranges) and its format.
        A file that is no dataset is read as a document when ingest knows its type, else it is an
        unreadable file; a file that breaks part-way keeps the rows before the break and counts the rest
        as an unreadable file part."""
        raw_rows = iter_rows(spec.path, spec.encoding)
        try:
            head = list(itertools.islice(raw_rows, 100))
            fmt = (formats.get(spec.format) if spec.format else detect_format(spec.path, head)) if head else None
        except (DatamillError, OSError) as e:
            if spec.path.suffix.lower() in ingest.EXTENSIONS:
                return self._document_rows(spec.path), "datamill"
            self._file_failed(spec.path, str(e))
            return iter(()), "datamill"
        encoding = encoding_of(spec.path, spec.encoding) if head else None
        if encoding is not None and spannable(spec.path, encoding):
            raw_rows.close()
            return Spans(spec.path, encoding), fmt.name  # the workers read it, a byte range each

        def rows() -> Iterator[RawRow]:
            n = 0
            try:
                for n, r in enumerate(itertools.chain(head, raw_rows), 1):  # noqa: B007 - n counts rows read
                    yield r
            except (DatamillError, OSError) as e:
                self._file_failed(spec.path, f"{e} (the {n} rows before it were read)")

        return rows(), fmt.name if fmt else "datamill"

    def _chunk_count(self, stage: Stage) -> int:
        return len(list(self.stage_dir(stage).glob("chunk-*.stats.json")))

    def _run_chunk_stage(self, stage: Stage, executor: executors.Executor) -> None:
        total = self._stage_input_total(stage)
        done = self._done_records(stage)
        self.progress(stage.label, done, total)
        for stats in executor.map(run_chunk, self._tasks(stage)):
            done += stats["input"]
            if stage.index == 0:
                total = self._stage0_total()
            self.progress(stage.label, done, total)
            _maybe_crash()
        if stage.index == 0:  # the planning is through now: the exact total
            self.progress(stage.label, done, self._stage0_total())

    def _release_input(self, stage: Stage) -> None:
        """Once a stage is through, its input — the records the stage before kept, and what was
        precomputed on them — is needed neither to resume nor for the outputs (those read every stage's
        drops and the last stage's records): removing it keeps the work folder near two copies of the
        data however many stages there are."""
        for path in self.stage_dir(self.stages[stage.index - 1]).iterdir():
            if INPUT_FILE.fullmatch(path.name):
                path.unlink()

    def _stage_input_total(self, stage: Stage) -> int | None:
        if stage.index == 0:
            return None
        return sum(s["kept"] for s in self._stage_stats(self.stages[stage.index - 1]))

    def _done_records(self, stage: Stage) -> int:
        return sum(s["input"] for s in self._stage_stats(stage))

    def _stage_stats(self, stage: Stage) -> list[dict[str, Any]]:
        sdir = self.stage_dir(stage)
        paths = sorted(sdir.glob("chunk-*.stats.json")) if sdir.exists() else []
        return [orjson.loads(p.read_bytes()) for p in paths]

    def _run_global_stage(self, stage: Stage) -> None:
        sdir = self.stage_dir(stage)
        if (sdir / "done.json").exists():
            self.resumed += self._chunk_count(stage)
            return
        shutil.rmtree(sdir, ignore_errors=True)  # a global step that did not finish starts over
        sdir.mkdir(parents=True)
        (step,) = stage.steps
        cls = ops.get(step.op)
        workdir = self.work / f"step-{step.index:03d}"
        shutil.rmtree(workdir, ignore_errors=True)
        op = cls(step.config, OpContext(seed=self.recipe.seed, step=step.index, workdir=workdir))
        prev = self.stage_dir(self.stages[stage.index - 1])
        n_prev = self._chunk_count(self.stages[stage.index - 1])
        if hasattr(op, "precompute"):  # what the workers of the stage before computed for it, if they did
            pre = [precomputed_path(prev, i, step.index) for i in range(n_prev)]
            op.precomputed = pre if all(p.exists() for p in pre) else None
        total = self._stage_input_total(stage)
        counter = {"in": 0}

        def stream():
            for i in range(n_prev):
                for rec in read_chunk(prev / f"{chunk_name(i)}.jsonl"):
                    counter["in"] += 1
                    if counter["in"] % 5000 == 0:
                        self.progress(stage.label, counter["in"], total)
                    yield rec

        start = time.perf_counter()
        chunk, kept, dropped = 0, None, None
        reasons: Counter[str] = Counter()
        n_out = generated = 0
        try:
            for item in op.run(stream()):
                if isinstance(item, Generated):
                    generated += 1
                    item = item.record
                    lineage.made(item.record if isinstance(item, Drop) else item, step.index, step.op)
                    if isinstance(item, Record):
                        item.id = item.id or item.compute_id()
                if kept is None:
                    kept = JsonlWriter(sdir / f"{chunk_name(chunk)}.jsonl")
                    dropped = JsonlWriter(sdir / f"{chunk_name(chunk)}.dropped.jsonl")
                if isinstance(item, Drop):
                    reasons[item.reason] += 1
                    dropped.write(drop_entry(item.record, step.index, step.op, item.reason))
                else:
                    kept.write(item.to_dict())
                    n_out += 1
                if kept.count + dropped.count >= self.recipe.chunk_size:
                    self._close_global_chunk(sdir, chunk, kept, dropped)
                    chunk, kept, dropped = chunk + 1, None, None
            if kept is not None:
                self._close_global_chunk(sdir, chunk, kept, dropped)
        except BaseException:
            for w in (kept, dropped):
                if w is not None:
                    w.abort()
            raise
        seconds = time.perf_counter() - start
        self.progress(stage.label, counter["in"], total)
        summary = {
            "step": step.index,
            "op": step.op,
            "in": counter["in"],
            "generated": generated,
            "out": n_out,
            "dropped": dict(reasons),
            "seconds": seconds,
            "counters": op.take_counters(),
        }
        if counter["in"] + generated != n_out + sum(reasons.values()):
            raise DatamillError(f"step {step.index} ({step.op}) lost records: {summary}")
        (sdir / "done.json").write_bytes(orjson.dumps(summary))

    def _close_global_chunk(self, sdir: Path, chunk: int, kept: JsonlWriter, dropped: JsonlWriter) -> None:
        kept.commit()
        dropped.commit()
        stats = {
            "chunk": chunk,
            "run": self.fingerprint,
            "input": kept.count + dropped.count,
            "quarantined": 0,
            "kept": kept.count,
            "steps": [],
        }
        stats_path(sdir, chunk).write_bytes(orjson.dumps(stats))
        _maybe_crash()

    # ---- outputs -----------------------------------------------------------------------------
    def _assemble(self) -> RunResult:
        self._remove_old_shards()
        last = self.stages[-1]
        counting = self._start_report_pass(last) if self.recipe.output.report else None
        try:
            return self._publish(last, counting)
        finally:
            if counting is not None:
                counting.cancel()

    def _publish(self, last: Stage, counting: Pass | None) -> RunResult:
        """dropped/quarantine files, the shards, stats.json, dataset_info.json, the report, the lock."""
        dropped_writer = JsonlWriter(self.outdir / "dropped.jsonl", output=True, overwrite=self.overwrite)
        quarantine_writer = JsonlWriter(self.outdir / "quarantine.jsonl", output=True, overwrite=self.overwrite)
        lineage_writer = JsonlWriter(self.outdir / LINEAGE, output=True, overwrite=self.overwrite)
        output_drops: Counter[str] = Counter()
        shards: list[Shard] = []
        try:
            for stage in self.stages:
                sdir = self.stage_dir(stage)
                for i in range(self._chunk_count(stage)):
                    _copy_lines(sdir / f"{chunk_name(i)}.dropped.jsonl", dropped_writer)
                    if stage.index == 0:
                        _copy_lines(sdir / f"{chunk_name(i)}.quarantine.jsonl", quarantine_writer)
            for failure in self.unreadable:
                quarantine_writer.write({**failure, "scope": "file", "stage": "read"})
            with self._phase("write", 1):  # the report's pass runs beside it on the other cores
                shards = self._write_shards(last, dropped_writer, lineage_writer, output_drops)
            _maybe_crash()
            dropped_writer.commit()
            quarantine_writer.commit()
            lineage_writer.commit()
        except BaseException:
            dropped_writer.abort()
            quarantine_writer.abort()
            lineage_writer.abort()
            raise
        stats = self.recipe.scrub(self._stats(output_drops, len(shards)))  # no ${VAR} value in stats.json
        splits: Counter[str] = Counter()
        for shard in shards:
            if shard.split:
                splits[shard.split] += shard.writer.count
        if splits:
            stats["splits"] = dict(sorted(splits.items()))
        self._write_stats(stats)
        self._register(shards)
        names = [shard.writer.path.name for shard in shards]
        names += self._publish_step_files()
        if counting is not None:
            from datamill.report import write_report

            with self._phase("report", os.cpu_count() or 1):
                tally = counting.result(self.progress, stats["kept"])
                written = write_report(self.outdir, overwrite=self.overwrite, tally=tally, progress=self.progress)
            names += [p.name for p in written]
            stats["phases"] = self.phases
            self._write_stats(stats)  # again, with the report's own time
        self._remove_stale_outputs(names)
        self._write_lock(names)  # last: its presence with a matching fingerprint means "finished"
        return RunResult(self.outdir, stats, resumed_chunks=self.resumed, shards=names)

    def _remove_stale_outputs(self, names: list[str]) -> None:
        """The outputs the previous run into OUTDIR listed in its lock and this one did not write (a step's
        leakage.jsonl, a report no longer asked for), so OUTDIR never mixes two runs; only files datamill
        left as they are, and only names without a folder in them."""
        try:
            old = yaml.safe_load((self.outdir / LOCK).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return
        listed = old.get("outputs") if isinstance(old, dict) else None
        keep = {*names, *FIXED_OUTPUTS} - {"report.html", "README.md"}
        stale = []
        for name in listed if isinstance(listed, list) else []:
            if isinstance(name, str) and name not in keep and "/" not in name and not name.startswith((".", "data-")):
                path = self.outdir / name
                if path.is_file() and not path.is_symlink() and outputs.is_ours(path):
                    path.unlink()
                    stale.append(path)
        outputs.forget(*stale)

    def _publish_step_files(self) -> list[str]:
        """The files steps left in ``publish/`` of their work folder as outputs in OUTDIR: a global step's
        ``NAME.jsonl``, or a chunk step's parts ``NAME/chunk-NNNNNN.jsonl`` (decontaminate's leakage lines,
        one part per chunk) in chunk order; one file per name, the steps' lines in step order."""
        by_name: dict[str, list[Path]] = {}
        chunks = {s.index: self._chunk_count(stage) for stage in self.stages for s in stage.steps}
        for step in self.recipe.steps:
            publish = self.work / f"step-{step.index:03d}" / "publish"
            for path in sorted(publish.glob("*.jsonl")):
                by_name.setdefault(path.name, []).append(path)
            for folder in sorted(p for p in publish.glob("*") if p.is_dir()):
                parts = [folder / f"{chunk_name(i)}.jsonl" for i in range(chunks[step.index])]
                by_name.setdefault(f"{folder.name}.jsonl", []).extend(p for p in parts if p.exists())
        for name, paths in by_name.items():
            writer = JsonlWriter(self.outdir / name, output=True, overwrite=self.overwrite)
            for path in paths:
                _copy_lines(path, writer)
            writer.commit()
        return sorted(by_name)

    def _write_stats(self, stats: dict[str, Any]) -> None:
        text = json.dumps(stats, indent=2, ensure_ascii=False) + "\n"
        outputs.write_text(self.outdir / "stats.json", text, self.overwrite)

    def _remove_old_shards(self) -> None:
        """The data-* files of an earlier run into OUTDIR (only datamill's own, unless --overwrite)."""
        old = [p for p in self.outdir.glob("data-*") if self.overwrite or outputs.is_ours(p)]
        for p in old:
            p.unlink() if p.is_file() or p.is_symlink() else shutil.rmtree(p)
        outputs.forget(*old)

    def _last_chunks(self, last: Stage) -> list[Path]:
        sdir = self.stage_dir(last)
        return [sdir / f"{chunk_name(i)}.jsonl" for i in range(self._chunk_count(last))]

    def _start_report_pass(self, last: Stage) -> Pass:
        """The report's pass over the kept records, on the cores the shard writer leaves idle."""
        out = self.recipe.output
        read = functools.partial(chunk_records, out.format, out.container)
        workers = max(1, (self.recipe.workers or os.cpu_count() or 1) - 1)
        return Pass([str(p) for p in self._last_chunks(last)], read, workers=workers)

    def _write_shards(
        self, last: Stage, dropped: JsonlWriter, lineage_out: JsonlWriter, output_drops: Counter[str]
    ) -> list[Shard]:
        """The kept records as ``data-NNNNN`` shards — or ``data-<split>-NNNNN`` per split when records
        carry ``meta[split_key]`` (the split op) — at most ``shard_size`` records each; where each one went,
        with its meta, in ``lineage_out`` (``meta.lineage`` moves there, out of the data row)."""
        out = self.recipe.output
        total = sum(s["kept"] for s in self._stage_stats(last))
        shards: list[Shard] = []
        open_by_split: dict[str | None, DatasetWriter] = {}
        made: Counter[str | None] = Counter()

        def writer_for(split: str | None) -> DatasetWriter:
            w = open_by_split.get(split)
            if w is not None and not (out.shard_size and w.count >= out.shard_size):
                return w
            if w is not None:
                w.commit()
            prefix = f"data-{_safe_name(split)}-" if split else "data-"
            path = self.outdir / f"{prefix}{made[split]:05d}.{out.container}"
            w = DatasetWriter(path, out.format, register=False, overwrite=self.overwrite, media_paths=out.media_paths)
            shards.append(Shard(split, made[split], w))
            made[split] += 1
            open_by_split[split] = w
            return w

        self.progress("write", 0, total)
        try:
            if self._joins_pieces(last):
                rows = self._joined_rows(last, writer_for, dropped, output_drops)
            else:  # other containers, or a global last step: the records, converted here
                rows = self._converted_rows(last, writer_for, dropped, output_drops)
            n = 0
            for file, first, lines in rows:  # the lineage lines of consecutive rows of one data file
                lineage_out.write_lines(pieces.lineage_lines(lines, file, first))
                if (n + len(lines)) // 5000 > n // 5000:
                    self.progress("write", n + len(lines), total)
                n += len(lines)
            self.progress("write", total, total)
            for w in open_by_split.values():
                if w.count:
                    w.commit()
                else:  # every record of it was dropped at the output: no empty file to register
                    w.abort()
                    shards[:] = [sh for sh in shards if sh.writer is not w]
        except BaseException:
            for w in open_by_split.values():
                w.abort()
            raise
        return shards

    def _joined_rows(
        self,
        last: Stage,
        writer_for: Callable[[str | None], DatasetWriter],
        dropped: JsonlWriter,
        output_drops: Counter[str],
    ):
        """The output pieces of the last stage's chunks, in chunk order, joined into the shards (and the
        records the format could not hold into ``dropped``): a piece that fits in its shard is copied
        whole, one that a shard ends in line by line. Yields (data file, first row, lineage lines)."""
        sdir = self.stage_dir(last)
        size = self.recipe.output.shard_size
        for stats in self._stage_stats(last):
            name = chunk_name(stats["chunk"])
            for k, piece in enumerate(stats["output"]["pieces"]):
                sigs = piece["sigs"]
                writer = writer_for(piece["split"])
                if not size or writer.count + piece["rows"] <= size:
                    first = writer.count
                    writer.write_piece(pieces.piece_path(sdir, name, "out", k), piece["rows"], sigs)
                    yield writer.path.name, first, pieces.lineage_piece(sdir, name, k)
                    continue
                for data, line, sig in pieces.piece_rows(sdir, name, k, piece):
                    writer = writer_for(piece["split"])
                    writer.write_line(data, *sigs[sig])
                    yield writer.path.name, writer.count - 1, [line]
            _copy_lines(pieces.outdrops_path(sdir, name), dropped)
            output_drops.update(stats["output"]["dropped"])

    def _converted_rows(
        self,
        last: Stage,
        writer_for: Callable[[str | None], DatasetWriter],
        dropped: JsonlWriter,
        output_drops: Counter[str],
    ):
        """The kept records of the last stage's chunk files written into the shards here, one by one."""
        out = self.recipe.output
        drops: dict[str, int] = {}
        for path in self._last_chunks(last):
            for rec in read_chunk(path):
                writer = writer_for(pieces.split_of(rec, out.split_key))
                written = pieces.write_or_drop(rec, writer, dropped, drops, len(self.recipe.steps))
                if written is not None:
                    yield writer.path.name, writer.count - 1, [written[1]]
        output_drops.update(drops)

    def _stats(self, output_drops: Counter[str], n_shards: int) -> dict[str, Any]:
        stage0 = self._stage_stats(self.stages[0])
        n_input = sum(s["input"] for s in stage0)
        quarantined = sum(s["quarantined"] for s in stage0)
        steps: dict[int, dict[str, Any]] = {}
        for stage in self.stages:
            if stage.kind == "global":
                entry = orjson.loads((self.stage_dir(stage) / "done.json").read_bytes())
                steps[entry["step"]] = entry
                continue
            for chunk in self._stage_stats(stage):
                for st in chunk["steps"]:
                    acc = steps.setdefault(
                        st["step"],
                        {
                            "step": st["step"],
                            "op": st["op"],
                            "in": 0,
                            "generated": 0,
                            "out": 0,
                            "dropped": {},
                            "seconds": 0.0,
                            "counters": {},
                        },
                    )
                    acc["in"] += st["in"]
                    acc["generated"] += st.get("generated", 0)
                    acc["out"] += st["out"]
                    acc["seconds"] += st["seconds"]
                    for reason, n in st["dropped"].items():
                        acc["dropped"][reason] = acc["dropped"].get(reason, 0) + n
                    for name, n in st.get("counters", {}).items():
                        acc["counters"][name] = acc["counters"].get(name, 0) + n
        kept_before_output = sum(s["kept"] for s in self._stage_stats(self.stages[-1]))
        output_step = {
            "step": len(self.recipe.steps),
            "op": "output",
            "in": kept_before_output,
            "generated": 0,
            "out": kept_before_output - sum(output_drops.values()),
            "dropped": dict(output_drops),
            "seconds": 0.0,
            "counters": {},
        }
        ordered = [steps[i] for i in sorted(steps)] + [output_step]
        dropped = sum(sum(s["dropped"].values()) for s in ordered)
        kept = output_step["out"]
        generated = sum(s.get("generated", 0) for s in ordered)
        problems = [s for s in ordered if s["in"] + s.get("generated", 0) != s["out"] + sum(s["dropped"].values())]
        balanced = n_input + generated == kept + dropped + quarantined and not problems
        if not balanced:
            raise DatamillError(
                f"accounting broken: input {n_input} + generated {generated} != kept {kept} + dropped {dropped} + "
                f"quarantined {quarantined}; steps {problems}"
            )
        return {
            "recipe": self.recipe.name,
            "files": {
                "input": len(self.recipe.inputs) + len(self.recipe.unreadable),  # files found, readable or not
                "unreadable": len(self.unreadable),
                "failures": self.unreadable,
            },
            "input": n_input,
            "generated": generated,
            "quarantined": quarantined,
            "kept": kept,
            "dropped": dropped,
            "balanced": balanced,
            "steps": ordered,
            "shards": n_shards,
            "chunks_resumed": self.resumed,
            "phases": self.phases,  # wall seconds and cores of each stage, the write (and the report)
        }

    def _write_lock(self, shards: list[str]) -> None:
        """The recipe as written, as resolved and what it read; every value that came from ``${VAR}``
        (a step's, the shared ``llm:`` block's, a path's) is written as ``${VAR}``, never expanded."""
        r = self.recipe
        lock = {
            "fingerprint": self.fingerprint,
            "recipe": r.raw,  # as written: ${VAR} references stay unexpanded
            "resolved": r.scrub(
                {
                    "seed": r.seed,
                    "executor": r.executor,
                    "workers": r.workers,
                    "chunk_size": r.chunk_size,
                    "inputs": [
                        {"path": str(f.path), "format": f.format, "encoding": f.encoding}
                        | ({"options": f.options} if f.options else {})
                        for f in r.inputs
                    ],
                    "steps": [{"op": s.op, **_resolved_options(s, r.raw)} for s in r.steps],
                    "output": r.output.model_dump(mode="json"),
                }
            ),
            "input_fingerprints": r.scrub(self.inputs),
            "versions": _versions(),
            "outputs": [*shards, "dropped.jsonl", "quarantine.jsonl", "stats.json", LINEAGE],
        }
        text = yaml.safe_dump(lock, sort_keys=False, allow_unicode=True)
        outputs.write_text(self.outdir / LOCK, text, self.overwrite)

    def _register(self, shards: list[Shard]) -> None:
        """dataset_info.json entries so LLaMA-Factory loads the shards with ``dataset: NAME`` (per split:
        ``NAME_train``, ``NAME_validation`` …; several shards of one split get ``-NNNNN``)."""
        name = self.recipe.output.name or self.recipe.name
        per_split = Counter(shard.split for shard in shards)
        for split, number, w in shards:
            base = f"{name}_{split}" if split else name
            entry = w.format.dataset_info(w.columns, w.ranking, w.roles)
            if entry is not None:
                dataset_info.update(w.path, base if per_split[split] == 1 else f"{base}-{number:05d}", entry)


def _resolved_options(step: Step, raw: dict[str, Any]) -> dict[str, Any]:
    """A step's options with defaults filled in, but each value written with ${VAR} — in the step or in
    the recipe's top-level ``llm:`` block the step inherits — kept as written (also a number or a list
    that came from one), so secrets never reach the lock file."""
    raw_steps = raw.get("steps") or []
    written = raw_steps[step.index] if step.index < len(raw_steps) and isinstance(raw_steps[step.index], dict) else {}
    shared, own = raw.get("llm"), written.get("llm")
    if "llm" in step.options and isinstance(shared, dict):  # merged the way recipe._resolve_steps merges it
        written = {**written, "llm": {**shared, **(own if isinstance(own, dict) else {})}}

    def keep_written(resolved: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
        for key, value in written.items():
            if key not in resolved or "${" not in json.dumps(value, default=str):
                continue
            if isinstance(value, dict) and isinstance(resolved[key], dict):
                resolved[key] = keep_written(resolved[key], value)  # the defaults beside it stay resolved
            else:
                resolved[key] = value
        return resolved

    return keep_written(step.config.model_dump(mode="json"), written)


def _safe_name(value: str) -> str:
    """A split name usable in a file name."""
    return "".join(ch if ch.isalnum() or ch in "._" else "_" for ch in value)[:64] or "_"


def _maybe_crash() -> None:
    """Fault injection for the crash-safety tests: DATAMILL_TEST_KILL_AFTER=N sends SIGKILL to this
    process at its N-th checkpoint (a completed chunk, or the end of writing the outputs)."""
    global _checkpoints
    limit = os.environ.get("DATAMILL_TEST_KILL_AFTER")
    if limit is None:
        return
    _checkpoints += 1
    if _checkpoints >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


_checkpoints = 0


def _note_pid(lock: IO[str]) -> None:
    """Name this process in the run lock, for the message a second run prints."""
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()


@dataclass
class _Planned:
    rows: int = 0
    bytes: int = 0  # of the byte ranges planned
    unsized: bool = False  # some rows came from a reader, not from a byte range
    done: bool = False


class _SpannedFile(NamedTuple):
    """An input file the workers read in byte ranges (``Segment``), cut by its planner."""

    file: int
    format: str
    planner: Spans


def _input_row(file_index: int, fmt: str, r: RawRow) -> InputRow:
    return (file_index, fmt, r.line, r.index, r.row, r.error, r.raw)


def _copy_lines(path: Path, writer: JsonlWriter) -> None:
    if path.exists():
        writer.copy_lines(path)

"""Find a record in a run's output folder: kept (``lineage.jsonl`` → its data file and row), dropped
(``dropped.jsonl``) or quarantined (``quarantine.jsonl``), by id (a unique prefix will do) or by
position (``FILE:LINE`` — an input file and line, or a data file and row).

The files are never loaded whole: each is read in blocks that the regex engine searches for the
query's bytes (a literal, or a literal prefix and an alternation — never an anchored pattern, which
``re`` tries at every line), and only the lines that contain them are split out and parsed, so a
lookup in a run of a million records reads its files at a few hundred MB/s and parses a handful of
lines. One pass finds the record and every record that names it (children, duplicates); a second
finds the records it names (parents, seeds, the duplicate kept instead).
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from datamill.errors import DatamillError
from datamill.io.readers import iter_rows
from datamill.trace import lineage

LINEAGE, DROPPED, QUARANTINE, LOCK = "lineage.jsonl", "dropped.jsonl", "quarantine.jsonl", "recipe.lock.yaml"
BLOCK = 8 << 20
# meta keys (at any depth, e.g. meta.synth.parent_id) whose values are ids of other records of the run
LINKS = frozenset(
    ("parent_id", "root_id", "parent", "parents", "seed_ids", "machine_ids", "grouped_into")  # synthesis, prefs
    + ("duplicate_of", "near_duplicate_of")  # dedup: the record kept instead
)
MAX_LINKED = 64  # linked ids looked up per trace
MIN_PREFIX = 4  # shortest id prefix accepted
POSITION = re.compile(r"(.+):(\d+)")


class NotFound(DatamillError):
    def __init__(self, message: str, close: list[str]):
        self.close = close
        hint = f"; close matches: {', '.join(close)}" if close else ""
        super().__init__(message + hint)


@dataclass
class Found:
    """One place the record is: ``status`` kept | dropped | quarantined, ``at`` the output file and line
    that says so, its ``id``, ``meta`` (with ``meta.lineage`` taken out into ``changes``) and the
    line itself; for a kept record ``row``, the data row as written."""

    status: str
    at: str
    id: str | None
    entry: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    row: dict[str, Any] | None = None

    @property
    def links(self) -> dict[str, list[str]]:
        """The ids this record names, by meta path (``meta.synth.seed_ids`` …)."""
        out: dict[str, list[str]] = {}
        _links(self.meta, "meta", out)
        return out


@dataclass
class Ref:
    """A record that names the traced one: where it is and under which meta paths."""

    found: Found
    paths: list[str]


@dataclass
class Trace:
    query: str
    records: list[Found]
    refs: list[Ref]
    linked: dict[str, list[Found]]  # each id the records name → where that record is (empty: not in the run)
    steps: list[dict[str, Any]]  # stats.json's steps (index, op), for the path a record took
    output_format: str | None


class Run:
    """A finished run's output folder."""

    def __init__(self, outdir: str | Path):
        self.outdir = Path(outdir)
        if not self.outdir.is_dir():
            raise DatamillError(f"{self.outdir}: no such folder (give the output folder of a datamill run)")
        lock = self.outdir / LOCK
        if not lock.exists():
            raise DatamillError(f"{self.outdir}: no {LOCK}, so no finished datamill run wrote it")
        self.lock = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
        stats_path = self.outdir / "stats.json"
        self.stats = orjson.loads(stats_path.read_bytes()) if stats_path.exists() else {}
        output = (self.lock.get("resolved") or {}).get("output") or {}
        self.format: str | None = output.get("format")
        self.data_files = [n for n in self.lock.get("outputs", []) if n.startswith("data-")]

    def path(self, name: str) -> Path:
        return self.outdir / name

    def traced(self) -> bool:
        """Whether the run wrote lineage.jsonl (datamill versions before ``trace`` did not)."""
        return self.path(LINEAGE).exists()

    # ---- scans -------------------------------------------------------------------------------
    def scan(self, pattern: re.Pattern[bytes], names: tuple[str, ...] = (LINEAGE, DROPPED)) -> Iterator[Found]:
        """Every record line of the given files in which ``pattern`` matches, parsed."""
        for name in names:
            if not self.path(name).exists():
                continue
            for number, line in grep(self.path(name), pattern):
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(entry, dict):
                    yield _found(name, number, entry)

    def by_id(self, query: str) -> tuple[list[Found], list[Ref]]:
        """The records whose id is ``query`` (or, failing that, starts with it: one id only) and the
        records that name that id. Only lines holding the id as a whole JSON string are parsed."""
        lines = list(self.scan(re.compile(re.escape(b'"' + _json_str(query) + b'"'))))
        records = [f for f in lines if f.id == query]
        if not records:
            ident = self._by_prefix(query)
            lines = list(self.scan(re.compile(re.escape(b'"' + _json_str(ident) + b'"'))))
            records = [f for f in lines if f.id == ident]
        refs = []
        for f in lines:
            if f.id != records[0].id:
                paths = [p for p, ids in f.links.items() if records[0].id in ids]
                if paths:
                    refs.append(Ref(f, paths))
        return records, refs

    def _by_prefix(self, query: str) -> str:
        """The one id of the run that starts with ``query``; an error naming them when several do, or
        the close matches when none does."""
        ids: list[str] = []
        if len(query) >= MIN_PREFIX:
            for f in self.scan(re.compile(re.escape(b'{"id":"' + _json_str(query)))):
                if f.id and f.id.startswith(query) and f.id not in ids:
                    ids.append(f.id)
                    if len(ids) > 10:
                        break
        if len(ids) > 1:
            shown = ", ".join(ids[:10]) + (" …" if len(ids) > 10 else "")
            raise DatamillError(f"id prefix {query!r} fits several records: {shown}; give more of the id")
        if not ids:
            untraced = "" if self.traced() else f" (it has no {LINEAGE}: an older datamill wrote it, run it again)"
            raise NotFound(f"no record with id {query!r} in {self.outdir}{untraced}", self.close_ids(query))
        return ids[0]

    def by_position(self, file: str, number: int) -> list[Found]:
        """``file:number``: row ``number`` (1-based) of a data file of the run, or the records read from
        line ``number`` of an input file (row ``number`` of one without lines), quarantined ones too."""
        name = Path(file).name
        if name in self.data_files:
            needle = _json_str(name) + b'","row":' + str(number - 1).encode() + b","
            found = [f for f in self.scan(re.compile(re.escape(b'"file":"' + needle))) if f.entry.get("file") == name]
            if not found:
                raise NotFound(f"{name} of the run in {self.outdir} has no row {number} (rows count from 1)", [])
            return found
        pattern = re.compile(rb'"(line|index)":(%d|%d)[,}]' % (number, number - 1))
        found = []
        for f in self.scan(pattern, (LINEAGE, DROPPED, QUARANTINE)):
            where = f.meta if f.status != "quarantined" else f.entry
            source = where.get("source") if f.status != "quarantined" else where.get("file")
            line = where.get("line")
            at = line == number if line is not None else where.get("index") == number - 1
            if at and isinstance(source, str) and _same_file(source, file):
                found.append(f)
        if not found:
            inputs = [str(i.get("path")) for i in (self.lock.get("resolved") or {}).get("inputs", [])]
            if not any(_same_file(p, file) for p in inputs):
                listing = ", ".join([*self.data_files, *inputs]) or "none"
                raise NotFound(f"{file} is neither a data file nor an input of the run in {self.outdir}: {listing}", [])
            raise NotFound(f"no record from line {number} of {file} in {self.outdir}", [])
        return found

    def resolve(self, ids: list[str]) -> dict[str, list[Found]]:
        """Where each of ``ids`` is (kept or dropped), in one pass."""
        out: dict[str, list[Found]] = {i: [] for i in ids}
        if ids:
            alternatives = b"|".join(re.escape(_json_str(i)) for i in ids)
            for f in self.scan(re.compile(rb'\{"id":"(?:' + alternatives + rb')"')):
                if f.id in out:
                    out[f.id].append(f)
        return out

    def close_ids(self, query: str, n: int = 5) -> list[str]:
        """Up to ``n`` ids of the run that share at least half of ``query`` as their start or their end
        (a mistyped or half-copied id), the most alike first. The regex engine picks them out of the
        files; only those are scored."""
        half = (len(query) + 1) // 2
        head, tail = re.escape(_json_str(query[:half])), re.escape(_json_str(query[-half:]))
        pattern = re.compile(rb'\{"id":"(' + head + rb'[^"\n]*|[^"\n]*' + tail + rb')"')
        best: list[tuple[int, str]] = []  # a heap of the n best (score, id)
        for name in (LINEAGE, DROPPED):
            if not self.path(name).exists():
                continue
            for block in _blocks(self.path(name)):
                for m in pattern.finditer(block):
                    ident = orjson.loads(b'"' + m.group(1) + b'"')
                    if ident == query or any(ident == x for _, x in best):
                        continue
                    heapq.heappush(best, (_closeness(query, ident), ident))
                    if len(best) > n:
                        heapq.heappop(best)
        return [ident for _, ident in sorted(best, key=lambda x: (-x[0], x[1]))]

    def data_row(self, file: str, row: int) -> dict[str, Any] | None:
        """Row ``row`` (0-based) of a data file, as written."""
        path = self.path(file)
        if not path.exists():
            return None
        if path.suffix == ".jsonl":
            line = nth_line(path, row)
            return orjson.loads(line) if line else None
        for raw in itertools.islice(iter_rows(path), row, row + 1):
            return raw.row
        return None


def trace(outdir: str | Path, query: str) -> Trace:
    """Where the record ``query`` (an id, an id prefix or ``FILE:LINE``) is, with what it names and what names it."""
    run = Run(outdir)
    query = query.strip()
    position = POSITION.fullmatch(query)
    if position:
        records = run.by_position(position.group(1), int(position.group(2)))
        refs: list[Ref] = []
        for ident in dict.fromkeys(f.id for f in records if f.id):
            refs += run.by_id(ident)[1]
    else:
        records, refs = run.by_id(query)
    for f in records:
        if f.status == "kept" and isinstance(f.entry.get("file"), str) and isinstance(f.entry.get("row"), int):
            f.row = run.data_row(f.entry["file"], f.entry["row"])
    named = list(dict.fromkeys(i for f in records for ids in f.links.values() for i in ids))[:MAX_LINKED]
    own = {f.id for f in records}
    linked = run.resolve([i for i in named if i not in own])
    linked |= {i: [f for f in records if f.id == i] for i in named if i in own}  # a duplicate's twin: same id
    return Trace(query, records, refs, linked, run.stats.get("steps", []), run.format)


# ---- helpers -----------------------------------------------------------------------------------
def _found(name: str, number: int, entry: dict[str, Any]) -> Found:
    at = f"{name}:{number}"
    if name == QUARANTINE:
        return Found("quarantined", at, None, entry)
    meta = dict((entry.get("record") or {}).get("meta") or {}) if name == DROPPED else dict(entry.get("meta") or {})
    changes = meta.pop(lineage.KEY, None) if name == DROPPED else entry.get(lineage.KEY)
    ident = entry.get("id")
    status = "kept" if name == LINEAGE else "dropped"
    return Found(status, at, ident if isinstance(ident, str) else None, entry, meta, changes or [])


def _links(value: Any, path: str, out: dict[str, list[str]]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            if key in LINKS:
                ids = [sub] if isinstance(sub, str) else sub if isinstance(sub, list) else []
                ids = [x for x in ids if isinstance(x, str)]
                if ids:
                    out[f"{path}.{key}"] = ids
            elif isinstance(sub, dict | list):
                _links(sub, f"{path}.{key}", out)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            if isinstance(sub, dict):
                if isinstance(sub.get("id"), str):  # candidates: [{"model", "text", "id"}, …]
                    out.setdefault(f"{path}[].id", []).append(sub["id"])
                _links(sub, f"{path}[{i}]", out)


def _json_str(text: str) -> bytes:
    """``text`` as it appears inside a JSON string in the run's files."""
    return orjson.dumps(text)[1:-1]


def _same_file(recorded: str, given: str) -> bool:
    """Whether a path the run recorded is the file the user named (the same file, or ending in that path)."""
    if Path(recorded).resolve() == Path(given).resolve():
        return True
    tail = Path(given).parts
    return Path(recorded).parts[-len(tail) :] == tail


def _closeness(query: str, ident: str) -> int:
    same = sum(a == b for a, b in zip(query, ident, strict=True)) if len(query) == len(ident) else 0
    return max(lineage.common_prefix(query, ident), lineage.common_prefix(query[::-1], ident[::-1]), same)


def _blocks(path: Path) -> Iterator[bytes]:
    """The file in pieces of about ``BLOCK`` bytes, each ending at a line end (the last as it ends)."""
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            buf = tail + block
            cut = buf.rfind(b"\n") + 1
            buf, tail = buf[:cut], buf[cut:]
            if buf:
                yield buf
    if tail:
        yield tail


def grep(path: Path, pattern: re.Pattern[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) of every line of ``path`` in which ``pattern`` matches."""
    lines_before = 0
    for buf in _blocks(path):
        pos = counted = 0
        while m := pattern.search(buf, pos):
            start = buf.rfind(b"\n", 0, m.start()) + 1
            end = buf.find(b"\n", m.end())
            end = len(buf) if end < 0 else end
            lines_before += buf.count(b"\n", counted, start)
            counted = start
            yield lines_before + 1, buf[start:end]
            pos = end + 1
        lines_before += buf.count(b"\n", counted)


def nth_line(path: Path, n: int) -> bytes | None:
    """Line ``n`` (0-based) of a file, found by counting line ends block by block."""
    seen = 0
    for buf in _blocks(path):
        k = buf.count(b"\n")
        if seen + k > n or not buf.endswith(b"\n"):
            lines = buf.split(b"\n")
            i = n - seen
            return lines[i] if i < len(lines) and lines[i] else None
        seen += k
    return None

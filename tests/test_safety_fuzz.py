"""Fuzz the readers with damaged files (issue 15): random byte flips, cuts at random offsets, NUL bytes
and invalid UTF-8 at random positions, in .json, .jsonl, .csv, .parquet and .gz files built from
the shipped samples. For every file, through ``datamill.convert`` and through a ``Runner`` run:

- no traceback: the only exception allowed is ``FileError`` (a file-level failure), and only where
  the damage leaves no way to read the file: a damaged .parquet, damage before the first record
  (a CSV header, the '[': then nothing else is checked, as the header decides how every record
  reads), or no intact record among the first ``DETECT_WINDOW`` to tell the format from;
- every intact record is kept, with its exact content;
- kept + dropped + quarantined equals the records the damaged file holds.

Accounting. Record i owns the bytes from its first byte up to the next record's first byte (so the
separator after it is its own; record 0 also owns the file's opening bytes, the last record the
closing ones). A mutation touches the record owning its position. A cut at offset c keeps the
records with a byte before c; the records wholly after it are gone and not counted, and the cut
touches the record owning byte c - 1 (it is quarantined, or kept when its own bytes all survive).
Touched records may be kept (changed) or quarantined; untouched ones must be kept unchanged.
Line-based files (.jsonl, .csv) get no mutation into or out of a line break (that changes how many
records the file holds), and .csv none into, out of or next to its quotes and commas (a quote
that no longer opens its field turns the rows of a multi-line field into records of their own). A .gz is cut in its
compressed bytes; the records it holds are those with a byte in the data zlib recovers from it.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import datamill
from datamill.dataset import DETECT_WINDOW
from datamill.errors import FileError
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ROWS = [{"instruction": r["instruction"], "input": r["input"], "output": r["output"]}
        for r in json.loads((EXAMPLES / "alpaca_en_sample.json").read_text(encoding="utf-8"))]
CONTAINERS = ["json", "jsonl", "csv", "parquet", "jsonl.gz", "json.gz"]
CASES = 60  # per container
INVALID_UTF8 = [b"\xff", b"\xc3(", b"\xe2\x82", b"\x80", b"\xf0\x9f\x98"]


@dataclass
class Damaged:
    data: bytes
    rows: list[dict]
    starts: list[int]  # where each record's bytes begin in the undamaged file
    touched: set[int] = field(default_factory=set)
    present: int = 0  # records with a byte in the damaged file
    before_first: bool = False  # damage before the first record (header, '[')


def build(container: str, rows: list[dict]) -> tuple[bytes, list[int]]:
    """The file's bytes and the offset of each record's first byte."""
    parts: list[bytes] = []
    if container.startswith("json") and not container.startswith("jsonl"):
        head, sep, tail = b"[\n  ", b",\n  ", b"\n]\n"
        items = [json.dumps(r, indent=2, ensure_ascii=False).replace("\n", "\n  ").encode() for r in rows]
        parts = [head + items[0]] + [sep + x for x in items[1:]]
        starts, pos = [], 0
        for i, p in enumerate(parts):
            starts.append(pos + (len(head) if i == 0 else len(sep)))
            pos += len(p)
        return b"".join(parts) + tail, starts
    if container.startswith("jsonl"):
        lines = [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows]
    else:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["instruction", "input", "output"])
        header = buf.getvalue().encode()
        lines = []
        for r in rows:
            buf = io.StringIO()
            csv.writer(buf).writerow([r["instruction"], r["input"], r["output"]])
            lines.append(buf.getvalue().encode())
        lines[0] = header + lines[0]
    starts, pos = [], 0
    for i, line in enumerate(lines):
        starts.append(pos + (len(header) if container == "csv" and i == 0 else 0))
        pos += len(line)
    return b"".join(lines), starts


def owner(starts: list[int], pos: int) -> int:
    """The record owning byte ``pos``: the last one starting at or before it (record 0 before the first)."""
    i = 0
    for k, s in enumerate(starts):
        if s <= pos:
            i = k
    return i


def mutate(container: str, rng: random.Random) -> Damaged:
    rows = rng.sample(ROWS, rng.randint(45, len(ROWS)))
    plain = container.removesuffix(".gz")
    data, starts = build(plain, rows)
    d = Damaged(data, rows, starts, present=len(rows))
    line_based = plain in ("jsonl", "csv")
    protected = {ord("\n"), ord("\r")} | ({ord('"'), ord(",")} if plain == "csv" else set())
    if container.endswith(".gz") and rng.random() < 0.5:
        packed = gzip.compress(data)
        cut = rng.randrange(20, len(packed))
        unzip = zlib.decompressobj(31)
        recovered = len(unzip.decompress(packed[:cut]))
        d.data = packed[:cut]
        _cut(d, recovered)
        return d
    out = bytearray(data)
    kinds = rng.choices(["flip", "cut", "nul", "utf8"], k=rng.randint(1, 3))
    cut = rng.randrange(1, len(data)) if "cut" in kinds else len(data)
    edits = []
    for kind in kinds:
        if kind == "cut":
            continue
        pos = rng.randrange(0, cut)
        if kind == "flip":
            value = rng.randrange(256)
            if line_based and (out[pos] in protected or value in protected):
                continue
            edits.append((pos, "flip", bytes([value])))
        elif not (plain == "csv" and ({out[pos], out[pos - 1]} & protected)):
            edits.append((pos, "insert", b"\x00" if kind == "nul" else rng.choice(INVALID_UTF8)))
    del out[cut:]
    for pos, how, value in sorted(edits, reverse=True):
        if how == "flip":
            out[pos] = value[0]
        else:
            out[pos:pos] = value
        # in an array, an insertion at a record's '{' lands in the separator before it: the record
        # before owns it; in a line-based file it lands at the start of the record's own line
        before = how == "insert" and not line_based and pos > 0
        d.touched.add(owner(starts, pos - 1 if before else pos))
        d.before_first = d.before_first or pos < starts[0] or (before and pos == starts[0])
    if cut < len(data):
        _cut(d, cut)
    d.data = gzip.compress(bytes(out)) if container.endswith(".gz") else bytes(out)
    return d


def _cut(d: Damaged, cut: int) -> None:
    d.present = sum(1 for s in d.starts if s < cut)
    if cut <= d.starts[0] or d.present == 0:
        d.before_first = True
        d.present = 0
    else:
        d.touched.add(owner(d.starts, cut - 1))


def mutate_parquet(rng: random.Random, path: Path) -> tuple[list[dict], set[int] | None]:
    """A parquet file with one or two damaged bytes; the records whose row group holds them (None:
    damage outside every row group, so all are touched)."""
    rows = rng.sample(ROWS, rng.randint(45, len(ROWS)))
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=10, compression="NONE")
    meta = pq.ParquetFile(path).metadata
    spans = []
    for g in range(meta.num_row_groups):
        cols = [meta.row_group(g).column(c) for c in range(meta.num_columns)]
        lo = min(c.dictionary_page_offset or c.data_page_offset for c in cols)
        hi = max((c.dictionary_page_offset or c.data_page_offset) + c.total_compressed_size for c in cols)
        spans.append((lo, hi, range(g * 10, min(g * 10 + 10, len(rows)))))
    data = bytearray(path.read_bytes())
    touched: set[int] | None = set()
    if rng.random() < 0.2:
        data = data[: rng.randrange(1, len(data))]
        touched = None
    for _ in range(rng.randint(1, 2)):
        pos = rng.randrange(len(data))
        data[pos] = rng.randrange(256)
        group = [r for lo, hi, r in spans if lo <= pos < hi]
        if touched is not None and group:
            touched.update(group[0])
        else:
            touched = None
    path.write_bytes(bytes(data))
    return rows, touched


def run_recipe(tmp: Path, src: Path) -> tuple[dict, list[dict]]:
    body = {"name": "fuzz", "inputs": [str(src)], "steps": [], "workers": 1, "executor": "local",
            "output": {"path": str(tmp / "run"), "format": "alpaca"}}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    result = Runner(recipes.load(path)).run()
    out = tmp / "run" / "data-00000.jsonl"
    kept = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    return result.stats, kept


def content(row: dict) -> tuple:
    return row["instruction"], row.get("input", ""), row["output"]


def check(tmp: Path, src: Path, rows: list[dict], touched: set[int] | None, present: int,
          file_error_allowed: bool, with_runner: bool) -> None:
    untouched = set(range(present)) - (touched if touched is not None else set(range(present)))
    file_error_allowed = file_error_allowed or not untouched & set(range(DETECT_WINDOW))
    try:
        summary = datamill.convert(src, tmp / "out.jsonl", to="alpaca", keep_meta=True)
    except FileError:
        assert file_error_allowed, f"{src.name}: a FileError for damage that leaves the file readable"
        summary = None
    if summary is not None:
        assert summary.read == present, (summary, present)
        assert summary.written + summary.quarantined == present
        written = [json.loads(line) for line in (tmp / "out.jsonl").read_text(encoding="utf-8").splitlines()]
        by_index = {w["meta"]["index"]: content(w) for w in written}
        missing = [i for i in sorted(untouched) if by_index.get(i) != content(rows[i])]
        assert not missing, f"{src.name}: intact records lost or changed: {missing[:5]} (touched {touched})"
    if with_runner:
        stats, kept = run_recipe(tmp, src)
        if stats["files"]["unreadable"]:
            assert file_error_allowed, stats["files"]
            assert stats["input"] == 0
        else:
            assert stats["input"] == present, stats
            assert stats["kept"] + stats["dropped"] + stats["quarantined"] == present
            assert stats["balanced"]
            kept_content = {content(k) for k in kept}
            assert all(content(rows[i]) in kept_content for i in untouched)


def check_no_traceback(src: Path) -> None:
    with contextlib.suppress(FileError):
        datamill.convert(src, src.with_name("out.jsonl"), to="alpaca")


@pytest.mark.parametrize("container", CONTAINERS)
def test_damaged_files_keep_every_intact_record(tmp_path, container):
    rng = random.Random(f"datamill-fuzz-{container}")
    for case in range(CASES):
        tmp = tmp_path / f"case-{case}"
        tmp.mkdir()
        src = tmp / f"in.{container}"
        with_runner = case % 4 == 0
        if container == "parquet":
            rows, touched = mutate_parquet(rng, src)
            check(tmp, src, rows, touched, len(rows), True, with_runner)
            continue
        d = mutate(container, rng)
        src.write_bytes(d.data)
        if d.before_first:  # a damaged CSV header or '[' changes how the whole file reads
            check_no_traceback(src)
            continue
        check(tmp, src, d.rows, d.touched, d.present, False, with_runner)

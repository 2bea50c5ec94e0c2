"""What ``review start`` reads: any dataset ``datamill.read`` reads, or a run's OUTDIR — its kept
``data-*`` shards, or with ``dropped`` its ``dropped.jsonl`` (each record with the step, operator and
reason that removed it, so reviewers can audit the filters)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from datamill.dataset import Quarantined, read
from datamill.record import Record
from datamill.review.store import ReviewError

Entry = tuple[Record, dict[str, Any] | None] | Quarantined


def is_outdir(path: Path) -> bool:
    return path.is_dir() and ((path / "stats.json").is_file() or (path / "dropped.jsonl").is_file())


def entries(data: Path, dropped: bool = False, fmt: str | None = None) -> Iterator[Entry]:
    """(record, drop) pairs — drop is None for kept records — or Quarantined rows."""
    if dropped:
        if not (data / "dropped.jsonl").is_file():
            raise ReviewError(f"{data}: --dropped needs a run's output folder with a dropped.jsonl")
        yield from _dropped(data / "dropped.jsonl")
        return
    files = sorted(p for p in data.glob("data-*") if p.is_file()) if is_outdir(data) else [data]
    if is_outdir(data) and not files:
        raise ReviewError(f"{data}: the run kept no record (no data-* file); review its drops with --dropped")
    for path in files:
        for item in read(path, fmt):
            yield item if isinstance(item, Quarantined) else (item, None)


def _dropped(path: Path) -> Iterator[Entry]:
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                rec = Record.from_dict(row["record"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raw = line.decode(errors="replace")
                yield Quarantined(f"{path}:{n}", str(path), n, n - 1, f"not a drop entry: {e}", raw)
                continue
            yield rec, {k: row[k] for k in ("op", "step", "reason") if k in row}

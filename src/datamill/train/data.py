"""The data a training or evaluation run reads: which files (a dataset file, a saved dataset directory, or a
run's OUTDIR and its split shards), their fingerprint (so train.json says exactly what was trained on),
and the records turned into TRL rows with a count of what was skipped and why."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamill.dataset import Quarantined, read
from datamill.errors import DatamillError
from datamill.record import Record
from datamill.train import forms

SPLIT_FILES = {"train": ("train",), "heldout": ("validation", "test")}


def is_outdir(path: Path) -> bool:
    """A ``datamill run`` output folder (stats.json, dropped.jsonl), not a saved Hugging Face dataset."""
    return path.is_dir() and ((path / "stats.json").is_file() or (path / "dropped.jsonl").is_file())


def data_files(path: str | Path, role: str = "train") -> list[Path]:
    """The files of ``path`` for ``role`` (``train`` or ``heldout``). A run's OUTDIR gives its
    ``data-train-*`` shards (``heldout``: ``data-validation-*``, else ``data-test-*``) when it was split,
    else all its ``data-*`` shards; anything else is itself."""
    path = Path(path)
    if not path.exists():
        raise DatamillError(f"{path}: no such file or folder")
    if not is_outdir(path):
        return [path]
    for split in SPLIT_FILES[role]:
        found = sorted(p for p in path.glob(f"data-{split}-*") if p.is_file())
        if found:
            return found
    plain = sorted(p for p in path.glob("data-*") if p.is_file() and p.name[5:6].isdigit())
    if plain and role == "train":
        return plain
    if role == "heldout":
        split = sorted(p for p in path.glob("data-*-*") if p.is_file())
        raise DatamillError(
            f"{path}: no validation or test split (data-validation-*, data-test-*)"
            + (f"; it has {', '.join(p.name for p in split[:4])}" if split else "; split it with the `split` op first")
        )
    raise DatamillError(f"{path}: the run wrote no data-* file")


def _file_hashes(path: Path) -> list[tuple[str, str]]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    out = []
    for p in files:
        h = hashlib.sha256()
        with p.open("rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
        out.append((str(p), h.hexdigest()))
    return out


def fingerprint(files: list[Path]) -> dict[str, Any]:
    """sha256 of every file (a saved dataset directory: of each file in it) and one hash over them all."""
    hashes = [pair for f in files for pair in _file_hashes(f)]
    total = hashlib.sha256("\n".join(h for _, h in hashes).encode()).hexdigest()
    return {"sha256": total, "files": {name: h for name, h in hashes}}


@dataclass
class Loaded:
    """Rows for one stage, plus the accounting: records read, rows made, skipped by reason, unreadable."""

    files: list[Path]
    rows: list[dict[str, Any]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)  # the records the rows came from, in order
    read: int = 0
    quarantined: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {
            "paths": [str(f) for f in self.files],
            **fingerprint(self.files),
            "records": self.read,
            "rows": len(self.rows),
            "skipped": dict(self.skipped.most_common()),
            "quarantined": self.quarantined,
        }


def records(files: list[Path], fmt: str | None = None, limit: int | None = None) -> tuple[list[Record], int, int]:
    """(records, how many rows were read, how many unreadable) of ``files``, up to ``limit`` records."""
    out: list[Record] = []
    seen = quarantined = 0
    for path in files:
        for item in read(path, fmt):
            if limit is not None and len(out) >= limit:
                return out, seen, quarantined
            seen += 1
            if isinstance(item, Quarantined):
                quarantined += 1
            else:
                out.append(item)
    return out, seen, quarantined


def load(
    files: list[Path],
    stage: forms.Stage,
    sft_form: forms.SftForm = "messages",
    fmt: str | None = None,
    limit: int | None = None,
) -> Loaded:
    """Read ``files`` and turn their records into TRL rows for ``stage``; fails when none fits."""
    recs, seen, bad = records(files, fmt, limit)
    loaded = Loaded(files, read=seen, quarantined=bad)
    for rec in recs:
        made, reason = forms.rows(rec, stage, sft_form)
        if reason:
            loaded.skipped[reason] += 1
        loaded.rows.extend(made)
        loaded.records.extend([rec] * len(made))
    if not loaded.rows:
        why = "; ".join(f"{n} × {r}" for r, n in loaded.skipped.most_common(3)) or "no readable record"
        raise DatamillError(f"{', '.join(map(str, files))}: nothing to train on for --stage {stage} ({why})")
    return loaded

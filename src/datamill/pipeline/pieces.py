"""Output pieces: the workers of a run's last chunk stage write their kept records in the output format,
so the runner only joins bytes into the ``data-*`` shards instead of reading, converting and writing every
record in one process.

Per chunk and split (in the order the split first appears in the chunk) a worker writes two files of the
same length: ``chunk-NNNNNN.out-K.jsonl``, the rows as the shard will hold them (media paths already
placed for OUTDIR), and ``chunk-NNNNNN.lin-K.jsonl``, each row's lineage line without the data file and row
number, which only the join knows. Records the format cannot hold go to ``chunk-NNNNNN.outdrops.jsonl``. The
chunk's stats file says per piece its split, its rows and their column/role signatures (which
``dataset_info.json`` is built from), so a shard that ends inside a piece still knows exactly which columns
it holds. Only JSON Lines outputs are joined this way; other containers are written from the records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from datamill.dataset import DatasetWriter
from datamill.errors import CannotExpress
from datamill.io.writers import JsonlWriter, dumps_row
from datamill.record import Record
from datamill.results import drop_entry
from datamill.trace import lineage

Signature = tuple[tuple[str, ...], tuple[str, ...], bool]  # columns, message roles, ranking


@dataclass(frozen=True)
class OutputSpec:
    """What a worker needs to write its pieces: the run's output, as plain values (it travels to workers)."""

    format: str
    outdir: str
    split_key: str
    media_paths: str
    step: int  # the output's step number in dropped.jsonl (after the recipe's steps)


def can_join(container: str) -> bool:
    """Whether pieces of this container join into a shard byte for byte."""
    return container == "jsonl"


def split_of(rec: Record, key: str) -> str | None:
    """The split a record goes to (``meta[key]``, the split op's), or None for the unsplit shards."""
    split = rec.meta.get(key)
    return split if isinstance(split, str) and split else None


def piece_path(stage_dir: Path, chunk_name: str, kind: str, k: int) -> Path:
    return stage_dir / f"{chunk_name}.{kind}-{k}.jsonl"


def outdrops_path(stage_dir: Path, chunk_name: str) -> Path:
    return stage_dir / f"{chunk_name}.outdrops.jsonl"


class PieceWriter:
    """One chunk's pieces: ``write`` each kept record, then ``commit`` (or ``abort``); ``stats`` for the chunk."""

    def __init__(self, spec: OutputSpec, stage_dir: Path, chunk_name: str):
        self.spec, self.stage_dir, self.chunk_name = spec, stage_dir, chunk_name
        self.media_base = Path(spec.outdir) / "data.jsonl"  # media paths open from OUTDIR
        self.splits: dict[str | None, tuple[DatasetWriter, JsonlWriter, dict[Signature, int], list[int]]] = {}
        self.outdrops = JsonlWriter(outdrops_path(stage_dir, chunk_name))
        self.dropped: dict[str, int] = {}

    def write(self, rec: Record) -> None:
        split = split_of(rec, self.spec.split_key)
        rows, lines, sigs, row_sigs = self.splits.get(split) or self._open(split)
        written = write_or_drop(rec, rows, self.outdrops, self.dropped, self.spec.step)
        if written is None:
            return
        row, line = written
        lines.write_line(line)
        sig = (tuple(row), tuple(sorted({m.role for m in rec.messages})), rec.kind == "preference")
        row_sigs.append(sigs.setdefault(sig, len(sigs)))

    def _open(self, split: str | None):
        k = len(self.splits)
        rows = DatasetWriter(
            piece_path(self.stage_dir, self.chunk_name, "out", k),
            self.spec.format,
            register=False,
            media_paths=self.spec.media_paths,
            media_base=self.media_base,
            published=False,
        )
        piece = (rows, JsonlWriter(piece_path(self.stage_dir, self.chunk_name, "lin", k)), {}, [])
        self.splits[split] = piece
        return piece

    def commit(self) -> None:
        for rows, lines, _, _ in self.splits.values():
            rows.commit()
            lines.commit()
        self.outdrops.commit()

    def abort(self) -> None:
        for rows, lines, _, _ in self.splits.values():
            rows.abort()
            lines.abort()
        self.outdrops.abort()

    def stats(self) -> dict[str, Any]:
        pieces = []
        for split, (rows, _, sigs, row_sigs) in self.splits.items():
            table = [[list(cols), list(roles), ranking] for cols, roles, ranking in sigs]
            per_row = row_sigs if len(sigs) > 1 else None  # one signature for every row: no list
            pieces.append({"split": split, "rows": rows.count, "sigs": table, "row_sigs": per_row})
        return {"pieces": pieces, "dropped": self.dropped}


def write_or_drop(
    rec: Record, rows: DatasetWriter, drops: JsonlWriter, reasons: dict[str, int], step: int
) -> tuple[dict[str, Any], bytes] | None:
    """Write ``rec`` as an output row; returns the row and the record's lineage line (without data file and
    row, with its line break). A record the format cannot hold is dropped (into ``drops``, counted in
    ``reasons``): None."""
    changes = rec.meta.pop(lineage.KEY, None)  # meta.lineage goes to lineage.jsonl, not into the data row
    try:
        row = rows.write(rec)
    except CannotExpress as e:
        if changes:
            rec.meta[lineage.KEY] = changes
        reason = f"{rows.format.name} cannot hold it: {e}"
        reasons[reason] = reasons.get(reason, 0) + 1
        drops.write(drop_entry(rec, step, "output", reason))
        return None
    return row, dumps_row({"id": rec.id, "meta": rec.meta} | ({lineage.KEY: changes} if changes else {})) + b"\n"


def piece_rows(stage_dir: Path, chunk_name: str, k: int, piece: dict[str, Any]):
    """(data line, lineage line, signature number) for each row of one piece, in order."""
    row_sigs = piece["row_sigs"]
    with (
        open(piece_path(stage_dir, chunk_name, "out", k), "rb") as data,
        open(piece_path(stage_dir, chunk_name, "lin", k), "rb") as lines,
    ):
        for j, (row, line) in enumerate(zip(data, lines, strict=True)):
            yield row, line, row_sigs[j] if row_sigs is not None else 0


def lineage_piece(stage_dir: Path, chunk_name: str, k: int) -> list[bytes]:
    return piece_path(stage_dir, chunk_name, "lin", k).read_bytes().splitlines(keepends=True)


def lineage_lines(lines: list[bytes], file: str, first: int) -> list[bytes]:
    """Lineage lines (``write_or_drop``) of consecutive rows of ``file`` from row ``first``, with the data
    file and row each record landed at, after its id (``datamill trace`` finds ids at the start of a
    line). The first ``,"meta":`` ends the id: inside a JSON string every quote is escaped, so a comma and
    a quote never follow each other there."""
    where = b',"file":' + orjson.dumps(file) + b',"row":'
    out = []
    for row, line in enumerate(lines, first):
        cut = line.index(b',"meta":')
        out.append(line[:cut] + where + str(row).encode() + line[cut:])
    return out

"""Records in and out of files: ``read`` streams records (or quarantined rows) from any container in
any format; ``DatasetWriter`` writes records in a chosen format and registers the result in
LLaMA-Factory's dataset_info.json."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamill import dataset_info, formats
from datamill.errors import CannotExpress, FileError, RecordError
from datamill.formats import Format
from datamill.io.readers import RawRow, iter_rows
from datamill.io.writers import CsvWriter, HfDatasetWriter, TxtWriter, open_writer
from datamill.media import MediaPlacer
from datamill.record import Record

DETECT_WINDOW = 100  # rows looked at to tell a file's format


@dataclass(slots=True)
class Quarantined:
    """An input row that could not become a record (or could not be written), with why."""

    where: str
    file: str
    line: int | None
    index: int
    error: str
    raw: Any
    stage: str = "read"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file}
        if self.line is not None:
            out["line"] = self.line
        out |= {
            "index": self.index,
            "where": self.where,
            "stage": self.stage,
            "error": self.error,
            "raw": self.raw,
        }
        return out


def quarantine_row(path: Path, raw: RawRow, error: str, stage: str = "read", data: Any = None) -> Quarantined:
    return Quarantined(
        raw.where,
        str(path),
        raw.line,
        raw.index,
        error,
        data if data is not None else (raw.row if raw.row is not None else raw.raw),
        stage,
    )


def detect_format(path: Path, rows: list[RawRow]) -> Format:
    parsed = [r.row for r in rows if r.row is not None]
    for row in parsed:
        fmt = formats.detect(row)
        if fmt is not None:
            return fmt
    if not parsed:
        raise FileError(f"{path}: no readable record to tell the format from")
    keys = ", ".join(sorted(parsed[0])[:12]) or "(none)"
    raise FileError(
        f"{path}: cannot tell the dataset format; the first record has fields [{keys}]. "
        f"Pass --from with one of: {', '.join(formats.FORMATS)}"
    )


def read(
    path: str | Path,
    fmt: str | Format | None = None,
    encoding: str | None = None,
) -> Iterator[Record | Quarantined]:
    """Stream a file's records; rows that cannot be read come out as ``Quarantined``."""
    yield from read_with_format(path, fmt, encoding)[1]


def read_with_format(
    path: str | Path,
    fmt: str | Format | None = None,
    encoding: str | None = None,
    ids: bool = True,
) -> tuple[Format | None, Iterator[Record | Quarantined]]:
    """Like ``read`` but tells the (detected) format first. Format is None for an empty file.
    ``ids=False`` leaves ``Record.id`` empty (computed on demand) when the caller does not need it."""
    path = Path(path)
    rows = iter_rows(path, encoding)
    head = list(itertools.islice(rows, DETECT_WINDOW))
    if isinstance(fmt, str):
        fmt = formats.get(fmt)
    if fmt is None and head:
        fmt = detect_format(path, head)
    if fmt is None:
        return None, iter(())
    return fmt, _records(path, fmt, itertools.chain(head, rows), ids)


def _records(path: Path, fmt: Format, rows: Iterator[RawRow], ids: bool) -> Iterator[Record | Quarantined]:
    source = str(path)
    to_record = fmt.to_record
    for raw in rows:
        if raw.row is None:
            yield quarantine_row(path, raw, raw.error or "unreadable")
            continue
        try:
            rec = to_record(raw.row)
        except RecordError as e:
            yield quarantine_row(path, raw, f"{fmt.name}: {e}")
            continue
        rec.meta["source"] = source
        rec.meta["index"] = raw.index
        if raw.line is not None:
            rec.meta["line"] = raw.line
        if ids and not rec.id:
            rec.id = rec.compute_id()
        yield rec


class DatasetWriter:
    """Write records in one format into one file; ``commit`` makes it appear atomically. It refuses to
    replace a file or folder datamill did not write unless ``overwrite``.

    Media paths are rewritten so they open from the output's folder: ``media_paths`` ``relative``
    (to that folder), ``absolute`` or ``keep`` (as read); ``copy_media`` also copies the files into
    ``NAME_media/`` beside the output (see :mod:`datamill.media`); ``media_base`` names the output they
    open from when this file is only a part of it. ``published=False``: a work file (a piece of the
    output a worker writes into the work folder), neither checked against nor noted in the folder's
    manifest — a worker killed between writing it and noting it must not block the resume."""

    def __init__(
        self,
        path: str | Path,
        fmt: str | Format,
        keep_meta: bool = False,
        register: bool = True,
        name: str | None = None,
        overwrite: bool = False,
        media_paths: str = "relative",
        copy_media: bool = False,
        media_base: Path | None = None,
        published: bool = True,
    ):
        self.path = Path(path)
        self.format = formats.get(fmt) if isinstance(fmt, str) else fmt
        self.keep_meta = keep_meta
        self.register = register
        self.name = name or dataset_info.entry_name(self.path)
        if register:
            dataset_info.load(self.path)  # a broken dataset_info.json fails now, before any work
        self.rows = open_writer(self.path, output=published, overwrite=overwrite)
        if isinstance(self.rows, TxtWriter) and self.format.name != "pretrain":
            self.rows.abort()
            raise FileError(f"{self.path}: .txt holds pretraining text only; use .jsonl/.json for {self.format.name}")
        self.csv = isinstance(self.rows, CsvWriter) and self.format.name != "datamill"  # datamill reads its JSON cells
        if self.csv and self.format.nested:
            self.rows.abort()
            raise FileError(
                f"{self.path}: {self.format.name} keeps '{self.format.nested}' as a list in every row, which a .csv "
                "cell cannot carry (LLaMA-Factory would not load it); write .jsonl, .json or .parquet"
            )
        try:
            keep = media_paths == "keep" and not copy_media
            base = media_base or self.path  # the file whose folder media paths open from
            self.media = None if keep else MediaPlacer(base, media_paths, copy_media, self.name, overwrite)
        except BaseException:
            self.rows.abort()
            raise
        self.columns: set[str] = set()
        self.roles: set[str] = set()
        self.ranking = False
        self.info_path: Path | None = None

    @property
    def count(self) -> int:
        return self.rows.count

    def write(self, rec: Record) -> dict[str, Any]:
        """The row written for ``rec``. Raises ``CannotExpress`` when the format cannot hold the record;
        nothing is written then."""
        row = output_row(self.format, self.csv, rec)
        if self.media is not None and (rec.images or rec.videos or rec.audios):
            rec = self.media.place(rec)  # after the checks, so a record that is refused copies nothing
            row = self.format.from_record(rec)
        if self.keep_meta and self.format.name != "datamill":
            row["id"] = rec.id or rec.compute_id()
            row["meta"] = rec.meta
        self.rows.write(row)
        self.columns.update(row)
        for m in rec.messages:
            self.roles.add(m.role)
        self.ranking = self.ranking or rec.kind == "preference"
        return row

    def write_line(self, line: bytes, columns: list[str], roles: list[str], ranking: bool) -> None:
        """A row this writer's format already serialized (an output piece a worker wrote, see
        :mod:`datamill.pipeline.pieces`), with the columns and roles it holds."""
        self.rows.write_line(line)
        self._holds(columns, roles, ranking)

    def write_piece(self, path: Path, rows: int, signatures: list[tuple[list[str], list[str], bool]]) -> None:
        """A whole output piece (``rows`` lines of this format), copied in bulk; ``signatures`` are the
        (columns, roles, ranking) its rows hold."""
        self.rows.copy_lines(path, rows)
        for signature in signatures:
            self._holds(*signature)

    def _holds(self, columns: list[str], roles: list[str], ranking: bool) -> None:
        """Note what rows written from elsewhere hold, for ``dataset_info.json``."""
        self.columns.update(columns)
        self.roles.update(roles)
        self.ranking = self.ranking or ranking

    def commit(self) -> None:
        self.rows.commit()
        if self.media is not None:
            self.media.commit()
        if self.register and not isinstance(self.rows, HfDatasetWriter):
            entry = self.format.dataset_info(self.columns, self.ranking, self.roles)
            if entry is not None:
                self.info_path = dataset_info.update(self.path, self.name, entry)

    def abort(self) -> None:
        self.rows.abort()
        if self.media is not None:
            self.media.abort()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def output_row(fmt: Format, csv: bool, rec: Record) -> dict[str, Any]:
    """The row ``fmt`` writes for ``rec`` (into a .csv when ``csv``); raises ``CannotExpress`` when it
    cannot hold the record."""
    row = fmt.from_record(rec)
    if csv:
        _flat_for_csv(row)
    return row


def expressible(fmt: str, container: str, rec: Record) -> bool:
    """Whether an output of ``fmt`` in ``container`` (jsonl, parquet, csv …) can hold ``rec``."""
    try:
        output_row(formats.get(fmt), container == "csv" and fmt != "datamill", rec)
    except CannotExpress:
        return False
    return True


def _flat_for_csv(row: dict[str, Any]) -> None:
    """LLaMA-Factory reads a CSV cell as a plain string: a list (history, images) or an object there
    would load as one bogus value, so such a record cannot be written as CSV."""
    nested = [f"'{key}'" for key, value in row.items() if isinstance(value, list | dict)]
    if nested:
        what = f"columns {', '.join(nested)} hold" if len(nested) > 1 else f"column {nested[0]} holds"
        raise CannotExpress(
            f"{what} a list or object, which a .csv cell cannot carry for LLaMA-Factory; "
            "write .jsonl, .json or .parquet"
        )


def write(records, path: str | Path, fmt: str | Format, **kwargs: Any) -> int:
    """Write an iterable of records; returns how many were written. Raises on the first that
    the format cannot hold (use ``convert`` for quarantining instead)."""
    with DatasetWriter(path, fmt, **kwargs) as w:
        for rec in records:
            w.write(rec)
    return w.count

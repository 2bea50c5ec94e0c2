"""Write rows into a container atomically: everything goes to a temporary file beside the target
and is renamed into place only when the whole dataset is written, so a crash never leaves half a file.

.jsonl and .json stream straight out. .csv, .parquet and saved HF datasets need every column (and
its type) before they can start, so rows are spooled to a temporary .jsonl first and converted in
a second streaming pass.
"""

from __future__ import annotations

import csv
import gzip
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

import orjson

from datamill.errors import CannotExpress, DatamillError
from datamill.io import outputs
from datamill.io.atomic import temporary_beside
from datamill.io.readers import container_of, json_value

BATCH = 8192
BUFFER = 1 << 20  # write buffer of a .jsonl: one system call per MB, not per 8 KB


def dumps_row(row: Any) -> bytes:
    return orjson.dumps(row, default=json_value, option=orjson.OPT_NON_STR_KEYS)


class RowWriter:
    """Base: ``write(row)``, then ``commit()`` (atomic rename) or ``abort()`` (nothing left behind).

    An ``output`` writer publishes a file the user gets: it refuses (at open and again at commit) to
    replace anything datamill did not write unless ``overwrite``, and records what it wrote
    (:mod:`datamill.io.outputs`). Work files inside datamill's own folders are not outputs."""

    def __init__(self, path: Path, *, output: bool = False, overwrite: bool = False):
        self.path = path
        self.tmp = temporary_beside(path)
        self.count = 0
        self.output = output
        self.overwrite = overwrite
        if output:
            outputs.check_replace(path, overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Flush and close the temporary file(s)."""

    def commit(self) -> None:
        self._finish()
        if self.output:
            outputs.check_replace(self.path, self.overwrite)  # it may have appeared while we wrote
        if self.path.is_dir() and not self.path.is_symlink():
            if not self.output:
                raise DatamillError(f"{self.path}: a folder is in the way of a work file")
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        if self.output:
            outputs.record(self.path)

    def abort(self) -> None:
        try:
            self._finish()
        finally:
            for p in (self.tmp, *self._extra_tmp()):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                elif p.exists():
                    p.unlink()

    def _extra_tmp(self) -> list[Path]:
        return []


class JsonlWriter(RowWriter):
    def __init__(self, path: Path, **kwargs: Any):
        super().__init__(path, **kwargs)
        self.f: IO[bytes] = gzip.open(self.tmp, "wb") if path.suffix == ".gz" else open(self.tmp, "wb", BUFFER)

    def write(self, row: dict[str, Any]) -> None:
        self.f.write(dumps_row(row) + b"\n")
        self.count += 1

    def write_line(self, line: bytes) -> None:
        """An already-serialized JSON line (copying shards)."""
        self.f.write(line if line.endswith(b"\n") else line + b"\n")
        self.count += 1

    def write_lines(self, lines: list[bytes]) -> None:
        """Already-serialized JSON lines, each ending with its line break."""
        self.f.writelines(lines)
        self.count += len(lines)

    def copy_lines(self, path: Path, count: int | None = None) -> None:
        """The lines of a JSON Lines file datamill wrote (each ends with its break), in bulk: ``count``
        of them, or as many as it holds line breaks."""
        with open(path, "rb") as f:
            if count is not None:
                shutil.copyfileobj(f, self.f, 1 << 20)
                self.count += count
                return
            last = b"\n"
            while block := f.read(1 << 20):
                self.f.write(block)
                self.count += block.count(b"\n")
                last = block[-1:]
            if last != b"\n":  # a last line without its break
                self.f.write(b"\n")
                self.count += 1

    def _finish(self) -> None:
        if not self.f.closed:
            self.f.close()


class JsonArrayWriter(RowWriter):
    """A JSON array, indented like LLaMA-Factory's own files, written one record at a time."""

    def __init__(self, path: Path, **kwargs: Any):
        super().__init__(path, **kwargs)
        self.f = open(self.tmp, "wb")
        self.f.write(b"[")

    def write(self, row: dict[str, Any]) -> None:
        body = orjson.dumps(row, default=json_value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        self.f.write((b",\n  " if self.count else b"\n  ") + body.replace(b"\n", b"\n  "))
        self.count += 1

    def _finish(self) -> None:
        if not self.f.closed:
            self.f.write(b"\n]\n" if self.count else b"]\n")
            self.f.close()


class TxtWriter(RowWriter):
    """Plain text, one document per line; a document containing a newline cannot be held."""

    def __init__(self, path: Path, **kwargs: Any):
        super().__init__(path, **kwargs)
        self.f = open(self.tmp, "w", encoding="utf-8", newline="\n")

    def write(self, row: dict[str, Any]) -> None:
        text = row.get("text")
        if set(row) != {"text"} or not isinstance(text, str):
            raise CannotExpress(".txt holds pretraining text only; write .jsonl for other formats")
        if "\n" in text or "\r" in text:
            raise CannotExpress(".txt holds one document per line and this one has line breaks; use .jsonl")
        self.f.write(text + "\n")
        self.count += 1

    def _finish(self) -> None:
        if not self.f.closed:
            self.f.close()


class SpooledWriter(RowWriter):
    """Spool rows to a temporary .jsonl, tracking the columns, then convert at commit."""

    def __init__(self, path: Path, **kwargs: Any):
        super().__init__(path, **kwargs)
        self.spool = path.with_name(f".{path.name}.spool-{os.getpid()}.jsonl")
        self.f = open(self.spool, "wb")
        self.columns: dict[str, None] = {}

    def write(self, row: dict[str, Any]) -> None:
        for k in row:
            if k not in self.columns:
                self.columns[k] = None
        self.f.write(dumps_row(row) + b"\n")
        self.count += 1

    def _spooled_batches(self):
        with open(self.spool, "rb") as f:
            batch = []
            for line in f:
                batch.append(orjson.loads(line))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def _finish(self) -> None:
        if not self.f.closed:
            self.f.close()

    def commit(self) -> None:
        self._finish()
        try:
            self._convert()
            super().commit()
        finally:
            self.spool.unlink(missing_ok=True)

    def abort(self) -> None:
        super().abort()
        self.spool.unlink(missing_ok=True)

    def _convert(self) -> None:
        raise NotImplementedError


class CsvWriter(SpooledWriter):
    """CSV with the union of all columns as header; lists and objects become JSON text."""

    def _convert(self) -> None:
        with open(self.tmp, "w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(self.columns))
            writer.writeheader()
            for batch in self._spooled_batches():
                writer.writerows({k: _cell(v) for k, v in row.items()} for row in batch)


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value


class ParquetWriter(SpooledWriter):
    """Parquet whose schema is the permissive union of every batch's inferred schema, over every
    column any row has: a column missing from a row (or a whole batch) is written as null."""

    def _schema(self):
        import pyarrow as pa

        schema = None
        for batch in self._spooled_batches():
            # columns by name, not from_pylist(batch): that infers the columns from the first row only
            s = pa.schema([(k, pa.array([row.get(k) for row in batch]).type) for k in self.columns])
            schema = s if schema is None else pa.unify_schemas([schema, s], promote_options="permissive")
        return schema

    def _convert(self) -> None:
        self.write_parquet(self.tmp)

    def write_parquet(self, target: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self._schema() or pa.schema([])
        with pq.ParquetWriter(target, schema) as writer:
            for batch in self._spooled_batches():
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))


class HfDatasetWriter(ParquetWriter):
    """A directory loadable with ``datasets.load_from_disk``."""

    def _convert(self) -> None:
        try:
            import datasets
        except ImportError:
            raise DatamillError("writing a saved dataset needs `pip install 'datamill[hf]'`") from None
        datasets.disable_progress_bars()
        with tempfile.TemporaryDirectory(dir=self.path.parent) as tmpdir:
            parquet = Path(tmpdir) / "data.parquet"
            self.write_parquet(parquet)
            ds = datasets.Dataset.from_parquet(str(parquet), cache_dir=tmpdir)
            ds.save_to_disk(str(self.tmp))
            del ds


WRITERS: dict[str, type[RowWriter]] = {
    "jsonl": JsonlWriter,
    "json": JsonArrayWriter,
    "txt": TxtWriter,
    "csv": CsvWriter,
    "parquet": ParquetWriter,
    "hf": HfDatasetWriter,
}


def open_writer(path: str | Path, *, output: bool = False, overwrite: bool = False) -> RowWriter:
    """The writer for ``path``'s container: a path without a suffix (or a folder) is a saved HF dataset."""
    path = Path(path)
    container = "hf" if (path.is_dir() or not path.suffix) else container_of(path)
    return WRITERS[container](path, output=output, overwrite=overwrite)

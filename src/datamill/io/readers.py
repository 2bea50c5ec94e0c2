"""Stream rows out of a file: .jsonl, .json, .csv/.tsv, .parquet, .txt, saved HF datasets dirs.

Each row comes with where it came from (``file:line`` or ``file[#index]``). A row that cannot be
parsed comes back with an error instead of data, so the caller can quarantine it and go on.
A file that cannot be read at all raises ``FileError``. Nothing loads a whole large file in memory.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from datamill.errors import FileError
from datamill.io.encoding import sniff, sniff_bytes

SMALL_JSON = 64 << 20  # .json files under this are parsed in one go (fast); larger ones stream
CONTAINERS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".txt": "txt",
}


@dataclass(slots=True)
class RawRow:
    where: str  # file:line or file[#index]
    line: int | None  # 1-based line, or None for formats without lines
    index: int  # 0-based position of the record in the file
    row: dict[str, Any] | None
    error: str | None = None
    raw: Any = None  # the unparsed text, kept for the quarantine file


def container_of(path: Path) -> str:
    """jsonl | json | csv | parquet | txt | hf — from the path (``.gz`` is looked through)."""
    if path.is_dir():
        return "hf"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in CONTAINERS:
        return CONTAINERS[suffixes[-1]]
    if not path.suffix and not path.is_file():
        return "hf"
    raise FileError(
        f"{path}: unknown file type '{path.suffix or '(no extension)'}'; datamill reads "
        f"{', '.join(sorted(CONTAINERS))}, .gz of those, and saved Hugging Face datasets directories"
    )


def iter_rows(path: str | Path, encoding: str | None = None) -> Iterator[RawRow]:
    path = Path(path)
    if not path.exists():
        raise FileError(f"{path}: no such file or directory")
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise FileError(f"unknown encoding '{encoding}' (try utf-8, utf-16, gb18030, cp1252)") from None
    try:
        yield from _rows(path, encoding)
    except (OSError, EOFError, UnicodeError, LookupError) as e:  # unreadable: truncated .gz, wrong codec …
        raise FileError(f"{path}: cannot read: {e}") from None


def _rows(path: Path, encoding: str | None) -> Iterator[RawRow]:
    container = container_of(path)
    if container == "hf":
        yield from _hf_rows(path)
        return
    if path.stat().st_size == 0:
        return  # an empty file holds no records
    if container == "parquet":
        yield from _parquet_rows(path)
        return
    enc = encoding or _sniff(path)
    if container == "jsonl":
        yield from _jsonl_rows(path, enc)
    elif container == "json":
        yield from _json_rows(path, enc)
    elif container == "csv":
        yield from _csv_rows(path, enc)
    else:
        yield from _txt_rows(path, enc)


def _is_gz(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if _is_gz(path) else open(path, "rb")


def _sniff(path: Path) -> str:
    if _is_gz(path):
        with gzip.open(path, "rb") as f:
            return sniff_bytes(f.read(1 << 16))
    return sniff(path)


def _open_text(path: Path, enc: str) -> IO[str]:
    return io.TextIOWrapper(_open_binary(path), encoding=enc, errors="strict", newline="")


def _parse_line(where: str, lineno: int, index: int, data: bytes | str) -> RawRow:
    try:
        row = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raw = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        problem = f"invalid JSON: {e}"
        if "UTF-8" in str(e):
            problem = "the line is not valid UTF-8 (the file may mix encodings; pass --encoding)"
        return RawRow(where, lineno, index, None, problem, raw.rstrip("\r\n"))
    if not isinstance(row, dict):
        return RawRow(where, lineno, index, None, f"expected a JSON object, got {type(row).__name__}", row)
    return RawRow(where, lineno, index, row)


def _jsonl_rows(path: Path, enc: str) -> Iterator[RawRow]:
    name = str(path)
    index = 0
    if enc in ("utf-8", "ascii"):
        lines: Any = _open_binary(path)  # fast path: orjson parses (and UTF-8-validates) bytes
    else:
        lines = _open_text(path, enc)
    lineno = 0
    with lines:
        try:
            for lineno, line in enumerate(lines, 1):  # noqa: B007 - lineno is read in the except
                if not line.strip():
                    continue
                yield _parse_line(f"{name}:{lineno}", lineno, index, line)
                index += 1
        except UnicodeDecodeError as e:
            raise FileError(
                f"{path}: cannot decode as {enc} near line {index + 1}: {e.reason}; pass --encoding"
            ) from None
        except (OSError, EOFError) as e:  # truncated .gz
            raise FileError(f"{path}: cannot read: {e}") from None


def _json_rows(path: Path, enc: str) -> Iterator[RawRow]:
    if path.stat().st_size > SMALL_JSON and not _is_gz(path) and enc in ("utf-8", "utf-8-sig"):
        yield from _json_stream(path)
        return
    with _open_binary(path) as f:
        data = f.read()
    try:
        text: str | bytes = data.decode(enc) if enc not in ("utf-8", "ascii") else data
        value = orjson.loads(text)
    except UnicodeDecodeError as e:
        raise FileError(f"{path}: cannot decode as {enc}: {e.reason}; pass --encoding") from None
    except orjson.JSONDecodeError as e:
        if _looks_like_jsonl(data):
            yield from _jsonl_rows(path, enc)
            return
        raise FileError(f"{path}: invalid or truncated JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    yield from _value_rows(path, value)


def _looks_like_jsonl(data: bytes) -> bool:
    first = data.lstrip().split(b"\n", 1)
    if len(first) < 2:
        return False
    try:
        return isinstance(orjson.loads(first[0]), dict)
    except orjson.JSONDecodeError:
        return False


def _value_rows(path: Path, value: Any) -> Iterator[RawRow]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise FileError(f"{path}: expected a JSON array of objects, got {type(value).__name__}")
    for i, row in enumerate(value):
        where = f"{path}[#{i}]"
        if isinstance(row, dict):
            yield RawRow(where, None, i, row)
        else:
            yield RawRow(where, None, i, None, f"expected a JSON object, got {type(row).__name__}", row)


def _json_stream(path: Path) -> Iterator[RawRow]:
    import ijson

    i = 0
    try:
        with open(path, "rb") as f:
            for i, row in enumerate(ijson.items(f, "item", use_float=True)):  # noqa: B007
                where = f"{path}[#{i}]"
                if isinstance(row, dict):
                    yield RawRow(where, None, i, row)
                else:
                    yield RawRow(where, None, i, None, f"expected a JSON object, got {type(row).__name__}", row)
    except ijson.JSONError as e:
        raise FileError(f"{path}: invalid or truncated JSON after record #{i}: {e}") from None


def _csv_rows(path: Path, enc: str) -> Iterator[RawRow]:
    csv.field_size_limit(sys.maxsize)
    delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    with _open_text(path, enc) as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        try:
            for i, row in enumerate(reader):
                where = f"{path}:{reader.line_num}"
                if None in row:  # more cells than header columns
                    yield RawRow(
                        where,
                        reader.line_num,
                        i,
                        None,
                        f"{len(row[None]) + len(reader.fieldnames or [])} cells but "
                        f"{len(reader.fieldnames or [])} header columns",
                        list(row.values()),
                    )
                else:
                    yield RawRow(where, reader.line_num, i, {k: v for k, v in row.items() if v is not None})
        except (csv.Error, UnicodeDecodeError) as e:
            raise FileError(f"{path}: cannot read CSV near line {reader.line_num}: {e}") from None


def _txt_rows(path: Path, enc: str) -> Iterator[RawRow]:
    """Plain text: one document per non-blank line (as ``datasets``' text loader). A .txt that is
    really JSON (starts with '{' or '[') is read as JSON, and reported as such if broken."""
    with _open_text(path, enc) as f:
        head = f.read(4096).lstrip("\ufeff \t\r\n")
    if head[:1] in ("{", "["):
        try:
            yield from _json_rows(path, enc)
        except FileError as e:
            raise FileError(f"{e} (the .txt file looks like JSON; if it is plain text, rename it)") from None
        return
    index = 0
    with _open_text(path, enc) as f:
        try:
            for lineno, line in enumerate(f, 1):
                text = line.rstrip("\r\n")
                if text.strip():
                    yield RawRow(f"{path}:{lineno}", lineno, index, {"text": text})
                    index += 1
        except UnicodeDecodeError as e:
            raise FileError(f"{path}: cannot decode as {enc}: {e.reason}; pass --encoding") from None


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise FileError(f"{path}: not a readable Parquet file: {e}") from None
    i = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield RawRow(f"{path}[#{i}]", None, i, _drop_nulls(row))
            i += 1


def _drop_nulls(row: dict[str, Any]) -> dict[str, Any]:
    """Columnar files fill absent fields with null; drop them so detection sees the real fields."""
    return {k: v for k, v in row.items() if v is not None}


def _hf_rows(path: Path) -> Iterator[RawRow]:
    if not ((path / "state.json").exists() or (path / "dataset_dict.json").exists()):
        raise FileError(
            f"{path}: a directory, but not a saved Hugging Face dataset "
            "(no state.json or dataset_dict.json); `datamill ingest` reads folders of documents"
        )
    try:
        import datasets
    except ImportError:
        raise FileError(f"{path}: reading saved datasets needs `pip install 'datamill[hf]'`") from None
    ds = datasets.load_from_disk(str(path))
    splits = ds.items() if isinstance(ds, datasets.DatasetDict) else [(None, ds)]
    i = 0
    for split, part in splits:
        for batch in part.iter(batch_size=1000):
            for r in _unbatch(batch):
                where = f"{path}[{split + '#' if split else '#'}{i}]"
                yield RawRow(where, None, i, _drop_nulls(r))
                i += 1


def _unbatch(batch: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys), strict=True):
        yield dict(zip(keys, values, strict=True))

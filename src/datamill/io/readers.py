"""Stream rows out of a file: .jsonl, .json, .csv/.tsv, .parquet, .txt, saved HF datasets dirs.

Each row comes with where it came from (``file:line`` or ``file[#index]``). A row that cannot be
parsed comes back with an error instead of data, so the caller can quarantine it and go on.
A file that cannot be read at all raises ``FileError``, before any row. Damage found part-way
(a cut-short file, a broken record, bytes that do not decode) costs only the records it touches:
each becomes one row with an error, and every intact record before and after it is still read.
Nothing loads a whole large file in memory, and no record over ``max_record_bytes()`` is parsed.
"""

from __future__ import annotations

import base64
import codecs
import csv
import datetime
import decimal
import io
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from datamill.errors import FileError
from datamill.io.encoding import sniff_bytes
from datamill.io.json_array import SPACE, JsonArrayReader
from datamill.io.rows import UTF8, RawRow, max_record_bytes, stream_damage, too_large

SMALL_JSON = 64 << 20  # .json files up to this are read in one piece; larger ones in pieces this big
CONTAINERS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".txt": "txt",
}

# Bytes that do not decode become this lone surrogate, which no decoder ever produces, so a line or
# record holding it can be quarantined while the rest of the file reads on.
MARK = "\udfff"
codecs.register_error("datamill-mark", lambda e: (MARK, e.end))


def json_value(value: Any) -> Any:
    """``orjson`` ``default=`` hook: values of columnar files that JSON has no type for, made JSON, so
    writing a record or a quarantine entry never fails on them."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, decimal.Decimal):
        return float(value)  # one type per column, as JSON numbers are read back
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


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
    except (OSError, EOFError, UnicodeError, LookupError) as e:  # unreadable: not gzip, permission denied …
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
    limit = max_record_bytes()
    enc = encoding_of(path, encoding)
    if container == "jsonl":
        yield from _jsonl_rows(path, enc, limit, guessed=encoding is None)
    elif container == "json":
        yield from _json_rows(path, enc, limit)
    elif container == "csv":
        yield from _csv_rows(path, enc, limit)
    else:
        yield from _txt_rows(path, enc, limit)


def _is_gz(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


class _Gunzip(io.RawIOBase):
    """A .gz file's data (every member) that ends quietly where the file is cut short or corrupt,
    with ``damage`` saying why, so the reader keeps every record before that point. Data that is
    not gzip at all is a file-level failure."""

    def __init__(self, path: Path):
        self.file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.unzip = zlib.decompressobj(31)
        self.pending = memoryview(b"")
        self.produced = 0
        self.damage: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            if self.damage is not None or self.file.closed:
                return 0
            self.pending = memoryview(self._inflate())
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.produced += n
        return n

    def _inflate(self) -> bytes:
        data = self.file.read(1 << 16)
        try:
            if not data:
                if not self.unzip.eof:
                    self.damage = "the .gz file is cut short"
                self.file.close()
                return b""
            out = self.unzip.decompress(data)
            while self.unzip.eof and self.unzip.unused_data:  # the next member
                rest = self.unzip.unused_data
                self.unzip = zlib.decompressobj(31)
                out += self.unzip.decompress(rest)
            return out
        except zlib.error as e:
            if self.produced == 0 and not self.pending:
                raise OSError(f"not a readable gzip file ({e})") from None
            self.damage = f"the .gz data is corrupt ({e})"
            return b""

    def close(self) -> None:
        self.file.close()
        super().close()


def _open_binary(path: Path) -> IO[bytes]:
    return io.BufferedReader(_Gunzip(path), 1 << 16) if _is_gz(path) else open(path, "rb")


def encoding_of(path: Path, encoding: str | None = None) -> str:
    """The encoding ``iter_rows`` reads a text file in: the one given, else the one its start shows."""
    return encoding or _sniff(path)


def _sniff(path: Path) -> str:
    with _open_binary(path) as f:
        return sniff_bytes(f.read(1 << 16))


def _open_text(path: Path, enc: str) -> IO[str]:
    return io.TextIOWrapper(_open_binary(path), encoding=enc, errors="datamill-mark", newline="")


def _lines(f: IO, limit: int, lineno: int = 0) -> Iterator[tuple[int, Any]]:
    """(line number, line) for each line, numbered after ``lineno``; a line over ``limit`` comes as its
    size (an int) instead, read in pieces and dropped, never held whole."""
    if not isinstance(f, io.TextIOBase):
        yield from _byte_lines(f, limit, lineno)
        return
    while line := f.readline(limit + 1):
        lineno += 1
        if len(line) > limit and not line.endswith("\n"):
            size = len(line)
            while piece := f.readline(1 << 20):
                size += len(piece)
                if piece.endswith("\n"):
                    break
            yield lineno, size
        else:
            yield lineno, line


def _byte_lines(f: IO[bytes], limit: int, lineno: int = 0) -> Iterator[tuple[int, Any]]:
    """``_lines`` for bytes, split a block at a time (faster than reading line by line)."""
    carry, skipped = b"", 0  # skipped: bytes so far of a line over the limit
    while block := f.read(1 << 20):
        if skipped:
            nl = block.find(b"\n")
            if nl < 0:
                skipped += len(block)
                continue
            lineno += 1
            yield lineno, skipped + nl + 1
            skipped, block = 0, block[nl + 1 :]
        lines = (carry + block).split(b"\n")
        carry = lines.pop()
        for lineno, line in enumerate(lines, lineno + 1):  # noqa: B020 - numbering goes on
            yield lineno, line if len(line) <= limit else len(line) + 1
        if len(carry) > limit:
            skipped, carry = len(carry), b""
    if skipped:
        yield lineno + 1, skipped
    elif carry:
        yield lineno + 1, carry


def _parse_line(where: str, lineno: int, index: int, data: bytes | str, enc: str = "utf-8") -> RawRow:
    try:
        row = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raw = data.decode("utf-8", "replace") if isinstance(data, bytes) else data.replace(MARK, "\ufffd")
        problem = f"invalid JSON: {e}"
        if "UTF-8" in str(e):
            problem = f"the line is not valid {enc} (the file may mix encodings; pass --encoding)"
        return RawRow(where, lineno, index, None, problem, raw.rstrip("\r\n"))
    if not isinstance(row, dict):
        return RawRow(where, lineno, index, None, f"expected a JSON object, got {type(row).__name__}", row)
    return RawRow(where, lineno, index, row)


def _jsonl_rows(path: Path, enc: str, limit: int, guessed: bool = False) -> Iterator[RawRow]:
    name = str(path)
    binary = enc in UTF8  # fast path: orjson parses (and UTF-8-validates) bytes
    with _open_binary(path) if binary else _open_text(path, enc) as f:
        rows = _jsonl_parse(name, f, enc, limit, guessed and not binary)
        if not _is_gz(path):
            yield from rows
            return
        # a .gz may turn out cut short only at its end: hold one row back to charge the cut to it
        last = None
        for row in rows:
            if last is not None:
                yield last
            last = row
        damage = stream_damage(f)
        if last is not None and damage is not None:
            cut = "cut inside" if last.error else "cut right after"
            last = RawRow(last.where, last.line, last.index, None, f"{damage}: {cut} line {last.line}", last.raw)
        elif damage is not None:
            raise FileError(f"{path}: {damage} before its first record")
        if last is not None:
            yield last


def _jsonl_parse(
    name: str, f: IO, enc: str, limit: int, legacy_guess: bool, after_line: int = 0, index: int = 0
) -> Iterator[RawRow]:
    """The rows of the lines of ``f``, which start after line ``after_line`` and row ``index`` of the file."""
    for lineno, line in _lines(f, limit, after_line):
        where = f"{name}:{lineno}"
        if isinstance(line, int):
            yield RawRow(where, lineno, index, None, too_large(line, limit), None)
        elif not line.strip():
            continue
        elif lineno == 1 and enc == "utf-8-sig":
            yield _parse_line(where, lineno, index, line.removeprefix(codecs.BOM_UTF8))
        elif isinstance(line, str) and (problem := _undecodable(line, enc, legacy_guess)):
            yield RawRow(where, lineno, index, None, problem, line.replace(MARK, "\ufffd").rstrip("\r\n"))
        else:
            yield _parse_line(where, lineno, index, line, enc)
        index += 1


def _undecodable(text: str, enc: str, legacy_guess: bool) -> str | None:
    """Why a decoded line is not to be trusted: bytes that do not decode, or — when ``enc`` is only a
    guess from the file's head — text that is really UTF-8 and would come out as mojibake."""
    if MARK in text:
        return f"the line holds bytes that are not valid {enc} (the file may mix encodings; pass --encoding)"
    if legacy_guess and not text.isascii():
        try:
            text.encode(enc).decode("utf-8")
        except UnicodeError:
            return None
        return (
            f"the line is UTF-8, but the file's start reads as {enc}; decoding it as {enc} would garble it "
            "(the file mixes encodings; pass --encoding)"
        )
    return None


class _Utf8Stream:
    """A text file of any encoding as UTF-8 bytes, for the JSON reader; bytes that do not decode stay
    invalid UTF-8 (an encoded ``MARK``), so only the record holding them fails."""

    def __init__(self, f: IO[bytes], enc: str):
        self.f = f
        self.decoder = codecs.getincrementaldecoder(enc)(errors="datamill-mark")

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        return self.decoder.decode(data, final=not data or n < 0).encode("utf-8", "surrogatepass")

    @property
    def raw(self) -> Any:
        return self.f.raw if hasattr(self.f, "raw") else None


def _json_rows(path: Path, enc: str, limit: int) -> Iterator[RawRow]:
    with _open_binary(path) as f:
        stream: Any = f if enc in UTF8 else _Utf8Stream(f, enc)
        head = stream.read(SMALL_JSON)
        if enc == "utf-8-sig" or head.startswith(codecs.BOM_UTF8):
            head = head.removeprefix(codecs.BOM_UTF8)
        start = SPACE.match(head).end()
        if head[start : start + 1] == b"[":
            yield from JsonArrayReader(path, stream, head, limit, enc, SMALL_JSON).rows()
            return
        data = head + stream.read()
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        if _looks_like_jsonl(data):
            yield from _jsonl_rows(path, enc, limit)
            return
        if "UTF-8" in e.msg:
            raise FileError(f"{path}: cannot decode as {enc}; pass --encoding") from None
        raise FileError(f"{path}: invalid or truncated JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(value, dict):
        raise FileError(f"{path}: expected a JSON array of objects, got {type(value).__name__}")
    if len(data) > limit:
        yield RawRow(f"{path}[#0]", None, 0, None, too_large(len(data), limit), None)
    else:
        yield RawRow(f"{path}[#0]", None, 0, value)


def _looks_like_jsonl(data: bytes) -> bool:
    first = data.lstrip().split(b"\n", 1)
    if len(first) < 2:
        return False
    try:
        return isinstance(orjson.loads(first[0]), dict)
    except orjson.JSONDecodeError:
        return False


class _CsvLines:
    """The lines of a CSV file for ``csv.reader``, noting for the row being read whether it holds bytes
    that do not decode, and its size. Once a row is over the limit its lines are replaced by stubs
    with the same parity of '"', so the reader stays in step without the row ever being held."""

    def __init__(self, f: IO[str], limit: int):
        self.f, self.limit = f, limit
        self.reset()
        self.ended = True  # the last line read ended with a line break

    def reset(self) -> None:
        self.bad, self.size, self.quotes = False, 0, 0

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        line = self.f.readline(self.limit + 1)
        if not line:
            raise StopIteration
        quotes, size = line.count('"'), len(line)
        if size > self.limit and not line.endswith(("\n", "\r")):
            while piece := self.f.readline(1 << 20):
                quotes, size = quotes + piece.count('"'), size + len(piece)
                line = piece
                if piece.endswith("\n"):
                    break
        self.size += size
        self.quotes += quotes
        self.bad = self.bad or MARK in line
        self.ended = line.endswith(("\n", "\r"))
        if self.size > self.limit:
            return '"' * (quotes % 2) + ("\n" if self.ended else "")
        return line


def _csv_rows(path: Path, enc: str, limit: int) -> Iterator[RawRow]:
    csv.field_size_limit(sys.maxsize)
    delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    with _open_text(path, enc) as f:
        lines = _CsvLines(f, limit)
        reader = csv.reader(lines, delimiter=delimiter)
        try:
            header = next(reader, None)
        except csv.Error as e:
            raise FileError(f"{path}: cannot read the CSV header: {e}") from None
        if header is None:
            return
        if lines.bad or lines.size > limit:
            raise FileError(f"{path}: the CSV header line holds bytes that are not valid {enc}; pass --encoding")
        i = 0
        while True:
            lines.reset()
            try:
                cells = next(reader, None)
            except csv.Error as e:
                cells, problem = None, f"invalid CSV: {e}"
            else:
                if cells is None:
                    return
                if not cells:
                    continue  # a blank line
                problem = _csv_problem(cells, header, lines, enc)
            where = f"{path}:{reader.line_num}"
            if problem is None:
                yield RawRow(where, reader.line_num, i, dict(zip(header, cells, strict=False)))
            else:
                raw = None if lines.size > limit else [c.replace(MARK, "\ufffd") for c in cells or ()]
                yield RawRow(where, reader.line_num, i, None, problem, raw)
            i += 1


def _csv_problem(cells: list[str], header: list[str], lines: _CsvLines, enc: str) -> str | None:
    if lines.size > lines.limit:
        return too_large(lines.size, lines.limit)
    if lines.bad:
        return f"the row holds bytes that are not valid {enc} (the file may mix encodings; pass --encoding)"
    if not lines.ended and (len(cells) < len(header) or lines.quotes % 2):
        return "the file ends inside this row (cut short?)"
    if len(cells) > len(header):
        return f"{len(cells)} cells but {len(header)} header columns"
    return None


def _txt_rows(path: Path, enc: str, limit: int) -> Iterator[RawRow]:
    """Plain text: one document per non-blank line (as ``datasets``' text loader). A .txt that is
    really JSON (starts with '{' or '[') is read as JSON, and reported as such if broken."""
    with _open_text(path, enc) as f:
        head = f.read(4096).lstrip("\ufeff \t\r\n")
    if head[:1] in ("{", "["):
        try:
            yield from _json_rows(path, enc, limit)
        except FileError as e:
            raise FileError(f"{e} (the .txt file looks like JSON; if it is plain text, rename it)") from None
        return
    index = 0
    with _open_text(path, enc) as f:
        for lineno, line in _lines(f, limit):
            where = f"{path}:{lineno}"
            if isinstance(line, int):
                yield RawRow(where, lineno, index, None, too_large(line, limit), None)
            elif not line.strip():
                continue
            elif MARK in line:
                problem = f"the line holds bytes that are not valid {enc} (pass --encoding)"
                yield RawRow(where, lineno, index, None, problem, line.replace(MARK, "\ufffd").rstrip("\r\n"))
            else:
                yield RawRow(where, lineno, index, {"text": line.rstrip("\r\n")})
            index += 1


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    """Row group by row group, so a damaged one costs exactly its own records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise FileError(f"{path}: not a readable Parquet file: {e}") from None
    plain = _json_schema(pf.schema_arrow)
    i = 0
    for group in range(pf.num_row_groups):
        n, done = pf.metadata.row_group(group).num_rows, 0
        problem = f"row group {group} holds fewer rows than its metadata says (damaged file?)"
        try:
            for batch in pf.iter_batches(batch_size=4096, row_groups=[group]):
                for row in batch.to_pylist()[: n - done]:
                    yield _columnar_row(f"{path}[#{i}]", i, row, plain)
                    i, done = i + 1, done + 1
        except (pa.ArrowException, OSError) as e:
            problem = f"row group {group} cannot be read: {e}"
        for _ in range(n - done):  # each record the metadata counts is accounted for
            yield RawRow(f"{path}[#{i}]", None, i, None, problem, None)
            i += 1


def _json_schema(schema: Any) -> bool:
    """Whether every column of an Arrow schema reads as plain JSON values (no bytes, decimals, dates)."""
    import pyarrow as pa

    def plain(t: Any) -> bool:
        if pa.types.is_struct(t):
            return all(plain(t.field(k).type) for k in range(t.num_fields))
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            return plain(t.value_type)
        if pa.types.is_dictionary(t):
            return plain(t.value_type)
        return (
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_boolean(t)
            or pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_null(t)
        )

    return all(plain(f.type) for f in schema)


class _NotText(Exception):
    """A value no text format can hold (binary data, an image …)."""


def _plain(value: Any) -> Any:
    """A columnar value as JSON: decimals, dates and durations converted; bytes and objects refused."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        raise _NotText(f"binary data ({len(value):,} bytes)")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | datetime.timedelta):
        return json_value(value)
    raise _NotText(f"a {type(value).__name__} value")


def _columnar_row(where: str, i: int, row: dict[str, Any], plain: bool) -> RawRow:
    """Columnar files fill absent fields with null: drop them so detection sees the real fields."""
    row = {k: v for k, v in row.items() if v is not None}
    if plain:
        return RawRow(where, None, i, row)
    out = {}
    for k, v in row.items():
        try:
            out[k] = _plain(v)
        except _NotText as e:
            raw = orjson.loads(orjson.dumps(row, default=json_value, option=orjson.OPT_NON_STR_KEYS))
            return RawRow(where, None, i, None, f"column '{k}' holds {e}, which no text format can hold", raw)
    return RawRow(where, None, i, out)


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
        plain = _json_schema(part.data.schema)
        for batch in part.iter(batch_size=1000):
            for r in _unbatch(batch):
                yield _columnar_row(f"{path}[{split + '#' if split else '#'}{i}]", i, r, plain)
                i += 1


def _unbatch(batch: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    keys = list(batch)
    for values in zip(*(batch[k] for k in keys), strict=True):
        yield dict(zip(keys, values, strict=True))

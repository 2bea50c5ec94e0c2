"""Table files → rows for ``rows_to_dialogue``: CSV/TSV (header line) and XLSX (each sheet's first
non-empty row is its header). Provenance: source, sheet, line/row number."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from datamill.errors import FileError
from datamill.ingest.database import Row
from datamill.io.encoding import sniff_bytes


def read_table_rows(path: str | Path) -> Iterator[Row]:
    path = Path(path)
    if not path.is_file():
        raise FileError(f"{path}: no such file")
    ext = path.suffix.lower()
    if ext in (".csv", ".tsv"):
        data = path.read_bytes()
        text = data.decode(sniff_bytes(data[: 1 << 16]), errors="replace")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if ext == ".tsv" else ",")
        header: list[str] | None = None
        for lineno, cells in enumerate(reader, 1):
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() or f"column {i + 1}" for i, c in enumerate(cells)]
                continue
            values = {h: (cells[i].strip() if i < len(cells) else None) for i, h in enumerate(header)}
            yield Row(values, {"source": str(path), "line": lineno, "row": lineno})
    elif ext in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as e:
            raise FileError(f"{path}: not a readable XLSX file: {e}") from None
        try:
            for ws in book.worksheets:
                header = None
                for n, cells in enumerate(ws.iter_rows(values_only=True), 1):
                    if not any(c is not None and str(c).strip() for c in cells):
                        continue
                    if header is None:
                        header = [str(c).strip() if c is not None else f"column {i + 1}" for i, c in enumerate(cells)]
                        continue
                    values = {h: cells[i] if i < len(cells) else None for i, h in enumerate(header)}
                    yield Row(values, {"source": str(path), "sheet": ws.title, "row": n})
        finally:
            book.close()
    else:
        raise FileError(f"{path}: not a table file (.csv, .tsv, .xlsx)")

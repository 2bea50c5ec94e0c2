"""Database tables and queries → rows (any SQLAlchemy URL: ``sqlite:///file.db``,
``postgresql://user@host/db`` …), streamed in batches, each with its provenance (URL without the
password, table or query, row number, primary key when there is one). Rows become documents
(``row_documents``) or dialogue records (``datamill.ingest.dialogue``)."""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from datamill.errors import DatamillError
from datamill.record import Record

BATCH = 1000


class DatabaseError(DatamillError):
    """The database, table or query cannot be read; the message names it (never the password)."""


@dataclass(slots=True)
class Row:
    values: dict[str, Any]
    meta: dict[str, Any]  # source (URL without password), table | query, row (1-based), key


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


def read_rows(url: str, table: str | None = None, query: str | None = None, batch: int = BATCH) -> Iterator[Row]:
    """Every row of ``table`` (in primary-key order when it has one) or of the ``query`` result."""
    import sqlalchemy as sa

    if (table is None) == (query is None):
        raise DatabaseError("give a table or a query (exactly one)")
    shown = safe_url(url)
    try:
        engine = sa.create_engine(url)
    except Exception as e:  # bad URL, missing driver
        raise DatabaseError(f"{shown}: cannot open: {e}") from None
    try:
        with engine.connect() as conn:
            key: list[str] = []
            if table is not None:
                try:
                    t = sa.Table(table, sa.MetaData(), autoload_with=conn)
                except sa.exc.NoSuchTableError:
                    names = ", ".join(sa.inspect(conn).get_table_names()) or "(none)"
                    raise DatabaseError(f"{shown}: no table '{table}'; tables: {names}") from None
                key = [c.name for c in t.primary_key.columns]
                stmt: Any = sa.select(t).order_by(*t.primary_key.columns) if key else sa.select(t)
                where = {"table": table}
            else:
                stmt = sa.text(query)
                where = {"query": query}
            result = conn.execution_options(stream_results=True).execute(stmt)
            n = 0
            for chunk in result.mappings().partitions(batch):
                for m in chunk:
                    n += 1
                    values = {k: _plain(v) for k, v in m.items()}
                    meta = {"source": shown, **where, "row": n}
                    if key:
                        meta["key"] = {k: values[k] for k in key}
                    yield Row(values, meta)
    except DatabaseError:
        raise
    except sa.exc.SQLAlchemyError as e:
        raise DatabaseError(f"{shown}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    finally:
        engine.dispose()


def _plain(v: Any) -> Any:
    """Values JSON can hold: dates as ISO strings, decimals as numbers, bytes as a marker."""
    if isinstance(v, datetime.date | datetime.datetime | datetime.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return f"<{len(bytes(v))} bytes>"
    return v


def row_documents(rows: Iterator[Row]) -> Iterator[Record]:
    """Rows → pretraining text (``column: value`` lines), provenance in meta."""
    for row in rows:
        text = "\n".join(f"{k}: {v}" for k, v in row.values.items() if v is not None and str(v).strip())
        rec = Record(text=text, meta={**row.meta, "doc_type": "database"})
        rec.id = rec.compute_id()
        yield rec

"""Disk cache for LLM answers: a re-run with the same inputs makes no request.

Keyed by a SHA-256 of (kind, backend, model, messages/prompt, every sampling param), stored in one
SQLite database in WAL mode. SQLite gives what a cache shared by worker processes needs: many
readers and writers at once (writers wait on ``busy_timeout``), and every ``put`` is one transaction,
so a process killed with ``kill -9`` mid-write leaves either the whole entry or nothing. Values are
also stored with their own checksum; an entry that does not match it is ignored (and overwritten).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson

SCHEMA_VERSION = 1


def make_key(kind: str, backend: str, body: dict[str, Any]) -> str:
    """Stable key: canonical JSON (sorted keys) of everything that changes the answer."""
    blob = orjson.dumps(
        {"v": SCHEMA_VERSION, "kind": kind, "backend": backend, "body": body}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(blob).hexdigest()


def _while_locked(fn: Any, seconds: float = 60.0) -> Any:
    """Retry ``fn`` while SQLite says the database is locked. Switching a new file to WAL while
    another process does the same fails at once with SQLITE_BUSY — the busy timeout does not apply
    there (seen with two workers opening the cache together)."""
    deadline, delay = time.monotonic() + seconds, 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


class Cache:
    """``get(key) -> dict | None`` and ``put(key, dict)``; safe across threads and processes."""

    def __init__(self, directory: str | os.PathLike[str] | None = None):
        if directory is None:
            from datamill.llm.client import default_cache_dir

            directory = default_cache_dir()
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "cache.sqlite"
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._conn()  # create the table now, so errors show up at start

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=60000")
            _while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute("PRAGMA synchronous=NORMAL")
            _while_locked(
                lambda: conn.execute(
                    "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, sum TEXT NOT NULL)"
                )
            )
            self._local.conn = conn
            self._local.pid = os.getpid()
            with self._lock:
                self._conns.append(conn)
        return conn

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT value, sum FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value, digest = row
        if hashlib.sha256(value).hexdigest()[:16] != digest:
            return None
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        blob = orjson.dumps(value)
        self._conn().execute(
            "INSERT OR REPLACE INTO entries (key, value, sum) VALUES (?, ?, ?)",
            (key, blob, hashlib.sha256(blob).hexdigest()[:16]),
        )

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

"""Optional: the database reader against a real PostgreSQL (Debian's ``postgresql`` package and the
``psycopg`` driver). Uses ``DATAMILL_TEST_PG_URL`` when set; otherwise starts a throw-away cluster
in a temporary directory (as the ``postgres`` user when run as root) and stops it afterwards.
Skipped when neither is possible."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from datamill.ingest.database import read_rows
from datamill.ingest.dialogue import rows_to_dialogue
from datamill.record import Record

pytest.importorskip("psycopg")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url():
    if os.environ.get("DATAMILL_TEST_PG_URL"):
        yield os.environ["DATAMILL_TEST_PG_URL"]
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="datamill-pg-"))
    data, port = root / "data", _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser")
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=60)

    r = run(str(bindir / "initdb"), "-D", str(data), "-U", "datamill", "--auth=trust", "-E", "UTF8")
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {r.stderr.strip()[:200]}")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    r = run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start")
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {r.stderr.strip()[:200]}")
    try:
        yield f"postgresql+psycopg://datamill@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_table_and_query(pg_url):
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    with engine.begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS city"))
        c.execute(sa.text("CREATE TABLE city (id serial PRIMARY KEY, name text, population bigint, founded date)"))
        c.execute(
            sa.text("INSERT INTO city (name, population, founded) VALUES (:n, :p, :f)"),
            [{"n": f"城市{i}", "p": 1000 * i, "f": f"19{i % 90 + 10}-01-01"} for i in range(1, 301)],
        )
    engine.dispose()
    rows = list(read_rows(pg_url, table="city", batch=50))
    assert len(rows) == 300 and rows[0].meta["key"] == {"id": 1} and rows[0].values["founded"] == "1911-01-01"
    out = list(rows_to_dialogue(rows, "zh"))
    assert len(out) == 300 and all(isinstance(r, Record) for r in out)
    assert out[0].messages[1].content == "城市1的population是1000。"
    (big,) = list(read_rows(pg_url, query="SELECT count(*) AS n, max(population) AS top FROM city"))
    assert big.values == {"n": 300, "top": 300000}

"""Optional: a review project on a real PostgreSQL instead of the SQLite file — the same schema, answers,
history and export (the throw-away cluster of test_ingest_postgres.py; skipped where it cannot start)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from test_ingest_postgres import pg_url  # noqa: F401 - the fixture
from test_review_projects import XSS, alpaca_sample, person, queue_of

from datamill.review.answers import submit
from datamill.review.export import export
from datamill.review.project import start
from datamill.review.schema import Base, History
from datamill.review.store import Project

pytest.importorskip("psycopg")


def test_a_project_on_postgres(pg_url, tmp_path):  # noqa: F811
    s = start(alpaca_sample(tmp_path / "in.jsonl", 3), pg_url, "sft", annotators=["alice", "bob"], overlap=2)
    assert s.items == 3
    project = Project(pg_url)
    try:
        for name in ("alice", "bob"):
            who, q = person(project, name), queue_of(project, name)
            submit(project, who, q[0].id, {"decision": "accept"})
            submit(project, who, q[1].id, {"decision": "edit", "edits": {"messages.1": "改写后的回答"}})
        out = export(project, tmp_path / "out", "sharegpt")
        assert (out.written, out.pending) == (2, 1)
        rows = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
        assert rows[0]["conversations"][0]["value"] == XSS["instruction"]
        assert rows[1]["conversations"][-1]["value"] == "改写后的回答"
        with project.read() as ses:
            assert ses.scalar(select(func.count(History.id)).where(History.table == "answers")) == 4
    finally:
        Base.metadata.drop_all(project.engine)
        project.close()

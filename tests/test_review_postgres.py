"""Optional: a review project on a real PostgreSQL instead of the SQLite file — the same schema, answers,
history and export, questions, gold, the disagreement filter and the schema 1 upgrade (the throw-away
cluster of test_ingest_postgres.py; skipped where it cannot start)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text
from test_ingest_postgres import pg_url  # noqa: F401 - the fixture
from test_review_gold import gold_file
from test_review_projects import XSS, alpaca_sample, person, queue_of
from test_review_questions import write_yaml

from datamill.review import questions, queue
from datamill.review.agreement import summary
from datamill.review.answers import submit
from datamill.review.export import export
from datamill.review.project import add_annotator, start
from datamill.review.schema import Base, History, Item
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


def test_questions_gold_filters_and_the_upgrade_on_postgres(pg_url, tmp_path):  # noqa: F811
    gold, _ = gold_file(tmp_path, 2)
    asked = questions.load(write_yaml(tmp_path, [{"name": "topic", "kind": "label", "labels": ["a", "b"]}]), "sft")
    src = alpaca_sample(tmp_path / "in.jsonl", 3)
    start(src, pg_url, "sft", annotators=["alice", "bob"], overlap=2, questions=asked, gold=gold, gold_rate=0.5)
    project = Project(pg_url)
    try:
        for name, topic in (("alice", "a"), ("bob", "b")):
            for a in queue_of(project, name):  # 3 items and 2 gold each
                with project.read() as ses:
                    known = ses.get(Item, a.item_id).gold
                decision = known["decision"] if known else "reject" if (name, a.position) == ("alice", 0) else "accept"
                body = {"decision": decision, "responses": {"topic": topic}}
                submit(project, person(project, name), a.id, body)
        add_annotator(project, "judge", role="adjudicator")
        assert queue.table(project, person(project, "judge"), disagree=True)["total"] == 10  # the topic, everywhere
        assert [(g["name"], g["accuracy"]) for g in summary(project)["gold"]] == [("alice", 1.0), ("bob", 1.0)]
        assert export(project, tmp_path / "out", "sharegpt").items == 3
        with project.engine.begin() as con:  # back to schema 1
            for index in ("ix_items_score", "ix_items_source", "ix_items_disagree", "assignments_next"):
                con.execute(text(f"DROP INDEX {index}"))
            for column in ("gold", "score", "source", "tags", "disagree", "embedding", "uncertainty", "prediction",
                           "auto"):  # fmt: skip
                con.execute(text(f"ALTER TABLE items DROP COLUMN {column}"))
            con.execute(text("ALTER TABLE answers DROP COLUMN responses"))
            con.execute(text("ALTER TABLE assignments DROP COLUMN rank"))
            con.execute(text("UPDATE settings SET value = '1' WHERE key = 'schema'"))
        old = Project(pg_url)
        assert old.settings["schema"] == 3
        with old.read() as ses:  # schema 1 had no questions: alice's reject of item 1 is the disagreement left
            assert ses.scalars(select(Item.seq).where(Item.disagree.is_(True))).all() == [0]
            assert ses.scalar(select(func.count()).select_from(Item).where(Item.source.is_not(None))) == 5
        old.close()
    finally:
        Base.metadata.drop_all(project.engine)
        project.close()

"""Gold items (`review start --gold gold.jsonl --gold-rate R`): records with known answers mixed into
each annotator's queue at that rate, at seeded random places, shown like any other item over real
HTTP, scored per annotator on the stats page and in `review stats --json`, and never exported."""

from __future__ import annotations

import json

import pytest
from conftest import LF
from sqlalchemy import func, select
from test_review_http import serving, signed_in
from typer.testing import CliRunner

import datamill
from datamill.cli import app
from datamill.record import Record
from datamill.review.project import start
from datamill.review.schema import Annotator, Assignment, Item
from datamill.review.store import Project, ReviewError


def gold_file(tmp_path, n: int = 20):
    """n records of the zh alpaca demo (not in the data) with known answers: even ones accepted."""
    recs = [r for r in datamill.read(LF / "alpaca_zh_demo.json") if isinstance(r, Record)][:n]
    for k, rec in enumerate(recs):
        rec.meta["gold"] = {"decision": "accept" if k % 2 == 0 else "reject", "reason": "known"}
    path = tmp_path / "gold.jsonl"
    datamill.write(recs, path, "datamill")
    return path, recs


def test_gold_is_mixed_in_hidden_scored_and_never_exported(tmp_path):
    gold, gold_recs = gold_file(tmp_path)
    db = tmp_path / "p.db"
    s = start(LF / "alpaca_en_demo.json", db, "sft", annotators=["alice", "bob"], gold=gold, gold_rate=0.02, seed=5)
    assert (s.items, s.gold) == (999, 20)
    project = Project(db)
    with project.read() as ses:
        rows = ses.execute(
            select(Annotator.name, Assignment.position, Assignment.id, Item.gold, Item.record_id)
            .join(Assignment, Assignment.annotator_id == Annotator.id)
            .join(Item, Item.id == Assignment.item_id)
        ).all()
        stored = ses.scalar(select(Item).where(Item.gold.is_not(None)))
    for name in ("alice", "bob"):
        mine = sorted((pos, aid, g is not None) for n, pos, aid, g, _ in rows if n == name)
        golden = [k for k, (_, _, g) in enumerate(mine) if g]
        data = len(mine) - len(golden)
        assert data in (499, 500) and len(golden) == 10  # round(500 × 0.02 / 0.98): 10 / 510 is gold
        assert golden[0] < len(mine) / 3 and golden[-1] > 2 * len(mine) / 3  # spread through the queue
    assert "gold" not in stored.record["meta"]  # the known answer is not in what is shown
    gold_ids = {r.id for r in gold_recs}
    wrong, data_answers = 0, 0
    with serving(db) as base:
        for name in ("alice", "bob"):
            client, csrf = signed_in(base, s.tokens[name])
            for k, (_, _, aid, known, _) in enumerate(r for r in rows if r[0] == name):
                if known is None and k % 7:
                    continue  # answer a few data items and every gold one
                view = client.get(f"/api/assignments/{aid}").json()
                assert set(view["item"]) == {"id", "record_id", "where", "suggestions", "turns"}  # no flag
                assert view["item"]["where"] == {} and "gold.jsonl" not in json.dumps(view)  # no file name
                data_answers += known is None
                decision = "accept" if known is None else known["decision"]
                if name == "bob" and known is not None:
                    if wrong < 3:  # wrong: an edit of a known reject keeps it
                        decision, wrong = "edit" if decision == "reject" else "reject", wrong + 1
                    elif decision == "accept":
                        decision = "edit"  # right: an edit keeps the record, as accepting does
                body = {"decision": decision}
                if decision == "edit":
                    body["edits"] = {"messages.1": "changed"}
                r = client.post(f"/api/assignments/{aid}/answer", json=body, headers={"X-CSRF-Token": csrf})
                assert r.status_code == 200, r.text
        page = client.get("/stats")
        assert page.status_code == 200 and 'id="gold"' in page.text
        stats = client.get("/api/stats").json()
    assert stats["gold"] == [
        {"name": "alice", "items": 10, "checks": 10, "correct": 10, "accuracy": 1.0},
        {"name": "bob", "items": 10, "checks": 10, "correct": 7, "accuracy": 0.7},
    ]
    cli = json.loads(CliRunner().invoke(app, ["review", "stats", str(db), "--json"]).output)
    assert cli["gold"] == stats["gold"]
    assert cli["answers"] == stats["answers"] == data_answers  # agreement counts the data's answers only
    text = CliRunner().invoke(app, ["review", "stats", str(db)]).output
    assert "accuracy on gold" in text and "70%" in text
    result = CliRunner().invoke(app, ["review", "export", str(db), "-o", str(tmp_path / "out"), "--to", "datamill"])
    assert result.exit_code == 0 and "items 999 = " in result.output
    out = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    dropped = (tmp_path / "out" / "dropped.jsonl").read_text(encoding="utf-8")
    assert out and not {r["id"] for r in out} & gold_ids and not any(g in dropped for g in gold_ids)
    assert json.loads((tmp_path / "out" / "review.json").read_text(encoding="utf-8"))["items"] == 999


def test_gold_files_are_checked(tmp_path):
    gold, recs = gold_file(tmp_path, 2)
    src = LF / "alpaca_en_demo.json"
    with pytest.raises(ReviewError, match="--gold-rate needs --gold"):
        start(src, tmp_path / "a.db", "sft", gold_rate=0.1)
    with pytest.raises(ReviewError, match="--gold-rate must be above 0 and below 1"):
        start(src, tmp_path / "a.db", "sft", gold=gold, gold_rate=1.5)
    with pytest.raises(ReviewError, match=r"record 1: meta.gold: decision must be one of desirable, undesirable"):
        start(src, tmp_path / "a.db", "kto", gold=gold)
    recs[1].meta.pop("gold")
    datamill.write(recs, tmp_path / "half.jsonl", "datamill")
    with pytest.raises(ReviewError, match=r"half.jsonl: record 2 has no meta.gold"):
        start(src, tmp_path / "a.db", "sft", gold=tmp_path / "half.jsonl")
    assert not (tmp_path / "a.db").exists()
    start(src, tmp_path / "b.db", "sft", annotators=["alice"], gold=gold)  # default rate 0.05: both gold mixed in
    with Project(tmp_path / "b.db").read() as ses:
        assert ses.scalar(select(func.count()).select_from(Assignment)) == 999 + 2

"""`review suggest`: the pipeline's judges (quality_judge, judge_pairwise, judge_score) run on the items
that have no judgment yet, through the LLM layer against a scripted OpenAI-compatible judge; the
suggestions are stored with their history and shown beside the item (pairs as the side each annotator
sees them on)."""

from __future__ import annotations

import json
import re

import yaml
from conftest import LF
from llm_fakes import FakeLLM
from sqlalchemy import func, select
from test_llm_quality import judge_reply
from test_prefs_pipeline import PAIR, SINGLE
from test_review_http import serving, signed_in
from typer.testing import CliRunner

import datamill
from datamill.cli import app
from datamill.record import Record
from datamill.review.project import start
from datamill.review.schema import Assignment, History, Item
from datamill.review.store import Project


def llm_option(fake: FakeLLM) -> str:
    return yaml.safe_dump({"backend": "openai", "base_url": fake.base_url, "model": "judge", "cache": False,
                           "max_retries": 0}, default_flow_style=True)  # fmt: skip


def longer_wins(body: dict) -> str:
    """Position-blind: the longer answer wins a pair and scores 8 (the shorter 3)."""
    user = [m for m in body["messages"] if m["role"] == "user"][0]["content"]
    pair = PAIR.search(user)
    if pair:
        a, b = pair.groups()
        return json.dumps({"winner": "A" if len(a) > len(b) else "B", "reason": "more complete"})
    (answer,) = SINGLE.search(user).groups()
    return json.dumps({"score": 8 if len(answer) > 200 else 3, "reason": "by length"})


def suggest(db, fake, *extra) -> str:
    result = CliRunner().invoke(app, ["review", "suggest", str(db), "--llm", llm_option(fake), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_suggest_scores_the_records_without_a_judgment(tmp_path):
    recs = [r for r in datamill.read(LF / "alpaca_en_demo.json") if isinstance(r, Record)][:8]
    recs[0].meta["quality"] = {"score": 5, "reason": "from the pipeline", "judge": "quality_rubric"}
    recs[1].messages[-1].content = "BROKEN " + recs[1].messages[-1].content  # the judge answers prose
    src = tmp_path / "in.jsonl"
    datamill.write(recs, src, "datamill")
    db = tmp_path / "p.db"
    start(src, db, "sft")
    with FakeLLM(reply=judge_reply) as fake:
        out = suggest(db, fake)
        assert re.search(r"judged now\W+6\b", out) and re.search(r"had a judgment\W+1\b", out)
        assert fake.count == 6 + 3  # 6 scored once; the prose answer asked three times
        again = suggest(db, fake)
        assert fake.count == 9 + 3  # a second run asks only about the one still without a judgment
    assert "1 × invalid json" in again
    with Project(db).read() as s:
        items = s.scalars(select(Item).order_by(Item.seq)).all()
        history = s.scalar(select(func.count()).select_from(History).where(History.action == "suggest"))
    assert [h["source"] for h in items[0].suggestions] == ["quality_judge"]  # the pipeline's, not asked again
    assert items[1].suggestions == [] and items[1].score is None
    for item in items[2:]:
        (hint,) = item.suggestions
        expected = 1 if len(item.record["messages"][-1]["content"]) < 60 else 4
        assert hint == {"source": "quality_judge", "kind": "score", "field": "quality", "score": expected, "max": 5,
                        "reason": "short" if expected == 1 else "complete", "model": "judge",
                        "by": "review suggest"}  # fmt: skip
        assert item.score == expected  # the table's score filter
    assert history == 6


def test_suggest_judges_pairs_in_both_orders_and_shows_each_annotators_side(tmp_path):
    rows = json.loads((LF / "dpo_en_demo.json").read_text(encoding="utf-8"))[:4]
    src = tmp_path / "dpo.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    db, scored = tmp_path / "p.db", tmp_path / "s.db"
    s = start(src, db, "pairwise", annotators=["alice", "bob"], overlap=2, seed=4)
    start(src, scored, "pairwise", annotators=["alice"], seed=4)
    with FakeLLM(reply=longer_wins) as fake:
        suggest(db, fake)
        assert fake.count == 4 * 2  # each pair in both orders
        suggest(scored, fake, "--judge", "score")
        assert fake.count == 8 + 4 * 2  # each answer once
    bad = CliRunner().invoke(app, ["review", "suggest", str(db), "--judge", "quality"])
    assert bad.exit_code == 1 and "--judge quality does not fit a pairwise task" in bad.output
    with Project(db).read() as ses:
        items = ses.scalars(select(Item).order_by(Item.seq)).all()
        shown = {(a.annotator_id, a.item_id): a.shown for a in ses.scalars(select(Assignment))}
    longer = []
    for item in items:
        hint = next(h for h in item.suggestions if h["source"] == "judge_pairwise")
        texts = [c["text"] for c in item.payload["candidates"]]
        longer.append(0 if len(texts[0]) > len(texts[1]) else 1)
        assert hint["prefers"] == longer[-1] and hint["consistent"] is True and hint["by"] == "review suggest"
    with serving(db) as base:
        for person, name in enumerate(("alice", "bob"), 1):
            client, _ = signed_in(base, s.tokens[name])
            for row in client.get("/api/table").json()["rows"]:
                view = client.get(f"/api/assignments/{row['assignment']}").json()["item"]
                hint = next(h for h in view["suggestions"] if h["source"] == "judge_pairwise")
                order = shown[(person, row["item"])]
                assert hint["side"] == "AB"[order.index(longer[row["item"] - 1])]  # where they see the longer one
    with Project(scored).read() as ses:
        item = ses.scalar(select(Item).where(Item.seq == 0))
    got = [(h["candidate"], h["score"]) for h in item.suggestions if h["source"] == "judge_score"]
    assert sorted(got) == [(0, 8 if len(item.payload["candidates"][0]["text"]) > 200 else 3),
                           (1, 8 if len(item.payload["candidates"][1]["text"]) > 200 else 3)]  # fmt: skip

"""Review projects on real data (LLaMA-Factory's alpaca and DPO demos, a real run's OUTDIR): what
`review start` stores, answers and their history, what `review export` writes record by record, and
agreement against the libraries' own published examples."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import LF
from sqlalchemy import func, select
from typer.testing import CliRunner

import datamill
from datamill.cli import app
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.record import Message, Record
from datamill.review.agreement import measures, summary
from datamill.review.answers import BadAnswer, submit
from datamill.review.export import export
from datamill.review.project import add_annotator, start
from datamill.review.schema import Annotator, Answer, Assignment, History, Item
from datamill.review.store import Project, ReviewError
from datamill.review.tokens import hash_token

XSS = {
    "instruction": "Say hello <script>alert(1)</script>",
    "input": "",
    "output": "Hello <img src=x onerror=alert(1)>",
}


def alpaca_sample(path: Path, n: int = 5) -> Path:
    """The XSS item first, then the first n-1 records of the alpaca demo, as JSONL."""
    rows = [XSS, *json.loads((LF / "alpaca_en_demo.json").read_text(encoding="utf-8"))[: n - 1]]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def person(project: Project, name: str) -> Annotator:
    with project.read() as s:
        return s.scalar(select(Annotator).where(Annotator.name == name))


def queue_of(project: Project, name: str) -> list[Assignment]:
    with project.read() as s:
        who = s.scalar(select(Annotator).where(Annotator.name == name))
        mine = select(Assignment).where(Assignment.annotator_id == who.id)
        return list(s.scalars(mine.order_by(Assignment.position)))


def test_start_keeps_records_and_hands_out_overlap(tmp_path):
    db = tmp_path / "p.db"
    s = start(LF / "alpaca_en_demo.json", db, "sft", annotators=["alice", "bob", "carol"], overlap=2)
    assert (s.read, s.records, s.items, s.quarantined) == (999, 999, 999, 0)
    project = Project(db)
    with project.read() as ses:
        assert ses.scalar(select(func.count(Assignment.id))) == 999 * 2
        per_item = ses.execute(select(Assignment.item_id, func.count()).group_by(Assignment.item_id)).all()
        assert {n for _, n in per_item} == {2}  # every item exactly `overlap` annotators
        loads = ses.scalars(select(func.count()).select_from(Assignment).group_by(Assignment.annotator_id)).all()
        assert sorted(loads) == [666, 666, 666]  # round-robin: an even share
        first = ses.scalar(select(Item).where(Item.seq == 0))
    original = next(iter(datamill.read(LF / "alpaca_en_demo.json")))
    assert first.record_id == original.id and first.record == original.to_dict()  # id, meta (source, index) kept
    assert first.record["meta"] == {"source": str(LF / "alpaca_en_demo.json"), "index": 0}
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    stored = con.execute("SELECT name, token_hash FROM annotators").fetchall()
    con.close()
    raw = b"".join(Path(f"{db}{x}").read_bytes() for x in ("", "-wal") if Path(f"{db}{x}").exists())
    for token in s.tokens.values():
        assert len(token) >= 32 and token.encode() not in raw  # the token itself is never stored
    assert {n for n, _ in stored} == set(s.tokens) and all(len(h) == 64 for _, h in stored)


def test_start_refuses_bad_options_and_leaves_nothing(tmp_path):
    db = tmp_path / "p.db"
    with pytest.raises(ReviewError, match="overlap 3"):
        start(LF / "alpaca_en_demo.json", db, "sft", annotators=["alice", "bob"], overlap=3)
    with pytest.raises(ReviewError, match="--labels"):
        start(LF / "alpaca_en_demo.json", db, "label", labels=["only"])
    with pytest.raises(ReviewError, match="annotator name"):
        start(LF / "alpaca_en_demo.json", db, "sft", annotators=["a b"])
    assert not db.exists()
    start(LF / "alpaca_en_demo.json", db, "sft")
    with pytest.raises(ReviewError, match="already exists"):
        start(LF / "alpaca_en_demo.json", db, "sft")


def test_pairwise_items_from_dpo_pairs_with_stored_random_order(tmp_path):
    db = tmp_path / "p.db"
    s = start(LF / "dpo_en_demo.json", db, "pairwise", annotators=["alice", "bob"], overlap=2, seed=7)
    assert s.items == 300
    project = Project(db)
    with project.read() as ses:
        item = ses.scalar(select(Item).where(Item.seq == 0))
        orders = [tuple(a.shown) for a in ses.scalars(select(Assignment))]
    rec = next(iter(datamill.read(LF / "dpo_en_demo.json")))
    assert item.payload["candidates"][0]["text"] == rec.chosen.content
    assert item.payload["candidates"][1]["text"] == rec.rejected.content
    assert {"source": "dataset", "kind": "prefers", "prefers": 0} in item.suggestions
    assert 200 < orders.count((1, 0)) < 400 and orders.count((0, 1)) + orders.count((1, 0)) == 600  # both orders
    again = tmp_path / "q.db"
    start(LF / "dpo_en_demo.json", again, "pairwise", annotators=["alice", "bob"], overlap=2, seed=7)
    with Project(again).read() as ses:
        assert [tuple(a.shown) for a in ses.scalars(select(Assignment))] == orders  # seeded: the same orders


def test_pairwise_from_candidates_one_item_per_pair_with_judge_hints(tmp_path):
    rec = Record(messages=[Message("user", "2+2?")])
    rec.meta["candidates"] = [
        {"model": "m1", "text": "4", "score": 9},
        {"model": "m2", "text": "5", "score": 2},
        {"model": "m3", "text": "four"},
    ]
    rec.meta["judgments"] = [{"a": 0, "b": 1, "winner": "a", "consistent": True, "margin": 2.5}]
    src = tmp_path / "cands.jsonl"
    datamill.write([rec], src, "datamill")
    s = start(src, tmp_path / "p.db", "pairwise", annotators=["alice"])
    assert (s.records, s.items) == (1, 3)
    with Project(tmp_path / "p.db").read() as ses:
        items = ses.scalars(select(Item).order_by(Item.seq)).all()
    assert [i.payload["pair"] for i in items] == [[0, 1], [0, 2], [1, 2]]
    assert items[0].payload["candidates"][0] == {"text": "4", "model": "m1", "score": 9}
    hint = next(h for h in items[0].suggestions if h["source"] == "judge_pairwise")
    assert hint["prefers"] == 0 and hint["margin"] == 2.5
    assert not [h for h in items[1].suggestions if h["source"] == "judge_pairwise"]


def _run(tmp_path) -> Path:
    body = {
        "name": "review-drops",
        "seed": 1,
        "workers": 1,
        "inputs": [str(LF / "alpaca_en_demo.json")],
        "steps": [{"op": "length_filter", "part": "answer", "unit": "words", "min": 40}],
        "output": {"path": str(tmp_path / "run"), "format": "datamill"},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    Runner(recipes.load(path)).run()
    return tmp_path / "run"


def test_start_from_a_runs_outdir_kept_or_dropped(tmp_path):
    outdir = _run(tmp_path)
    stats = json.loads((outdir / "stats.json").read_text(encoding="utf-8"))
    kept = start(outdir, tmp_path / "kept.db", "sft")
    assert kept.items == stats["kept"] > 0
    dropped = start(outdir, tmp_path / "dropped.db", "kto", dropped=True)
    assert dropped.items + sum(dropped.skipped.values()) == stats["dropped"] > 0
    with Project(tmp_path / "dropped.db").read() as ses:
        hints = ses.scalar(select(Item.suggestions).where(Item.seq == 0))
    assert hints[0]["source"] == "filter" and hints[0]["op"] == "length_filter" and "answer" in hints[0]["reason"]
    with pytest.raises(ReviewError, match="dropped.jsonl"):
        start(LF / "alpaca_en_demo.json", tmp_path / "x.db", "sft", dropped=True)


def test_answers_are_checked_and_every_write_has_history(tmp_path):
    db = tmp_path / "p.db"
    start(alpaca_sample(tmp_path / "in.jsonl"), db, "sft", annotators=["alice"])
    project = Project(db)
    alice = person(project, "alice")
    first = queue_of(project, "alice")[0]
    for bad, why in [
        ({"decision": "maybe"}, "decision must be"),
        ({"decision": "edit", "edits": {"messages.9": "x"}}, "no turn"),
        ({"decision": "edit", "edits": {"messages.1": XSS["output"]}}, "changes nothing"),
        ({"decision": "reject", "reason": "x" * 5000}, "at most"),
    ]:
        with pytest.raises(BadAnswer, match=why):
            submit(project, alice, first.id, bad)
    submit(project, alice, first.id, {"decision": "accept"})
    submit(project, alice, first.id, {"decision": "reject", "reason": "changed my mind"})
    with project.read() as ses:
        answers = ses.scalars(select(Answer)).all()
        history = ses.scalars(select(History).where(History.table == "answers").order_by(History.id)).all()
        item = ses.get(Item, first.item_id)
    assert len(answers) == 1 and answers[0].decision == "reject"  # one answer per assignment, changed
    assert [h.action for h in history] == ["answer", "change answer"]
    assert history[0].before is None and history[0].after["decision"] == "accept"
    assert history[1].before["decision"] == "accept" and history[1].after["reason"] == "changed my mind"
    assert {h.actor for h in history} == {"alice"} and item.status == "done"


def test_export_sft_record_by_record(tmp_path):
    db = tmp_path / "p.db"
    start(alpaca_sample(tmp_path / "in.jsonl"), db, "sft", annotators=["alice"])
    project = Project(db)
    alice = person(project, "alice")
    q = queue_of(project, "alice")
    submit(project, alice, q[0].id, {"decision": "accept"})  # the XSS item, kept verbatim
    submit(project, alice, q[1].id, {"decision": "edit", "edits": {"messages.1": "A shorter answer."}})
    submit(project, alice, q[2].id, {"decision": "reject", "reason": "off topic"})
    submit(project, alice, q[3].id, {"decision": "accept"})
    s = export(project, tmp_path / "out", "alpaca", container="json")
    assert (s.items, s.written, s.dropped, s.pending, s.balanced) == (5, 3, 1, 1, True)
    out = json.loads((tmp_path / "out" / "data-00000.json").read_text(encoding="utf-8"))
    assert [r["instruction"] for r in out][0] == XSS["instruction"] and out[0]["output"] == XSS["output"]
    assert out[0]["meta"]["review"]["decision"] == "accept"
    assert out[0]["meta"]["review"]["annotators"][0]["name"] == "alice"
    with project.read() as ses:
        second = ses.get(Item, q[1].item_id).record
    assert out[1]["output"] == "A shorter answer." and out[1]["instruction"] == second["messages"][0]["content"]
    review = out[1]["meta"]["review"]
    assert review["decision"] == "edit" and review["original_id"] == second["id"] and out[1]["id"] != second["id"]
    assert review["before"]["messages"][1]["content"] == second["messages"][1]["content"]
    assert review["after"]["messages"][1]["content"] == "A shorter answer."
    assert out[1]["meta"]["source"] == second["meta"]["source"]  # lineage kept
    drops = [json.loads(line) for line in (tmp_path / "out" / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(drops) == 1 and drops[0]["reason"] == "rejected by review: alice: off topic"
    assert drops[0]["record"]["meta"]["review"]["annotators"][0]["reason"] == "off topic"
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["out"]["file_name"] == "data-00000.json"
    back = [r for r in datamill.read(tmp_path / "out" / "data-00000.json") if isinstance(r, Record)]
    assert len(back) == 3 and back[1].messages[-1].content == "A shorter answer."
    assert json.loads((tmp_path / "out" / "review.json").read_text(encoding="utf-8"))["pending"] == 1


def test_export_majority_of_three(tmp_path):
    db = tmp_path / "p.db"
    start(alpaca_sample(tmp_path / "in.jsonl", 3), db, "sft", annotators=["a1", "a2", "a3"], overlap=3)
    project = Project(db)
    votes = {  # item position → each annotator's answer
        0: [{"decision": "accept"}, {"decision": "accept"}, {"decision": "reject", "reason": "rude"}],
        1: [{"decision": "reject", "reason": "wrong"}, {"decision": "reject"}, {"decision": "accept"}],
        2: [{"decision": "edit", "edits": {"messages.1": "X"}}, {"decision": "edit", "edits": {"messages.1": "Y"}},
            {"decision": "accept"}],
    }  # fmt: skip
    for k, name in enumerate(["a1", "a2", "a3"]):
        who, q = person(project, name), queue_of(project, name)
        for pos, answers in votes.items():
            submit(project, who, q[pos].id, answers[k])
    s = export(project, tmp_path / "out", "sharegpt")
    assert (s.written, s.dropped, s.pending) == (1, 2, 0)
    drops = [json.loads(x) for x in (tmp_path / "out" / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert drops[0]["reason"] == "rejected by review: a1: wrong"
    assert drops[1]["reason"] == "reviewers made 2 different edits with equal votes"


def test_export_pairwise_choices_become_pairs(tmp_path):
    db = tmp_path / "p.db"
    start(LF / "dpo_en_demo.json", db, "pairwise", annotators=["alice"], seed=3)
    project = Project(db)
    alice = person(project, "alice")
    q = queue_of(project, "alice")[:5]
    for a, decision in zip(q, ["a", "b", "tie", "both_bad", "a"], strict=True):
        submit(project, alice, a.id, {"decision": decision, "reason": "why not" if decision == "tie" else None})
    s = export(project, tmp_path / "out", "trl")
    assert (s.items, s.written, s.dropped, s.pending) == (300, 3, 2, 295)
    with project.read() as ses:
        items = {a.id: ses.get(Item, a.item_id) for a in q}
    rows = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    picked = [(q[0], "a"), (q[1], "b"), (q[4], "a")]
    for row, (a, side) in zip(rows, picked, strict=True):
        cands = items[a.id].payload["candidates"]
        shown = a.shown  # which candidate the annotator saw as A and as B
        chosen = cands[shown["ab".index(side)]]["text"]
        rejected = cands[shown[1 - "ab".index(side)]]["text"]
        assert row["chosen"][-1]["content"] == chosen and row["rejected"][-1]["content"] == rejected
        assert row["meta"]["review"]["annotators"][0]["decision"] == side
    drops = [json.loads(x) for x in (tmp_path / "out" / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [d["reason"] for d in drops] == ["tie: reviewers found neither answer better (alice: why not)",
                                            "both answers bad"]  # fmt: skip


def test_export_ratings_labels_and_kto(tmp_path):
    src = alpaca_sample(tmp_path / "in.jsonl", 2)
    start(src, tmp_path / "r.db", "rating", annotators=["a", "b"], overlap=2, criteria=["helpful", "safe"], scale=5)
    start(src, tmp_path / "l.db", "label", annotators=["a", "b"], overlap=2, labels=["good", "bad"])
    start(src, tmp_path / "k.db", "kto", annotators=["a", "b"], overlap=2)
    answers = {
        "r.db": [[{"ratings": {"helpful": 4, "safe": 1}}, {"ratings": {"helpful": 5, "safe": 5}}],
                 [{"ratings": {"helpful": 2, "safe": 2}}, {"ratings": {"helpful": 3, "safe": 3}}]],
        "l.db": [[{"labels": ["bad"]}, {"labels": ["bad"]}], [{"labels": ["good"]}, {"labels": ["bad"]}]],
        "k.db": [[{"decision": "undesirable"}, {"decision": "undesirable"}],
                 [{"decision": "desirable"}, {"decision": "desirable"}]],
    }  # fmt: skip
    for db, per_item in answers.items():
        project = Project(tmp_path / db)
        for k, name in enumerate(["a", "b"]):
            who, q = person(project, name), queue_of(project, name)
            for pos, votes in enumerate(per_item):
                submit(project, who, q[pos].id, votes[k])
    with pytest.raises(BadAnswer, match="every criterion"):
        submit(Project(tmp_path / "r.db"), person(Project(tmp_path / "r.db"), "a"), 1, {"ratings": {"helpful": 3}})
    export(Project(tmp_path / "r.db"), tmp_path / "r", "datamill")
    rated = [r for r in datamill.read(tmp_path / "r" / "data-00000.jsonl") if isinstance(r, Record)]
    assert [r.meta["scores"] for r in rated] == [{"helpful": 4.5, "safe": 3.0}, {"helpful": 2.5, "safe": 2.5}]
    assert [r.meta["rating"] for r in rated] == [3.75, 2.5]
    s = export(Project(tmp_path / "l.db"), tmp_path / "l", "datamill")
    labelled = [r for r in datamill.read(tmp_path / "l" / "data-00000.jsonl") if isinstance(r, Record)]
    assert [r.meta["labels"] for r in labelled] == [["bad"]] and s.reasons == {
        "reviewers disagree on the label (1 × good, 1 × bad)": 1
    }
    export(Project(tmp_path / "k.db"), tmp_path / "k", "alpaca")
    kto = [json.loads(x) for x in (tmp_path / "k" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["kto_tag"] for r in kto] == [False, True]


def test_add_annotator_later_picks_up_unassigned_items(tmp_path):
    db = tmp_path / "p.db"
    start(alpaca_sample(tmp_path / "in.jsonl", 4), db, "sft")
    project = Project(db)
    token = add_annotator(project, "dana")
    assert len(queue_of(project, "dana")) == 4 and len(token) >= 32
    add_annotator(project, "eve", role="adjudicator")
    assert queue_of(project, "eve") == []
    with pytest.raises(ReviewError, match="already exists"):
        add_annotator(project, "dana")
    result = CliRunner().invoke(app, ["review", "add-annotator", str(db), "fred"])
    token = re.search(r"/login\?token=(\S+)", result.output).group(1)
    assert result.exit_code == 0 and person(project, "fred").token_hash == hash_token(token)  # printed whole


# --------------------------------------------------------------------------- agreement


def test_agreement_matches_the_libraries_documented_examples():
    # scikit-learn's cohen_kappa_score docstring: 0.6875
    y1 = ["negative", "positive", "negative", "neutral", "positive"]
    y2 = ["negative", "positive", "negative", "neutral", "negative"]
    got = measures({"a": dict(enumerate(y1)), "b": dict(enumerate(y2))})
    assert got[0]["measure"] == "Cohen's kappa a × b" and got[0]["value"] == pytest.approx(0.6875)
    # Fleiss (1971) via Wikipedia, as in statsmodels' docs: 10 subjects, 14 raters, 5 categories, kappa 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]  # fmt: skip
    values = fleiss_values(table)
    fleiss = next(m for m in measures(values) if m["measure"].startswith("Fleiss"))
    assert fleiss["items"] == 10 and round(fleiss["value"], 3) == 0.210
    # krippendorff's docstring (Krippendorff's 4-coder example): nominal 0.743, ordinal 0.815
    got = {m["measure"]: m["value"] for m in measures(krippendorff_values())}
    assert round(got["Krippendorff's alpha (nominal)"], 3) == 0.743
    got = {m["measure"]: m["value"] for m in measures(krippendorff_values(), ordinal=True, domain=[1, 2, 3, 4, 5])}
    assert round(got["Krippendorff's alpha (ordinal)"], 3) == 0.815


KRIPPENDORFF = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
    [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
]


def krippendorff_values() -> dict[str, dict[int, int]]:
    return {f"c{k}": {i: int(v) for i, v in enumerate(row) if not np.isnan(v)} for k, row in enumerate(KRIPPENDORFF)}


def fleiss_values(table: list[list[int]]) -> dict[str, dict[int, int]]:
    """Counts per category → 14 raters' answers (who gave which does not matter to Fleiss)."""
    out: dict[str, dict[int, int]] = {}
    for item, counts in enumerate(table):
        answers = [cat + 1 for cat, n in enumerate(counts) for _ in range(n)]
        for r, value in enumerate(answers):
            out.setdefault(f"r{r:02d}", {})[item] = value
    return out


def test_agreement_of_a_project_with_missing_answers(tmp_path):
    """Krippendorff's example entered as ratings by four annotators (some items unrated by some)."""
    rows = [{"instruction": f"question {i}", "input": "", "output": f"answer {i}"} for i in range(12)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    db = tmp_path / "p.db"
    names = ["c0", "c1", "c2", "c3"]
    start(src, db, "rating", annotators=names, overlap=4, criteria=["overall"], scale=5)
    project = Project(db)
    for name, row in zip(names, KRIPPENDORFF, strict=True):
        who, q = person(project, name), queue_of(project, name)
        for a, v in zip(q, row, strict=True):
            if not np.isnan(v):
                submit(project, who, a.id, {"ratings": {"overall": int(v)}})
    s = summary(project)
    got = {m["measure"]: m for m in s["agreement"][0]["measures"]}
    assert s["agreement"][0]["question"] == "overall"
    assert round(got["Krippendorff's alpha (ordinal)"]["value"], 3) == 0.815
    assert got["Krippendorff's alpha (ordinal)"]["items"] == 11  # the unit rated once cannot be compared
    assert {p["name"]: p["answered"] for p in s["annotators"]} == {"c0": 9, "c1": 11, "c2": 10, "c3": 11}
    result = CliRunner().invoke(app, ["review", "stats", str(db), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["agreement"] == s["agreement"]


def test_false_drop_rate_per_filter_reason(tmp_path):
    outdir = _run(tmp_path)
    db = tmp_path / "drops.db"
    start(outdir, db, "sft", annotators=["alice"], dropped=True)
    project = Project(db)
    alice = person(project, "alice")
    plan = ["accept", "edit", "reject", "accept", "reject"]  # kept 3 of 5 decided; the rest not yet answered
    for a, decision in zip(queue_of(project, "alice"), plan, strict=False):
        body = {"decision": decision, "reason": "too short"}
        if decision == "edit":
            body["edits"] = {"messages.1": "A longer, better answer."}
        submit(project, alice, a.id, body)
    with project.read() as ses:
        hint = ses.scalar(select(Item.suggestions).where(Item.seq == 0))[0]
    (row,) = summary(project)["false_drops"]
    assert row == {"op": "length_filter", "reason": hint["reason"], "decided": 5, "kept": 3, "false_drop_rate": 0.6}
    text = CliRunner().invoke(app, ["review", "stats", str(db)]).output
    assert "false drops per filter reason" in text and "60%" in text
    assert "false_drops" not in summary(Project(start_plain(tmp_path)))  # only a review of drops has them


def start_plain(tmp_path: Path) -> Path:
    db = tmp_path / "plain.db"
    start(alpaca_sample(tmp_path / "plain.jsonl", 2), db, "sft")
    return db


def test_a_schema_1_project_is_upgraded_when_opened(tmp_path):
    db = tmp_path / "old.db"
    start(alpaca_sample(tmp_path / "in.jsonl", 3), db, "sft", annotators=["alice", "bob"], overlap=2)
    project = Project(db)
    for name, decision in (("alice", "accept"), ("bob", "reject")):
        submit(project, person(project, name), queue_of(project, name)[0].id, {"decision": decision})
    project.close()
    con = sqlite3.connect(db)  # what datamill 1's review start made: none of the columns schemas 2 and 3 added
    for index in ("ix_items_score", "ix_items_source", "ix_items_disagree", "assignments_next"):
        con.execute(f"DROP INDEX {index}")
    for table, column in (("items", "gold"), ("items", "score"), ("items", "source"), ("items", "tags"),
                          ("items", "disagree"), ("answers", "responses"), ("items", "embedding"),
                          ("items", "uncertainty"), ("items", "prediction"), ("items", "auto"),
                          ("assignments", "rank")):  # fmt: skip
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("UPDATE settings SET value = '1' WHERE key = 'schema'")
    con.commit()
    con.close()
    project = Project(db)
    assert project.settings["schema"] == 3
    with project.read() as ses:
        items = ses.scalars(select(Item).order_by(Item.seq)).all()
        upgrade = ses.scalar(select(History).where(History.action == "upgrade"))
    assert [i.disagree for i in items] == [True, False, False]  # alice accepted what bob rejected
    assert items[0].source == str(tmp_path / "in.jsonl") and items[0].gold is None and items[0].tags == ""
    assert upgrade.before == {"schema": 1} and upgrade.after == {"schema": 3}
    assert Project(db).settings["schema"] == 3  # once
    s = export(project, tmp_path / "out", "sharegpt")
    assert (s.items, s.dropped, s.pending) == (3, 1, 2)

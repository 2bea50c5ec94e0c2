"""Active learning and the conflicts queue over real HTTP (uvicorn on 127.0.0.1) with the real MiniLM
embeddings: the queue uncertainty-first from the judges' suggestions; the learner refit in the
background while the server keeps answering, its held-out accuracy on the stats page, the order
moving to what it is unsure of; auto-decide refused before a held-out accuracy exists and marked in
the export after; the adjudicator's conflicts queue, their decision winning in the export, and each
annotator's agreement with the majority."""

from __future__ import annotations

import json
import threading
import time

import pytest
from conftest import LF
from sqlalchemy import select
from test_review_http import serving, signed_in
from typer.testing import CliRunner

import datamill
from datamill.cli import app
from datamill.llm.embeddings import LocalEmbedder
from datamill.record import Record
from datamill.review.project import add_annotator, start
from datamill.review.schema import Assignment, Item
from datamill.review.store import Project
from datamill.review.uncertainty import prior

pytest.importorskip("sentence_transformers")


def rows(name: str, n: int) -> list[dict]:
    return json.loads((LF / name).read_text(encoding="utf-8"))[:n]


def write(path, records: list[dict]):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def post(client, csrf, url, body):
    return client.post(url, json=body, headers={"X-CSRF-Token": csrf})


def test_the_judges_uncertainty_orders_the_queue(tmp_path):
    assert prior([{"kind": "prefers", "prefers": 0, "consistent": False}]) == 1.0  # flipped with the order
    assert prior([{"kind": "prefers", "prefers": 0, "source": "dataset"},
                  {"kind": "prefers", "prefers": 1, "consistent": True}]) == 1.0  # fmt: skip  # judges disagree
    assert prior([{"kind": "prefers", "prefers": 0, "consistent": True, "margin": 4.0}]) < 0.05  # a clear verdict
    assert prior([{"kind": "candidate_score", "candidate": 0, "score": 7, "max": 10},
                  {"kind": "candidate_score", "candidate": 1, "score": 7, "max": 10}]) == 1.0  # fmt: skip
    assert prior([]) == 0.5  # nothing known: between a sure item and a doubtful one
    records = [r for r in datamill.read(LF / "alpaca_en_demo.json") if isinstance(r, Record)][:6]
    for r, score in zip(records, [5, 1, 3, 4, 2, None], strict=True):
        if score is not None:  # quality_judge's score: keep >= 3, so 2 and 3 are the closest calls
            r.meta["quality"] = {"score": score, "reason": "scripted", "judge": "quality_rubric"}
    db = tmp_path / "p.db"
    s = start(write(tmp_path / "in.jsonl", [r.to_dict() for r in records]), db, "sft", annotators=["alice"])
    order = []
    with serving(db) as base:
        client, csrf = signed_in(base, s.tokens["alice"])
        nxt = client.get("/api/next").json()["id"]
        while nxt is not None:
            order.append(client.get(f"/api/assignments/{nxt}").json()["item"]["turns"][0]["content"])
            nxt = post(client, csrf, f"/api/assignments/{nxt}/answer", {"decision": "accept"}).json()["next"]
    prompts = [r.messages[0].content for r in records]
    assert [prompts.index(p) for p in order] == [2, 4, 5, 1, 3, 0]  # scores 3, 2, none, 1, 4, 5


class GatedEmbedder:
    """The real MiniLM, held at a gate so the test can look at the server while a refit is running."""

    def __init__(self):
        self.real = LocalEmbedder()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def embed(self, texts):
        self.entered.set()
        self.gate.wait(120)
        return self.real.embed(texts)


def wait_for(check, seconds: float = 240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_the_learner_refits_in_the_background_reorders_and_auto_decides(tmp_path):
    en, zh = rows("alpaca_en_demo.json", 30), rows("alpaca_zh_demo.json", 30)
    mixed = [r for pair in zip(en, zh, strict=True) for r in pair]  # the "human" rule: reject Chinese answers
    db = tmp_path / "p.db"
    s = start(write(tmp_path / "in.jsonl", mixed), db, "sft", annotators=["alice"])
    refused = CliRunner().invoke(app, ["review", "auto", str(db), "--min-confidence", "0.9"])
    assert refused.exit_code == 1 and "refusing to auto-decide" in refused.output and "no held-out" in refused.output
    zh_answers = {r["output"] for r in zh}

    def truth(view) -> str:
        return "reject" if view["item"]["turns"][-1]["content"] in zh_answers else "accept"

    embedder = GatedEmbedder()
    with serving(db, refit_every=5, embedder=embedder) as base:
        client, csrf = signed_in(base, s.tokens["alice"])
        before = []
        for _ in range(20):  # no suggestions: the queue's own order until the learner is fit
            nxt = client.get("/api/next").json()["id"]
            view = client.get(f"/api/assignments/{nxt}").json()
            before.append(view["assignment"]["number"])
            assert post(client, csrf, f"/api/assignments/{nxt}/answer", {"decision": truth(view)}).status_code == 200
        assert before == list(range(1, 21))
        assert embedder.entered.wait(60)  # the 20th decision started a refit, now inside the embedding
        stats = client.get("/api/stats").json()["learner"]
        assert stats["refitting"] and stats["fit"] is None and stats["decisions"] == 20
        nxt = client.get("/api/next").json()["id"]  # the app keeps serving and storing while it refits
        view = client.get(f"/api/assignments/{nxt}").json()
        assert post(client, csrf, f"/api/assignments/{nxt}/answer", {"decision": truth(view)}).status_code == 200
        embedder.gate.set()
        fit = wait_for(lambda: client.get("/api/stats").json()["learner"]["fit"])
        assert fit["decisions"] >= 20 and fit["accuracy"] >= 0.8 and fit["folds"] == 5
        assert fit["classes"].keys() == {"accept", "reject"}
        assert "Active learner" in client.get("/stats").text
        with Project(db).read() as ses:
            pending = ses.execute(select(Assignment.id, Assignment.rank, Assignment.position, Item.uncertainty)
                                  .join(Item, Item.id == Assignment.item_id)
                                  .where(Assignment.status == "pending")).all()  # fmt: skip
        assert len(pending) == 39 and len({p.rank for p in pending}) > 1  # the learner's, not the prior 0.5
        by_rank = sorted(pending, key=lambda p: (p.rank, p.position))
        assert [p.id for p in by_rank] != [p.id for p in sorted(pending, key=lambda p: p.position)]
        assert client.get("/api/next").json()["id"] == by_rank[0].id  # the one it is least sure of comes next
        assert by_rank[0].uncertainty == max(p.uncertainty for p in pending)
        first = sum(p.uncertainty for p in by_rank[:5]) / 5
        assert first > sum(p.uncertainty for p in pending) / len(pending)

        auto = CliRunner().invoke(app, ["review", "auto", str(db), "--min-confidence", "0.6"])
        assert auto.exit_code == 0, auto.output
        assert "held-out accuracy" in auto.output and "auto-decided" in auto.output
        learner = client.get("/api/stats").json()["learner"]
        assert learner["auto"] > 0 and sum(learner["auto_decisions"].values()) == learner["auto"]
        progress = client.get("/api/me").json()["progress"]
        assert progress == {"answered": 21, "total": 60 - learner["auto"]}  # no longer anyone's to do
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["review", "export", str(db), "-o", str(out), "--to", "alpaca"])
    assert result.exit_code == 0, result.output
    kept = [json.loads(line) for line in (out / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    auto_kept = [r for r in kept if r["meta"]["review"].get("auto")]
    auto_dropped = [d for d in dropped if d["record"]["meta"]["review"].get("auto")]
    assert len(auto_kept) + len(auto_dropped) == learner["auto"]
    for review in [r["meta"]["review"] for r in auto_kept] + [d["record"]["meta"]["review"] for d in auto_dropped]:
        assert review["auto"] is True and 0.6 <= review["confidence"] <= 1
        assert review["annotators"][0]["name"] == "learner"
        assert review["learner_accuracy"] == fit["accuracy"]
    right = sum(r["output"] not in zh_answers for r in auto_kept) + sum(
        d["record"]["messages"][-1]["content"] in zh_answers for d in auto_dropped  # dropped: datamill records
    )
    assert right >= 0.9 * learner["auto"]  # the learner's decisions match the rule people followed
    assert all("auto-decided by the learner" in d["reason"] for d in auto_dropped)
    summary = json.loads((out / "review.json").read_text(encoding="utf-8"))
    assert summary["balanced"] and summary["pending"] == 60 - 21 - learner["auto"]


def test_conflicts_queue_and_the_adjudicator_wins(tmp_path):
    db = tmp_path / "p.db"
    s = start(write(tmp_path / "in.jsonl", rows("alpaca_en_demo.json", 4)), db, "sft", annotators=["alice", "bob"],
              overlap=2)  # fmt: skip
    judge = add_annotator(Project(db), "judge", role="adjudicator")
    plan = {"alice": [{"decision": "accept"}, {"decision": "edit", "edits": {"messages.1": "Alice's better answer."}},
                      {"decision": "accept"}, {"decision": "accept"}],
            "bob": [{"decision": "reject", "reason": "wrong"}, {"decision": "reject", "reason": "vague"},
                    {"decision": "reject", "reason": "long"}, {"decision": "accept"}]}  # fmt: skip
    with serving(db) as base:
        people = {name: signed_in(base, s.tokens[name]) for name in ("alice", "bob")}
        for name, (client, csrf) in people.items():
            mine = client.get("/api/table", params={"limit": 10}).json()["rows"]
            for row, body in zip(mine, plan[name], strict=True):
                assert post(client, csrf, f"/api/assignments/{row['assignment']}/answer", body).status_code == 200
        alice, alice_csrf = people["alice"]
        assert alice.get("/api/conflicts").status_code == 403  # it would show her the others' answers
        assert alice.get("/conflicts").status_code == 403
        client, csrf = signed_in(base, judge)
        listed = client.get("/api/conflicts").json()
        assert listed["total"] == 3 and [r["resolved"] for r in listed["rows"]] == [False] * 3
        first, second, third = (r["item"] for r in listed["rows"])
        side = {v["annotator"]: v for v in listed["rows"][1]["answers"]}
        assert side["alice"]["decision"] == "edit" and side["bob"]["reason"] == "vague"
        assert [t["content"] for t in side["alice"]["edited"]] == ["Alice's better answer."]
        with Project(db).read() as ses:
            agreed = ses.scalar(select(Item.id).where(Item.disagree.is_(False)))
        assert client.get(f"/api/conflicts/{agreed}").status_code == 404
        full = client.get(f"/api/conflicts/{second}").json()
        assert [v["annotator"] for v in full["answers"]] == ["alice", "bob"] and full["item"]["turns"]
        assert post(alice, alice_csrf, f"/api/conflicts/{first}/decide", {"decision": "accept"}).status_code == 403
        assert post(client, csrf, f"/api/conflicts/{first}/decide", {"decision": "nope"}).status_code == 400
        decisions = {first: {"decision": "reject", "reason": "factually wrong"},
                     second: {"decision": "edit", "edits": {"messages.1": "Alice's better answer."}}}  # fmt: skip
        for item, body in decisions.items():
            assert post(client, csrf, f"/api/conflicts/{item}/decide", body).status_code == 200
        assert [r["item"] for r in client.get("/api/conflicts").json()["rows"]] == [third, first, second]
        assert post(client, csrf, f"/api/conflicts/{third}/decide", {"decision": "accept"}).status_code == 200
        page = client.get("/conflicts").text
        assert 'id="conflict-rows"' in page and 'href="/conflicts"' in page
        stats = client.get("/api/stats").json()
    assert stats["conflicts"] == {"open": 0, "resolved": 3}
    major = {p["name"]: (p["majority_agreement"], p["majority_checks"]) for p in stats["annotators"]}
    assert major == {"alice": (0.75, 4), "bob": (0.5, 4), "judge": (None, 0)}  # vs the judge, or the other one
    (decision,) = [q for q in stats["agreement"] if q["question"] == "decision"]
    assert [m["measure"] for m in decision["measures"]][0] == "Cohen's kappa alice × bob"  # the judge is no rater
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["review", "export", str(db), "-o", str(out), "--to", "alpaca"]).exit_code == 0
    kept = [json.loads(line) for line in (out / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    (dropped,) = [json.loads(line) for line in (out / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert dropped["reason"] == "rejected by review: judge: factually wrong"  # alone against alice's accept
    assert dropped["record"]["meta"]["review"]["adjudicator"] == "judge"
    assert [r["output"] for r in kept][:2] == ["Alice's better answer.", rows("alpaca_en_demo.json", 3)[2]["output"]]
    assert [r["meta"]["review"].get("adjudicator") for r in kept] == ["judge", "judge", None]
    summary = json.loads((out / "review.json").read_text(encoding="utf-8"))
    assert (summary["written"], summary["dropped"], summary["pending"]) == (3, 1, 0)

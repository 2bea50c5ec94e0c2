"""The review web app over real HTTP: uvicorn serving on 127.0.0.1 on a free port, in a thread.
Refusals (no token, someone else's assignment, no CSRF token, a foreign Host, an open bind with no
annotators) and 2 annotators × 50 simultaneous submissions."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import LF
from sqlalchemy import func, select
from test_review_projects import alpaca_sample
from typer.testing import CliRunner

import datamill
from datamill.cli import app
from datamill.record import Record
from datamill.review.project import add_annotator, start
from datamill.review.schema import Answer, Assignment, History, Item
from datamill.review.serve import server_for
from datamill.review.store import Project, ReviewError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(db: Path, **options):
    """The real server for ``db`` on 127.0.0.1 (``options``: the learner's); yields its base URL."""
    server = server_for(db, "127.0.0.1", free_port(), **options)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the review server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def signed_in(base: str, token: str) -> tuple[httpx.Client, str]:
    """A client logged in through the login link (cookie), and its CSRF token."""
    client = httpx.Client(base_url=base, timeout=30)
    r = client.get("/login", params={"token": token})
    assert r.status_code == 200
    return client, client.get("/api/me").json()["csrf"]


@pytest.fixture
def project(tmp_path):
    db = tmp_path / "p.db"
    s = start(alpaca_sample(tmp_path / "in.jsonl", 6), db, "sft", annotators=["alice", "bob"])
    return db, s.tokens


def test_every_request_needs_a_token(project):
    db, tokens = project
    with serving(db) as base, httpx.Client(base_url=base) as anon:
        for path in ("/", "/table", "/stats", "/api/me", "/api/next", "/api/assignments/1", "/api/table", "/api/stats"):
            assert anon.get(path).status_code == 401, path
        assert anon.post("/api/assignments/1/answer", json={"decision": "accept"}).status_code == 401
        assert anon.get("/api/me", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        assert anon.get("/api/me", headers={"Cookie": "datamill_review=forged"}).status_code == 401
        assert anon.get("/login", params={"token": "guess"}).status_code == 401
        assert anon.get("/static/app.js").status_code == 200  # the code is public, the data is not
    with Project(db).read() as s:
        assert s.scalar(select(func.count(Answer.id))) == 0


def test_login_link_sets_a_strict_httponly_cookie(project):
    db, tokens = project
    with serving(db) as base, httpx.Client(base_url=base) as client:
        r = client.get("/login", params={"token": tokens["alice"]})
        cookie = r.headers["set-cookie"].lower()
        assert r.status_code == 200 and "httponly" in cookie and "samesite=strict" in cookie
        assert '<meta http-equiv="refresh" content="0; url=/">' in r.text and tokens["alice"] not in r.text
        page = client.get("/")
        assert page.status_code == 200 and "Signed in as alice" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
        assert re.search(r'<script src="/static/app.js"></script>', page.text)
        assert "<script>" not in page.text.replace('<script src="/static/app.js"></script>', "")  # no inline script
        zh = client.get("/?lang=zh")
        assert "审核" in zh.text and "当前用户：alice" in zh.text and "datamill_lang=zh" in zh.headers["set-cookie"]


def test_an_annotator_cannot_read_or_write_anothers_assignment(project):
    db, tokens = project
    with serving(db) as base:
        alice, alice_csrf = signed_in(base, tokens["alice"])
        bob, _ = signed_in(base, tokens["bob"])
        theirs = bob.get("/api/next").json()["id"]
        mine = alice.get("/api/next").json()["id"]
        assert theirs != mine
        assert alice.get(f"/api/assignments/{theirs}").status_code == 404
        r = alice.post(f"/api/assignments/{theirs}/answer", json={"decision": "accept"},
                       headers={"X-CSRF-Token": alice_csrf})  # fmt: skip
        assert r.status_code == 404
        assert alice.get("/api/assignments/999999").status_code == 404  # same answer as for someone else's
        listed = alice.get("/api/table", params={"limit": 500}).json()
        assert listed["total"] == 3 and {row["annotator"] for row in listed["rows"]} == {"alice"}
        assert alice.get(f"/api/assignments/{mine}").json()["assignment"]["annotator"] == "alice"
    with Project(db).read() as s:
        assert s.scalar(select(func.count(Answer.id))) == 0


def test_writes_need_the_csrf_token_and_json(project):
    db, tokens = project
    with serving(db) as base:
        alice, csrf = signed_in(base, tokens["alice"])
        mine = alice.get("/api/next").json()["id"]
        url = f"/api/assignments/{mine}/answer"
        assert alice.post(url, json={"decision": "accept"}).status_code == 403
        assert alice.post(url, json={"decision": "accept"}, headers={"X-CSRF-Token": "0" * 40}).status_code == 403
        bob_csrf = signed_in(base, tokens["bob"])[1]
        assert alice.post(url, json={"decision": "accept"}, headers={"X-CSRF-Token": bob_csrf}).status_code == 403
        form = alice.post(url, content=b"decision=accept", headers={"X-CSRF-Token": csrf,
                          "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert form.status_code == 415
        assert alice.post(url, json={"decision": "nope"}, headers={"X-CSRF-Token": csrf}).status_code == 400
        with Project(db).read() as s:
            assert s.scalar(select(func.count(Answer.id))) == 0
        ok = alice.post(url, json={"decision": "accept"}, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 200 and ok.json()["progress"] == {"answered": 1, "total": 3}
        rebound = alice.get("/api/me", headers={"Host": "evil.example:80"})
        assert rebound.status_code == 400  # DNS rebinding: a loopback server answers loopback names only


def test_an_open_bind_without_annotators_refuses_to_start(tmp_path):
    db = tmp_path / "p.db"
    start(LF / "alpaca_en_demo.json", db, "sft")
    with pytest.raises(ReviewError, match="refusing to listen on 0.0.0.0"):
        server_for(db, "0.0.0.0", free_port())
    result = CliRunner().invoke(app, ["review", "serve", str(db), "--host", "0.0.0.0", "--port", str(free_port())])
    assert result.exit_code == 1 and "no annotator" in result.output
    server_for(db, "127.0.0.1", free_port())  # loopback is fine: nobody can sign in, nobody else can reach it
    CliRunner().invoke(app, ["review", "add-annotator", str(db), "alice"])
    assert server_for(db, "0.0.0.0", free_port()).config.host == "0.0.0.0"  # now tokens guard it (not started)


def test_two_annotators_times_fifty_simultaneous_submissions(tmp_path):
    rows = json.loads((LF / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:50]
    src = tmp_path / "in.json"
    src.write_text(json.dumps(rows), encoding="utf-8")
    db = tmp_path / "p.db"
    s = start(src, db, "sft", annotators=["alice", "bob"], overlap=2)
    with serving(db) as base:
        clients = {name: signed_in(base, token) for name, token in s.tokens.items()}
        jobs = []
        for client, csrf in clients.values():
            ids = [r["assignment"] for r in client.get("/api/table", params={"limit": 500}).json()["rows"]]
            assert len(ids) == 50
            jobs += [(client, csrf, i, "accept" if i % 3 else "reject") for i in ids]

        def send(job):
            client, csrf, i, decision = job
            return client.post(f"/api/assignments/{i}/answer", json={"decision": decision, "reason": f"r{i}"},
                               headers={"X-CSRF-Token": csrf}).status_code  # fmt: skip

        for _ in range(2):  # the second round is every submission retried: still stored once
            barrier = threading.Barrier(len(jobs))

            def at_once(job, barrier=barrier):
                barrier.wait()
                return send(job)

            with ThreadPoolExecutor(len(jobs)) as pool:
                assert list(pool.map(at_once, jobs)) == [200] * 100
        for client, _ in clients.values():
            client.close()
    with Project(db).read() as ses:
        answers = ses.scalars(select(Answer)).all()
        assignments = {a.id: a for a in ses.scalars(select(Assignment))}
        items = ses.scalars(select(Item)).all()
        history = ses.execute(select(History.action, func.count()).where(History.table == "answers")
                              .group_by(History.action)).all()  # fmt: skip
    assert len(answers) == 100 and len({a.assignment_id for a in answers}) == 100  # each exactly once
    for a in answers:
        assert assignments[a.assignment_id].annotator_id == a.annotator_id and a.reason == f"r{a.assignment_id}"
    per_item = {}
    for a in answers:
        per_item.setdefault(a.item_id, set()).add(a.annotator_id)
    assert len(per_item) == 50 and all(len(people) == 2 for people in per_item.values())  # overlap 2 respected
    assert {i.status for i in items} == {"done"} and all(a.status == "answered" for a in assignments.values())
    assert dict(history) == {"answer": 100, "change answer": 100}


def test_an_adjudicator_reads_everyone_but_writes_only_their_own(project):
    db, tokens = project
    judge = add_annotator(Project(db), "judge", role="adjudicator")
    with serving(db) as base:
        bob, bob_csrf = signed_in(base, tokens["bob"])
        theirs = bob.get("/api/next").json()["id"]
        assert bob.post(f"/api/assignments/{theirs}/answer", json={"decision": "reject", "reason": "typo"},
                        headers={"X-CSRF-Token": bob_csrf}).status_code == 200  # fmt: skip
        client, csrf = signed_in(base, judge)
        everyone = client.get("/api/table", params={"limit": 500}).json()
        assert everyone["total"] == 6 and {r["annotator"] for r in everyone["rows"]} == {"alice", "bob"}
        only_bob = client.get("/api/table", params={"annotator": "bob", "status": "reject"}).json()
        assert [(r["assignment"], r["reason"]) for r in only_bob["rows"]] == [(theirs, "typo")]
        seen = client.get(f"/api/assignments/{theirs}").json()
        assert seen["assignment"]["mine"] is False and seen["answer"]["decision"] == "reject"
        write = client.post(f"/api/assignments/{theirs}/answer", json={"decision": "accept"},
                            headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert write.status_code == 404
        assert "<select name=\"annotator\">" in client.get("/table").text


def test_table_filters_score_source_tag_and_disagreement(tmp_path):
    en = [r for r in datamill.read(LF / "alpaca_en_demo.json") if isinstance(r, Record)][:6]
    zh = [r for r in datamill.read(LF / "alpaca_zh_demo.json") if isinstance(r, Record)][:6]
    drops = []
    for k, rec in enumerate(en + zh):  # a run's drops: each record keeps its source file
        rec.meta["quality"] = {"score": k % 5 + 1, "reason": "scripted", "judge": "quality_rubric"}
        rec.meta["tags"] = ["maths_100%"] if k % 3 == 0 else "chat, writing"  # a list or a comma string
        drops.append({"id": rec.id, "op": "quality_judge", "step": 0, "reason": "low", "record": rec.to_dict()})
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "dropped.jsonl").write_text("".join(json.dumps(d) + "\n" for d in drops), encoding="utf-8")
    db = tmp_path / "p.db"
    s = start(tmp_path / "run", db, "sft", annotators=["alice", "bob"], overlap=2, dropped=True)
    judge = add_annotator(Project(db), "judge", role="adjudicator")
    with serving(db) as base:
        alice, alice_csrf = signed_in(base, s.tokens["alice"])
        bob, bob_csrf = signed_in(base, s.tokens["bob"])

        def numbers(client, **params):
            return [r["number"] for r in client.get("/api/table", params={**params, "limit": 500}).json()["rows"]]

        assert numbers(alice) == list(range(1, 13))
        assert numbers(alice, score_min=2, score_max=3) == [2, 3, 7, 8, 12]  # scores 1-5, 1-5, 1-2
        assert numbers(alice, source=str(LF / "alpaca_zh_demo.json")) == list(range(7, 13))
        assert numbers(alice, tag="maths_100%") == [1, 4, 7, 10]  # LIKE's % and _ are literal
        assert numbers(alice, tag="maths") == [] and numbers(alice, tag="writing") == [2, 3, 5, 6, 8, 9, 11, 12]
        assert numbers(alice, tag="quality_judge") == numbers(alice)  # the filter that dropped it is a tag
        assert numbers(alice, tag="maths_100%", score_min=4) == [4, 10]
        page = alice.get("/table").text
        assert '<option value="maths_100%">maths_100%</option>' in page and ">alpaca_zh_demo.json</option>" in page
        assert 'name="disagree"' not in page  # only an adjudicator filters on others' answers
        for client, csrf, decide in ((alice, alice_csrf, "accept"), (bob, bob_csrf, "reject")):
            for row in client.get("/api/table", params={"limit": 3}).json()["rows"]:
                body = {"decision": decide if row["number"] != 3 else "accept"}
                assert client.post(f"/api/assignments/{row['assignment']}/answer", json=body,
                                   headers={"X-CSRF-Token": csrf}).status_code == 200  # fmt: skip
        adjudicator, _ = signed_in(base, judge)
        split = adjudicator.get("/api/table", params={"disagree": "true"}).json()["rows"]
        assert sorted((r["number"], r["annotator"]) for r in split) == [(1, "alice"), (1, "bob"), (2, "alice"),
                                                                        (2, "bob")]  # fmt: skip
        assert 'name="disagree"' in adjudicator.get("/table").text
        assert alice.get("/api/table", params={"disagree": "true"}).status_code == 403

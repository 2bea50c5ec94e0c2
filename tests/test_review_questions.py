"""Questions beside the task (`review start --questions questions.yaml`): the file checked on load with
errors naming the file and the question, answers checked and stored over real HTTP, exported into
`meta.review`, counted in agreement and the disagreement flag — on LLaMA-Factory's alpaca demo with
`meta.candidates` to rank."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import LF
from test_review_http import serving, signed_in
from typer.testing import CliRunner

import datamill
from datamill.cli import app
from datamill.record import Record
from datamill.review import questions
from datamill.review.project import add_annotator, start
from datamill.review.store import Project, ReviewError

QUESTIONS = [
    {"name": "topic", "kind": "label", "labels": ["maths", "writing", "other"], "description": "What is it about?"},
    {"name": "flaws", "kind": "multi_label", "labels": ["wrong", "rude", "too long"], "required": False},
    {"name": "quality", "kind": "rating", "scale": 5,
     "criteria": {"helpfulness": "1 = no help, 5 = solves it", "clarity": ""}},
    {"name": "note", "kind": "text", "required": False},
    {"name": "fixed", "kind": "edit", "title": "The answer, corrected"},
    {"name": "best", "kind": "ranking", "title": "Rank the candidates"},
]  # fmt: skip


def data_with_candidates(path, n: int = 4):
    """The alpaca demo's first n records; the first two also carry three candidates to rank."""
    recs = [r for r in datamill.read(LF / "alpaca_en_demo.json") if isinstance(r, Record)][:n]
    for rec in recs[:2]:
        rec.meta["candidates"] = [{"model": m, "text": f"{m} says: {rec.messages[-1].content[:40]}"}
                                  for m in ("m1", "m2", "m3")]  # fmt: skip
    datamill.write(recs, path, "datamill")
    return path, recs


def write_yaml(tmp_path, body, name="questions.yaml"):
    path = tmp_path / name
    text = body if isinstance(body, str) else yaml.safe_dump(body, allow_unicode=True, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("- {name: topic, kind: label, labels: [a, b]\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),  # safe_load: no objects, nothing runs
        ({"questions": []}, "expected a list of questions"),
        ([{"name": "topic", "kind": "choice"}], "question 1 (topic): kind must be one of label, multi_label"),
        ([{"name": "topic", "kind": "label", "labels": ["only"]}], "question 1 (topic): labels: List should have"),
        ([{"name": "topic", "kind": "label", "labels": ["a", "a"]}], "question 1 (topic): labels: Value error, labels"),
        ([{"name": "a", "kind": "text"}, {"name": "a", "kind": "text"}], "question 2 (a): another question"),
        ([{"name": "r", "kind": "rating", "criteria": ["x"], "scale": 11}], "question 1 (r): scale: Input should be"),
        ([{"name": "bad name", "kind": "text"}], "question 1 (bad name): name: String should match"),
        ([{"name": "t", "kind": "text", "colour": "red"}], "question 1 (t): colour: Extra inputs"),
        (["just text"], "question 1: expected a mapping"),
    ],
)
def test_a_bad_questions_file_names_the_file_and_the_question(tmp_path, body, message):
    path = write_yaml(tmp_path, body)
    with pytest.raises(ReviewError) as e:
        questions.load(path, "sft")
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


def test_questions_are_refused_before_a_project_exists(tmp_path):
    path = write_yaml(tmp_path, [{"name": "best", "kind": "ranking"}])
    with pytest.raises(ReviewError, match="pairwise task already compares two answers"):
        questions.load(path, "pairwise")
    db = tmp_path / "p.db"
    result = CliRunner().invoke(app, ["review", "start", str(LF / "dpo_en_demo.json"), "-o", str(db), "--task",
                                      "pairwise", "--questions", str(path)])  # fmt: skip
    assert result.exit_code == 1 and "question 1 (best)" in result.output and not db.exists()
    note = questions.load(write_yaml(tmp_path, [{"name": "overall", "kind": "text"}]), "rating")
    with pytest.raises(ReviewError, match="question 'overall' has the name of the task's own question"):
        start(LF / "alpaca_en_demo.json", db, "rating", questions=note)  # the rating task's default criterion
    assert not db.exists()
    loaded = questions.load(write_yaml(tmp_path, {"questions": QUESTIONS}), "sft")
    assert loaded[2]["criteria"] == [{"name": "helpfulness", "description": "1 = no help, 5 = solves it"},
                                     {"name": "clarity", "description": ""}]  # fmt: skip
    assert [q["title"] for q in loaded][:2] == ["topic", "flaws"] and loaded[1]["required"] is False


def test_questions_over_http_stored_checked_exported_and_compared(tmp_path):
    src, recs = data_with_candidates(tmp_path / "in.jsonl")
    asked = questions.load(write_yaml(tmp_path, QUESTIONS), "sft")
    db = tmp_path / "p.db"
    s = start(src, db, "sft", annotators=["alice", "bob"], overlap=2, questions=asked)
    judge = add_annotator(Project(db), "judge", role="adjudicator")
    answers = {  # per annotator, per item: the responses they give
        "alice": {"topic": "writing", "flaws": ["too long"], "quality": {"helpfulness": 4, "clarity": 5},
                  "note": "fine", "fixed": "A better answer.", "best": [2, 1, 3]},
        "bob": {"topic": "maths", "flaws": ["wrong", "too long"], "quality": {"helpfulness": 2, "clarity": 4},
                "fixed": "A better answer.", "best": [1, 2, 3]},
    }  # fmt: skip
    with serving(db) as base:
        for name in ("alice", "bob"):
            client, csrf = signed_in(base, s.tokens[name])
            ids = [r["assignment"] for r in client.get("/api/table").json()["rows"]]
            first = client.get(f"/api/assignments/{ids[0]}").json()["item"]
            assert first["questions"] == [q["name"] for q in asked] and first["answer"] == recs[0].messages[-1].content
            assert [c["model"] for c in first["rank"]] == ["m1", "m2", "m3"]
            third = client.get(f"/api/assignments/{ids[2]}").json()["item"]
            assert "best" not in third["questions"] and "rank" not in third  # no candidates: nothing to rank
            url = f"/api/assignments/{ids[0]}/answer"
            for bad, why in [
                ({"topic": "music"}, "topic: choose one of maths, writing, other"),
                ({**answers[name], "best": [1, 1, 3]}, "Rank the candidates: give each of the 3 candidates"),
                ({**answers[name], "quality": {"helpfulness": 4}}, "quality: rate every criterion"),
                ({k: v for k, v in answers[name].items() if k != "topic"}, "question 'topic' needs an answer"),
                ({**answers[name], "colour": "red"}, "no question named 'colour'"),
            ]:
                r = client.post(url, json={"decision": "accept", "responses": bad}, headers={"X-CSRF-Token": csrf})
                assert r.status_code == 400 and why in r.json()["detail"], (bad, r.text)
            for i in ids:
                mine = dict(answers[name])
                if i not in ids[:2]:
                    mine.pop("best")  # items 3-4 have no candidates: the ranking is not asked
                r = client.post(f"/api/assignments/{i}/answer", json={"decision": "accept", "responses": mine},
                                headers={"X-CSRF-Token": csrf})  # fmt: skip
                assert r.status_code == 200, r.text
            stored = client.get(f"/api/assignments/{ids[0]}").json()["answer"]["responses"]
            assert stored["flaws"] == [x for x in ("wrong", "rude", "too long") if x in answers[name]["flaws"]]
        adj, _ = signed_in(base, judge)
        split = adj.get("/api/table", params={"disagree": "true", "limit": 500}).json()
        assert split["total"] == 8  # the topic differs on every item (and helpfulness by two points)
        assert client.get("/api/table", params={"disagree": "true"}).status_code == 403  # others' answers: no
    CliRunner().invoke(app, ["review", "export", str(db), "-o", str(tmp_path / "out"), "--to", "datamill"])
    rows = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4
    review = rows[0]["meta"]["review"]
    assert [a["responses"]["topic"] for a in review["annotators"]] == ["writing", "maths"]
    assert review["responses"] == {
        "topic": None,  # one vote each: a tie
        "flaws": ["too long"],  # chosen by more than half
        "quality": {"helpfulness": 3.0, "clarity": 4.5},
        "note": ["fine"],
        "fixed": "A better answer.",
        "best": [1.5, 1.5, 3.0],
    }
    stats = json.loads(CliRunner().invoke(app, ["review", "stats", str(db), "--json"]).output)
    got = {q["question"]: {m["measure"]: m["value"] for m in q["measures"]} for q in stats["agreement"]}
    assert got["topic"]["Cohen's kappa alice × bob"] == 0.0  # never the same label
    assert "quality: helpfulness" in got and "best: candidate 0" in got and "flaws: too long" in got
    assert "note" not in got and "fixed" not in got  # free text is not compared

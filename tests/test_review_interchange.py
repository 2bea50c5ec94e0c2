"""Label Studio and Argilla interchange on real data (LLaMA-Factory's alpaca and DPO demos): export a
project, change the file as someone working in that tool would, import it back — the project's answers
match what they did, a bad task is quarantined by its index and the rest imported. Argilla's own models
(``rg.Settings``, ``rg.Record``) read what we write where the ``argilla`` package is installed, and
``label-studio-sdk``'s ``LabelInterface`` validates the Label Studio files where it is (it pulls in
OpenCV and its own NumPy, so it is no test dependency); the rest checks the documented formats."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

import pytest
from conftest import LF
from sqlalchemy import select
from typer.testing import CliRunner

import datamill
from datamill.cli import app
from datamill.review.answers import submit
from datamill.review.export import export
from datamill.review.interchange import export_to, import_from
from datamill.review.project import start
from datamill.review.schema import Annotator, Answer, Assignment, History, Item
from datamill.review.store import Project


def alpaca(path, n=5):
    rows = json.loads((LF / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:n]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def person(project, name):
    with project.read() as s:
        return s.scalar(select(Annotator).where(Annotator.name == name))


def answers_of(project):
    """Every stored answer by (item seq, annotator name)."""
    with project.read() as s:
        rows = s.execute(select(Item.seq, Annotator.name, Answer).join(Answer, Answer.item_id == Item.id)
                         .join(Annotator, Annotator.id == Answer.annotator_id).order_by(Item.seq, Annotator.name))
        return {(seq, name): ans for seq, name, ans in rows}


def first_assignment(project, name, seq):
    with project.read() as s:
        return s.scalar(select(Assignment.id).join(Item, Item.id == Assignment.item_id)
                        .join(Annotator, Annotator.id == Assignment.annotator_id)
                        .where(Annotator.name == name, Item.seq == seq))


def test_labelstudio_round_trip(tmp_path):
    (tmp_path / "q.yaml").write_text(
        "- {name: topic, kind: label, labels: [maths, writing, other]}\n"
        "- {name: quality, kind: rating, scale: 5, criteria: [helpfulness, clarity], required: false}\n",
        encoding="utf-8",
    )
    from datamill.review.questions import load

    db = tmp_path / "p.db"
    start(alpaca(tmp_path / "a.jsonl"), db, "sft", annotators=["alice"], questions=load(tmp_path / "q.yaml", "sft"))
    project = Project(db)
    alice = person(project, "alice")
    first = first_assignment(project, "alice", 0)
    submit(project, alice, first, {"decision": "accept", "responses": {"topic": "other"}})

    out = tmp_path / "ls" / "tasks.json"
    summary = export_to(project, out, "labelstudio")
    assert (summary.items, summary.answers) == (5, 1)
    tasks = json.loads(out.read_text(encoding="utf-8"))
    config = ET.fromstring((tmp_path / "ls" / "tasks.label_config.xml").read_text(encoding="utf-8"))
    controls = {e.get("name"): e for e in config if e.get("toName")}
    assert set(controls) == {"decision", "edited", "reason", "topic", "quality-0", "quality-1"}
    assert [c.get("value") for c in controls["decision"]] == ["accept", "edit", "reject"]
    assert controls["quality-0"].tag == "Rating" and controls["quality-0"].get("maxRating") == "5"
    assert controls["edited"].get("value") == "$answer"  # the answer, pre-filled to correct
    paragraphs = config.find("Paragraphs")
    assert paragraphs.get("value") == "$chat" and paragraphs.get("nameKey") == "role"
    original = list(datamill.read(tmp_path / "a.jsonl"))
    for task, rec in zip(tasks, original, strict=True):
        assert set(task) == {"data", "predictions", "annotations"}
        assert task["data"]["record_id"] == rec.id
        assert [m["content"] for m in task["data"]["chat"]] == [m.content for m in rec.messages]
        for r in (r for a in task["annotations"] + task["predictions"] for r in a["result"]):
            assert r["from_name"] in controls and r["to_name"] == "chat"  # every result names a control
            assert r["type"] == {"Choices": "choices", "TextArea": "textarea", "Rating": "rating"}[
                controls[r["from_name"]].tag]
    assert tasks[0]["annotations"][0]["completed_by"] == alice.id
    assert tasks[0]["annotations"][0]["datamill_annotator"] == "alice"
    assert {r["from_name"]: r["value"] for r in tasks[0]["annotations"][0]["result"]} == {
        "decision": {"choices": ["accept"]}, "topic": {"choices": ["other"]}}

    # people work in Label Studio: bob (a new user, Label Studio's id 7) rejects task 1, alice (its user 12,
    # matched by her email) edits task 2 and changes her exported answer on task 0, bob skips task 4, and
    # task 3 gets a label not in the set
    edited = copy.deepcopy(tasks)
    bob = {"id": 7, "email": "bob@example.com", "first_name": "Bob"}
    edited[1]["annotations"].append({"completed_by": bob, "was_cancelled": False, "result": [
        {"from_name": "decision", "to_name": "chat", "type": "choices", "value": {"choices": ["reject"]}},
        {"from_name": "reason", "to_name": "chat", "type": "textarea", "value": {"text": ["off topic"]}},
        {"from_name": "topic", "to_name": "chat", "type": "choices", "value": {"choices": ["writing"]}},
        {"from_name": "quality-0", "to_name": "chat", "type": "rating", "value": {"rating": 2}},
        {"from_name": "quality-1", "to_name": "chat", "type": "rating", "value": {"rating": 3}}]})
    edited[2]["annotations"].append({"completed_by": {"id": 12, "email": "alice@example.com"}, "result": [
        {"from_name": "decision", "to_name": "chat", "type": "choices", "value": {"choices": ["edit"]}},
        {"from_name": "edited", "to_name": "chat", "type": "textarea", "value": {"text": ["A shorter answer."]}},
        {"from_name": "topic", "to_name": "chat", "type": "choices", "value": {"choices": ["maths"]}}]})
    edited[0]["annotations"][0]["result"][0]["value"] = {"choices": ["reject"]}
    edited[0]["annotations"][0]["result"].append(  # the pre-filled answer, submitted untouched: no edit
        {"from_name": "edited", "to_name": "chat", "type": "textarea", "value": {"text": [tasks[0]["data"]["answer"]]}})
    edited[3]["annotations"].append({"completed_by": bob, "result": [
        {"from_name": "decision", "to_name": "chat", "type": "choices", "value": {"choices": ["accept"]}},
        {"from_name": "topic", "to_name": "chat", "type": "choices", "value": {"choices": ["cooking"]}}]})
    edited[4]["annotations"].append({"completed_by": bob, "was_cancelled": True, "result": []})
    edited.append({"data": tasks[0]["data"], "annotations": ["accept"]})  # not Label Studio's shape
    back = tmp_path / "from-ls.json"
    back.write_text(json.dumps(edited), encoding="utf-8")

    got = import_from(project, back, "labelstudio")
    assert (got.tasks, got.answers, got.changed, got.unchanged) == (6, 2, 1, 0)
    assert got.quarantined == [(3, "bob's answer: topic: choose one of maths, writing, other"),
                               (5, "malformed task (AttributeError: 'str' object has no attribute 'get')")]
    assert set(got.tokens) == {"bob"}  # a new annotator, named by the email Label Studio gave
    assert got.skipped == {"cancelled (skipped in Label Studio)": 1}
    held = [json.loads(line) for line in got.quarantine_path.read_text(encoding="utf-8").splitlines()]
    assert [h["index"] for h in held] == [3, 5] and held[0]["task"] == edited[3]
    stored = answers_of(project)
    assert set(stored) == {(0, "alice"), (1, "bob"), (2, "alice")}
    assert (stored[0, "alice"].decision, stored[0, "alice"].responses) == ("reject", {"topic": "other"})
    bob_answer = stored[1, "bob"]
    assert (bob_answer.decision, bob_answer.reason) == ("reject", "off topic")
    assert bob_answer.responses == {"topic": "writing", "quality": {"helpfulness": 2, "clarity": 3}}
    assert stored[2, "alice"].record["messages"][-1]["content"] == "A shorter answer."
    with project.read() as s:
        actions = [h.action for h in s.scalars(select(History).where(History.actor == "import"))]
    assert actions.count("import answer") == 2 and actions.count("import change") == 1 and "add annotator" in actions

    # the same file again changes nothing; the decisions export like the app's
    again = import_from(project, back, "labelstudio")
    assert (again.answers, again.changed, again.unchanged, again.tokens) == (0, 0, 3, {})
    done = export(project, tmp_path / "out", "alpaca")
    # item 2 edited, 0 rejected; 1 waits for alice, to whom it is assigned (bob's answer is one of two)
    assert (done.written, done.dropped, done.pending) == (1, 1, 3)
    kept = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    assert kept[0]["output"] == "A shorter answer." and kept[0]["meta"]["review"]["annotators"][0]["name"] == "alice"


def test_argilla_round_trip_pairwise(tmp_path, monkeypatch):
    db = tmp_path / "pairs.db"
    start(LF / "dpo_en_demo.json", db, "pairwise", annotators=["alice", "bob"], overlap=2, seed=5)
    project = Project(db)
    with project.read() as s:
        items = s.scalars(select(Item).order_by(Item.seq).limit(4)).all()
        n_items = len(s.scalars(select(Item.id)).all())
    alice = person(project, "alice")
    submit(project, alice, first_assignment(project, "alice", 0), {"decision": "a", "reason": "clearer"})
    with project.read() as s:
        shown = s.get(Assignment, first_assignment(project, "alice", 0)).shown
    chose = shown[0]  # the candidate alice saw as A

    folder = tmp_path / "argilla"
    summary = export_to(project, folder, "argilla")
    assert summary.items == n_items and summary.suggestions == n_items  # the dataset's own preference
    settings = json.loads((folder / ".argilla" / "settings.json").read_text(encoding="utf-8"))
    records = json.loads((folder / "records.json").read_text(encoding="utf-8"))
    assert [f["name"] for f in settings["fields"]] == ["prompt", "answer_a", "answer_b"]
    assert {q["name"]: q["settings"]["type"] for q in settings["questions"]} == {
        "decision": "label_selection", "reason": "text"}
    first = records[0]
    assert first["fields"]["answer_a"] == items[0].payload["candidates"][0]["text"]
    assert first["suggestions"]["decision"] == {"value": "a", "score": round(1 - items[0].uncertainty, 3),
                                                "agent": "dataset"}  # chosen is candidate 0
    assert first["responses"]["decision"][0]["value"] == "ab"[chose]  # in the stored order
    assert first["responses"]["reason"][0]["value"] == "clearer"

    rg = pytest.importorskip("argilla")
    from argilla._api._client import APIClient
    from argilla.records._resource import Record as RgRecord

    # Argilla's models want a default client; one that never connects (nothing here talks to a server)
    monkeypatch.setattr(APIClient, "_validate_connection", lambda self: None)
    monkeypatch.setattr(rg.Argilla, "_default_client", rg.Argilla(api_url="http://127.0.0.1:9", api_key="offline"))

    from argilla._models import DatasetModel

    parsed = rg.Settings._from_dict(settings)  # Argilla's own models read what we wrote (as from_disk does)
    assert DatasetModel(**json.loads((folder / ".argilla" / "dataset.json").read_text(encoding="utf-8"))).name
    assert [q.name for q in parsed.questions] == ["decision", "reason"]
    assert [o["value"] for o in parsed.questions["decision"].serialize()["settings"]["options"]] == [
        "a", "b", "tie", "both_bad"]
    for raw in records:
        rec = RgRecord.from_dict(raw)
        assert rec.to_dict()["fields"] == raw["fields"] and rec.to_dict()["suggestions"] == raw["suggestions"]

    # annotators in Argilla: carol (a new user) prefers B on item 1, bob says tie on item 2, a draft
    # on item 3 is not an answer, and a record naming a question the project lacks is quarantined
    users = json.loads((folder / "datamill.json").read_text(encoding="utf-8"))["users"]
    assert list(users.values()) == ["alice"]  # the sidecar names the people in the file
    bob_id = "5b0b0000-0000-4000-8000-000000000b0b"  # bob's id in that Argilla: --user maps it
    carol = "6f1f2f4e-0000-4000-8000-00000000ca01"
    records[1]["responses"]["decision"] = [{"value": "b", "user_id": carol, "status": "submitted"}]
    records[2]["responses"]["decision"] = [{"value": "tie", "user_id": bob_id, "status": "submitted"}]
    records[3]["responses"]["decision"] = [{"value": "a", "user_id": carol, "status": "draft"}]
    records[4]["responses"]["verdict"] = [{"value": "a", "user_id": carol, "status": "submitted"}]
    for raw in records[:4]:
        RgRecord.from_dict(raw)
    (folder / "records.json").write_text(json.dumps(records), encoding="utf-8")

    result = CliRunner().invoke(app, ["review", "import", str(db), str(folder), "--from", "argilla",
                                      "--user", f"{bob_id}=bob", "--user", f"{carol}=carol"])
    assert result.exit_code == 0, result.output
    assert "2 new, 0 changed, 1 unchanged" in result.output
    assert "task 4: no question 'verdict'" in result.output
    stored = answers_of(project)
    assert stored[0, "alice"].choice == chose  # alice's answer, unchanged by the round trip
    assert (stored[1, "carol"].decision, stored[1, "carol"].choice) == ("b", 1)
    assert stored[2, "bob"].decision == "tie" and (3, "carol") not in stored
    with project.read() as s:
        carol_row = s.scalar(select(Annotator).where(Annotator.name == "carol"))
        a = s.scalar(select(Assignment).where(Assignment.annotator_id == carol_row.id))
        assert a.shown == [0, 1] and a.status == "answered"  # the order Argilla showed
    assert (folder / "quarantined.jsonl").is_file()


def test_ranking_questions_are_refused_with_the_reason(tmp_path):
    (tmp_path / "q.yaml").write_text("- {name: best, kind: ranking}\n", encoding="utf-8")
    from datamill.review.questions import load

    db = tmp_path / "p.db"
    start(alpaca(tmp_path / "a.jsonl"), db, "sft", annotators=["alice"], questions=load(tmp_path / "q.yaml", "sft"))
    args = ["review", "export", str(db), "-o", str(tmp_path / "t.json"), "--to", "labelstudio"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "ranking" in result.output and "not exchanged" in result.output


# --------------------------------------------------------------------------- a project as a recipe input


def test_a_project_is_a_recipe_input(tmp_path):
    import yaml

    from datamill.pipeline import recipe as recipes
    from datamill.pipeline.runner import Runner

    (tmp_path / "projects").mkdir()
    db = tmp_path / "projects" / "reviewed.db"  # a folder input: the project is found by its tables
    start(alpaca(tmp_path / "a.jsonl", n=6), db, "sft", annotators=["alice"])
    project = Project(db)
    alice = person(project, "alice")
    answers = {0: {"decision": "accept"}, 1: {"decision": "reject", "reason": "wrong"},
               2: {"decision": "edit", "edits": {"messages.1": "Edited by a person, long enough to keep."}},
               3: {"decision": "accept"}}  # fmt: skip
    for seq, body in answers.items():
        submit(project, alice, first_assignment(project, "alice", seq), body)
    exported = export(project, tmp_path / "exported", "datamill")

    results = {}
    inputs = {"declared": {"path": str(db), "format": "review"}, "detected": str(tmp_path / "projects")}
    for name, spec in inputs.items():
        body = {"name": f"from-review-{name}", "seed": 1, "workers": 1, "inputs": [spec],
                "steps": [{"op": "length_filter", "part": "answer", "unit": "words", "min": 2}],
                "output": {"path": str(tmp_path / name), "format": "datamill"}}  # fmt: skip
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(body), encoding="utf-8")
        Runner(recipes.load(path)).run()
        out = tmp_path / name
        results[name] = [json.loads(x) for f in sorted(out.glob("data-*")) for x in f.read_text().splitlines()]
        assert json.loads((out / "stats.json").read_text(encoding="utf-8"))["quarantined"] == 0
    written = [json.loads(x) for x in (tmp_path / "exported" / "data-00000.jsonl").read_text().splitlines()]
    assert exported.written == 3 and exported.pending == 2  # accepted 0 and 3, edited 2; 1 rejected
    for got in results.values():  # the export's kept records, through the recipe's steps
        assert [r["id"] for r in got] == [r["id"] for r in written]
        assert [r["meta"]["review"]["decision"] for r in got] == ["accept", "edit", "accept"]
        assert got[1]["messages"][1]["content"] == "Edited by a person, long enough to keep."


def test_a_database_that_is_no_project_is_an_unreadable_input(tmp_path):
    import sqlite3

    import yaml

    from datamill.pipeline import recipe as recipes
    from datamill.pipeline.runner import Runner
    from datamill.review import recipe_input

    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE settings (key TEXT, value TEXT)")
    con.commit()
    con.close()
    assert not recipe_input.claims(tmp_path / "other.db")  # not taken for a project unless declared
    body = {"name": "x", "inputs": [{"path": str(tmp_path / "other.db"), "format": "review"}], "steps": [],
            "output": {"path": str(tmp_path / "out"), "format": "datamill"}}  # fmt: skip
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    Runner(recipes.load(tmp_path / "r.yaml")).run()
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    assert stats["files"]["failures"] == [{"file": str(tmp_path / "other.db"),
                                  "error": "not a datamill review project (no settings)"}]  # fmt: skip


@pytest.mark.parametrize("tool", ["labelstudio", "argilla"])
@pytest.mark.parametrize(("task", "options", "answer"), [
    ("rating", {"criteria": ["helpfulness", "clarity"], "scale": 4}, {"ratings": {"helpfulness": 4, "clarity": 1}}),
    ("label", {"labels": ["good", "bad"]}, {"labels": ["bad"], "reason": "made up"}),
    ("kto", {}, {"decision": "undesirable"}),
])  # fmt: skip
def test_every_task_survives_a_round_trip(tmp_path, tool, task, options, answer):
    db = tmp_path / "p.db"
    start(alpaca(tmp_path / "a.jsonl", n=3), db, task, annotators=["alice"], **options)
    project = Project(db)
    submit(project, person(project, "alice"), first_assignment(project, "alice", 1), answer)
    out = tmp_path / ("tasks.json" if tool == "labelstudio" else "argilla")
    export_to(project, out, tool)
    rows = json.loads((out if tool == "labelstudio" else out / "records.json").read_text(encoding="utf-8"))
    again = import_from(project, out, tool)
    assert (again.answers, again.changed, again.unchanged, again.quarantined) == (0, 0, 1, [])
    # the same answer given by someone new there is stored as theirs, equal to alice's
    if tool == "labelstudio":
        rows[1]["annotations"][0] |= {"datamill_annotator": None, "completed_by": {"id": 3, "email": "dan@x.org"}}
    else:
        for got in rows[1]["responses"].values():
            got[0]["user_id"] = "dan"
    (tmp_path / "back.json").write_text(json.dumps(rows), encoding="utf-8")
    got = import_from(project, tmp_path / "back.json", tool, users={"dan": "dan"})
    assert (got.answers, got.quarantined, set(got.tokens)) == (1, [], {"dan"})
    stored = answers_of(project)
    for key in ("decision", "ratings", "labels", "reason"):
        assert getattr(stored[1, "dan"], key) == getattr(stored[1, "alice"], key)


def test_label_studio_sdk_reads_the_export(tmp_path):
    """Where ``label-studio-sdk`` is installed: its ``LabelInterface`` validates the labeling config and
    every prediction and annotation we write (choices in the set, ratings in range, names that exist)."""
    interface = pytest.importorskip("label_studio_sdk.label_interface")
    from datamill.review.questions import load

    (tmp_path / "q.yaml").write_text(
        "- {name: topic, kind: label, labels: [maths, other]}\n"
        "- {name: flaws, kind: multi_label, labels: [wrong, rude]}\n"
        "- {name: quality, kind: rating, scale: 5, criteria: [helpfulness]}\n- {name: note, kind: text}\n",
        encoding="utf-8",
    )
    projects = {
        "sft": (alpaca(tmp_path / "a.jsonl"), "sft", {"questions": load(tmp_path / "q.yaml", "sft")},
                {"decision": "edit", "edits": {"messages.1": "new"}, "responses": {
                    "topic": "maths", "flaws": ["rude"], "quality": {"helpfulness": 3}, "note": "n"}}),
        "pairwise": (LF / "dpo_en_demo.json", "pairwise", {}, {"decision": "b", "reason": "shorter"}),
        "rating": (tmp_path / "a.jsonl", "rating", {"criteria": ["helpfulness"], "scale": 4},
                   {"ratings": {"helpfulness": 2}}),
    }  # fmt: skip
    for name, (data, task, options, body) in projects.items():
        db = tmp_path / f"{name}.db"
        start(data, db, task, annotators=["alice"], **options)
        project = Project(db)
        submit(project, person(project, "alice"), first_assignment(project, "alice", 0), body)
        export_to(project, tmp_path / f"{name}.json", "labelstudio")
        li = interface.LabelInterface((tmp_path / f"{name}.label_config.xml").read_text(encoding="utf-8"))
        li.validate()  # the config: schema, unique names, toName, attributes
        tasks = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
        results = [x for t in tasks for x in t["predictions"] + t["annotations"]]
        assert results and all(li.validate_prediction(x, return_errors=True) == [] for x in results)
        for t in tasks:
            assert all(t["data"].get(o.value_name) is not None for o in li.objects if o.value_is_variable)
        wrong = copy.deepcopy(tasks[0]["annotations"][0])
        wrong["result"][0]["value"] = {"choices": ["maybe"]} if task != "rating" else {"rating": 9}
        assert li.validate_prediction(wrong, return_errors=True)  # and it does check

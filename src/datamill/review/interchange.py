"""Label Studio and Argilla interchange (``review export --to labelstudio|argilla``, ``review import``):
a project's items, the pipeline's suggestions and people's answers written in the other tool's own
format, and the answers people gave there brought back as answers — checked like the app's.

Both tools see the same questions, named alike: ``decision`` (the task's choice: accept / edit /
reject, A / B / tie / both bad in the stored order, the label, desirable / undesirable), ``edited`` (an
sft task's answer turn, corrected), ``reason``, ``rating_I`` (criterion I of a rating task) and the
project's own questions (a rating question as ``NAME-I`` per criterion). Ranking questions are not
exchanged yet (both tools fix the options per dataset; candidates vary per item).

Label Studio: a JSON list of tasks, each ``{"data", "predictions", "annotations"}`` (the suggestions are
predictions, the answers annotations with ``completed_by``) and a labeling config (``.label_config.xml``)
beside it. Argilla 2.x: the folder ``rg.Dataset.to_disk`` writes and ``rg.Dataset.from_disk`` reads —
``.argilla/settings.json`` (fields, questions), ``.argilla/dataset.json`` and ``records.json`` (each
``Record.to_dict()``: fields, metadata, suggestions, responses with a ``user_id``), and ``datamill.json``
naming the annotators behind the user ids written."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from sqlalchemy import func, select

from datamill.io.atomic import write_text_atomic
from datamill.review.answers import BadAnswer, answer_dict, check, disagree, store
from datamill.review.items import turns
from datamill.review.schema import Annotator, Answer, Assignment, Item
from datamill.review.store import Project, ReviewError, now
from datamill.review.tokens import hash_token, new_token

TOOLS = ("labelstudio", "argilla")
CHOICES = {"sft": ["accept", "edit", "reject"], "pairwise": ["a", "b", "tie", "both_bad"],
           "kto": ["desirable", "undesirable"]}  # fmt: skip
BATCH = 500


# --------------------------------------------------------------------------- the shared questions


def questions_of(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The questions both tools ask: ``{"name", "kind": label|multi_label|rating|text, "title",
    "required", "labels" | "scale", "from": where the answer goes}``."""
    task = settings["task"]
    out: list[dict[str, Any]] = []
    if task == "rating":
        out += [{"name": f"rating_{i}", "kind": "rating", "title": c, "required": True, "scale": settings["scale"],
                 "from": ("ratings", c)} for i, c in enumerate(settings["criteria"])]  # fmt: skip
    else:
        labels = settings["labels"] if task == "label" else CHOICES[task]
        out.append({"name": "decision", "kind": "label", "title": "decision", "required": True, "labels": labels,
                    "from": ("decision",)})  # fmt: skip
    if task == "sft":
        out.append({"name": "edited", "kind": "text", "title": "the answer, corrected (decision: edit)",
                    "required": False, "from": ("edited",)})  # fmt: skip
    out.append({"name": "reason", "kind": "text", "title": "reason", "required": False, "from": ("reason",)})
    for q in settings.get("questions") or []:
        base = {"title": q["title"], "required": q["required"]}
        if q["kind"] == "ranking":
            raise ReviewError(f"question {q['name']!r} is a ranking: Label Studio and Argilla fix a ranking's "
                              "options per dataset and items have different candidates, so it is not exchanged; "
                              "answer it in `datamill review serve`")  # fmt: skip
        if q["kind"] == "rating":
            out += [base | {"name": f"{q['name']}-{i}".lower(), "kind": "rating", "title": f"{q['title']}: {c['name']}",
                            "scale": q["scale"], "from": ("responses", q["name"], c["name"])}
                    for i, c in enumerate(q["criteria"])]  # fmt: skip
        else:
            kind = q["kind"] if q["kind"] in ("label", "multi_label") else "text"
            out.append(base | {"name": q["name"].lower(), "kind": kind, "labels": q.get("labels"),
                               "from": ("responses", q["name"])})  # fmt: skip
    names = Counter(q["name"] for q in out)
    if clash := [n for n, k in names.items() if k > 1]:
        raise ReviewError(f"two questions are both called {clash[0]!r} in Label Studio and Argilla "
                          "(names are lower-cased; decision, edited, reason and rating_I are the task's)")  # fmt: skip
    return out


def _answer_turn(record: dict[str, Any]) -> dict[str, str] | None:
    """The turn an ``edited`` answer replaces: the last assistant turn, else the last text."""
    shown = turns(record)
    return next((t for t in reversed(shown) if t["role"] in ("assistant", "chosen")), shown[-1] if shown else None)


def values_of(task: str, item: Item, ans: dict[str, Any], asked: list[dict[str, Any]]) -> dict[str, Any]:
    """One stored answer as the shared questions' values."""
    out: dict[str, Any] = {}
    if task == "pairwise" and ans["decision"] in ("a", "b"):
        out["decision"] = "ab"[ans["choice"]]  # the stored order: candidate 0 is A
    elif task == "label":
        out["decision"] = ans["labels"][0]
    elif task != "rating":
        out["decision"] = ans["decision"]
    if ans["decision"] == "edit" and (turn := _answer_turn(ans["record"])) is not None:
        out["edited"] = turn["content"]
    if ans.get("reason"):
        out["reason"] = ans["reason"]
    responses = ans.get("responses") or {}
    for q in asked:
        where = q["from"]
        if where[0] == "ratings":
            out[q["name"]] = ans["ratings"][where[1]]
        elif where[0] == "responses" and where[1] in responses:
            got = responses[where[1]]
            value = got[where[2]] if len(where) == 3 else got
            out[q["name"]] = value
    return out


def body_of(settings: dict[str, Any], item: Item, given: dict[str, Any], asked: list[dict[str, Any]]) -> dict[str, Any]:
    """The shared questions' values as the app's answer body (``answers.check`` then validates it)."""
    task = settings["task"]
    body: dict[str, Any] = {}
    decision = given.get("decision")
    if task == "label":
        body["labels"] = [decision] if decision is not None else None
    elif task != "rating":
        body["decision"] = decision
    turn = _answer_turn(item.record) if task == "sft" else None
    if turn is not None and given.get("edited") == turn["content"]:
        given = {k: v for k, v in given.items() if k != "edited"}  # the pre-filled answer, left as it was
    if given.get("edited") is not None and (task != "sft" or decision != "edit"):
        raise BadAnswer("'edited' holds a corrected answer: choose decision 'edit' with it")
    if task == "sft" and decision == "edit":
        if turn is None or not isinstance(given.get("edited"), str):
            raise BadAnswer("decision 'edit' needs the corrected answer in 'edited'")
        body["edits"] = {turn["key"]: given["edited"]}
    if given.get("reason") is not None:
        body["reason"] = given["reason"]
    responses: dict[str, Any] = {}
    for q in asked:
        if q["name"] not in given:
            continue
        where, value = q["from"], given[q["name"]]
        if where[0] == "ratings":
            body.setdefault("ratings", {})[where[1]] = value
        elif where[0] == "responses" and len(where) == 3:
            responses.setdefault(where[1], {})[where[2]] = value
        elif where[0] == "responses":
            responses[where[1]] = value
    if responses:
        body["responses"] = responses
    return body


def suggested(task: str, item: Item) -> list[tuple[str, Any, float | None, str]]:
    """The pipeline's suggestions as ``(question, value, score, agent)``: a drop or a quality score below
    3 suggests reject (sft) or undesirable (kto), one of 3 or more accept / desirable; a pairwise
    preference suggests its candidate (stored order) or a tie; a dataset's KTO label its side. The score
    is how sure the judges are (1 − the item's uncertainty)."""
    sure = round(1 - item.uncertainty, 3)
    keep, drop = {"sft": ("accept", "reject"), "kto": ("desirable", "undesirable")}.get(task, (None, None))
    out: list[tuple[str, Any, float | None, str]] = []
    for h in item.suggestions:
        kind, agent = h.get("kind"), str(h.get("source") or "pipeline")
        if kind == "drop" and drop:
            out.append(("decision", drop, sure, h.get("op") or agent))
        elif kind == "score" and keep and isinstance(h.get("score"), int | float):
            out.append(("decision", keep if h["score"] >= 3 else drop, sure, agent))
        elif kind == "label" and task == "kto" and isinstance(h.get("label"), bool):
            out.append(("decision", keep if h["label"] else drop, sure, agent))
        elif kind == "prefers" and task == "pairwise":
            out.append(("decision", "tie" if h.get("prefers") is None else "ab"[h["prefers"]], sure, agent))
    return out


# --------------------------------------------------------------------------- export


@dataclass
class InterchangeSummary:
    items: int = 0
    answers: int = 0
    suggestions: int = 0
    paths: list[Path] = field(default_factory=list)


def _items(project: Project) -> Iterator[tuple[Item, list[dict[str, Any]]]]:
    """The data's items (gold is never exported: it would give the known answers away) with their
    answers, each with the annotator's ``name`` and ``annotator_id``."""
    last = -1
    while True:
        with project.read() as s:
            items = s.scalars(select(Item).where(Item.seq > last, Item.gold.is_(None)).order_by(Item.seq)
                              .limit(BATCH)).all()  # fmt: skip
            if not items:
                return
            votes: dict[int, list[dict[str, Any]]] = {}
            rows = s.execute(select(Answer, Annotator.name).join(Annotator, Annotator.id == Answer.annotator_id)
                             .where(Answer.item_id.in_([i.id for i in items])).order_by(Answer.id))  # fmt: skip
            for ans, name in rows:
                votes.setdefault(ans.item_id, []).append(answer_dict(ans) | {"name": name})
        for i in items:
            yield i, votes.get(i.id, [])
        last = items[-1].seq


def _fields(item: Item) -> dict[str, Any]:
    if "pair" in item.payload:
        prompt = "\n\n".join(f"{t['role']}: {t['content']}" for t in item.payload["prompt"])
        a, b = (c["text"] for c in item.payload["candidates"])
        return {"prompt": prompt, "answer_a": a, "answer_b": b}
    chat = [{"role": t["role"], "content": t["content"]} for t in turns(item.record)]
    turn = _answer_turn(item.record)
    return {"chat": chat, "answer": turn["content"] if turn else ""}


def _write_json(path: Path, body: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(body, ensure_ascii=False, indent=1) + "\n")


def export_to(project: Project, out: Path, tool: str, *, overwrite: bool = False) -> InterchangeSummary:
    """Write the project for ``tool``: Label Studio's task list at ``out`` and its labeling config
    beside it, or Argilla's ``to_disk`` folder ``out`` (with ``datamill.json``: its user ids' names)."""
    if tool not in TOOLS:
        raise ReviewError(f"--to must be {' or '.join(TOOLS)} for an interchange export, not {tool!r}")
    settings = project.settings
    asked = questions_of(settings)
    if tool == "labelstudio":
        config = out.with_name(out.stem + ".label_config.xml")
        for path in (out, config):
            if path.exists() and not overwrite:
                raise ReviewError(f"{path} exists; pass --overwrite to replace it")
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise ReviewError(f"{out} is not empty; Argilla's folder needs an empty one (or pass --overwrite)")
    summary = InterchangeSummary()
    rows, users = [], set()
    make = _labelstudio_task if tool == "labelstudio" else _argilla_record
    for item, votes in _items(project):
        summary.items += 1
        hints = suggested(settings["task"], item)
        answers = [(v, values_of(settings["task"], item, v, asked)) for v in votes]
        users |= {v["name"] for v in votes}
        summary.suggestions += len(hints)
        summary.answers += len(answers)
        rows.append(make(item, hints, answers, asked, settings))
    if tool == "labelstudio":
        _write_json(out, rows)
        config.write_text(label_config(settings, asked), encoding="utf-8")
        summary.paths = [out, config]
        return summary
    _write_json(out / ".argilla" / "settings.json", argilla_settings(settings, asked))
    _write_json(out / ".argilla" / "dataset.json", {"name": settings.get("name") or "datamill-review"})
    _write_json(out / "records.json", rows)
    _write_json(out / "datamill.json", {"project": project.target, "task": settings["task"], "at": now(),
                                        "users": {_user_id(settings, n): n for n in sorted(users)}})  # fmt: skip
    summary.paths = [out / "records.json", out / ".argilla" / "settings.json", out / "datamill.json"]
    return summary


def _user_id(settings: dict[str, Any], name: str) -> str:
    """An Argilla user id (a UUID) for an annotator: the same for the same project and name (version 5, so
    it never meets the random version-4 ids Argilla gives its own users)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"datamill-review:{settings['name']}:{settings['seed']}:{name}"))


# ---- Label Studio


def label_config(settings: dict[str, Any], asked: list[dict[str, Any]]) -> str:
    """The labeling config XML that shows an item and asks the shared questions."""
    lines = ["<View>"]
    if settings["task"] == "pairwise":
        target = "prompt"
        lines += ['  <Header value="Prompt"/>', '  <Text name="prompt" value="$prompt"/>',
                  '  <Header value="Answer A"/>', '  <Text name="answer_a" value="$answer_a"/>',
                  '  <Header value="Answer B"/>', '  <Text name="answer_b" value="$answer_b"/>']  # fmt: skip
    else:
        target = "chat"
        lines.append('  <Paragraphs name="chat" value="$chat" layout="dialogue" nameKey="role" textKey="content"/>')
    for q in asked:
        required = ' required="true"' if q["required"] else ""
        lines.append(f"  <Header value={quoteattr(q['title'])}/>")
        attrs = f"name={quoteattr(q['name'])} toName={quoteattr(target)}{required}"
        if q["kind"] in ("label", "multi_label"):
            choice = "single" if q["kind"] == "label" else "multiple"
            lines.append(f'  <Choices {attrs} choice="{choice}">')
            lines += [f"    <Choice value={quoteattr(x)}/>" for x in q["labels"]]
            lines.append("  </Choices>")
        elif q["kind"] == "rating":
            lines.append(f'  <Rating {attrs} maxRating="{q["scale"]}"/>')
        else:
            prefill = ' value="$answer" editable="true"' if q["name"] == "edited" else ""
            lines.append(f'  <TextArea {attrs} maxSubmissions="1"{prefill}/>')
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def _ls_result(q: dict[str, Any], value: Any, target: str) -> dict[str, Any]:
    kind = q["kind"]
    if kind in ("label", "multi_label"):
        typed = ("choices", {"choices": [value] if kind == "label" else list(value)})
    elif kind == "rating":
        typed = ("rating", {"rating": value})
    else:
        typed = ("textarea", {"text": [value]})
    return {"from_name": q["name"], "to_name": target, "type": typed[0], "value": typed[1]}


def _labelstudio_task(item, hints, answers, asked, settings) -> dict[str, Any]:
    target = "prompt" if settings["task"] == "pairwise" else "chat"
    known = {q["name"]: q for q in asked}
    data = _fields(item) | {"datamill_item": item.id, "record_id": item.record_id}
    predictions = [{"model_version": agent, "score": score, "result": [_ls_result(known[name], value, target)]}
                   for name, value, score, agent in hints]  # fmt: skip
    annotations = [{"completed_by": v["annotator_id"], "datamill_annotator": v["name"],
                    "created_at": v["created_at"], "updated_at": v["updated_at"], "was_cancelled": False,
                    "ground_truth": False,
                    "result": [_ls_result(known[k], x, target) for k, x in values.items()]}
                   for v, values in answers]  # fmt: skip
    return {"data": data, "predictions": predictions, "annotations": annotations}


# ---- Argilla


def argilla_settings(settings: dict[str, Any], asked: list[dict[str, Any]]) -> dict[str, Any]:
    """``rg.Settings.serialize()``'s shape: fields, questions, metadata, guidelines, distribution."""
    def text_field(name: str) -> dict[str, Any]:
        return {"name": name, "title": name, "required": True, "settings": {"type": "text", "use_markdown": True}}

    if settings["task"] == "pairwise":
        fields = [text_field("prompt"), text_field("answer_a"), text_field("answer_b")]
    else:
        fields = [{"name": "chat", "title": "record", "required": True,
                   "settings": {"type": "chat", "use_markdown": True}}]  # fmt: skip
    questions = []
    for q in asked:
        if q["kind"] in ("label", "multi_label"):
            spec = {"type": "label_selection" if q["kind"] == "label" else "multi_label_selection",
                    "options": [{"text": x, "value": x} for x in q["labels"]]}  # fmt: skip
        elif q["kind"] == "rating":
            spec = {"type": "rating", "options": [{"value": n} for n in range(1, q["scale"] + 1)]}
        else:
            spec = {"type": "text", "use_markdown": False}
        questions.append({"name": q["name"], "title": q["title"], "description": None, "required": q["required"],
                          "settings": spec})  # fmt: skip
    return {
        "guidelines": settings.get("guidelines") or None,
        "fields": fields,
        "questions": questions,
        "vectors": [],
        "metadata": [{"name": "record_id", "title": "record id", "visible_for_annotators": False,
                      "settings": {"type": "terms", "values": None, "visible_for_annotators": False}}],
        "allow_extra_metadata": False,
        "distribution": {"strategy": "overlap", "min_submitted": settings["overlap"]},
        "mapping": None,
    }  # fmt: skip


def _argilla_record(item, hints, answers, asked, settings) -> dict[str, Any]:
    fields = _fields(item)
    suggestions: dict[str, Any] = {}
    for name, value, score, agent in hints:  # Argilla holds one suggestion per question: the first
        suggestions.setdefault(name, {"value": value, "score": score, "agent": agent})
    if settings["task"] == "sft":  # Argilla pre-fills a text question with its suggestion
        suggestions["edited"] = {"value": fields["answer"], "score": None, "agent": "original answer"}
    fields.pop("answer", None)
    responses: dict[str, list[dict[str, Any]]] = {}
    for v, values in answers:
        for name, value in values.items():
            responses.setdefault(name, []).append({"value": value, "user_id": _user_id(settings, v["name"]),
                                                   "status": "submitted"})  # fmt: skip
    status = "completed" if answers and len(answers) >= settings["overlap"] else "pending"
    return {"id": str(item.id), "fields": fields, "metadata": {"record_id": item.record_id},
            "suggestions": suggestions, "responses": responses, "vectors": {}, "status": status,
            "_server_id": None}  # fmt: skip


# --------------------------------------------------------------------------- import


@dataclass
class ImportSummary:
    tasks: int = 0
    answers: int = 0  # new answers stored
    changed: int = 0  # answers that replaced a different one
    unchanged: int = 0  # the same answer again (a re-import)
    skipped: Counter[str] = field(default_factory=Counter)  # cancelled, drafts, empty
    quarantined: list[tuple[int, str]] = field(default_factory=list)  # (task index, why)
    quarantine_path: Path | None = None
    tokens: dict[str, str] = field(default_factory=dict)  # annotators created: name → login token


@dataclass
class _Given:
    user: str  # the tool's user id
    name: str | None  # a name the tool gave (Label Studio's email or username)
    values: dict[str, Any]
    ours: str | None = None  # the annotator of an answer datamill exported


def _ls_values(result: Any, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if not isinstance(result, list):
        raise BadAnswer("an annotation's result must be a list")
    out: dict[str, Any] = {}
    for r in result:
        name = r.get("from_name") if isinstance(r, dict) else None
        if name not in known:
            raise BadAnswer(f"no question {name!r} in this project ({', '.join(known)})")
        q, value = known[name], r.get("value") or {}
        if q["kind"] in ("label", "multi_label"):
            got = value.get("choices")
            if not isinstance(got, list):
                raise BadAnswer(f"{name}: value.choices must be a list")
            out[name] = (got[0] if len(got) == 1 else got) if q["kind"] == "label" else got
        elif q["kind"] == "rating":
            out[name] = value.get("rating")
        else:
            text = value.get("text")
            out[name] = "\n".join(text) if isinstance(text, list) else text
    return out


def _rows(file: Path, what: str) -> list[Any]:
    try:
        rows = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReviewError(f"{file}: not {what} ({e})") from None
    if not isinstance(rows, list):
        raise ReviewError(f"{file}: {what} is a JSON list")
    return rows


def _ls_task(task: Any, known: dict[str, dict[str, Any]], skipped: Counter[str]) -> tuple[Any, Any, list[_Given]]:
    """A Label Studio task's item, record id and submitted annotations."""
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict):
        raise BadAnswer("a task needs its 'data'")
    given = []
    for a in task.get("annotations") or []:
        if a.get("was_cancelled"):
            skipped["cancelled (skipped in Label Studio)"] += 1
        elif not a.get("result"):
            skipped["an annotation with no result"] += 1
        else:
            who = a.get("completed_by")  # a user id, or (older exports) the user: id, email …
            user, name = (str(who.get("id")), who.get("email") or who.get("username")) if isinstance(who, dict) else (
                str(who), None)  # fmt: skip
            # an answer datamill exported names its annotator (Label Studio's own users are its ids)
            given.append(_Given(user, name, _ls_values(a["result"], known), a.get("datamill_annotator")))
    return data.get("datamill_item"), data.get("record_id"), given


def _rg_record(rec: Any, known: dict[str, dict[str, Any]], skipped: Counter[str]) -> tuple[Any, Any, list[_Given]]:
    """An Argilla record's item, record id and submitted responses, per user."""
    if not isinstance(rec, dict) or not isinstance(rec.get("responses") or {}, dict):
        raise BadAnswer("a record is an object with 'responses': {question: [response, …]}")
    by_user: dict[str, dict[str, Any]] = {}
    for name, got in (rec.get("responses") or {}).items():
        if name not in known:
            raise BadAnswer(f"no question {name!r} in this project ({', '.join(known)})")
        for r in got:
            if r.get("status", "submitted") != "submitted":
                skipped[f"{r['status']} responses (not submitted)"] += 1
                continue
            by_user.setdefault(str(r.get("user_id")), {})[name] = r.get("value")
    item = int(rec["id"]) if str(rec.get("id", "")).isdigit() else None
    return item, (rec.get("metadata") or {}).get("record_id"), [_Given(u, None, v) for u, v in by_user.items()]


def _argilla_users(path: Path) -> dict[str, str]:
    """The names of the user ids ``export_to`` wrote (``datamill.json`` in the folder)."""
    side = (path if path.is_dir() else path.parent) / "datamill.json"
    try:
        return dict(json.loads(side.read_text(encoding="utf-8")).get("users") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def _clean_name(text: str) -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.split("@")[0]).strip("-.")
    return name[:64] or "someone"


def import_from(
    project: Project,
    path: Path,
    tool: str,
    *,
    users: dict[str, str] | None = None,
    quarantine: Path | None = None,
    actor: str = "import",
) -> ImportSummary:
    """Bring answers given in ``tool`` back as answers. Each task's answers are checked like the app's
    (``answers.check``); a task with a wrong one is quarantined whole (its index and why, in
    ``quarantine``), the others are stored in one transaction with history. People are the project's
    annotators by name: the one datamill exported an answer with (Label Studio's ``datamill_annotator``,
    Argilla's ids in ``datamill.json``), else ``users`` (the tool's user id → name), else the name the
    tool gives (an email's local part), else ``TOOL-ID``; unknown ones are created
    (their login tokens are returned). A pairwise answer is in the stored order (A is candidate 0), the
    order the tool showed, which the assignment then records."""
    if tool not in TOOLS:
        raise ReviewError(f"--from must be {' or '.join(TOOLS)}, not {tool!r}")
    settings = project.settings
    asked = questions_of(settings)
    summary = ImportSummary()
    names = (_argilla_users(path) if tool == "argilla" else {}) | (users or {})
    if tool == "labelstudio":
        rows, parse = _rows(path, "a Label Studio JSON export"), _ls_task
    else:
        rows, parse = _rows(path / "records.json" if path.is_dir() else path, "Argilla's records.json"), _rg_record
    known = {q["name"]: q for q in asked}
    good: list[tuple[Item, list[tuple[str, dict[str, Any]]]]] = []
    bad: list[dict[str, Any]] = []
    with project.read() as s:
        for n, raw in enumerate(rows):
            summary.tasks += 1
            try:
                item_id, record_id, given = parse(raw, known, summary.skipped)
                item = s.get(Item, item_id) if isinstance(item_id, int) else None
                if item is None or item.gold is not None or item.record_id != record_id:
                    raise BadAnswer(f"no item {item_id!r} with record {record_id!r} in {project.target}")
                shown = [0, 1] if "pair" in item.payload else None
                stored = {name: values_of(settings["task"], item, answer_dict(ans), asked) for ans, name in s.execute(
                    select(Answer, Annotator.name).join(Annotator, Annotator.id == Answer.annotator_id)
                    .where(Answer.item_id == item.id))}  # fmt: skip
                people = []
                for g in given:
                    who = g.ours or names.get(g.user) or _clean_name(g.name or f"{tool}-{g.user}")
                    if stored.get(who) == g.values:  # the answer as exported: nothing to check or store
                        summary.unchanged += 1
                        continue
                    try:
                        people.append((who, check(settings, item, shown, body_of(settings, item, g.values, asked))))
                    except BadAnswer as e:
                        raise BadAnswer(f"{who}'s answer: {e}") from None
            except (BadAnswer, KeyError, TypeError, ValueError, AttributeError) as e:  # the others: a bad shape
                shape = "task" if tool == "labelstudio" else "record"
                why = str(e) if isinstance(e, BadAnswer) else f"malformed {shape} ({type(e).__name__}: {e})"
                summary.quarantined.append((n, why))
                bad.append({"index": n, "error": why, "task": raw})
                continue
            if people:
                good.append((item, people))
    if good:
        _store(project, settings, good, summary, actor)
    if bad:
        summary.quarantine_path = quarantine or (path / "quarantined.jsonl" if path.is_dir() else
                                                 path.with_name(path.stem + ".quarantined.jsonl"))  # fmt: skip
        with summary.quarantine_path.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(b, ensure_ascii=False) + "\n" for b in bad)
    return summary


def _store(project: Project, settings: dict[str, Any], good, summary: ImportSummary, actor: str) -> None:
    with project.write(actor) as w:
        s = w.session
        people = {a.name: a for a in s.scalars(select(Annotator))}
        for item_ref, answers in good:
            item = s.get(Item, item_ref.id, with_for_update=True)
            for name, fields in answers:
                who = people.get(name)
                if who is None:
                    token = new_token()
                    who = Annotator(name=name, token_hash=hash_token(token), role="annotator", created_at=w.at)
                    s.add(who)
                    s.flush()
                    w.log("add annotator", "annotators", who.id, after={"name": name, "role": "annotator",
                                                                         "by": "import"})  # fmt: skip
                    people[name], summary.tokens[name] = who, token
                a = s.scalar(select(Assignment).where(Assignment.item_id == item.id, Assignment.annotator_id == who.id))
                shown = [0, 1] if "pair" in item.payload else None
                if a is None:
                    a = Assignment(item_id=item.id, annotator_id=who.id, position=item.seq, shown=shown)
                    s.add(a)
                    s.flush()
                    w.log("assign", "assignments", a.id, after={"annotator": name, "item": item.id, "by": "import"})
                old = s.scalar(select(Answer).where(Answer.assignment_id == a.id))
                if old is not None and _same(old, fields):
                    summary.unchanged += 1
                    continue
                if a.shown != shown:  # the answer is now the one given in the order the tool showed
                    w.log("import order", "assignments", a.id, before={"shown": a.shown}, after={"shown": shown})
                    a.shown = shown
                ans, before = store(w, a, fields)
                summary.answers += before is None
                summary.changed += before is not None
                w.log("import answer" if before is None else "import change", "answers", ans.id, before,
                      answer_dict(ans))  # fmt: skip
            answered = s.scalar(select(func.count(Answer.id)).where(Answer.item_id == item.id))
            assigned = s.scalar(select(func.count(Assignment.id)).where(Assignment.item_id == item.id))
            item.status = "done" if answered >= assigned else "partial"
            item.disagree = disagree(s, settings, item.id)


def _same(old: Answer, fields: dict[str, Any]) -> bool:
    """Whether an imported answer is the stored one: for a pair, the same candidate is the same choice
    whichever side (A/B) it was shown on."""
    keys = [k for k in fields if not (k == "decision" and fields["choice"] is not None)]
    return all(getattr(old, k) == fields[k] for k in keys) and (fields["choice"] is None) == (old.choice is None)

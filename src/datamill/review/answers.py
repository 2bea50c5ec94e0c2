"""Storing an answer: check it against the task and the questions, then write it, the assignment's and
the item's new status, whether the item's annotators now disagree, and a history row (before/after) in
one transaction. One answer per assignment: answering again changes it (history keeps the old one), so
a submission retried or sent twice is stored once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from datamill.review import questions
from datamill.review.items import apply_edits, content_of
from datamill.review.schema import Annotator, Answer, Assignment, Item
from datamill.review.store import Project, ReviewError

DECISIONS = {
    "sft": ("accept", "edit", "reject"),
    "pairwise": ("a", "b", "tie", "both_bad"),
    "rating": ("rate",),
    "label": ("label",),
    "kto": ("desirable", "undesirable"),
}
MAX_REASON = 4000
MAX_EDIT = 1_000_000


class BadAnswer(ReviewError):
    """The answer does not fit the task (HTTP 400)."""


class NotYours(ReviewError):
    """No such assignment for this annotator (HTTP 404: others' assignments are not even confirmed)."""


def answer_dict(ans: Answer) -> dict[str, Any]:
    keys = ("id", "assignment_id", "item_id", "annotator_id", "decision", "choice", "record", "reason", "ratings",
            "labels", "responses", "created_at", "updated_at")  # fmt: skip
    return {k: getattr(ans, k) for k in keys}


def check(settings: dict[str, Any], item: Item, shown: list[int] | None, body: Any) -> dict[str, Any]:
    """The answer's stored fields from a request body, or BadAnswer saying what is wrong."""
    if not isinstance(body, dict):
        raise BadAnswer("the answer must be a JSON object")
    task = settings["task"]
    decision = body.get("decision") or {"rating": "rate", "label": "label"}.get(task)
    if decision not in DECISIONS[task]:
        raise BadAnswer(f"decision must be one of {', '.join(DECISIONS[task])} for a {task} task")
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise BadAnswer(f"reason must be text of at most {MAX_REASON} characters")
    out: dict[str, Any] = {"decision": decision, "reason": (reason.strip() or None) if reason else None}
    out |= {"choice": None, "record": None, "ratings": None, "labels": None}
    try:
        out["responses"] = questions.check(settings.get("questions") or [], item.payload, body.get("responses"))
    except ValueError as e:
        raise BadAnswer(str(e)) from None
    if decision == "edit":
        out["record"] = _edited(item.record, body.get("edits"))
    elif task == "pairwise" and decision in ("a", "b"):
        out["choice"] = (shown or [0, 1])["ab".index(decision)]
    elif task == "rating":
        out["ratings"] = _ratings(settings, body.get("ratings"))
    elif task == "label":
        out["labels"] = _labels(settings, body.get("labels"))
    return out


def _edited(record: dict[str, Any], edits: Any) -> dict[str, Any]:
    if not isinstance(edits, dict) or not edits or not all(isinstance(v, str) for v in edits.values()):
        raise BadAnswer("an edit needs 'edits': {turn key: new text}")
    if sum(len(v) for v in edits.values()) > MAX_EDIT:
        raise BadAnswer(f"an edit may hold at most {MAX_EDIT:,} characters")
    try:
        after = apply_edits(record, edits)
    except KeyError as e:
        raise BadAnswer(f"the record has no turn {e.args[0]!r} to edit") from None
    if content_of(after) == content_of(record):
        raise BadAnswer("the edit changes nothing; accept the record instead")
    return content_of(after)


def _ratings(settings: dict[str, Any], ratings: Any) -> dict[str, int]:
    criteria, scale = settings["criteria"], settings["scale"]
    if not isinstance(ratings, dict) or set(ratings) != set(criteria):
        raise BadAnswer(f"ratings must rate every criterion: {', '.join(criteria)}")
    for crit, value in ratings.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= scale:
            raise BadAnswer(f"rating of {crit} must be a whole number from 1 to {scale}")
    return {c: ratings[c] for c in criteria}


def _labels(settings: dict[str, Any], labels: Any) -> list[str]:
    if not isinstance(labels, list) or len(labels) != 1 or labels[0] not in settings["labels"]:
        raise BadAnswer(f"labels must be one of {', '.join(settings['labels'])}, as a list: [\"label\"]")
    return labels


def disagree(s, settings: dict[str, Any], item_id: int) -> bool:
    """Whether the item's annotators disagree (an adjudicator's decision settles it, it is not a vote)."""
    given = s.scalars(select(Answer).join(Annotator, Annotator.id == Answer.annotator_id)
                      .where(Answer.item_id == item_id, Annotator.role == "annotator")).all()  # fmt: skip
    return questions.differ(settings, [questions.values(settings, answer_dict(x)) for x in given])


def store(w, a: Assignment, fields: dict[str, Any]) -> tuple[Answer, dict[str, Any] | None]:
    """Write ``fields`` as the answer to assignment ``a`` (new, or changing the one there, the old one
    returned for the history row); the assignment is answered."""
    s = w.session
    ans = s.scalar(select(Answer).where(Answer.assignment_id == a.id))
    before = answer_dict(ans) if ans is not None else None
    if ans is None:
        ans = Answer(assignment_id=a.id, item_id=a.item_id, annotator_id=a.annotator_id, created_at=w.at, **fields)
        s.add(ans)
    else:
        for k, v in fields.items():
            setattr(ans, k, v)
    ans.updated_at = w.at
    a.status = "answered"
    s.flush()
    return ans, before


def submit(project: Project, who: Annotator, assignment_id: int, body: Any) -> dict[str, Any]:
    """Store ``who``'s answer to their assignment; returns the stored answer."""
    settings = project.settings
    with project.write(who.name) as w:
        s = w.session
        a = s.get(Assignment, assignment_id)
        if a is None or a.annotator_id != who.id:
            raise NotYours(f"no assignment {assignment_id} for {who.name}")
        item = s.get(Item, a.item_id, with_for_update=True)  # a row lock on PostgreSQL; SQLite locks the file
        ans, before = store(w, a, check(settings, item, a.shown, body))
        answered = s.scalar(select(func.count(Answer.id)).where(Answer.item_id == item.id))
        assigned = s.scalar(select(func.count(Assignment.id)).where(Assignment.item_id == item.id))
        item.status = "done" if answered >= assigned else "partial"
        item.disagree = disagree(s, settings, item.id)
        after = answer_dict(ans)
        w.log("answer" if before is None else "change answer", "answers", ans.id, before, after)
    return after

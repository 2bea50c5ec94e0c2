"""The adjudicator's conflicts queue: the items whose annotators disagree (a different decision, label
or choice; ratings or ranks two or more apart), each with every annotator's answer side by side, the
ones nobody adjudicated first. The adjudicator's decision is stored as their own answer to the item
(its own assignment, checked like any answer, with history) and wins over the votes in export."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select

from datamill.review.answers import NotYours, answer_dict, check, store
from datamill.review.items import turns
from datamill.review.queue import SNIPPET, AdjudicatorOnly, item_view
from datamill.review.schema import Annotator, Answer, Assignment, Item
from datamill.review.store import Project


def adjudicated():
    """Whether an adjudicator decided the item (correlated to ``Item``)."""
    return exists().where(Answer.item_id == Item.id, Answer.annotator_id == Annotator.id,
                          Annotator.role == "adjudicator")  # fmt: skip


def _only(who: Annotator) -> None:
    if who.role != "adjudicator":
        raise AdjudicatorOnly("only an adjudicator sees the conflicts queue: it shows everyone's answers")


def conflicts(project: Project, who: Annotator, *, resolved: bool | None = None, offset: int = 0,
              limit: int = 50) -> dict[str, Any]:  # fmt: skip
    """The conflicting items, unresolved first, each with a snippet and everyone's answers."""
    _only(who)
    query = select(Item, adjudicated().label("resolved")).where(Item.disagree.is_(True), Item.gold.is_(None))
    if resolved is not None:
        query = query.where(adjudicated() if resolved else ~adjudicated())
    with project.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        rows = s.execute(query.order_by(adjudicated(), Item.seq).offset(offset).limit(limit)).all()
        answers = _answers(s, [item.id for item, _ in rows])
    out = []
    for item, done in rows:
        out.append({"item": item.id, "status": item.status, "resolved": bool(done),
                    "snippet": " ".join(item.text.split())[:SNIPPET], "answers": answers.get(item.id, [])})  # fmt: skip
    return {"total": total, "rows": out}


def conflict(project: Project, who: Annotator, item_id: int) -> dict[str, Any]:
    """One conflicting item in full, its answers side by side. The adjudicator sees a pair in its stored
    order: A is candidate 0, as the answers' choices are told."""
    _only(who)
    with project.read() as s:
        item = s.get(Item, item_id)
        if item is None or item.gold is not None or not item.disagree:
            raise NotYours(f"no conflict on item {item_id}")
        answers = _answers(s, [item.id])
    return {"item": item_view(item, None), "answers": answers.get(item.id, [])}


def _answers(s, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = s.execute(
        select(Answer, Annotator.name, Annotator.role, Item.record)
        .join(Annotator, Annotator.id == Answer.annotator_id)
        .join(Item, Item.id == Answer.item_id)
        .where(Answer.item_id.in_(ids))
        .order_by(Annotator.role.desc(), Annotator.name)
    ).all()
    out: dict[int, list[dict[str, Any]]] = {}
    for ans, name, role, record in rows:
        view = {k: v for k, v in answer_dict(ans).items() if v is not None and k not in ("assignment_id", "record")}
        view |= {"annotator": name, "role": role}
        if ans.decision in ("a", "b"):
            view["side"] = "AB"[ans.choice]  # in the stored order the adjudicator sees
        if ans.record is not None:  # an edit: the turns it changed
            before = {t["key"]: t["content"] for t in turns(record)}
            view["edited"] = [t for t in turns(ans.record) if before.get(t["key"]) != t["content"]]
        out.setdefault(ans.item_id, []).append(view)
    return out


def adjudicate(project: Project, who: Annotator, item_id: int, body: Any) -> dict[str, Any]:
    """Store the adjudicator's decision on a conflicting item (one transaction, with history); it is
    checked like an answer, the questions optional (the conflict is about the task's decision)."""
    _only(who)
    settings = project.settings
    lenient = settings | {"questions": [q | {"required": False} for q in settings.get("questions") or []]}
    with project.write(who.name) as w:
        s = w.session
        item = s.get(Item, item_id, with_for_update=True)
        if item is None or item.gold is not None or not item.disagree:
            raise NotYours(f"no conflict on item {item_id}")
        fields = check(lenient, item, None, body)
        a = s.scalar(select(Assignment).where(Assignment.item_id == item.id, Assignment.annotator_id == who.id))
        if a is None:
            a = Assignment(item_id=item.id, annotator_id=who.id, position=item.seq, shown=None, rank=0.0)
            s.add(a)
            s.flush()
        ans, before = store(w, a, fields)
        item.status = "done"
        after = answer_dict(ans)
        w.log("adjudicate" if before is None else "change adjudication", "answers", ans.id, before, after)
    return after

"""What an annotator is shown: the next item in their queue, one assignment in full (pairwise answers
in the A/B order drawn for them), their progress, and the bulk table. An annotator reads only their
own assignments; an adjudicator may read everyone's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, func, or_, select

from datamill.review.answers import NotYours, answer_dict
from datamill.review.items import turns
from datamill.review.schema import Annotator, Answer, Assignment, Item
from datamill.review.store import Project

WHERE_KEYS = ("source", "line", "index", "method", "parent", "parents")
SNIPPET = 160


def next_pending(project: Project, who: Annotator) -> int | None:
    """The first assignment in ``who``'s queue that has no answer yet."""
    with project.read() as s:
        return s.scalar(
            select(Assignment.id)
            .where(Assignment.annotator_id == who.id, Assignment.status == "pending")
            .order_by(Assignment.position, Assignment.id)
            .limit(1)
        )


def progress(project: Project, who: Annotator) -> dict[str, int]:
    with project.read() as s:
        rows = s.execute(
            select(Assignment.status, func.count()).where(Assignment.annotator_id == who.id).group_by(Assignment.status)
        ).all()
    counts = dict(rows)
    return {"answered": counts.get("answered", 0), "total": sum(counts.values())}


def everyone(project: Project) -> list[dict[str, Any]]:
    """Each person's role and progress (the stats page)."""
    with project.read() as s:
        people = s.scalars(select(Annotator).order_by(Annotator.id)).all()
        rows = s.execute(
            select(Assignment.annotator_id, Assignment.status, func.count()).group_by(
                Assignment.annotator_id, Assignment.status
            )
        ).all()
        times = dict(
            (r[0], (r[1], r[2]))
            for r in s.execute(
                select(Answer.annotator_id, func.min(Answer.created_at), func.max(Answer.updated_at)).group_by(
                    Answer.annotator_id
                )
            )
        )
    counts: dict[int, dict[str, int]] = {}
    for aid, status, n in rows:
        counts.setdefault(aid, {})[status] = n
    out = []
    for p in people:
        c = counts.get(p.id, {})
        first, last = times.get(p.id, (None, None))
        out.append({"name": p.name, "role": p.role, "answered": c.get("answered", 0), "total": sum(c.values()),
                    "first": first, "last": last})  # fmt: skip
    return out


def view(project: Project, who: Annotator, assignment_id: int) -> dict[str, Any]:
    """One assignment as the focus view shows it."""
    with project.read() as s:
        a = s.get(Assignment, assignment_id)
        if a is None or (a.annotator_id != who.id and who.role != "adjudicator"):
            raise NotYours(f"no assignment {assignment_id} for {who.name}")
        item = s.get(Item, a.item_id)
        ans = s.scalar(select(Answer).where(Answer.assignment_id == a.id))
        owner = s.get(Annotator, a.annotator_id)
        mine = _mine(a.annotator_id)
        key = (a.position, a.id)
        before = s.scalar(mine.where(_before(key)).order_by(Assignment.position.desc(), Assignment.id.desc()).limit(1))
        after = s.scalar(mine.where(_after(key)).order_by(Assignment.position, Assignment.id).limit(1))
    return {
        "assignment": {"id": a.id, "position": a.position, "status": a.status, "annotator": owner.name,
                       "mine": a.annotator_id == who.id},  # fmt: skip
        "item": item_view(item, a.shown),
        "answer": _answer_view(ans) if ans is not None else None,
        "prev": before,
        "next": after,
    }


def _mine(annotator_id: int) -> Select:
    return select(Assignment.id).where(Assignment.annotator_id == annotator_id)


def _before(key: tuple[int, int]):
    return or_(Assignment.position < key[0], and_(Assignment.position == key[0], Assignment.id < key[1]))


def _after(key: tuple[int, int]):
    return or_(Assignment.position > key[0], and_(Assignment.position == key[0], Assignment.id > key[1]))


def item_view(item: Item, shown: list[int] | None) -> dict[str, Any]:
    record = item.record
    meta = record.get("meta") or {}
    out: dict[str, Any] = {
        "id": item.id,
        "record_id": item.record_id,
        "status": item.status,
        "where": {k: meta[k] for k in WHERE_KEYS if k in meta},
        "suggestions": [_shown_hint(h, shown) for h in item.suggestions],
    }
    if "pair" in item.payload:
        order = shown or [0, 1]
        cands = item.payload["candidates"]
        out["prompt"] = item.payload["prompt"]
        out["candidates"] = [{"side": side, **cands[i]} for side, i in zip("AB", order, strict=True)]
    else:
        out["turns"] = turns(record)
    if record.get("tools") is not None:
        out["tools"] = record["tools"]
    return out


def _shown_hint(hint: dict[str, Any], shown: list[int] | None) -> dict[str, Any]:
    """A preference for pair candidate 0/1, told as the side (A/B) this annotator sees it on."""
    if hint.get("kind") != "prefers":
        return hint
    prefers = hint.get("prefers")
    side = None if prefers is None else "AB"[(shown or [0, 1]).index(prefers)]
    return {k: v for k, v in hint.items() if k != "prefers"} | {"side": side}


def _answer_view(ans: Answer) -> dict[str, Any]:
    out = answer_dict(ans)
    out.pop("choice")  # the side chosen is the decision (a/b); the candidate index would reveal the order
    return out


def table(
    project: Project,
    who: Annotator,
    *,
    status: str | None = None,
    annotator: str | None = None,
    q: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> dict[str, Any]:
    """Assignments with their item's snippet and answer: ``who``'s own, or (adjudicator) anyone's."""
    query = (
        select(Assignment, Item, Annotator.name, Answer.decision, Answer.reason)
        .join(Item, Item.id == Assignment.item_id)
        .join(Annotator, Annotator.id == Assignment.annotator_id)
        .outerjoin(Answer, Answer.assignment_id == Assignment.id)
    )
    if who.role != "adjudicator":
        query = query.where(Assignment.annotator_id == who.id)
    elif annotator:
        query = query.where(Annotator.name == annotator)
    if status in ("pending", "answered"):
        query = query.where(Assignment.status == status)
    elif status:
        query = query.where(Answer.decision == status)
    if q:
        like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Item.text.ilike(f"%{like}%", escape="\\"))
    with project.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        rows = s.execute(query.order_by(Assignment.position, Assignment.id).offset(offset).limit(limit)).all()
    return {
        "total": total,
        "rows": [
            {"assignment": a.id, "item": item.id, "position": a.position, "annotator": name, "status": a.status,
             "decision": decision, "reason": reason, "item_status": item.status,
             "snippet": " ".join(item.text.split())[:SNIPPET]}  # fmt: skip
            for a, item, name, decision, reason in rows
        ],
    }

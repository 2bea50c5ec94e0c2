"""What an annotator is shown: the next item in their queue, one assignment in full (pairwise answers
in the A/B order drawn for them), their progress, and the bulk table. An annotator reads only their
own assignments; an adjudicator may read everyone's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, func, or_, select

from datamill.review.answers import NotYours, answer_dict
from datamill.review.items import turns
from datamill.review.questions import applies
from datamill.review.schema import Annotator, Answer, Assignment, Item
from datamill.review.store import Project, ReviewError

WHERE_KEYS = ("source", "line", "index", "method", "parent", "parents")
SNIPPET = 160


class AdjudicatorOnly(ReviewError):
    """What only an adjudicator may see: where annotators disagree tells others' answers (HTTP 403)."""


def next_pending(project: Project, who: Annotator) -> int | None:
    """The assignment in ``who``'s queue to answer next: the pending one the judges or the learner are
    least sure of (lowest rank), then the first in the queue."""
    with project.read() as s:
        return s.scalar(
            select(Assignment.id)
            .where(Assignment.annotator_id == who.id, Assignment.status == "pending")
            .order_by(Assignment.rank, Assignment.position, Assignment.id)
            .limit(1)
        )


def progress(project: Project, who: Annotator) -> dict[str, int]:
    with project.read() as s:
        rows = s.execute(
            select(Assignment.status, func.count()).where(Assignment.annotator_id == who.id).group_by(Assignment.status)
        ).all()
    counts = dict(rows)
    counts.pop("auto", None)  # the learner decided those: no longer anyone's to do
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
        c.pop("auto", None)
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
        number = s.scalar(select(func.count()).select_from(mine.where(_before(key)).subquery())) + 1
        has_gold = _has_gold(project, s)
    shown = item_view(item, a.shown, where=not has_gold)
    asked = [q["name"] for q in project.settings.get("questions") or [] if applies(q, item.payload)]
    if asked:
        shown["questions"] = asked
        shown |= {k: item.payload[k] for k in ("rank", "answer") if k in item.payload}
    return {
        "assignment": {"id": a.id, "number": number, "status": a.status, "annotator": owner.name,
                       "mine": a.annotator_id == who.id},  # fmt: skip
        "item": shown,
        "answer": _answer_view(ans) if ans is not None else None,
        "prev": before,
        "next": after,
    }


def _has_gold(project: Project, s) -> bool:
    """Whether the project mixes in gold items (asked once: items never change after ``start``)."""
    if "has_gold" not in project.cache:
        project.cache["has_gold"] = s.scalar(select(Item.id).where(Item.gold.is_not(None)).limit(1)) is not None
    return project.cache["has_gold"]


def _mine(annotator_id: int) -> Select:
    return select(Assignment.id).where(Assignment.annotator_id == annotator_id)


def _before(key: tuple[int, int]):
    return or_(Assignment.position < key[0], and_(Assignment.position == key[0], Assignment.id < key[1]))


def _after(key: tuple[int, int]):
    return or_(Assignment.position > key[0], and_(Assignment.position == key[0], Assignment.id > key[1]))


def item_view(item: Item, shown: list[int] | None, where: bool = True) -> dict[str, Any]:
    """What the focus view shows of an item. Nothing in it tells a gold item from the data: no status
    (gold is answered by everyone), and in a project with gold no ``where`` (the gold file's name)."""
    record = item.record
    meta = record.get("meta") or {}
    out: dict[str, Any] = {
        "id": item.id,
        "record_id": item.record_id,
        "where": {k: meta[k] for k in WHERE_KEYS if k in meta} if where else {},
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
    """A preference for (or a score of) pair candidate 0/1, told as the side (A/B) this annotator sees
    it on."""
    key = {"prefers": "prefers", "candidate_score": "candidate"}.get(hint.get("kind"))
    if key is None:
        return hint
    which = hint.get(key)
    side = None if which is None else "AB"[(shown or [0, 1]).index(which)]
    return {k: v for k, v in hint.items() if k != key} | {"side": side}


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
    score_min: float | None = None,
    score_max: float | None = None,
    source: str | None = None,
    tag: str | None = None,
    disagree: bool = False,
    offset: int = 0,
    limit: int = 50,
) -> dict[str, Any]:
    """Assignments with their item's snippet and answer: ``who``'s own, or (adjudicator) anyone's;
    filtered by status or decision, annotator, text, score range, source, tag and — for an adjudicator,
    who may see others' answers — disagreement. Each row has its number in its annotator's queue."""
    numbered = select(
        Assignment.id.label("aid"),
        func.row_number().over(partition_by=Assignment.annotator_id, order_by=(Assignment.position, Assignment.id))
        .label("number"),
    )  # fmt: skip
    if who.role != "adjudicator":
        numbered = numbered.where(Assignment.annotator_id == who.id)
    numbers = numbered.subquery()
    query = (
        select(Assignment, Item, Annotator.name, Answer.decision, Answer.reason, numbers.c.number)
        .join(numbers, numbers.c.aid == Assignment.id)
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
        query = query.where(Item.text.ilike(f"%{_like(q)}%", escape="\\"))
    if score_min is not None:
        query = query.where(Item.score >= score_min)
    if score_max is not None:
        query = query.where(Item.score <= score_max)
    if source:
        query = query.where(Item.source == source)
    if tag:
        query = query.where(Item.tags.like(f"%|{_like(tag)}|%", escape="\\"))
    if disagree:
        if who.role != "adjudicator":
            raise AdjudicatorOnly("only an adjudicator sees where annotators disagree")
        query = query.where(Item.disagree.is_(True))
    with project.read() as s:
        total = s.scalar(select(func.count()).select_from(query.subquery()))
        rows = s.execute(query.order_by(Assignment.position, Assignment.id).offset(offset).limit(limit)).all()
    out = []
    for a, item, name, decision, reason, number in rows:
        row = {"assignment": a.id, "item": item.id, "number": number, "annotator": name, "status": a.status,
               "decision": decision, "reason": reason, "score": item.score,
               "snippet": " ".join(item.text.split())[:SNIPPET]}  # fmt: skip
        if who.role == "adjudicator":
            row |= {"item_status": item.status, "disagree": item.disagree}
        out.append(row)
    return {"total": total, "rows": out}


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def facets(project: Project) -> dict[str, list[str]]:
    """The sources and tags the table's filters offer (the data's: gold items have neither)."""
    with project.read() as s:
        sources = s.scalars(select(Item.source).where(Item.source.is_not(None)).distinct().order_by(Item.source)).all()
        tags = {t for row in s.scalars(select(Item.tags).distinct()) for t in row.split("|") if t}
    return {"sources": list(sources), "tags": sorted(tags)}

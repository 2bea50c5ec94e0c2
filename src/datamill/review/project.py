"""Making a project (``review start``) and adding annotators. Items are handed out round-robin so each
is assigned to ``overlap`` different annotators and everyone gets a similar share; a pairwise item's
A/B order is drawn per annotator (seeded) and stored, so position bias stays measurable. Gold items
(records with a known answer) are mixed into each annotator's queue at ``gold_rate``, at seeded random
places, looking like any other item."""

from __future__ import annotations

import random
import secrets
import types
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, insert, select

from datamill.dataset import Quarantined, read
from datamill.record import Record
from datamill.review import ROLES
from datamill.review.active import rerank
from datamill.review.answers import BadAnswer, check
from datamill.review.items import TASKS, drafts
from datamill.review.schema import SCHEMA_VERSION, Annotator, Assignment, Item, Setting
from datamill.review.sources import entries
from datamill.review.store import Project, ReviewError, Writer, now
from datamill.review.tokens import hash_token, new_token

BATCH = 1000


@dataclass
class StartSummary:
    """``read = items' records + skipped + quarantined``: every input record accounted for."""

    read: int = 0
    items: int = 0
    records: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    gold: int = 0  # gold items (not counted in ``items``: they are never exported)
    tokens: dict[str, str] = field(default_factory=dict)  # name → token, shown once, never stored


def start(
    data: Path,
    target: str | Path,
    task: str,
    *,
    guidelines: str = "",
    annotators: list[str] | None = None,
    overlap: int = 1,
    labels: list[str] | None = None,
    criteria: list[str] | None = None,
    scale: int = 5,
    dropped: bool = False,
    fmt: str | None = None,
    seed: int | None = None,
    name: str | None = None,
    questions: list[dict[str, Any]] | None = None,
    gold: Path | None = None,
    gold_rate: float | None = None,
) -> StartSummary:
    """Create the project ``target`` from ``data`` and print nothing: the caller shows the summary.
    ``questions``: as :func:`datamill.review.questions.load` returns them; ``gold``: records whose
    ``meta.gold`` is the known answer, mixed into every queue at ``gold_rate`` (default 0.05)."""
    names = annotators or []
    _check(task, names, overlap, labels, criteria, scale)
    criteria = criteria or (["overall"] if task == "rating" else [])
    clash = [q["name"] for q in questions or [] if q["name"] in {"decision", "label", *criteria}]
    if clash:
        raise ReviewError(f"question '{clash[0]}' has the name of the task's own question; rename it")
    if gold_rate is not None and gold is None:
        raise ReviewError("--gold-rate needs --gold gold.jsonl (the items with known answers)")
    rate = 0.05 if gold is not None and gold_rate is None else gold_rate or 0.0
    if gold is not None and not 0 < rate < 1:
        raise ReviewError(f"--gold-rate must be above 0 and below 1 (a share of each queue), not {rate:g}")
    if "://" not in str(target) and Path(target).exists():
        raise ReviewError(f"{target} already exists; name a new project file")
    project = Project(target, create=True)
    summary = StartSummary()
    try:
        settings = {
            "schema": SCHEMA_VERSION,
            "name": name or Path(str(target)).stem,
            "task": task,
            "guidelines": guidelines,
            "labels": labels or [],
            "criteria": criteria,
            "scale": scale,
            "overlap": overlap,
            "seed": seed if seed is not None else secrets.randbelow(2**31),
            "secret": secrets.token_hex(32),
            "source": str(data),
            "dropped": dropped,
            "questions": questions or [],
            "gold_rate": rate,
            "created_at": now(),
        }
        golden = _gold(gold, settings) if gold is not None else []
        with project.write("cli") as w:
            w.session.add_all(Setting(key=k, value=v) for k, v in settings.items())
            batch: list[dict[str, Any]] = []
            for entry in entries(data, dropped, fmt):
                summary.read += 1
                if isinstance(entry, Quarantined):
                    summary.quarantined += 1
                    continue
                rec, drop = entry
                rows = drafts(rec, task, drop, settings["questions"])
                if isinstance(rows, str):
                    summary.skipped[rows] += 1
                    continue
                summary.records += 1
                for row in rows:
                    batch.append({"seq": summary.items, "record_id": rec.id, "status": "open", **row})
                    summary.items += 1
                if len(batch) >= BATCH:
                    w.session.execute(insert(Item), batch)
                    batch = []
            for row in golden:
                batch.append({"seq": summary.items + summary.gold, "status": "open", **row})
                summary.gold += 1
            if batch:
                w.session.execute(insert(Item), batch)
            w.log("start", "settings", None, after={k: v for k, v in settings.items() if k != "secret"} | {
                "items": summary.items, "gold": summary.gold, "read": summary.read})  # fmt: skip
        if names:
            summary.tokens = add_annotators(project, names, "annotator", actor="cli")
    except BaseException:
        project.close()
        if "://" not in str(target):
            for suffix in ("", "-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
        raise
    project.close()
    return summary


def _gold(path: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Item rows for the gold file: each record's ``meta.gold`` (an answer as the app would send it, for
    a pairwise item in the file's own order: ``a`` is the first candidate or ``chosen``) checked like an
    answer and stored as the item's known answer. A gold item has no source or tags (the table's
    filters would single the gold file out). A known answer may leave questions out (they are then not
    scored). Any problem is an error: gold must be exact."""
    rows: list[dict[str, Any]] = []
    lenient = settings | {"questions": [q | {"required": False} for q in settings["questions"]]}
    for n, entry in enumerate(read(path), 1):
        if isinstance(entry, Quarantined):
            raise ReviewError(f"--gold {entry.where}: {entry.error}")
        rec: Record = entry
        answer = rec.meta.pop("gold", None)
        where = f"--gold {path}: record {n}"
        if not isinstance(answer, dict):
            raise ReviewError(f"{where} has no meta.gold with its known answer, e.g. {{\"decision\": \"reject\"}}")
        made = drafts(rec, settings["task"], None, settings["questions"])
        if isinstance(made, str):
            raise ReviewError(f"{where}: {made}")
        if len(made) != 1:
            raise ReviewError(f"{where}: gives {len(made)} pairs; a pairwise gold record has exactly two answers")
        row = made[0]
        try:
            known = check(lenient, types.SimpleNamespace(**row), None, answer)
        except BadAnswer as e:
            raise ReviewError(f"{where}: meta.gold: {e}") from None
        rows.append(row | {"record_id": rec.id, "gold": known, "source": None, "tags": ""})
    if not rows:
        raise ReviewError(f"--gold {path}: no gold records")
    return rows


def _check(task: str, names: list[str], overlap: int, labels, criteria, scale: int) -> None:
    if task not in TASKS:
        raise ReviewError(f"--task must be one of {', '.join(TASKS)}, not '{task}'")
    if len(set(names)) != len(names):
        raise ReviewError("--annotators names a person twice")
    for person in names:
        _check_name(person)
    if overlap < 1 or (names and overlap > len(names)):
        raise ReviewError(f"--overlap {overlap} needs between 1 and {max(len(names), 1)} annotators")
    if task == "label" and len(labels or []) < 2:
        raise ReviewError("--task label needs --labels with at least two labels, e.g. --labels good,bad,unsure")
    if labels and len(set(labels)) != len(labels):
        raise ReviewError("--labels names a label twice")
    if not 2 <= scale <= 10:
        raise ReviewError("--scale must be between 2 and 10")
    if criteria and len(set(criteria)) != len(criteria):
        raise ReviewError("--criteria names a criterion twice")


def _check_name(person: str) -> None:
    if not person or len(person) > 64 or not all(c.isalnum() or c in "-_." for c in person):
        raise ReviewError(f"annotator name '{person}': use 1-64 letters, digits, '-', '_' or '.'")


def add_annotator(project: Project, person: str, role: str = "annotator", actor: str = "cli") -> str:
    """Add ``person`` and return their token (the only time it exists in plaintext)."""
    return add_annotators(project, [person], role, actor)[person]


def add_annotators(project: Project, people: list[str], role: str = "annotator", actor: str = "cli") -> dict[str, str]:
    """Add people (one transaction) and return name → token. New annotators are assigned the items that
    still have fewer than ``overlap`` annotators, the least loaded first: a team added together at
    start shares the items round-robin; someone added later picks up what is unassigned."""
    if role not in ROLES:
        raise ReviewError(f"--role must be one of {', '.join(ROLES)}")
    for person in people:
        _check_name(person)
    settings = project.settings
    tokens = {person: new_token() for person in people}
    with project.write(actor) as w:
        s = w.session
        taken = s.scalars(select(Annotator.name).where(Annotator.name.in_(people))).all()
        if taken:
            raise ReviewError(f"annotator '{taken[0]}' already exists")
        added = [Annotator(name=p, token_hash=hash_token(t), role=role, created_at=w.at) for p, t in tokens.items()]
        s.add_all(added)
        s.flush()
        for who in added:
            w.log("add annotator", "annotators", who.id, after={"name": who.name, "role": role})
        if role == "annotator":
            _assign(w, added, settings)
    return tokens


def _assign(w: Writer, people: list[Annotator], settings: dict[str, Any]) -> None:
    s = w.session
    people_only = Assignment.annotator_id.in_(select(Annotator.id).where(Annotator.role == "annotator"))
    have = (  # an adjudicator's decision on a conflict does not count towards the overlap
        select(Item.id, Item.seq, Item.payload, func.count(Assignment.id).label("n"))
        .outerjoin(Assignment, and_(Assignment.item_id == Item.id, people_only))
        .where(Item.gold.is_(None))
        .group_by(Item.id)
        .order_by(Item.seq)
    )
    load = dict.fromkeys(range(len(people)), 0)
    places: dict[int, list[int]] = {i: [] for i in load}  # each person's queue positions
    batch = []
    for r in s.execute(have).all():
        need = min(settings["overlap"] - r.n, len(people))
        if need <= 0:
            continue
        ranked = sorted(load, key=lambda i: (load[i], (i - r.seq) % len(people)))  # fewest first, then rotate
        for i in ranked[:need]:
            load[i] += 1
            places[i].append(r.seq)
            batch.append(_assignment(settings, r.id, r.payload, people[i], r.seq))
        if len(batch) >= BATCH:
            s.execute(insert(Assignment), [b | {"status": "pending"} for b in batch])
            batch = []
    gold = s.execute(select(Item.id, Item.payload).where(Item.gold.is_not(None)).order_by(Item.seq)).all()
    rate = settings.get("gold_rate") or 0
    mixed = dict.fromkeys(load, 0)
    for i, who in enumerate(people):
        if not gold or not places[i]:
            continue
        rng = random.Random(f"{settings['seed']}:gold:{who.name}")
        want = min(len(gold), max(1, round(len(places[i]) * rate / (1 - rate))))  # gold / (gold + data) = rate
        for (item_id, payload), position in zip(rng.sample(gold, want), rng.choices(places[i], k=want), strict=True):
            batch.append(_assignment(settings, item_id, payload, who, position))
        mixed[i] = want
    if batch:
        s.execute(insert(Assignment), [b | {"status": "pending"} for b in batch])
    rerank(s, settings)  # uncertainty first, gold spread through the queue
    for i, who in enumerate(people):
        w.log("assign", "assignments", who.id, after={"annotator": who.name, "items": load[i], "gold": mixed[i]})


def _assignment(settings: dict[str, Any], item_id: int, payload: dict[str, Any], who: Annotator, position: int):
    """One assignment row; a pairwise item's A/B order drawn for this person (seeded)."""
    shown = None
    if "pair" in payload:
        rng = random.Random(f"{settings['seed']}:{item_id}:{who.name}")
        shown = [1, 0] if rng.random() < 0.5 else [0, 1]
    return {"item_id": item_id, "annotator_id": who.id, "position": position, "shown": shown}

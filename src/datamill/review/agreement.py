"""How far annotators agree, computed by the maintained libraries, never by hand: Cohen's kappa for each
pair of annotators (scikit-learn; quadratic weights for ratings), Fleiss' kappa over the items rated by
the usual number of people (statsmodels) and Krippendorff's alpha over everything, missing answers
allowed (``krippendorff``; ordinal for ratings and ranks, nominal otherwise), over the data's answers
(gold items are everyone's and would swamp it). Also each person's progress, for pairwise tasks how
often they chose the answer shown on the left (position bias), each person's accuracy on gold items,
for a review of a run's drops the false-drop rate of each filter reason, each annotator's agreement
with the majority, the conflicts left to adjudicate, and the learner's held-out accuracy."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

from sqlalchemy import select

from datamill.review import learner, queue
from datamill.review.answers import answer_dict
from datamill.review.conflicts import adjudicated
from datamill.review.questions import ordered, scales, task_value, values
from datamill.review.schema import Annotator, Answer, Item
from datamill.review.store import Project, ReviewError

Values = dict[str, dict[int, Any]]  # annotator → item → value


def _libs():
    try:
        import krippendorff
        import numpy as np
        from sklearn.metrics import cohen_kappa_score
        from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
    except ImportError as e:  # pragma: no cover - the review extra is part of dev
        raise ReviewError(f"agreement needs the review extra: pip install 'datamill[review]' ({e})") from None
    return np, cohen_kappa_score, aggregate_raters, fleiss_kappa, krippendorff


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 6)


def measures(values: Values, ordinal: bool = False, domain: list[Any] | None = None) -> list[dict[str, Any]]:
    """Cohen (each pair), Fleiss and Krippendorff for ``values``. ``ordinal``: the values are ordered
    numbers (``domain`` lists them all), so kappa is weighted and alpha ordinal."""
    np, cohen, aggregate_raters, fleiss, krippendorff = _libs()
    people = sorted(values)
    items = sorted({i for answers in values.values() for i in answers})
    cats = domain or sorted({v for answers in values.values() for v in answers.values()}, key=str)
    code = {v: n for n, v in enumerate(cats)}
    out: list[dict[str, Any]] = []
    for a, b in itertools.combinations(people, 2):
        shared = sorted(values[a].keys() & values[b].keys())
        if len(shared) < 2:
            continue
        y1, y2 = [code[values[a][i]] for i in shared], [code[values[b][i]] for i in shared]
        with np.errstate(divide="ignore", invalid="ignore"):
            k = cohen(y1, y2, labels=list(range(len(cats))), weights="quadratic" if ordinal else None)
        out.append({"measure": f"Cohen's kappa {a} × {b}", "items": len(shared), "value": _num(k)})
    per_item = {i: [code[values[p][i]] for p in people if i in values[p]] for i in items}
    counts = Counter(len(v) for v in per_item.values() if len(v) >= 2)
    if counts:
        raters = max(counts, key=lambda n: (counts[n], n))
        rows = [v for v in per_item.values() if len(v) == raters]
        table, _ = aggregate_raters(np.array(rows), n_cat=len(cats))
        with np.errstate(divide="ignore", invalid="ignore"):
            kappa = _num(fleiss(table))
        out.append({"measure": f"Fleiss' kappa ({raters} raters)", "items": len(rows), "value": kappa})
    rated = [i for i in items if len(per_item[i]) >= 2]
    if rated:
        grid = [[code[values[p][i]] if i in values[p] else np.nan for i in rated] for p in people]
        data = np.array(grid, dtype=float)
        try:
            alpha = krippendorff.alpha(
                reliability_data=data,
                level_of_measurement="ordinal" if ordinal else "nominal",
                value_domain=list(range(len(cats))),
            )
        except ValueError:  # one value in the whole domain: agreement is undefined
            alpha = float("nan")
        level = "ordinal" if ordinal else "nominal"
        out.append({"measure": f"Krippendorff's alpha ({level})", "items": len(rated), "value": _num(alpha)})
    return out


def per_question(settings: dict[str, Any], answers: list[tuple[str, dict[str, Any]]]) -> dict[str, Values]:
    """The answers as values per question (:func:`datamill.review.questions.values`)."""
    out: dict[str, Values] = {}
    for name, fields in answers:
        for key, value in values(settings, fields).items():
            out.setdefault(key, {}).setdefault(name, {})[fields["item_id"]] = value
    return out


def gold_accuracy(settings: dict[str, Any], answers: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[dict]:
    """Each annotator's answers on gold items against the known answers: every value the gold answer
    gives (the decision, a label, each rating …) is one check; an edit counts as keeping the record."""
    people: dict[str, dict[str, Any]] = {}
    for name, fields, known in answers:
        want, got = values(settings, _kept(known)), values(settings, _kept(fields))
        row = people.setdefault(name, {"name": name, "items": 0, "checks": 0, "correct": 0})
        row["items"] += 1
        for key, value in want.items():
            row["checks"] += 1
            row["correct"] += got.get(key) == value
    for row in people.values():
        row["accuracy"] = round(row["correct"] / row["checks"], 4) if row["checks"] else None
    return sorted(people.values(), key=lambda r: r["name"])


def _kept(fields: dict[str, Any]) -> dict[str, Any]:
    return fields | {"decision": "accept"} if fields.get("decision") == "edit" else fields


KEEP = {"accept", "edit", "desirable"}
REMOVE = {"reject", "undesirable"}


def false_drops(project: Project) -> list[dict[str, Any]]:
    """For a project of a run's drops (``--dropped``): per filter and reason, how many dropped items
    people decided on and the share they kept (accepted, edited, called desirable) — the filter's
    false-drop rate. Ties and items still waiting for answers are not decisions."""
    from datamill.review.decide import decide
    from datamill.review.export import decided, settled

    task, rows = project.task, {}
    for item, votes, assigned in decided(project):
        drop = next((h for h in item["suggestions"] if h.get("kind") == "drop"), None)
        if drop is None or not votes or not settled(item, votes, assigned):  # the learner's are not people's
            continue
        outcome = decide(task, item, votes).decision
        key = (drop.get("op") or "filter", drop.get("reason") or "")
        row = rows.setdefault(key, {"op": key[0], "reason": key[1], "decided": 0, "kept": 0})
        if outcome in KEEP | REMOVE:
            row["decided"] += 1
            row["kept"] += outcome in KEEP
    for row in rows.values():
        row["false_drop_rate"] = round(row["kept"] / row["decided"], 4) if row["decided"] else None
    return sorted(rows.values(), key=lambda r: (r["op"], -r["decided"], r["reason"]))


def majority_agreement(settings: dict[str, Any], answers: list[tuple[str, str, dict[str, Any]]]) -> dict[str, dict]:
    """Per annotator, how often their answer to the task's question matches the reference: the
    adjudicator's decision where one was made, else the strict majority of the *other* annotators (with
    two people, agreement with the other). Ties and items nobody else answered are not counted; a
    rating or rank within one point agrees, as in the disagreement flag. ``answers``: (name, role,
    answer dict)."""
    ratings = scales(settings)
    items: dict[tuple[int, str], dict[str, list[tuple[str, Any]]]] = {}
    for name, role, fields in answers:
        for key, value in task_value(settings["task"], fields).items():
            items.setdefault((fields["item_id"], key), {}).setdefault(role, []).append((name, value))
    out: dict[str, dict[str, Any]] = {}
    for (_, key), by_role in items.items():
        people = by_role.get("annotator", [])
        judged = by_role.get("adjudicator", [])
        near = ordered(settings, key, ratings)
        for name, value in people:
            if judged:
                ref = judged[-1][1]
            else:
                top = Counter(str(v) for n, v in people if n != name).most_common(2)
                if not top or (len(top) == 2 and top[0][1] == top[1][1]):
                    continue
                ref = next(v for n, v in people if n != name and str(v) == top[0][0])
            row = out.setdefault(name, {"checks": 0, "agree": 0})
            row["checks"] += 1
            row["agree"] += abs(value - ref) < 2 if near else value == ref
    for row in out.values():
        row["share"] = round(row["agree"] / row["checks"], 4)
    return out


def summary(project: Project) -> dict[str, Any]:
    """The stats page and ``review stats``: people, position bias, agreement per question, accuracy on
    gold items, and for a review of a run's drops the false-drop rate per filter reason."""
    settings = project.settings
    task = settings["task"]
    with project.read() as s:
        rows = s.execute(
            select(Annotator.name, Answer, Item.gold, Annotator.role)
            .join(Annotator, Annotator.id == Answer.annotator_id)
            .join(Item, Item.id == Answer.item_id)
        ).all()
        auto = Counter(a["decision"] for a in s.scalars(select(Item.auto).where(Item.auto.is_not(None))))
        conflicts = Counter(s.scalars(select(adjudicated()).where(Item.disagree.is_(True), Item.gold.is_(None))))
    data = [(name, role, answer_dict(a)) for name, a, gold, role in rows if gold is None]
    answers = [(name, fields) for name, role, fields in data if role == "annotator"]  # adjudicators do not vote
    people = queue.everyone(project)
    majority = majority_agreement(settings, data)
    for p in people:
        m = majority.get(p["name"])
        p["majority_agreement"], p["majority_checks"] = (m["share"], m["checks"]) if m else (None, 0)
    if task == "pairwise":
        sides: dict[str, Counter] = {}
        for name, a in answers:
            if a["decision"] in ("a", "b"):
                sides.setdefault(name, Counter())[a["decision"]] += 1
        for p in people:
            c = sides.get(p["name"])
            p["first_position_share"] = round(c["a"] / (c["a"] + c["b"]), 4) if c else None
    ratings = scales(settings)
    agreement = []
    for key, v in per_question(settings, answers).items():
        ordinal = ordered(settings, key, ratings)
        seen = sorted({x for by_item in v.values() for x in by_item.values()}) if ordinal else None
        agreement.append({"question": key, "measures": measures(v, ordinal=ordinal, domain=ratings.get(key, seen))})
    note = "" if any(q["measures"] for q in agreement) else "agreement needs items answered by two or more people"
    out = {"task": task, "annotators": people, "answers": len(answers), "agreement": agreement, "note": note}
    out["gold"] = gold_accuracy(settings, [(name, answer_dict(a), gold) for name, a, gold, _ in rows
                                           if gold is not None])  # fmt: skip
    out["conflicts"] = {"open": conflicts[False], "resolved": conflicts[True]}
    out["learner"] = {"enabled": task in learner.LEARNABLE, "min_decisions": learner.MIN_DECISIONS,
                      "decisions": learner.decisions(project), "fit": learner.report(project),
                      "auto": sum(auto.values()), "auto_decisions": dict(auto)}  # fmt: skip
    if settings.get("dropped"):
        out["false_drops"] = false_drops(project) if task in ("sft", "kto") else []
    return out

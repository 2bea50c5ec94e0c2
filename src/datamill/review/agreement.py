"""How far annotators agree, computed by the maintained libraries, never by hand: Cohen's kappa for each
pair of annotators (scikit-learn; quadratic weights for ratings), Fleiss' kappa over the items rated by
the usual number of people (statsmodels) and Krippendorff's alpha over everything, missing answers
allowed (``krippendorff``; ordinal for ratings, nominal otherwise). Also each person's progress and,
for pairwise tasks, how often they chose the answer shown on the left (position bias)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

from sqlalchemy import select

from datamill.review import queue
from datamill.review.schema import Annotator, Answer
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


def questions(task: str, answers: list[tuple[str, Answer]], criteria: list[str]) -> dict[str, Values]:
    """The answers as values per question: the decision, the label, or each rating criterion."""
    out: dict[str, Values] = {}
    for name, a in answers:
        if task == "rating":
            for crit in criteria:
                if a.ratings and crit in a.ratings:
                    out.setdefault(crit, {}).setdefault(name, {})[a.item_id] = a.ratings[crit]
            continue
        if task == "label":
            value = a.labels[0] if a.labels else None
        elif task == "pairwise":
            value = f"candidate {a.choice}" if a.decision in ("a", "b") else a.decision
        else:
            value = a.decision
        out.setdefault("label" if task == "label" else "decision", {}).setdefault(name, {})[a.item_id] = value
    return out


def summary(project: Project) -> dict[str, Any]:
    """The stats page and ``review stats``: people, position bias, agreement per question."""
    settings = project.settings
    task = settings["task"]
    with project.read() as s:
        answers = s.execute(select(Annotator.name, Answer).join(Annotator, Annotator.id == Answer.annotator_id)).all()
    people = queue.everyone(project)
    if task == "pairwise":
        sides: dict[str, Counter] = {}
        for name, a in answers:
            if a.decision in ("a", "b"):
                sides.setdefault(name, Counter())[a.decision] += 1
        for p in people:
            c = sides.get(p["name"])
            p["first_position_share"] = round(c["a"] / (c["a"] + c["b"]), 4) if c else None
    scale = list(range(1, settings["scale"] + 1))
    agreement = [
        {"question": q, "measures": measures(v, ordinal=task == "rating", domain=scale if task == "rating" else None)}
        for q, v in questions(task, answers, settings["criteria"]).items()
    ]
    note = "" if any(q["measures"] for q in agreement) else "agreement needs items answered by two or more people"
    return {"task": task, "annotators": people, "answers": len(answers), "agreement": agreement, "note": note}

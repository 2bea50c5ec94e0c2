"""The active learner: scikit-learn logistic regression on each item's MiniLM embedding plus the judges'
features, fit on the people's decisions so far and predicting every item's. Its uncertainty (1 minus
the margin between the two likeliest decisions) becomes the queue's order, so people see next what
the learner is least sure of; its held-out accuracy (stratified cross-validation on the people's
decisions) is what decides whether auto-deciding can be trusted. The decision is the class-balanced
regression's (defects are rare: an unweighted one would call everything fine); its confidence, which
auto-decide compares with the user's threshold, is calibrated on the held-out folds (sigmoid), so it
reads as a chance of being right.

Each item's vector is computed once and stored as float32 bytes in ``items.embedding``: the embedded
all-MiniLM-L6-v2 (offline) of its answer after the tail of its prompt, and a few text features an
embedding cannot see (length, script, symbols, compressibility, a sentence's end, an echo). A pair is
embedded per answer and stored as (A − B, (A + B) / 2, the features' difference), so the learner sees
both which answer differs and what the two share."""

from __future__ import annotations

import math
import zlib
from collections import Counter
from typing import Any

from sqlalchemy import select, update

from datamill.review.items import turns
from datamill.review.questions import task_value
from datamill.review.schema import Annotator, Answer, Item, Setting
from datamill.review.store import Project, ReviewError, now
from datamill.review.uncertainty import prior, threshold

MIN_DECISIONS = 20  # fewer human decisions than this and the learner is not fit
MAX_FOLDS = 5
EMBED_BATCH = 256
WRITE_BATCH = 2000
CONTEXT = 300  # characters of the prompt kept before the answer (MiniLM reads ~256 word pieces)
LEARNABLE = ("sft", "kto", "pairwise", "label")  # a rating task has no decision to predict
REPORT = "learner"  # the settings row holding the last fit's report
MODEL = "logistic regression on all-MiniLM-L6-v2 + text and judge features"


def class_of(task: str, fields: dict[str, Any]) -> str | None:
    """The decision a learner predicts for one answer: keep or reject (sft: an edit keeps), desirable or
    undesirable, the candidate chosen / tie / both bad, the label."""
    if task == "sft":
        return "reject" if fields.get("decision") == "reject" else "accept"
    if task in ("kto", "pairwise"):
        return task_value(task, fields)["decision"]
    if task == "label":
        return task_value(task, fields).get("label")
    return None


def target(task: str, votes: list[dict[str, Any]]) -> str | None:
    """An item's human decision: an adjudicator's if one decided it, else the strict majority (None on
    a tie or with no answers)."""
    judged = [v for v in votes if v.get("role") == "adjudicator"]
    counts = Counter(class_of(task, v) for v in (judged[-1:] or votes))
    top = counts.most_common(2)
    if not top or top[0][0] is None or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def judge_features(hints: list[dict[str, Any]]) -> list[float]:
    """What the pipeline's judges said, as numbers around [-1, 1]: the quality score against its
    threshold, a pairwise verdict (+1 first answer, -1 second), whether it flipped with the order, its
    margin, the per-answer score gap, perplexity, a filter's drop, and the judges' prior uncertainty."""
    score = next((h for h in hints if h.get("kind") == "score" and isinstance(h.get("score"), int | float)), None)
    pref = next((h for h in hints if h.get("kind") == "prefers"), None)
    cands = {h.get("candidate"): h.get("score") for h in hints if h.get("kind") == "candidate_score"}
    ppl = next((h.get("value") for h in hints if h.get("kind") == "value"), None)
    out = [0.0] * 11
    if score is not None:
        half = max(((score.get("max") or 5) - 1) / 2, 1)
        out[0:2] = [1.0, (score["score"] - threshold(hints)) / half]
    if pref is not None:
        side = pref.get("prefers")
        margin = pref.get("margin")
        out[2:6] = [1.0, 0.0 if side is None else 1.0 - 2 * side, float(pref.get("consistent") is False),
                    math.tanh(margin / 2) if isinstance(margin, int | float) else 0.0]  # fmt: skip
    if isinstance(cands.get(0), int | float) and isinstance(cands.get(1), int | float):
        out[6:8] = [1.0, (cands[0] - cands[1]) / 10]
    if isinstance(ppl, int | float) and ppl > 0:
        out[8] = math.log(ppl) / 10
    out[9] = float(any(h.get("kind") == "drop" for h in hints))
    out[10] = prior(hints)
    return out


def _parts(item: Item) -> tuple[str, list[str]]:
    """An item's prompt and its answers: a record's last turn (its text, for a document), or a pair's two."""
    if "pair" in item.payload:
        return "\n".join(t["content"] for t in item.payload["prompt"]), [c["text"] for c in item.payload["candidates"]]
    shown = [t["content"] for t in turns(item.record)] or [item.text]
    return "\n".join(shown[:-1]), [shown[-1]]


def _cjk(text: str) -> float:
    return sum("\u4e00" <= c <= "\u9fff" for c in text) / max(len(text), 1)


def text_features(prompt: str, answer: str) -> list[float]:
    """What an embedding does not see (it reads meaning, not form): the answer's and prompt's lengths,
    the answer's share of CJK against the prompt's (wrong language), of odd symbols (markup, mojibake),
    how well it compresses (repetition), whether it ends like a sentence (truncation), and whether it
    only repeats the prompt (echo)."""
    plain = ".,;:!?'\"()-，。！？；：、（）"
    odd = sum(not (c.isalnum() or c.isspace() or c in plain) for c in answer) / max(len(answer), 1)
    raw = answer.encode()
    ends = answer.rstrip()[-1:] in ".!?。！？)\"”」`*"
    echo = answer.strip().lower() in prompt.lower() if answer.strip() else True
    return [math.log1p(len(answer)) / 8, math.log1p(len(prompt)) / 8, _cjk(answer) - _cjk(prompt), odd,
            len(zlib.compress(raw)) / max(len(raw), 1), float(ends), float(echo)]  # fmt: skip


def embed_missing(project: Project, embedder: Any = None) -> int:
    """Embed the items that have no vector yet (each batch one transaction); returns how many. The
    vector is the MiniLM embedding followed by :func:`text_features`."""
    import numpy as np

    if embedder is None:
        from datamill.llm.embeddings import LocalEmbedder

        embedder = LocalEmbedder()
    done = 0
    while True:
        with project.read() as s:
            items = s.scalars(select(Item).where(Item.embedding.is_(None)).order_by(Item.id).limit(EMBED_BATCH)).all()
        if not items:
            return done
        parts = [_parts(i) for i in items]
        flat = embedder.embed([f"{prompt[-CONTEXT:]}\n{a}".strip() for prompt, answers in parts for a in answers])
        rows, k = [], 0
        for item, (prompt, answers) in zip(items, parts, strict=True):
            vecs = flat[k : k + len(answers)]
            k += len(answers)
            form = [text_features(prompt, a) for a in answers]
            if len(answers) == 2:  # a pair: how A differs from B, and what they share
                vec = np.concatenate([vecs[0] - vecs[1], (vecs[0] + vecs[1]) / 2, np.subtract(*form)])
            else:
                vec = np.concatenate([vecs[0], form[0]])
            rows.append({"id": item.id, "embedding": np.asarray(vec, dtype=np.float32).tobytes()})
        with project.write("learner") as w:
            w.session.execute(update(Item), rows)
        done += len(rows)


def report(project: Project) -> dict[str, Any] | None:
    """The last fit's report (read fresh: a refit in the background changes it)."""
    with project.read() as s:
        row = s.get(Setting, REPORT)
        return row.value if row is not None else None


def _votes(project: Project) -> dict[int, list[dict[str, Any]]]:
    with project.read() as s:
        rows = s.execute(
            select(Answer.item_id, Answer.decision, Answer.choice, Answer.labels, Annotator.role)
            .join(Annotator, Annotator.id == Answer.annotator_id)
            .join(Item, Item.id == Answer.item_id)
            .where(Item.gold.is_(None))
        ).all()
    out: dict[int, list[dict[str, Any]]] = {}
    for item_id, decision, choice, labels, role in rows:
        out.setdefault(item_id, []).append({"decision": decision, "choice": choice, "labels": labels, "role": role})
    return out


def decisions(project: Project) -> int:
    """How many data items people have decided (the learner's training set)."""
    task = project.task
    return sum(target(task, v) is not None for v in _votes(project).values())


def fit(project: Project, embedder: Any = None) -> dict[str, Any]:
    """Embed what is missing, fit on the people's decisions, predict every item, store each item's
    prediction and uncertainty, reorder the queues, and store and return the report. Raises
    ReviewError when there is nothing to learn from yet (too few decisions, or only one kind)."""
    import numpy as np
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from datamill.review.active import rerank

    task = project.task
    if task not in LEARNABLE:
        raise ReviewError(f"a {task} task has no decision to learn (the learner predicts {', '.join(LEARNABLE)})")
    votes = _votes(project)
    targets = {i: t for i, v in votes.items() if (t := target(task, v)) is not None}
    if len(targets) < MIN_DECISIONS:
        raise ReviewError(f"the learner needs {MIN_DECISIONS} human decisions; there are {len(targets)}")
    classes = Counter(targets.values())
    if len(classes) < 2:
        raise ReviewError(f"every decision so far is {next(iter(classes))}; the learner needs two kinds")
    embedded = embed_missing(project, embedder)
    with project.read() as s:
        rows = s.execute(select(Item.id, Item.embedding, Item.suggestions).order_by(Item.id)).all()
    ids = [r.id for r in rows]
    x = np.array([np.concatenate([np.frombuffer(r.embedding, dtype=np.float32), judge_features(r.suggestions)])
                  for r in rows], dtype=np.float64)  # fmt: skip
    index = {item_id: n for n, item_id in enumerate(ids)}
    train = [index[i] for i in targets]  # the data's decisions (gold items are the annotators' test)
    y = np.array([targets[ids[n]] for n in train])
    model = LogisticRegression(max_iter=2000, class_weight="balanced")
    folds = min(MAX_FOLDS, min(classes.values()))
    accuracy, sure = None, None
    if folds >= 2:  # the held-out accuracy, and confidences calibrated on the held-out folds
        split = StratifiedKFold(folds, shuffle=True, random_state=project.settings["seed"] % 2**32)
        accuracy = round(float(cross_val_score(model, x[train], y, cv=split, scoring="accuracy").mean()), 4)
        sure = CalibratedClassifierCV(model, cv=split, method="sigmoid").fit(x[train], y).predict_proba(x)
    model.fit(x[train], y)
    proba = model.predict_proba(x)
    sure = proba if sure is None else sure  # both in model.classes_ order
    top2 = np.sort(proba, axis=1)[:, -2:]
    previous = report(project) or {}
    fits = previous.get("fits", 0) + 1
    names = [str(c) for c in model.classes_]
    updates = []
    for n, item_id in enumerate(ids):
        best = int(np.argmax(proba[n]))
        updates.append({"id": item_id, "uncertainty": round(float(1 - (top2[n, 1] - top2[n, 0])), 6),
                        "prediction": {"decision": names[best], "confidence": round(float(sure[n, best]), 6),
                                       "fit": fits}})  # fmt: skip
    out = {"fits": fits, "at": now(), "decisions": len(train), "classes": dict(classes), "accuracy": accuracy,
           "folds": folds if accuracy is not None else 0, "predicted": len(ids), "embedded": embedded,
           "features": int(x.shape[1]), "model": MODEL}  # fmt: skip
    for k in range(0, len(updates), WRITE_BATCH):  # short transactions: submissions keep flowing meanwhile
        with project.write("learner") as w:
            w.session.execute(update(Item), updates[k : k + WRITE_BATCH])
    with project.write("learner") as w:
        rerank(w.session, project.settings)
        w.session.merge(Setting(key=REPORT, value=out))
        w.log("refit", "settings", None, before=previous or None, after=out)
    return out

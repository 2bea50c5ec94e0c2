"""``review suggest``: pre-annotate the items that have no judge suggestion yet with the pipeline's own
judges — ``quality_judge`` (a 1-5 rubric score and reason) for a record, ``judge_pairwise`` (both
orders; position-inconsistent verdicts say so) or ``judge_score`` (1-10 per answer) for a pair — so
the app shows them beside the item exactly as it shows what a recipe's judge step wrote. Requests go
through the LLM layer (disk cache, retries, rate limits): the embedded model by default, any
OpenAI-compatible endpoint with ``--llm``.

Items are judged in batches; each batch is one transaction (new suggestions, the score column the
table filters on, a history row per item), so an interrupted run keeps what it finished and the next
one carries on with the rest. The queues are then reordered: the items the judges are least sure of
first."""

from __future__ import annotations

import asyncio
import copy
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from datamill.clean.model_scores import QualityJudge
from datamill.llm import LLMClient, LLMConfig, LLMError, StructuredOutputError, Usage, run_sync
from datamill.ops.base import OpContext
from datamill.prefs.ranking import JudgePairwise, JudgeScore
from datamill.record import Record
from datamill.review.active import rerank
from datamill.review.items import facets, pair_judgments, quality_hints
from datamill.review.schema import Item
from datamill.review.store import Project, ReviewError

JUDGES = {"quality": "quality_judge", "pairwise": "judge_pairwise", "score": "judge_score"}
BATCH = 32
SCORE_MAX = 10  # judge_score's scale


@dataclass
class SuggestSummary:
    judge: str
    items: int = 0  # items in the project
    had: int = 0  # already had a judge suggestion
    judged: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    usage: Usage | None = None


def judge_for(task: str, judge: str | None) -> str:
    """``quality`` for records, ``pairwise`` (or ``score``) for pairs."""
    if judge is None:
        return "pairwise" if task == "pairwise" else "quality"
    if judge not in JUDGES:
        raise ReviewError(f"--judge must be one of {', '.join(JUDGES)}, not '{judge}'")
    if (judge == "quality") == (task == "pairwise"):
        wanted = "pairwise or score" if task == "pairwise" else "quality"
        raise ReviewError(f"--judge {judge} does not fit a {task} task: use {wanted}")
    return judge


def has_judgment(item: Item) -> bool:
    """Whether a judge already spoke on the item (in the pipeline or an earlier ``review suggest``)."""
    judged = {"quality_judge", "judge_pairwise", "judge_score"}
    return any(h.get("source") in judged for h in item.suggestions) or any(
        c.get("score") is not None for c in item.payload.get("candidates", [])
    )


def suggest(project: Project, llm: LLMConfig | None = None, *, judge: str | None = None,
            limit: int | None = None) -> SuggestSummary:  # fmt: skip
    """Judge up to ``limit`` items without a judge suggestion (all of them by default)."""
    kind = judge_for(project.task, judge)
    summary = SuggestSummary(JUDGES[kind])
    llm = llm or LLMConfig()
    with project.read() as s:
        summary.items = s.scalar(select(func.count(Item.id)))
    with tempfile.TemporaryDirectory(prefix="datamill-suggest-") as tmp:
        context = OpContext(seed=project.settings["seed"], step=0, workdir=Path(tmp))
        op = _op(kind, llm, context)

        async def go(client: LLMClient) -> Usage:
            last = -1
            while limit is None or summary.judged + sum(summary.failed.values()) < limit:
                with project.read() as s:
                    page = s.scalars(select(Item).where(Item.seq > last).order_by(Item.seq).limit(BATCH)).all()
                if not page:
                    break
                last = page[-1].seq
                todo = [i for i in page if not has_judgment(i)]
                summary.had += len(page) - len(todo)
                if limit is not None:
                    todo = todo[: limit - summary.judged - sum(summary.failed.values())]
                found = await asyncio.gather(*(_one(kind, op, client, i) for i in todo))
                _store(project, summary, todo, found)
            return client.usage

        summary.usage = run_sync(go, llm, seed=project.settings["seed"])
    if summary.judged:
        with project.write("review suggest") as w:
            rerank(w.session, project.settings)
    return summary


def _op(kind: str, llm: LLMConfig, context: OpContext):
    if kind == "quality":
        return QualityJudge(QualityJudge.Config(llm=llm, min_score=None), context)
    if kind == "pairwise":
        return JudgePairwise(JudgePairwise.Config(llm=llm), context)
    return JudgeScore(JudgeScore.Config(llm=llm, min_candidates=2), context)


async def _one(kind: str, op, client: LLMClient, item: Item) -> list[dict[str, Any]] | str:
    """The new suggestions for ``item``, or why the judge gave none."""
    rec = Record.from_dict(copy.deepcopy(item.record))
    if kind != "quality":  # the pair shown, as the only candidates: the judge sees what people see
        pair = item.payload["candidates"]
        rec.meta["candidates"] = [{"text": c["text"], "model": c.get("model") or ""} for c in pair]
        rec.meta.pop("judgments", None)
    try:
        out = await op.agenerate(rec, client)
    except (LLMError, StructuredOutputError) as e:
        return e.reason
    judged = out[0]
    if kind == "quality":
        return [h | {"by": "review suggest"} for h in quality_hints(judged)]
    if kind == "pairwise":  # judge_pairwise and judge_score note a failed request instead of raising it
        failed = [r for j in judged.meta["judgments"] for r in j.get("reasons") or [] if r.startswith("judge failed")]
        return failed[0].removeprefix("judge failed: ") if failed else [
            h | {"by": "review suggest"} for h in pair_judgments(judged, 0, 1)]  # fmt: skip
    if any(c.get("score") is None for c in judged.meta["candidates"]):
        return "judge failed on an answer"
    return [
        {"source": "judge_score", "kind": "candidate_score", "candidate": k, "score": c["score"], "max": SCORE_MAX,
         "reason": c.get("reason") or None, "judge": c.get("judge"), "by": "review suggest"}
        for k, c in enumerate(judged.meta["candidates"])
    ]  # fmt: skip


def _store(project: Project, summary: SuggestSummary, items: list[Item], found: list) -> None:
    with project.write("review suggest") as w:
        for item, hints in zip(items, found, strict=True):
            if isinstance(hints, str):
                summary.failed[hints] += 1
                continue
            row = w.session.get(Item, item.id)
            before = row.suggestions
            row.suggestions = [*before, *hints]
            found = facets(row.record, row.suggestions)
            row.score = found["score"]
            if row.prediction is None:  # until the learner is fit, the judges' uncertainty orders the queue
                row.uncertainty = found["uncertainty"]
            w.log("suggest", "items", row.id, before={"suggestions": before}, after={"suggestions": row.suggestions})
            summary.judged += 1

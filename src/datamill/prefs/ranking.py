"""Rank the candidates of each record (``meta["candidates"]``, see ``group_answers``/``sample_answers``).

- ``judge_score`` (generator): an LLM scores each candidate 1–10 with a reason.
- ``judge_pairwise`` (generator): an LLM compares candidates two at a time, in both orders; a verdict
  that flips with the order is a tie (counted as ``position_inconsistent``) — or, with ``method:
  likelihood``, the log-odds of "A" vs "B" are averaged over both orders so the position bias cancels.
  Verdicts go to ``meta["judgments"]`` and each candidate's ``wins``.
- ``rule_score`` (mapper): a checkable rule scores each candidate (math answer vs reference,
  constraints, or your own function) — no LLM.

All three count a length-bias report: ``longer_preferred`` / ``shorter_preferred`` (for every decided
comparison, whether the preferred answer was the longer one).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from typing import Literal

from pydantic import Field, model_validator

from datamill.llm import LLMClient, LLMError, StructuredOutputError
from datamill.ops import register
from datamill.ops.base import Generator, GeneratorConfig, Mapper, OpConfig
from datamill.prefs import judge
from datamill.prefs.candidates import candidates, clip, prompt_text
from datamill.prefs.rules import get_rule
from datamill.record import Record
from datamill.results import Drop


def _count_length_bias(op, cands: list[dict], key: str = "score") -> None:
    """For every two candidates with different ``key`` values: was the better one the longer one?"""
    for a, b in itertools.combinations(cands, 2):
        sa, sb = a.get(key), b.get(key)
        if not isinstance(sa, int | float) or not isinstance(sb, int | float) or sa == sb:
            continue
        win, lose = (a, b) if sa > sb else (b, a)
        side = judge.length_side(str(win.get("text", "")), str(lose.get("text", "")))
        op.counters[f"{side}_preferred"] += 1


@register
class JudgeScore(Generator):
    """Score every candidate answer 1–10 with a reason (``score``, ``reason``, ``judge`` on each)."""

    name = "judge_score"

    class Config(GeneratorConfig):
        lang: Literal["auto", "en", "zh"] = "auto"
        template: str = Field("judge", description="prompt template name or .j2 path")
        rubric: str = ""
        reason: bool = Field(True, description="ask for a reason (false: score only — better for tiny models)")
        max_chars: int = Field(2000, ge=100, description="answers are clipped to this for the judge")
        min_candidates: int = Field(1, ge=1, description="records with fewer candidates are dropped")
        models: list[str] | None = Field(None, description="only score candidates of these models")

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        assert llm is not None
        c = self.config
        cands = [x for x in candidates(record) if c.models is None or x.get("model") in c.models]
        if len(cands) < c.min_candidates:
            return [Drop(record, f"fewer than {c.min_candidates} candidates to judge")]
        prompt = clip(prompt_text(record), c.max_chars)

        async def one(cand: dict) -> None:
            try:
                v = await judge.score(
                    llm,
                    prompt,
                    clip(str(cand.get("text", "")), c.max_chars),
                    lang=c.lang,
                    template=c.template,
                    rubric=c.rubric,
                    reason=c.reason,
                )
            except (LLMError, StructuredOutputError) as e:
                self.counters[f"judge_failed: {e.reason}"] += 1
                return
            cand.update(score=v.score, reason=v.reason, judge=c.llm.model, judge_template=c.template)
            self.counters["judged"] += 1

        await asyncio.gather(*(one(x) for x in cands))
        _count_length_bias(self, cands)
        return [record]


@register
class JudgePairwise(Generator):
    """Compare candidates pairwise (all pairs, or only between ``models``), each pair in both orders.
    Writes ``meta["judgments"]`` (``a``, ``b`` candidate indexes, ``winner`` a/b/tie, ``consistent``,
    ``verdicts`` per order, reasons, ``margin``) and ``wins``.

    ``method: verdict`` asks for a JSON verdict (A, B or tie) in each order (``swap``); a verdict that
    flips with the order is a tie. ``method: likelihood`` reads log P("A") − log P("B") of the reply's
    first token in both orders and averages the log-odds that ``a`` wins (``margin``): a judge that
    always favours the first answer shown — the embedded 270M model answers "A" to everything, so every
    verdict was a tie — still ranks the pair by what differs between the orders, the answers. A margin
    below ``min_margin`` is a tie. The default is likelihood for the embedded backend (the only offline
    method that decides anything: benchmarks/prefs_judge.py) and verdict for an endpoint."""

    name = "judge_pairwise"

    class Config(GeneratorConfig):
        models: list[str] | None = Field(None, description="only compare candidates of these models")
        method: Literal["verdict", "likelihood"] | None = Field(
            None,
            description="verdict: a JSON verdict per order; likelihood: log-odds of A vs B averaged over both "
            "orders (default: likelihood for the embedded backend, verdict for an endpoint)",
        )
        swap: bool = Field(True, description="verdict: judge both orders; a verdict that flips is a tie")
        min_margin: float = Field(0.0, ge=0, description="likelihood: a |margin| (log-odds) below this is a tie")
        lang: Literal["auto", "en", "zh"] = "auto"
        template: str | None = Field(
            None, description="prompt template name or .j2 path (default: pref_pairwise; pref_choice for likelihood)"
        )
        reason: bool = Field(True, description="verdict: ask for a reason (false: the verdict only, for tiny models)")
        max_chars: int = Field(2000, ge=100, description="answers are clipped to this for the judge")

        @model_validator(mode="after")
        def _likelihood_needs_both_orders(self):
            if self.judge_method() == "likelihood" and not self.swap:
                raise ValueError("method likelihood asks both orders (that cancels the position bias): drop swap")
            return self

        def judge_method(self) -> str:
            return self.method or ("likelihood" if self.llm.backend == "embedded" else "verdict")

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        assert llm is not None
        c = self.config
        cands = candidates(record)
        wanted = [i for i, x in enumerate(cands) if c.models is None or x.get("model") in c.models]
        if c.models is not None:  # in the order given, so "a" is the first model named
            wanted.sort(key=lambda i: c.models.index(cands[i].get("model")))
        pairs = list(itertools.combinations(wanted, 2))
        if not pairs:
            return [Drop(record, "fewer than 2 candidates to compare")]
        prompt = clip(prompt_text(record), c.max_chars)
        method = c.judge_method()
        template = c.template or ("pref_choice" if method == "likelihood" else "pref_pairwise")

        async def one(i: int, j: int) -> dict:
            a, b = str(cands[i].get("text", "")), str(cands[j].get("text", ""))
            entry = {"a": i, "b": j, "a_model": cands[i].get("model"), "b_model": cands[j].get("model")}
            if a.strip() == b.strip():
                self.counters["identical_answers"] += 1
                return {**entry, "winner": "tie", "consistent": True, "reasons": ["identical answers"]}
            shown = (llm, prompt, clip(a, c.max_chars), clip(b, c.max_chars))
            try:
                if method == "likelihood":
                    cmp = await judge.compare_by_likelihood(
                        *shown, lang=c.lang, template=template, min_margin=c.min_margin
                    )
                else:
                    cmp = await judge.compare(*shown, swap=c.swap, lang=c.lang, template=template, reason=c.reason)
            except (LLMError, StructuredOutputError) as e:
                self.counters[f"judge_failed: {e.reason}"] += 1
                return {**entry, "winner": "tie", "consistent": False, "reasons": [f"judge failed: {e.reason}"]}
            self.counters["comparisons"] += 1
            self.counters["verdicts"] += len(cmp.verdicts)
            self.counters["first_position_preferred"] += cmp.first_position_wins
            if not cmp.consistent:  # verdict: then a tie; likelihood: decided by the margin all the same
                self.counters["position_inconsistent"] += 1
            if cmp.winner != "tie":
                win, lose = (a, b) if cmp.winner == "a" else (b, a)
                self.counters[f"{judge.length_side(win, lose)}_preferred"] += 1
            elif cmp.consistent:
                self.counters["judged_tie"] += 1
            return {
                **entry,
                "winner": cmp.winner,
                "consistent": cmp.consistent,
                "verdicts": cmp.verdicts,
                "reasons": cmp.reasons,
                "margin": cmp.margin,
                "judge": c.llm.model,
                "method": method,
                "template": template,
            }

        judgments = list(await asyncio.gather(*(one(i, j) for i, j in pairs)))
        for i in wanted:
            cands[i]["wins"] = 0
        for j in judgments:
            if j["winner"] in ("a", "b"):
                cands[j[j["winner"]]]["wins"] += 1
        record.meta["judgments"] = judgments
        return [record]


@register
class RuleScore(Mapper):
    """Score each candidate with a checkable rule: ``math`` (final number equals ``meta["reference"]``,
    e.g. GSM8K ``#### 42``), ``constraints`` (share of ``meta["constraints"]`` met) or
    ``package.module:function``. Candidates the rule cannot tell about keep no score."""

    name = "rule_score"

    class Config(OpConfig):
        rule: str = "math"
        key: str = Field("score", description="candidate field the score is written to")
        unsafe_no_sandbox: bool = Field(
            False,
            description="python_runs: where no bubblewrap sandbox can be set up, run the model's code unisolated "
            "instead of failing (only inside a throwaway VM or container)",
        )

        @model_validator(mode="after")
        def _sandbox_flag_is_for_code(self):
            if self.unsafe_no_sandbox and self.rule != "python_runs":
                raise ValueError("unsafe_no_sandbox applies to rule: python_runs only")
            return self

    def map(self, record: Record) -> Record:
        rule = get_rule(self.config.rule)
        if self.config.unsafe_no_sandbox:
            rule = functools.partial(rule, unsafe_no_sandbox=True)
        cands = candidates(record)
        for cand in cands:
            value = rule(record, cand)
            if value is None:
                self.counters["rule_undecided"] += 1
            else:
                cand[self.config.key] = value
                self.counters["rule_scored"] += 1
        _count_length_bias(self, cands, self.config.key)
        return record

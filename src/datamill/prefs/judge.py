"""LLM-as-judge: a pointwise score (1–10 with a reason) and a pairwise verdict (A, B or tie) with
position-bias control — the pair is judged in both orders and only a verdict that survives the swap
counts; a verdict that flips with the order is a tie. Prompts are the ``judge`` and
``pref_pairwise`` templates (en/zh, chosen from the prompt's language).

:func:`compare_by_likelihood` judges a pair without a written verdict: it reads the log-probabilities
of "A" and "B" as the reply's first token (``pref_choice`` template) in both orders and averages them,
so a constant position bias cancels out instead of turning every comparison into a tie — what a
small local model (the embedded Gemma 270M answers "A" to everything) can still do honestly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from datamill.llm import LLMClient, generate_json
from datamill.llm import prompts as templates


def _score() -> Any:
    # the schema lists the values (an enum): grammar-constrained decoding (llama.cpp) enforces an enum, not
    # a range, and a small model overflows a bare integer; validation stays lax ("8" and 8.0 are 8)
    return Field(ge=1, le=10, json_schema_extra={"enum": list(range(1, 11))})


class ScoreVerdict(BaseModel):
    model_config = ConfigDict(extra="ignore")

    score: int = _score()
    reason: str = ""


class PairVerdict(BaseModel):
    model_config = ConfigDict(extra="ignore")

    winner: Literal["A", "B", "tie"]
    reason: str = ""


class ScoreOnly(BaseModel):
    """Without a reason: far fewer broken answers from small models (the reason is where they ramble)."""

    model_config = ConfigDict(extra="forbid")

    score: int = _score()


class WinnerOnly(BaseModel):
    model_config = ConfigDict(extra="forbid")

    winner: Literal["A", "B", "tie"]


@dataclass
class Comparison:
    """The outcome for answers ``a`` and ``b``: ``winner`` is ``"a"``, ``"b"`` or ``"tie"``."""

    winner: str
    consistent: bool  # both orders agreed (or only one order was asked)
    first_position_wins: int = 0  # how many of the verdicts picked whichever answer was shown first
    verdicts: list[str] = field(default_factory=list)  # raw winners per order, as "a"/"b"/"tie"
    reasons: list[str] = field(default_factory=list)
    margin: float | None = None  # likelihood: the log-odds that a beats b, averaged over both orders


def lang_of(prompt: str, lang: str) -> str:
    return templates.detect_lang(prompt) if lang == "auto" else lang


async def score(
    llm: LLMClient,
    prompt: str,
    answer: str,
    *,
    lang: str = "auto",
    template: str = "judge",
    rubric: str = "",
    reason: bool = True,
) -> ScoreVerdict:
    msgs = templates.load(template, lang_of(prompt, lang)).messages(
        instruction=prompt, answer=answer, rubric=rubric, with_reason=reason
    )
    got = await generate_json(llm, msgs, ScoreVerdict if reason else ScoreOnly)
    return got if reason else ScoreVerdict(score=got.score)


async def _verdict(
    llm: LLMClient, prompt: str, first: str, second: str, lang: str, template: str, reason: bool
) -> PairVerdict:
    msgs = templates.load(template, lang).messages(
        instruction=prompt, answer_a=first, answer_b=second, with_reason=reason
    )
    got = await generate_json(llm, msgs, PairVerdict if reason else WinnerOnly)
    return got if reason else PairVerdict(winner=got.winner)


def combine(forward: str, backward: str | None) -> tuple[str, bool]:
    """Winner of (a, b) from the verdict on order (a, b) and, if asked, on order (b, a) (both given as
    the letter shown: "A"/"B"/"tie"). Agreement keeps the verdict; disagreement is a tie."""
    first = {"A": "a", "B": "b"}.get(forward, "tie")
    if backward is None:
        return first, True
    second = {"A": "b", "B": "a"}.get(backward, "tie")
    return (first, True) if first == second else ("tie", False)


async def compare(
    llm: LLMClient,
    prompt: str,
    a: str,
    b: str,
    *,
    swap: bool = True,
    lang: str = "auto",
    template: str = "pref_pairwise",
    reason: bool = True,
) -> Comparison:
    lang = lang_of(prompt, lang)
    asks = [_verdict(llm, prompt, a, b, lang, template, reason)]
    if swap:
        asks.append(_verdict(llm, prompt, b, a, lang, template, reason))
    got = await asyncio.gather(*asks)
    winner, consistent = combine(got[0].winner, got[1].winner if swap else None)
    first_wins = sum(v.winner == "A" for v in got)
    raw = [combine(got[0].winner, None)[0]]
    if swap:
        raw.append({"A": "b", "B": "a"}.get(got[1].winner, "tie"))
    return Comparison(winner, consistent, first_wins, raw, [v.reason for v in got])


def _side(log_odds: float) -> str:
    return "a" if log_odds > 0 else "b" if log_odds < 0 else "tie"


async def compare_by_likelihood(
    llm: LLMClient,
    prompt: str,
    a: str,
    b: str,
    *,
    lang: str = "auto",
    template: str = "pref_choice",
    min_margin: float = 0.0,
) -> Comparison:
    """Which of ``a`` and ``b`` the model prefers, from log P("A") − log P("B") of its reply's first token,
    asked in both orders. A judge with a position bias adds the same constant to the first-shown side in
    each order; averaging the log-odds that ``a`` wins over the two orders cancels it:
    ``margin = ((lpA − lpB) on (a, b) + (lpB − lpA) on (b, a)) / 2``. The winner is the side the margin
    favours, a tie when ``|margin| < min_margin`` (or exactly 0); ``consistent`` says whether each order
    on its own preferred that side too, ``first_position_wins`` how many orders preferred the first shown."""
    prompts = templates.load(template, lang_of(prompt, lang))
    forward, backward = await asyncio.gather(
        *(
            llm.choice_logprobs(prompts.messages(instruction=prompt, answer_a=x, answer_b=y), ["A", "B"])
            for x, y in ((a, b), (b, a))
        )
    )
    a_first = forward["A"] - forward["B"]  # log-odds that a wins, a shown first
    a_second = backward["B"] - backward["A"]  # … a shown second
    margin = (a_first + a_second) / 2
    winner = "tie" if abs(margin) < min_margin else _side(margin)
    verdicts = [_side(a_first), _side(a_second)]
    return Comparison(
        winner=winner,
        consistent=verdicts[0] == verdicts[1],
        first_position_wins=(a_first > 0) + (a_second < 0),
        verdicts=verdicts,
        margin=round(margin, 4),
    )


def length_side(winner_text: str, loser_text: str) -> str:
    """``longer``/``shorter``/``equal``: whether the preferred answer is the longer one (length bias)."""
    if len(winner_text) == len(loser_text):
        return "equal"
    return "longer" if len(winner_text) > len(loser_text) else "shorter"


def agreement(judgments: list[dict], better: str, worse: str) -> dict[str, int | float | None]:
    """How often a judge agrees with a prior "``better`` beats ``worse``" over the comparisons of those
    two models: decided verdicts for either side, ties, position-inconsistent ones, and the share of
    decided verdicts that agree (None when nothing was decided)."""
    out = {"compared": 0, "agree": 0, "disagree": 0, "ties": 0, "inconsistent": 0}
    for j in judgments:
        models = {"a": j.get("a_model"), "b": j.get("b_model")}
        if set(models.values()) != {better, worse}:
            continue
        out["compared"] += 1
        if j.get("winner") in models:
            out["agree" if models[j["winner"]] == better else "disagree"] += 1
        elif not j.get("consistent", True):
            out["inconsistent"] += 1
        else:
            out["ties"] += 1
    decided = out["agree"] + out["disagree"]
    return {**out, "agreement": round(out["agree"] / decided, 4) if decided else None}

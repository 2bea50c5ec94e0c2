"""The LLM-judge win rate of a tuned model against its base on the same held-out prompts — the judging logic
behind ``judge_pairwise`` (``prefs.judge``), each pair shown in both orders: ``verdict`` (an endpoint's
default) turns a verdict that flips with the order into a tie; ``likelihood`` (the embedded judge's
default: it answers "A" to everything) averages the log-odds of both orders so the position bias cancels.
Prompts are en or zh by the question's language."""

from __future__ import annotations

import asyncio
from typing import Any

from datamill.llm import LLMClient, LLMConfig, LLMError, StructuredOutputError
from datamill.prefs import judge
from datamill.prefs.candidates import clip

MAX_CHARS = 2000  # answers are clipped to this for the judge, as judge_pairwise does


def judge_config(spec: str, model: str | None = None, key_env: str | None = None) -> LLMConfig:
    """``embedded`` (the local Gemma through llama.cpp) or the base URL of an OpenAI-compatible endpoint."""
    if spec == "embedded":
        return LLMConfig(backend="embedded")
    return LLMConfig(backend="openai", base_url=spec, model=model or "default", api_key_env=key_env)


async def _compare(llm: LLMClient, method: str, prompt: str, tuned: str, base: str) -> judge.Comparison | None:
    shown = (llm, clip(prompt, MAX_CHARS), clip(tuned, MAX_CHARS), clip(base, MAX_CHARS))
    if tuned.strip() == base.strip():
        return judge.Comparison("tie", True, verdicts=["tie"], reasons=["identical answers"])
    try:
        if method == "likelihood":
            return await judge.compare_by_likelihood(*shown)
        return await judge.compare(*shown, swap=True, reason=False)
    except (LLMError, StructuredOutputError):
        return None


def win_rate(prompts: list[str], tuned: list[str], base: list[str], config: LLMConfig) -> dict[str, Any]:
    """Wins, ties and losses of ``tuned`` over ``base`` answers (same order as ``prompts``), and per pair the
    winner ("tuned", "base", "tie" or None when the judge failed) in ``winners``."""
    method = "likelihood" if config.backend == "embedded" else "verdict"

    async def run() -> list[judge.Comparison | None]:
        async with LLMClient(config) as llm:
            return await asyncio.gather(*(_compare(llm, method, *x) for x in zip(prompts, tuned, base, strict=True)))

    got = asyncio.run(run())
    winners = [None if c is None else {"a": "tuned", "b": "base"}.get(c.winner, "tie") for c in got]
    counts = {k: winners.count(k) for k in ("tuned", "base", "tie")}
    judged = len(winners) - winners.count(None)
    return {
        "judge": config.model if config.backend == "openai" else "embedded",
        "method": method,
        "pairs": len(winners),
        "judged": judged,
        "wins": counts["tuned"],
        "losses": counts["base"],
        "ties": counts["tie"],
        "position_inconsistent": sum(1 for c in got if c is not None and not c.consistent),
        "win_rate": round(counts["tuned"] / judged, 4) if judged else None,
        "win_rate_ties_half": round((counts["tuned"] + counts["tie"] / 2) / judged, 4) if judged else None,
        "winners": winners,
        "margins": [None if c is None else c.margin for c in got],
    }

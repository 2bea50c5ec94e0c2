"""Model-based quality scores for SFT records: an LLM judge with a 1-5 rubric (helpfulness,
correctness, instruction following; zh and en rubrics chosen by the record's language), and the
perplexity of the text under the embedded model. Both store their score in ``meta`` and can drop
records below (judge) or above (perplexity) a threshold."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

from datamill.llm import LLMClient, generate_json
from datamill.llm.prompts import detect_lang, load
from datamill.ops import register
from datamill.ops.base import Filter, Generator, GeneratorConfig, OpConfig
from datamill.record import Record
from datamill.results import Drop


class Rubric(BaseModel):
    helpfulness: int = Field(ge=1, le=5)
    correctness: int = Field(ge=1, le=5)
    instruction_following: int = Field(ge=1, le=5)
    score: int = Field(ge=1, le=5)
    reason: str = Field(max_length=2000)


class QualityJudgeConfig(GeneratorConfig):
    min_score: int | None = Field(3, ge=1, le=5, description="drop records scored below this (None: only score)")
    template: str = Field("quality_rubric", description="prompt template name or path (zh/en variants)")
    rubric: str | None = Field(None, description="extra criteria appended to the template's rubric")
    lang: str | None = Field(None, description="zh or en; default: detected from the record")
    max_attempts: int = Field(3, ge=1, description="answers asked for before the record is dropped")
    field: str = Field("quality", description="meta key the scores are stored under")


@register
class QualityJudge(Generator):
    """Score each record 1-5 with an LLM judge (rubric + reason in meta); drop those below min_score."""

    name = "quality_judge"
    Config = QualityJudgeConfig

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        cfg: QualityJudgeConfig = self.config
        instruction, answer = record.part("prompt"), record.part("answer") or record.part("text")
        lang = cfg.lang or detect_lang(instruction + "\n" + answer)
        messages = load(cfg.template, lang).messages(instruction=instruction, answer=answer, rubric=cfg.rubric)
        verdict: Rubric = await generate_json(llm, messages, Rubric, max_attempts=cfg.max_attempts, lang=lang)
        record.meta[cfg.field] = {**verdict.model_dump(), "model": cfg.llm.model, "judge": cfg.template}
        self.counters[f"score_{verdict.score}"] += 1
        if cfg.min_score is not None and verdict.score < cfg.min_score:
            return [Drop(record, f"quality score {verdict.score} < {cfg.min_score}")]
        return [record]


class PerplexityConfig(OpConfig):
    part: str = Field("answer", description="which text to score: answer, prompt, text or all")
    max_tokens: int = Field(256, ge=8, le=4096, description="score only the first N tokens (speed, memory)")
    max_perplexity: float | None = Field(None, gt=1, description="drop records above this (None: only score)")
    model_path: str | None = Field(None, description="a .gguf file (default: the embedded Gemma 3 270M)")
    n_threads: int | None = None


class Scorer:
    """A llama.cpp context that keeps the logits of every position (needed for perplexity)."""

    def __init__(self, model_path: str | None, n_ctx: int, n_threads: int | None):
        from llama_cpp import Llama

        from datamill.llm.embedded import close_at_exit, default_model_path

        threads = n_threads or 1
        path = model_path or str(default_model_path())
        self.llm = Llama(path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, logits_all=True, verbose=False)
        close_at_exit(self.llm)

    def token_logprobs(self, tokens: list[int], start: int = 1) -> Any:
        """log P(token i | the tokens before it) for i = ``start`` … len − 1 (a numpy array)."""
        import numpy as np

        self.llm.reset()
        # the output layer (Gemma's vocabulary has 262k tokens) is most of the cost of a position: the
        # context before the scored tokens is evaluated without it (llama-cpp-python reads this flag per eval)
        self.llm._logits_all = False
        try:
            self.llm.eval(tokens[: start - 1])
        finally:
            self.llm._logits_all = True
        self.llm.eval(tokens[start - 1 :])
        logits = np.array(self.llm.scores[start - 1 : len(tokens) - 1])  # float32, normalized in place
        top = logits.max(axis=1, keepdims=True)
        logits -= top
        picked = logits[np.arange(len(logits)), tokens[start:]].astype(np.float64)
        np.exp(logits, out=logits)
        return picked - np.log(logits.sum(axis=1, dtype=np.float64))

    def perplexity(self, text: str, max_tokens: int) -> tuple[float, int]:
        import numpy as np

        tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=True)[:max_tokens]
        if len(tokens) < 2:
            return math.nan, len(tokens)
        return float(np.exp(-np.mean(self.token_logprobs(tokens)))), len(tokens)


@register
class Perplexity(Filter):
    """Perplexity of the record's text under the embedded model (meta.perplexity); drop above a maximum."""

    name = "perplexity"
    Config = PerplexityConfig

    _scorer: Scorer | None = None  # loaded on first use; the op itself lives once per worker process

    def reason(self, record: Record) -> str | None:
        cfg: PerplexityConfig = self.config
        if self._scorer is None:
            self._scorer = Scorer(cfg.model_path, cfg.max_tokens + 8, cfg.n_threads)
        ppl, n = self._scorer.perplexity(record.part(cfg.part), cfg.max_tokens)
        record.meta["perplexity"] = None if math.isnan(ppl) else round(ppl, 3)
        self.counters["tokens_scored"] += n
        if cfg.max_perplexity is not None and not math.isnan(ppl) and ppl > cfg.max_perplexity:
            return f"perplexity above {cfg.max_perplexity:g}"
        return None

"""One async client for any OpenAI-compatible endpoint (``/v1/chat/completions``, ``/v1/completions``,
``/v1/embeddings``) and for the embedded local model (``backend: embedded``).

What it does for every request:

- bounded concurrency (``concurrency``) and a requests-per-minute / tokens-per-minute limiter;
- timeouts; retries with exponential backoff and jitter on 429, 408, 5xx, timeouts, dropped
  connections and unreadable bodies, honouring ``Retry-After``; a clear :class:`LLMError` after the
  last try (other 4xx fail at once: retrying a bad request does not fix it);
- a disk cache (:mod:`datamill.llm.cache`) so a re-run with the same inputs makes no request; a 200
  that is no answer (no choices, no text, a reply longer than ``max_tokens`` allows) is retried like
  a bad body and never cached;
- with a run seed (a recipe's ``seed``), a request that samples and has no seed of its own gets one
  derived from the run seed and the request, so a sampled step draws the same answers in every run;
- a reasoning model's thinking (a ``reasoning_content``/``reasoning`` field, or ``<think>…</think>`` in
  the content) kept apart from the answer (:mod:`datamill.llm.reasoning`): ``Completion.text`` is the
  answer alone, ``Completion.reasoning`` the thinking; a chat that thought but never answered raises
  :class:`NoAnswer`;
- usage accounting (:class:`Usage`) that a caller puts into its stats.

The API key is read from the environment variable *named* by ``api_key_env`` when a request is
sent. It is never stored in the config; every error message and every answer (before it is cached
or returned) is scrubbed of it and of credential-like header values.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from datamill.errors import DatamillError
from datamill.llm import reasoning

log = logging.getLogger("datamill.llm")

Messages = Sequence[dict[str, Any]] | str
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
# A reply longer than this many characters per allowed token ignored max_tokens (no tokenizer's tokens
# average that long): a runaway server or a proxy's page, not an answer.
CHARS_PER_TOKEN = 32
UNBOUNDED_TOKENS = 32_768  # the tokens the bound assumes when max_tokens is None
SECRET_HEADER = re.compile(r"authori[sz]ation|key|token|secret|password|cookie", re.I)
TOP_LOGPROBS = 20  # the most alternatives OpenAI's chat API returns per position
T = TypeVar("T")


class LLMError(DatamillError):
    """A request failed for good (after its retries, or with a status a retry cannot fix).

    ``reason`` is a short machine-friendly cause (``http 429``, ``timeout``, ``connection``,
    ``bad body``, ``http 401`` …) a caller can use as a drop reason."""

    def __init__(self, message: str, reason: str = "error", status: int | None = None, attempts: int = 1):
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.attempts = attempts

    def __reduce__(self):  # survives pickling across worker processes with its fields
        return (type(self), (str(self), self.reason, self.status, self.attempts))


class NoAnswer(LLMError):
    """The model thought but gave no answer (cut off at ``max_tokens`` while reasoning, or stopped after
    it). The reply is cached like any answer; ``completion`` has it (None once pickled)."""

    def __init__(
        self,
        message: str,
        reason: str = "no answer",
        status: int | None = None,
        attempts: int = 1,
        completion: Completion | None = None,
    ):
        super().__init__(message, reason, status, attempts)
        self.completion = completion


class LLMUnreachable(DatamillError):
    """Nothing listens at the endpoint: the run stops (and resumes later) instead of dropping every record."""


class Price(BaseModel):
    """What a model costs per million tokens: ``prompt`` (``in``) and ``completion`` (``out``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: float = Field(ge=0, validation_alias=AliasChoices("prompt", "in"), description="per 1M prompt tokens")
    completion: float = Field(
        ge=0, validation_alias=AliasChoices("completion", "out"), description="per 1M completion tokens"
    )


class LLMConfig(BaseModel):
    """Where and how to call a model. Unknown keys are errors (recipes stay honest)."""

    # hide_input_in_errors: a key pasted into the wrong field must not be echoed by a validation error
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    backend: Literal["openai", "embedded"] = "embedded"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "gemma-3-270m"
    api_key_env: str | None = Field(None, description="NAME of the env var that holds the key (never the key)")
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = 256
    n: int = 1
    seed: int | None = None
    stop: list[str] | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="extra body params (per provider)")
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers (no secrets)")
    timeout: float = Field(60.0, description="seconds for one try (connect + send + whole answer)")
    transport: Literal["auto", "fast", "httpx"] = Field(
        "auto", description="auto: the built-in h11 transport, or httpx when a proxy is set in the environment"
    )
    max_retries: int = 5
    unreachable_after: int = Field(
        3, ge=0, description="stop the step after N requests could not connect at all (0: never)"
    )
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 300.0
    concurrency: int = 16
    rpm: float | None = Field(None, description="requests per minute (None: unlimited)")
    tpm: float | None = Field(None, description="tokens per minute (None: unlimited)")
    cache: bool = True
    cache_dir: str | None = None
    json_schema_mode: Literal["auto", "json_schema", "json_object", "off"] = "auto"
    price_prompt_per_1m: float | None = None
    price_completion_per_1m: float | None = None
    price: Price | None = Field(None, description="per million tokens: {in: …, out: …} (usage cost, --dry-run)")
    tokenizer: str | None = Field(
        None, description="--dry-run's token counts: a tokenizer.json/folder, a .gguf, or tiktoken:NAME"
    )
    model_path: str | None = Field(None, description="embedded backend: a .gguf file (default: the shipped Gemma)")
    n_ctx: int = 2048
    n_threads: int | None = Field(None, description="embedded backend: CPU threads (default: half the cores)")

    @field_validator("api_key_env")
    @classmethod
    def _looks_like_a_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or not all(c.isalnum() or c == "_" for c in v)):
            # deliberately do not echo the value: it may be a key pasted by mistake
            raise ValueError("api_key_env must be the NAME of an environment variable (letters, digits, _)")
        return v

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _one_price(self) -> LLMConfig:
        if self.price is not None and (self.price_prompt_per_1m, self.price_completion_per_1m) != (None, None):
            raise ValueError("give the price once: price: {in: …, out: …} or price_prompt_per_1m/…, not both")
        return self

    def prices(self) -> tuple[float, float]:
        """(prompt, completion) price per million tokens; 0 where none is configured."""
        if self.price is not None:
            return self.price.prompt, self.price.completion
        return self.price_prompt_per_1m or 0.0, self.price_completion_per_1m or 0.0

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def sampling(self) -> dict[str, Any]:
        """The request params that change the output (and so the cache key)."""
        out: dict[str, Any] = {}
        for k in ("temperature", "top_p", "max_tokens", "seed", "stop"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        if self.n != 1:
            out["n"] = self.n
        out.update(self.extra)
        return out


@dataclass
class Usage:
    """Counters a caller can put into stats.json (``usage.to_dict()``)."""

    requests: int = 0  # calls made by callers (chat/complete/embed), cached or not
    http_requests: int = 0  # tries actually sent (0 on a fully cached re-run)
    retries: int = 0
    cache_hits: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # part of completion_tokens: the server's completion_tokens_details, or estimated
    reasoning_tokens_estimated: int = 0  # how many of reasoning_tokens were estimated from the text
    cost: float = 0.0
    retry_wait_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_tokens"] = self.total_tokens
        d["cost"] = round(self.cost, 6)
        d["retry_wait_seconds"] = round(self.retry_wait_seconds, 3)
        return d

    def add(self, other: Usage) -> None:
        for k, v in asdict(other).items():
            if k == "errors":
                for e, c in v.items():
                    self.errors[e] = self.errors.get(e, 0) + c
            else:
                setattr(self, k, getattr(self, k) + v)


@dataclass
class Completion:
    """The answers of one request. For chat, ``texts`` are the answers without a reasoning model's
    thinking; ``reasonings`` has the thinking per choice (None: none), empty when nobody thought."""

    texts: list[str]
    finish_reasons: list[str | None]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    cached: bool = False
    reasonings: list[str | None] = field(default_factory=list)
    reasoning_tokens: int = 0
    reasoning_tokens_estimated: bool = False  # the server did not report them: counted from the text

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    @property
    def reasoning(self) -> str | None:
        return self.reasonings[0] if self.reasonings else None

    def to_cache(self) -> dict[str, Any]:
        out = {
            "texts": self.texts,
            "finish_reasons": self.finish_reasons,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "model": self.model,
        }
        if any(r is not None for r in self.reasonings):  # an entry without thinking keeps the old form
            out.update(
                reasonings=self.reasonings,
                reasoning_tokens=self.reasoning_tokens,
                reasoning_tokens_estimated=self.reasoning_tokens_estimated,
            )
        return out

    @classmethod
    def from_cache(cls, d: dict[str, Any], chat: bool = False) -> Completion:
        """A cached answer. A chat entry without ``reasonings`` may predate the reasoning split (its
        texts may still hold ``<think>`` blocks): it is split now (a no-op on texts without one)."""
        out = cls(**{k: v for k, v in d.items() if k in _COMPLETION_FIELDS}, cached=True)
        return split_thinking(out) if chat and "reasonings" not in d else out


def split_thinking(result: Completion, fields: Sequence[str | None] = (), reported: Any = None) -> Completion:
    """``result`` with each text split into answer and thinking (:func:`datamill.llm.reasoning.split`):
    ``fields`` are the choices' reasoning fields, ``reported`` the server's
    ``completion_tokens_details.reasoning_tokens``; without it the thinking's tokens are estimated."""
    pairs = [reasoning.split(t, f) for t, f in zip(result.texts, [*fields] or [None] * len(result.texts), strict=True)]
    thoughts = [r for _, r in pairs]
    if any(r is not None for r in thoughts):
        result.texts = [a if a is not None else "" for a, _ in pairs]
        result.reasonings = thoughts
    if isinstance(reported, int) and not isinstance(reported, bool) and (reported > 0 or not any(thoughts)):
        result.reasoning_tokens = reported  # (a 0 next to reasoning text is a server that does not count them)
    elif any(thoughts):
        result.reasoning_tokens = sum(reasoning.estimate_tokens(r) for r in thoughts if r)
        result.reasoning_tokens_estimated = True
    return result


_COMPLETION_FIELDS = frozenset(f for f in Completion.__dataclass_fields__ if f != "cached")


@dataclass
class ChoiceLogprobs:
    """The log-probability of each choice as the first token of a reply (:meth:`LLMClient.choice_logprobs`)."""

    logprobs: dict[str, float]
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Bucket:
    """Token bucket: ``capacity`` units, refilled at ``capacity / 60`` per second. Waiters queue in
    order behind one lock; an amount larger than the capacity waits for a full bucket and goes negative."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic):
        self.capacity = float(per_minute)
        self.rate = self.capacity / 60.0
        self.level = self.capacity
        self.clock = clock
        self.stamp = clock()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def acquire(self, amount: float) -> None:
        async with self.lock:
            need = min(amount, self.capacity)
            while True:
                self._refill()
                if self.level >= need:
                    self.level -= amount
                    return
                await asyncio.sleep((need - self.level) / self.rate)

    def adjust(self, delta: float) -> None:
        """Correct an estimate once the real count is known (positive: used more than estimated)."""
        self._refill()
        self.level -= delta


def estimate_tokens(obj: Any) -> int:
    """A cheap upper-ish estimate for the TPM limiter: bytes / 3 (CJK is 3 bytes a char ≈ 1 token)."""
    if isinstance(obj, str):
        return len(obj.encode()) // 3 + 1
    return len(orjson.dumps(obj)) // 3 + 1


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Retryable(Exception):
    def __init__(
        self,
        reason: str,
        detail: str,
        status: int | None = None,
        retry_after: float | None = None,
        refused: bool = False,
    ):
        self.refused = refused  # no connection could be opened at all
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


class LLMClient:
    """Async client. Use as ``async with LLMClient(cfg) as llm: await llm.chat("hi")``.

    ``chat``/``complete``/``embed`` return results; ``chat_many`` runs many at once under the
    concurrency bound and returns results or :class:`LLMError` objects in input order."""

    def __init__(
        self, config: LLMConfig | None = None, *, cache: Any = None, seed: int | None = None, **overrides: Any
    ):
        """``seed``: the run's seed (a recipe's ``seed``) that sampled requests derive theirs from."""
        if config is None:
            config = LLMConfig(**overrides)
        elif overrides:
            config = config.model_copy(update=overrides)
        self.config = config
        self.seed = seed
        self.usage = Usage()
        self._sem = asyncio.Semaphore(max(1, config.concurrency))
        self._rpm = _Bucket(config.rpm) if config.rpm else None
        self._tpm = _Bucket(config.tpm) if config.tpm else None
        self._http: Any = None
        self._embedded: Any = None
        self._schema_mode: str | None = None  # learned: which response_format the endpoint accepts
        self._reached = False  # the endpoint has answered at least once (any HTTP status)
        self._refused = 0  # requests that never got a connection, while it has not answered yet
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._dry: Any = None
        if os.environ.get("DATAMILL_DRY_RUN"):  # `datamill run --dry-run`: nothing is sent (datamill.llm.estimate)
            from datamill.llm.estimate import Recorder

            self._dry = Recorder(config)
            self.usage = self._dry.usage
            if cache is not False and (cache is not None or config.cache):  # read-only: never a placeholder
                cache = self._dry.cache(getattr(cache, "dir", None))
        if cache is None and config.cache:
            from datamill.llm.cache import Cache

            cache = Cache(config.cache_dir)
        self.cache = cache if cache is not False else None  # (a Cache with no entries is falsy)

    # ----------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self.cache is not None:
            self.cache.close()

    def _client(self) -> Any:
        if self._http is None:
            c = self.config
            connect = min(c.timeout, 10.0)
            from datamill.llm.transport import FastTransport, proxy_configured

            if c.transport == "fast" or (c.transport == "auto" and not proxy_configured()):
                self._http = FastTransport(c.base_url, c.timeout, connect, c.headers)
            else:
                import httpx

                limits = httpx.Limits(max_connections=c.concurrency, max_keepalive_connections=c.concurrency)
                self._http = _HttpxTransport(
                    httpx.AsyncClient(
                        timeout=httpx.Timeout(c.timeout, connect=connect), limits=limits, headers=c.headers
                    ),
                    c.base_url,
                )
        return self._http

    def _secrets(self) -> list[str]:
        """What must never leave the process in a message or an answer: the API key and the values of
        credential-like headers (``Authorization: Bearer …``, ``X-Api-Key`` …), also without a scheme."""
        found = {self.config.api_key() or ""}
        for name, value in self.config.headers.items():
            if SECRET_HEADER.search(name):
                found.update([value, *value.split()[-1:]])
        return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)

    def _redact(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _scrub(self, content: bytes) -> bytes:
        """An answer's raw bytes with every secret replaced (a server may echo the key in a 200 reply)."""
        for secret in self._secrets():
            content = content.replace(secret.encode(), b"***")
        return content

    # ----------------------------------------------------------------- public API
    async def chat(
        self, messages: Messages, *, system: str | None = None, response_format: dict | None = None, **params: Any
    ) -> Completion:
        """One chat completion. ``messages`` is a list of ``{"role", "content"}`` or a user string;
        ``params`` override the config's sampling params for this call (and its cache key)."""
        msgs = normalize_messages(messages, system)
        body = {"model": self.config.model, "messages": msgs, **self.config.sampling(), **params}
        if response_format is not None:
            body["response_format"] = response_format
        out = await self._generate("chat", body)
        self._check_answered(out, body)
        return out

    async def complete(self, prompt: str, **params: Any) -> Completion:
        """One text completion (``/v1/completions``; base models, few-shot prompts)."""
        body = {"model": self.config.model, "prompt": prompt, **self.config.sampling(), **params}
        return await self._generate("completions", body)

    async def embed(self, texts: Sequence[str], **params: Any) -> list[list[float]]:
        """Embeddings from an OpenAI-compatible ``/v1/embeddings`` endpoint (cached per text list)."""
        body = {"model": self.config.model, "input": list(texts), **params}

        async def fetch() -> list[list[float]]:
            vectors, tokens = await self._with_retries("embeddings", body, estimate_tokens(body["input"]), _embeddings)
            self.usage.prompt_tokens += tokens
            return vectors

        return await self._through_cache("embeddings", body, fetch, lambda v: {"data": v}, lambda hit: hit["data"])

    async def choice_logprobs(
        self, messages: Messages, choices: Sequence[str], *, system: str | None = None
    ) -> dict[str, float]:
        """The log-probability of each of ``choices`` (short labels such as ``["A", "B"]``) as the first
        token of the assistant's reply to ``messages`` — a verdict read from the model's distribution
        instead of from the text it would sample. Cached, retried and counted like :meth:`chat`.

        Embedded backend: the exact log-softmax of the next-token logits, each choice summed over its
        first tokens with and without a leading space. An endpoint: one greedy token with
        ``logprobs``/``top_logprobs`` (the top 20); top tokens that equal a choice once stripped
        (case-sensitive) are summed, and a choice not among them gets the lowest top log-probability
        minus log 2 (it is less likely than every token listed; how much less the endpoint does not
        say). An endpoint that returns no logprobs is an :class:`LLMError` (reason ``no logprobs``)."""
        msgs = normalize_messages(messages, system)
        body = {
            "model": self.config.model,
            "messages": msgs,
            **self.config.extra,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        choices = list(choices)

        async def fetch() -> dict[str, float]:
            estimate = estimate_tokens(msgs) + 1
            if self.config.backend == "embedded":
                result = await self._embedded_call("choice_logprobs", {**body, "choices": choices}, estimate)
            else:
                parse = partial(self._parse_choice_logprobs, choices)
                result = await self._with_retries("choice_logprobs", body, estimate, parse)
            self._account(result, estimate)
            return result.logprobs

        keyed = {**body, "choices": choices}
        return await self._through_cache(
            "choice_logprobs", keyed, fetch, lambda v: {"logprobs": v}, lambda hit: hit["logprobs"]
        )

    async def chat_many(self, batch: Sequence[Messages], **params: Any) -> list[Completion | LLMError]:
        """Run many chats concurrently (bounded by ``concurrency``); failures come back as errors."""

        async def one(m: Messages) -> Completion | LLMError:
            try:
                return await self.chat(m, **params)
            except LLMError as e:
                return e

        return list(await asyncio.gather(*(one(m) for m in batch)))

    # ----------------------------------------------------------------- internals
    def _check_answered(self, out: Completion, body: dict[str, Any]) -> None:
        """Raise :class:`NoAnswer` when no choice has an answer because the model only thought: an
        empty string must not pass for the answer (a judge's verdict, a record's reply)."""
        if not out.reasonings:
            return
        choices = zip(out.texts, out.reasonings, out.finish_reasons, strict=False)
        problems = [reasoning.missing_answer(*c) for c in choices]
        if problems and all(problems):
            self._fail_count(problems[0])
            raise NoAnswer(
                f"{problems[0]} (finish_reason {out.finish_reasons[0]!r}, max_tokens={body.get('max_tokens')}, "
                f"~{out.reasoning_tokens} reasoning tokens): raise max_tokens or ask for less thinking",
                problems[0],
                completion=out,
            )

    def _cache_key(self, kind: str, body: dict[str, Any]) -> str:
        from datamill.llm.cache import make_key

        if self.config.backend == "embedded":  # a different GGUF file gives different answers
            return make_key(kind, "embedded", {**body, "model_path": self.config.model_path or "shipped"})
        return make_key(kind, "openai", body)

    def _seeded(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with a seed when it samples and has none: a hash of the run seed and the request, so
        the same request draws the same answer in every run and in any order, cached or not. (One
        constant seed for all requests would make their random draws move in lockstep.)"""
        if self.seed is None or "seed" in body:
            return body
        temperature = body.get("temperature")
        if temperature == 0 or (temperature is None and self.config.backend == "embedded"):  # greedy
            return body
        blob = orjson.dumps([self.seed, kind, body], option=orjson.OPT_SORT_KEYS)
        return {**body, "seed": int.from_bytes(hashlib.blake2b(blob, digest_size=4).digest(), "big") >> 1}

    async def _through_cache(
        self,
        kind: str,
        body: dict[str, Any],
        fetch: Callable[[], Awaitable[T]],
        encode: Callable[[T], dict[str, Any]],
        decode: Callable[[dict[str, Any]], T | None],
    ) -> T:
        """One request, counted, answered from the cache when it holds a usable entry (``decode`` gives
        None for one that is not), else fetched and stored."""
        self.usage.requests += 1
        key = self._cache_key(kind, body) if self.cache is not None else ""
        if key and (hit := self.cache.get(key)) is not None and (value := decode(hit)) is not None:
            self.usage.cache_hits += 1
            return value
        value = await fetch()
        if key:
            self.cache.put(key, encode(value))
        return value

    async def _generate(self, kind: str, body: dict[str, Any]) -> Completion:
        body = self._seeded(kind, body)

        def decode(hit: dict[str, Any]) -> Completion | None:
            if _not_an_answer(hit.get("texts"), body) is not None:  # cached before replies were checked: ask again
                return None
            return Completion.from_cache(hit, chat=kind == "chat")

        async def fetch() -> Completion:
            estimate = estimate_tokens(body.get("messages") or body.get("prompt") or "")
            estimate += int(body.get("max_tokens") or 0)
            if self.config.backend == "embedded":
                result = await self._embedded_call(kind, body, estimate)
                if kind == "chat":
                    result = split_thinking(result)
            else:
                result = await self._with_retries(kind, body, estimate, partial(self._parse_completion, kind, body))
            self._account(result, estimate)
            return result

        return await self._through_cache(kind, body, fetch, Completion.to_cache, decode)

    def _account(self, result: Completion | ChoiceLogprobs, estimate: int) -> None:
        """Count a fresh (uncached) answer's tokens and cost; correct the TPM limiter's estimate."""
        self.usage.prompt_tokens += result.prompt_tokens
        self.usage.completion_tokens += result.completion_tokens
        if isinstance(result, Completion) and result.reasoning_tokens:
            self.usage.reasoning_tokens += result.reasoning_tokens
            if result.reasoning_tokens_estimated:
                self.usage.reasoning_tokens_estimated += result.reasoning_tokens
        price_in, price_out = self.config.prices()
        self.usage.cost += (result.prompt_tokens * price_in + result.completion_tokens * price_out) / 1e6
        if self._tpm is not None:
            self._tpm.adjust(result.prompt_tokens + result.completion_tokens - estimate)

    def _parse_completion(self, kind: str, body: dict[str, Any], data: Any) -> Completion:
        """The answer in a 200 body (for chat: split from the model's thinking); raises
        :class:`_Retryable` for one that is no answer."""
        fields: list[str | None] = []
        try:
            choices = data["choices"]
            if kind == "chat":
                messages = [ch.get("message") or {} for ch in choices]
                texts = [m.get("content") for m in messages]
                fields = [reasoning.message_reasoning(m) for m in messages]
            else:
                texts = [ch.get("text") for ch in choices]
            finish = [ch.get("finish_reason") for ch in choices]
        except (KeyError, TypeError, AttributeError) as e:
            raise _Retryable("bad body", f"the answer is JSON but has no choices[] ({type(e).__name__})") from None
        # thinking counts against max_tokens too; content null next to a reasoning field is an answer
        whole = [t if f is None else (t or "") + f for t, f in zip(texts, fields, strict=True)] if fields else texts
        if problem := _not_an_answer(whole, body):
            raise _Retryable(*problem)
        usage = data.get("usage") or {}
        out = Completion(
            texts=texts,
            finish_reasons=finish,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=str(data.get("model") or self.config.model),
        )
        if kind == "chat":
            details = usage.get("completion_tokens_details")
            split_thinking(out, fields, details.get("reasoning_tokens") if isinstance(details, dict) else None)
        return out

    def _parse_choice_logprobs(self, choices: list[str], data: Any) -> ChoiceLogprobs:
        """The choices' log-probabilities from the first position's ``top_logprobs`` of a 200 body."""
        try:
            choice = data["choices"][0]
        except (KeyError, IndexError, TypeError) as e:
            raise _Retryable("bad body", f"the answer is JSON but has no choices[] ({type(e).__name__})") from None
        try:
            top = {}
            for t in (choice.get("logprobs") or {})["content"][0]["top_logprobs"]:
                top.setdefault(str(t["token"]).strip(), []).append(float(t["logprob"]))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            top = {}
        if not top:
            self._fail_count("no logprobs")
            raise LLMError(
                f"{self.config.base_url}/chat/completions: the endpoint returned no logprobs (it must support "
                "logprobs and top_logprobs on chat completions)",
                "no logprobs",
            )
        floor = min(min(v) for v in top.values()) - math.log(2)
        usage = data.get("usage") or {}
        return ChoiceLogprobs(
            {ch: logsumexp(top[ch]) if ch in top else floor for ch in choices},
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )

    def _fail_count(self, reason: str) -> None:
        self.usage.failures += 1
        self.usage.errors[reason] = self.usage.errors.get(reason, 0) + 1

    async def _limit(self, estimate: int) -> None:
        if self._rpm is not None:
            await self._rpm.acquire(1)
        if self._tpm is not None:
            await self._tpm.acquire(estimate)

    async def _with_retries(self, kind: str, body: dict[str, Any], estimate: int, parse: Callable[[Any], T]) -> T:
        """``parse`` of the JSON answer, retried on what :class:`_Retryable` covers (``parse`` raises it
        for a 200 that is no answer)."""
        if self._dry is not None:  # a dry run: recorded, answered with a placeholder body
            return parse(self._dry.reply(kind, body))
        c = self.config
        attempts = c.max_retries + 1
        last: _Retryable | None = None
        for attempt in range(attempts):
            self._check_reachable()
            if attempt:
                delay = min(c.backoff_max, c.backoff_base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                if last is not None and last.retry_after is not None:
                    delay = min(last.retry_after, c.retry_after_max)
                self.usage.retries += 1
                self.usage.retry_wait_seconds += delay
                log.info("retry %d/%d in %.2fs after %s", attempt, c.max_retries, delay, last and last.reason)
                await self._sleep(delay)
            try:
                async with self._sem:
                    await self._limit(estimate)
                    data = await self._send(kind, body)
                return parse(data)
            except _Retryable as e:
                last = e
        assert last is not None
        self._fail_count(last.reason)
        if last.refused and not self._reached:
            self._refused += 1
            self._check_reachable()
        raise LLMError(
            self._redact(f"{c.base_url}/{_PATHS[kind]} failed after {attempts} tries: {last.detail}"),
            last.reason,
            last.status,
            attempts,
        ) from None

    def _check_reachable(self) -> None:
        """Stop the step when nothing listens at base_url: after ``unreachable_after`` requests that
        never got a connection (and no answer ever), every later one would only wait out its retries."""
        limit = self.config.unreachable_after
        if limit and not self._reached and self._refused >= limit:
            raise LLMUnreachable(
                f"cannot reach {self.config.base_url}: {self._refused} requests found nothing listening "
                f"after {self.config.max_retries + 1} tries each — start the server (or fix base_url) and run "
                "again; finished chunks are kept"
            )

    async def _send(self, kind: str, body: dict[str, Any]) -> Any:
        from datamill.llm.transport import TransportConnectError, TransportError, TransportTimeout

        c = self.config
        url = f"{c.base_url}/{_PATHS[kind]}"
        headers = [("Content-Type", "application/json")]
        key = c.api_key()
        if key:
            headers.append(("Authorization", f"Bearer {key}"))
        self.usage.http_requests += 1
        try:
            resp = await self._client().post(_PATHS[kind], orjson.dumps(body), headers)
        except TransportTimeout:
            raise _Retryable("timeout", f"no answer within the {c.timeout:g}s timeout") from None
        except TransportConnectError as e:
            raise _Retryable("connection", f"cannot connect ({self._redact(str(e))})", refused=True) from None
        except TransportError as e:
            raise _Retryable("connection", f"connection failed ({self._redact(str(e))})") from None
        self._reached = True
        status = resp.status_code
        if status >= 400:
            snippet = self._redact(resp.text)[:300].strip()  # redact first: a cut could split the key
            detail = f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
            if status in RETRY_STATUS or status >= 500:
                raise _Retryable(f"http {status}", detail, status, _retry_after(resp.headers.get("retry-after")))
            self._fail_count(f"http {status}")
            raise LLMError(self._redact(f"{url} refused the request: {detail}"), f"http {status}", status)
        try:
            return orjson.loads(self._scrub(resp.content))
        except orjson.JSONDecodeError:
            raise _Retryable("bad body", f"the answer is not JSON: {self._redact(resp.text)[:120]!r}") from None

    async def _embedded_call(self, kind: str, body: dict[str, Any], estimate: int) -> Any:
        from datamill.llm.embedded import EmbeddedModel

        if self._dry is not None:  # a dry run: recorded, answered with a placeholder (the model is not loaded)
            data = self._dry.reply(kind, body)
            if kind == "choice_logprobs":
                return self._parse_choice_logprobs(body["choices"], data)
            return self._parse_completion(kind, body, data)
        if self._embedded is None:
            self._embedded = EmbeddedModel.shared(self.config.model_path, self.config.n_ctx, self.config.n_threads)
        async with self._sem:
            await self._limit(estimate)
            self.usage.http_requests += 1
            fn = {
                "chat": self._embedded.chat,
                "completions": self._embedded.complete,
                "choice_logprobs": self._embedded.choice_logprobs,
            }[kind]
            arg = body.get("prompt") if kind == "completions" else body.get("messages")
            params = {k: v for k, v in body.items() if k not in ("model", "messages", "prompt")}
            try:
                out = await asyncio.to_thread(fn, arg, **params)
            except Exception as e:  # the model itself failed: no retry can help
                self._fail_count("embedded")
                raise LLMError(f"embedded model failed: {type(e).__name__}: {e}", "embedded") from None
        return out


_PATHS = {
    "chat": "chat/completions",
    "choice_logprobs": "chat/completions",
    "completions": "completions",
    "embeddings": "embeddings",
}


def _not_an_answer(texts: Any, body: dict[str, Any]) -> tuple[str, str] | None:
    """``(reason, detail)`` when the texts of a reply are no answer: none at all (``choices: []``), one
    without text (``content: null``), or one longer than ``max_tokens`` could have made."""
    if not texts or not all(isinstance(t, str) for t in texts):
        return "no answer", "a 200 reply with no answer in it (no choices, or a choice without text)"
    max_tokens = body.get("max_tokens")
    limit = CHARS_PER_TOKEN * int(max_tokens or UNBOUNDED_TOKENS)
    longest = max(map(len, texts))
    if longest > limit:
        return "answer too long", f"a reply of {longest:,} characters: more than max_tokens={max_tokens} allows"
    return None


def logsumexp(values: Sequence[float]) -> float:
    """log(sum(exp(v))) without overflow: the log-probability of any one of several disjoint outcomes."""
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _embeddings(data: Any) -> tuple[list[list[float]], int]:
    """Vectors (in input order) and prompt tokens of an embeddings answer."""
    try:
        vectors = [d["embedding"] for d in sorted(data["data"], key=lambda d: d.get("index", 0))]
        return vectors, int((data.get("usage") or {}).get("prompt_tokens") or 0)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise _Retryable("bad body", f"embeddings answer has no data[].embedding ({type(e).__name__})") from None


class _HttpxTransport:
    """httpx behind the same ``post``/``aclose`` interface (used when a proxy is configured)."""

    def __init__(self, client: Any, base_url: str):
        self.client = client
        self.base_url = base_url

    async def post(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> Any:
        import httpx

        from datamill.llm.transport import TransportConnectError, TransportError, TransportTimeout

        try:
            return await self.client.post(f"{self.base_url}/{path}", content=body, headers=dict(headers))
        except httpx.TimeoutException:
            raise TransportTimeout("timeout") from None
        except httpx.ConnectError as e:
            raise TransportConnectError(f"{type(e).__name__}: {e}") from None
        except httpx.TransportError as e:
            raise TransportError(f"{type(e).__name__}: {e}") from None

    async def aclose(self) -> None:
        await self.client.aclose()


def normalize_messages(messages: Messages, system: str | None = None) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        msgs: list[dict[str, Any]] = [{"role": "user", "content": messages}]
    else:
        msgs = [dict(m) for m in messages]
    if system is not None and not (msgs and msgs[0].get("role") == "system"):
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def run_sync(coro_fn: Callable[[LLMClient], Awaitable[Any]], config: LLMConfig | None = None, **kw: Any) -> Any:
    """Run ``coro_fn(client)`` to completion from synchronous code (operators, the CLI)."""

    async def main() -> Any:
        async with LLMClient(config, **kw) as client:
            return await coro_fn(client)

    return asyncio.run(main())


def default_cache_dir() -> Path:
    root = os.environ.get("DATAMILL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "datamill")
    return Path(root) / "llm"

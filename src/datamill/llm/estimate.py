"""Cost before spending: the LLM layer's side of ``datamill run --dry-run``.

While ``DATAMILL_DRY_RUN`` is set (:func:`datamill.pipeline.dry_run.estimate` sets it around a run into a
temporary folder), every :class:`~datamill.llm.client.LLMClient` builds each request exactly as in a real
run and looks it up in the real cache, opened read-only: a hit is a real answer and counts as one. Where a
real run would send a request, a :class:`Recorder` counts it instead — prompt tokens with the model's own
tokenizer where known (:func:`token_counter`), the completion bound from ``max_tokens`` — and answers with
a placeholder, so the step carries on as if the model had answered usefully:

- text in the prompt's language, as long as the answers the cache showed for this model (else
  ``max_tokens``), written as a numbered list of distinct items so that list parsers, length and
  similarity filters accept it;
- for a JSON schema (``response_format``), a value valid for it: every property, three items per list,
  the highest number allowed (a judge's best score keeps the record), ``true``.

A later request that quotes a placeholder (an evolved instruction, a sampled answer under a judge) is
counted as *derived* (``dry_derived``): that it exists at all, and its tokens, rest on a guessed answer.
Placeholder items carry a checksum word (:func:`quotes_placeholder`), so this is recognised in any worker
process without shared state. Nothing is sent, cached or written; no model is loaded, only its vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datamill.errors import DatamillError
from datamill.llm.cache import Cache
from datamill.llm.client import UNBOUNDED_TOKENS, LLMConfig, LLMError, Usage, default_cache_dir
from datamill.llm.prompts import detect_lang
from datamill.llm.reasoning import estimate_tokens

ENV = "DATAMILL_DRY_RUN"
PER_MESSAGE = 3  # chat framing a tokenizer without the model's template cannot see (OpenAI's count: 3 a message)
DEFAULT_ANSWER_TOKENS = 256  # the placeholder's length when max_tokens is unset and nothing was sampled
LIST_ITEMS = 3  # items in a placeholder JSON list
EMBED_DIM = 256  # placeholder embeddings: random unit vectors, near-orthogonal, so nothing looks duplicated

# Placeholder vocabularies: plain words no Self-Instruct/Evol filter rejects (no banned keyword, stop word,
# refusal or yes/no), and common CJK characters.
_WORDS = """amber basin cedar delta ember fabric garden harbor island jasmine kettle lantern meadow nectar orchard
    pebble quartz river saddle timber valley willow yarrow bakery canyon dolphin falcon glacier hammock
    iceberg jungle kiosk lagoon mango nutmeg oyster pepper quiver rocket salmon tulip urchin velvet walnut
    zebra anchor bridge candle desert engine forest guitar helmet insect jacket kitten ladder marble needle
    ocean pillow rabbit silver tomato violin window almond barley copper dragon feather ginger hazel indigo
    juniper lemon maple olive parrot radish spruce thistle banner cobalt dune fennel granite harvest ivory
    lotus mosaic nickel opal pistachio ribbon sesame tunnel vessel wagon canoe cricket domino emerald fjord
    goblet hollow jigsaw kernel locket mitten nomad orbit paddle quill rover sketch trumpet umber vapor"""
WORDS = tuple(_WORDS.split())
ZH_CHARS = (
    "春夏秋冬山水云雨风花草木石竹松梅兰菊江河湖海星月日光桥船车灯纸笔书画茶酒米麦豆果鱼"
    "鸟马牛羊虎龙凤林田园村城街楼窗门墙歌舞琴棋诗词红黄蓝绿白金银铜铁玉珠丝布衣帽鞋伞镜钟"
)
_WORD_SET = frozenset(WORDS)
_ZH_SET = frozenset(ZH_CHARS)
_LATIN = re.compile(r"[a-z]+")
CHECK_AFTER = 5  # words (characters) before the checksum


def _check(alphabet: str | tuple[str, ...], run: list[str], n: int) -> list[str]:
    digest = hashlib.blake2b(" ".join(run).encode(), digest_size=4).digest()
    return [alphabet[digest[i] % len(alphabet)] for i in range(n)]


def quotes_placeholder(text: str) -> bool:
    """Whether ``text`` contains a placeholder item: five vocabulary words followed by their checksum word
    (in Chinese five characters and two checksum characters): a run of five vocabulary words in real text
    is rare, and then matches by a chance of 1 in 120 (in Chinese 1 in 7,000)."""
    words = _LATIN.findall(text.lower())
    for i in range(len(words) - CHECK_AFTER):
        run = words[i : i + CHECK_AFTER]
        if all(w in _WORD_SET for w in run) and words[i + CHECK_AFTER] == _check(WORDS, run, 1)[0]:
            return True
    chars = [c for c in text if not c.isspace()] if any(c in _ZH_SET for c in text) else []
    for i in range(len(chars) - CHECK_AFTER - 1):
        run = chars[i : i + CHECK_AFTER]
        if all(c in _ZH_SET for c in run) and chars[i + CHECK_AFTER : i + CHECK_AFTER + 2] == _check(ZH_CHARS, run, 2):
            return True
    return False


def _item(rng: np.random.Generator, lang: str) -> str:
    """One placeholder item: a checksummed run, then more of the same vocabulary."""
    if lang == "zh":
        run = [ZH_CHARS[i] for i in rng.integers(len(ZH_CHARS), size=CHECK_AFTER)]
        tail = [ZH_CHARS[i] for i in rng.integers(len(ZH_CHARS), size=7)]
        return "".join(run + _check(ZH_CHARS, run, 2) + tail) + "。"
    run = [WORDS[i] for i in rng.integers(len(WORDS), size=CHECK_AFTER)]
    tail = [WORDS[i] for i in rng.integers(len(WORDS), size=6)]
    text = " ".join(run + _check(WORDS, run, 1) + tail)
    return text[0].upper() + text[1:] + "."


def placeholder_text(key: Any, lang: str, tokens: int, count: Callable[[str], int]) -> str:
    """A numbered list of distinct items about ``tokens`` long (by ``count``), the same for the same ``key``."""
    rng = _rng(key)
    first = _item(rng, lang)
    n = max(1, math.ceil(tokens / max(1, count(f"1. {first}\n"))))
    items = [first, *(_item(rng, lang) for _ in range(n - 1))]
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))


def _rng(key: Any) -> np.random.Generator:
    blob = json.dumps(key, sort_keys=True, ensure_ascii=False, default=str).encode()
    return np.random.default_rng(int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "big"))


def schema_instance(schema: dict[str, Any], rng: np.random.Generator, lang: str, root: dict | None = None) -> Any:
    """A value valid for ``schema`` that keeps a record going: every property, ``LIST_ITEMS`` per list
    (within its bounds), the highest number (or numeric enum member) allowed, ``true``, the first string
    choice, placeholder items as strings."""
    root = root or schema
    if "$ref" in schema:  # pydantic's nested models: "#/$defs/Name"
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return schema_instance(target, rng, lang, root)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return schema_instance(options[0], rng, lang, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        numbers = [v for v in schema["enum"] if isinstance(v, int | float) and not isinstance(v, bool)]
        return max(numbers) if numbers else schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {name: schema_instance(sub, rng, lang, root) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        n = min(max(LIST_ITEMS, schema.get("minItems", 0)), schema.get("maxItems", LIST_ITEMS))
        return [schema_instance(schema.get("items") or {}, rng, lang, root) for _ in range(n)]
    if kind in ("integer", "number"):
        if "maximum" in schema:
            top = schema["maximum"]
        elif "exclusiveMaximum" in schema:
            top = schema["exclusiveMaximum"] - 1
        else:
            top = schema.get("minimum", 1)
        return int(top) if kind == "integer" else float(top)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = _item(rng, lang)
    return text[: schema["maxLength"]] if "maxLength" in schema else text


# ---- token counting -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenCounter:
    """How a request's prompt tokens are counted. ``kind``: ``model`` (the embedded model's own tokenizer on
    the very prompt it gets), ``tokenizer`` (a real tokenizer on the messages, plus ``PER_MESSAGE`` framing)
    or ``estimate`` (no tokenizer: CJK characters count one, other text four characters a token)."""

    name: str
    kind: str
    chat: Callable[[list[dict[str, Any]]], int]
    text: Callable[[str], int]


def _framed(count: Callable[[str], int]) -> Callable[[list[dict[str, Any]]], int]:
    return lambda msgs: sum(count(str(m.get("content") or "")) + PER_MESSAGE for m in msgs) + PER_MESSAGE


ESTIMATE_NAME = "estimate: 4 characters a token, 1 a CJK character"


def _estimate(why: str = "") -> TokenCounter:
    name = f"{ESTIMATE_NAME} (+{PER_MESSAGE} a message)" + (f"; {why}" if why else "")
    return TokenCounter(name, "estimate", _framed(estimate_tokens), estimate_tokens)


def _gguf(path: Path) -> TokenCounter:
    """The embedded model's vocabulary (no weights), counting what ``EmbeddedModel.complete`` counts: the
    chat frame the base model is shown, with BOS and special tokens."""
    import llama_cpp

    from datamill.llm.embedded import EmbeddedModel, _quiet_llama_logs, close_at_exit

    _quiet_llama_logs()
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    close_at_exit(vocab)

    def text(prompt: str) -> int:
        return len(vocab.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))

    return TokenCounter(
        f"{path.name} vocabulary, on the chat frame the model gets", "model",
        lambda msgs: text(EmbeddedModel.chat_prompt(msgs)[0]), text,
    )  # fmt: skip


def _tiktoken(name: str) -> TokenCounter:
    """Raises :class:`DatamillError` when tiktoken is not installed, does not know ``name`` or cannot load its
    BPE file (it downloads them: offline, only what its cache holds)."""
    try:
        import tiktoken

        try:
            enc = tiktoken.get_encoding(name)
        except ValueError:
            enc = tiktoken.encoding_for_model(name)
    except Exception as e:  # ImportError, KeyError for an unknown model, network errors
        raise DatamillError(f"tiktoken cannot load {name} ({type(e).__name__}: {e})") from None

    def count(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    return TokenCounter(f"tiktoken {enc.name} (+{PER_MESSAGE} a message)", "tokenizer", _framed(count), count)


_COUNTERS: dict[tuple, TokenCounter] = {}
_COUNTERS_LOCK = threading.Lock()


def token_counter(config: LLMConfig) -> TokenCounter:
    """The counter for ``config``'s requests (one per process and setting): ``tokenizer`` when configured
    (``tiktoken:NAME``, or a tokenizer.json / folder / .gguf as ``count_tokens`` takes), else the embedded
    model's vocabulary, else tiktoken for the model's name when it can load it, else the estimate. One that
    cannot be loaded falls back to the estimate, whose name says why (a real run needs no tokenizer)."""
    key = (config.backend, config.model, config.model_path, config.tokenizer)
    with _COUNTERS_LOCK:
        if key not in _COUNTERS:
            _COUNTERS[key] = _load_counter(config)
        return _COUNTERS[key]


def _load_counter(config: LLMConfig) -> TokenCounter:
    spec = config.tokenizer
    try:
        if spec is not None and spec.startswith("tiktoken:"):
            return _tiktoken(spec.removeprefix("tiktoken:"))
        if spec is not None:
            from datamill.select.tokenizer import get_tokenizer  # the loader count_tokens and the report use

            tok = get_tokenizer(spec)
            return TokenCounter(f"{tok.name} (+{PER_MESSAGE} a message)", "tokenizer", _framed(tok.count), tok.count)
    except DatamillError as e:
        return _estimate(f"llm.tokenizer {spec} could not be loaded: {e}")
    if config.backend == "embedded":
        try:
            import llama_cpp  # noqa: F401

            from datamill.llm.embedded import default_model_path

            return _gguf(Path(config.model_path) if config.model_path else default_model_path())
        except (ImportError, DatamillError) as e:
            return _estimate(f"the embedded model is not usable here: {e}")
    try:
        return _tiktoken(config.model)
    except DatamillError:
        return _estimate()


# ---- the cache, read-only -----------------------------------------------------------------------------
class ReadOnlyCache(Cache):
    """The real cache opened read-only (a missing file is an empty cache, not a new one); ``seen`` gets each
    hit, the answers that sample how long this model's answers are."""

    def __init__(self, directory: str | Path | None, seen: Callable[[dict[str, Any]], None]):
        self.dir = Path(directory) if directory else default_cache_dir()
        self.path = self.dir / "cache.sqlite"
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._seen = seen

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # without a -wal file every entry is in the main file, which immutable=1 reads without creating
            # the -shm/-wal files a WAL reader otherwise makes; with one (a writer is at work), a plain read
            wal = self.path.with_name(self.path.name + "-wal").exists()
            uri = f"{self.path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            hit = super().get(key)
        except sqlite3.OperationalError:  # no table yet, or locked by a writer past the timeout
            return None
        if hit is not None:
            self._seen(hit)
        return hit

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Nothing is stored: a placeholder is no answer."""


# ---- the recorder -------------------------------------------------------------------------------------
@dataclass
class DryUsage(Usage):
    """A dry run's usage. The base counters mean what they do in a real run, for the requests that would be
    sent: ``prompt_tokens`` counted (see ``TokenCounter``), ``completion_tokens`` the bound ``max_tokens`` × n
    sets; the rest is what the estimate needs to say how sure it is."""

    dry_derived: int = 0  # sent requests that quote a placeholder answer
    dry_structured: int = 0  # sent requests with a response_format (an invalid answer would add a re-ask)
    dry_unbounded: int = 0  # sent requests without max_tokens (bounded by the context or 32,768 tokens)
    dry_over_context: int = 0  # embedded: prompts that do not fit n_ctx (the real run drops their records)
    dry_sample: int = 0  # cache hits with a completion: the sample of answer lengths
    dry_sample_completion_tokens: int = 0


# answer lengths seen in the cache, per model setting: (choices, completion tokens) — placeholders follow them
_SAMPLES: dict[str, list[int]] = {}


def reset_samples() -> None:
    _SAMPLES.clear()


class Recorder:
    """Stands in for the network and the model in one dry-run client (see the module docstring)."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self.counter = token_counter(config)
        self.usage = DryUsage()
        self._sample_key = config.model_dump_json(include={"backend", "base_url", "model", "model_path"})

    def cache(self, directory: str | Path | None = None) -> ReadOnlyCache:
        """The cache in ``directory`` (default: the config's), read-only."""
        return ReadOnlyCache(directory or self.config.cache_dir, self._seen)

    def _seen(self, hit: dict[str, Any]) -> None:
        if "completion_tokens" in hit and hit.get("texts"):
            self.usage.dry_sample += 1
            self.usage.dry_sample_completion_tokens += int(hit["completion_tokens"])
            seen = _SAMPLES.setdefault(self._sample_key, [0, 0])
            seen[0] += len(hit["texts"])
            seen[1] += int(hit["completion_tokens"])

    def _answer_tokens(self, max_tokens: int | None) -> int:
        """The placeholder's length: the mean cached answer of this model, else ``max_tokens``."""
        choices, tokens = _SAMPLES.get(self._sample_key, (0, 0))
        target = round(tokens / choices) if choices else max_tokens or DEFAULT_ANSWER_TOKENS
        return max(1, min(target, max_tokens or target))

    def reply(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI-style body a server could have answered ``body`` with; counts the request."""
        u = self.usage
        if kind == "embeddings":
            texts = [str(t) for t in body.get("input") or []]
            vectors = [_rng(t).standard_normal(EMBED_DIM) for t in texts]
            data = [{"index": i, "embedding": (v / np.linalg.norm(v)).tolist()} for i, v in enumerate(vectors)]
            return {"data": data, "usage": {"prompt_tokens": sum(self.counter.text(t) for t in texts)}}
        messages = body.get("messages")
        shown = " ".join(str(m.get("content") or "") for m in messages) if messages else str(body.get("prompt") or "")
        prompt_tokens = self.counter.chat(messages) if messages is not None else self.counter.text(shown)
        if quotes_placeholder(shown):
            u.dry_derived += 1
        room = self.config.n_ctx - prompt_tokens if self.config.backend == "embedded" else UNBOUNDED_TOKENS
        if room < 8 and self.counter.kind == "model":  # what EmbeddedModel.complete refuses
            u.dry_over_context += 1
            u.failures += 1
            raise LLMError(
                f"embedded model failed: the prompt has {prompt_tokens} tokens; the context holds "
                f"{self.config.n_ctx} (raise n_ctx)",
                "embedded",
            )
        if kind == "choice_logprobs":  # one token; every choice equally likely (a tie)
            top = {"logprobs": {"content": [{"top_logprobs": [{"token": "", "logprob": 0.0}]}]}}
            return {"choices": [top], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1}}
        max_tokens = body.get("max_tokens")
        u.dry_unbounded += max_tokens is None
        u.dry_structured += bool(body.get("response_format"))
        n = int(body.get("n") or 1)
        bound = min(int(max_tokens or room), room)
        texts = [self._placeholder(body, shown, i, min(bound, self._answer_tokens(max_tokens))) for i in range(n)]
        choices = [{"message": {"role": "assistant", "content": t}, "text": t, "finish_reason": "stop"} for t in texts]
        return {"choices": choices, "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": bound * n}}

    def _placeholder(self, body: dict[str, Any], shown: str, choice: int, tokens: int) -> str:
        lang = detect_lang(shown)
        key = [body, choice]
        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
        if schema is None:
            text = placeholder_text(key, lang, tokens, self.counter.text)
        else:
            text = json.dumps(schema_instance(schema, _rng(key), lang), ensure_ascii=False)
        return _cut(text, body.get("max_tokens"), self.counter.text)


def _cut(text: str, max_tokens: int | None, count: Callable[[str], int]) -> str:
    """``text`` cut where a model stopped by ``max_tokens`` would have stopped (a JSON answer that long is
    broken there, and re-asked, as in a real run)."""
    if not max_tokens or count(text) <= max_tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix within max_tokens
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if count(text[:mid]) <= max_tokens else (lo, mid - 1)
    return text[:lo]


# ---- arithmetic ---------------------------------------------------------------------------------------
def cost(prompt_tokens: float, completion_tokens: float, config: LLMConfig) -> float | None:
    """What the tokens cost at ``config``'s prices per million (None when it names none)."""
    if config.price is None and config.price_prompt_per_1m is None and config.price_completion_per_1m is None:
        return None
    price_in, price_out = config.prices()
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1e6


def bucket_seconds(amount: float, per_minute: float | None) -> float:
    """Seconds a token bucket of ``per_minute`` that starts full (as the client's do) takes to let ``amount``
    through: the first minute's worth at once, the rest at ``per_minute / 60`` a second."""
    if not per_minute or amount <= per_minute:
        return 0.0
    return (amount - per_minute) * 60.0 / per_minute

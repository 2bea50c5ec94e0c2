"""``datamill llm serve``: the embedded model behind a local OpenAI-compatible HTTP server.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` and, when
the local embedding model is installed, ``POST /v1/embeddings``; ``GET /health``. No streaming.
Standard library only (``http.server``); it binds 127.0.0.1 unless told otherwise. Requests are
served on threads; the model itself runs one generation at a time.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("datamill.llm.server")
MAX_BODY = 16 * 1024 * 1024
SAMPLING = ("max_tokens", "temperature", "top_p", "n", "seed", "stop", "response_format")


class _BadRequest(Exception):
    pass


def _params(body: dict[str, Any]) -> dict[str, Any]:
    out = {k: body[k] for k in SAMPLING if body.get(k) is not None}
    if "max_completion_tokens" in body and "max_tokens" not in out:
        out["max_tokens"] = body["max_completion_tokens"]
    for k, typ in (("max_tokens", int), ("n", int), ("seed", int), ("temperature", float), ("top_p", float)):
        if k in out and (not isinstance(out[k], int | float) or isinstance(out[k], bool)):
            raise _BadRequest(f"'{k}' must be a number")
        if k in out:
            out[k] = typ(out[k])
    if out.get("n", 1) > 8 or out.get("n", 1) < 1:
        raise _BadRequest("'n' must be between 1 and 8")
    return out


class Handler(BaseHTTPRequestHandler):
    server: LLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet by default; never logs headers
        log.info("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            models = [{"id": self.server.model_id, "object": "model", "created": 0, "owned_by": "datamill"}]
            if self.server.embedder is not None:
                models.append(
                    {"id": self.server.embedder.name, "object": "model", "created": 0, "owned_by": "datamill"}
                )
            self._send(200, {"object": "list", "data": models})
        elif path == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._error(404, f"no route GET {path}")

    def do_POST(self) -> None:
        path = self.path.split("?")[0].rstrip("/").removeprefix("/v1")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise _BadRequest(f"request body over {MAX_BODY} bytes")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError as e:
                raise _BadRequest(f"request body is not JSON: {e}") from None
            if not isinstance(body, dict):
                raise _BadRequest("request body must be a JSON object")
            if body.get("stream"):
                raise _BadRequest("streaming is not supported by datamill llm serve")
            if path == "/chat/completions":
                self._send(200, self._chat(body))
            elif path == "/completions":
                self._send(200, self._completions(body))
            elif path == "/embeddings":
                self._send(200, self._embeddings(body))
            else:
                self._error(404, f"no route POST {self.path}")
        except _BadRequest as e:
            self._error(400, str(e))
        except Exception as e:  # the model failed: tell the client, keep serving
            log.exception("request failed")
            self._error(500, f"{type(e).__name__}: {e}", "server_error")

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise _BadRequest("'messages' must be a non-empty list of {role, content} objects")
        for m in messages:
            if isinstance(m.get("content"), list):  # OpenAI content parts: keep the text parts
                m["content"] = "".join(p.get("text", "") for p in m["content"] if isinstance(p, dict))
        params = _params(body)
        with self.server.model_lock:
            out = self.server.backend.chat(messages, **params)
        choices = [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": f or "stop"}
            for i, (t, f) in enumerate(zip(out.texts, out.finish_reasons, strict=True))
        ]
        return self._envelope("chat.completion", choices, out)

    def _completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise _BadRequest("'prompt' must be a string or a list of strings")
        params = _params(body)
        choices, pt, ct, last = [], 0, 0, None
        for p in prompts:
            with self.server.model_lock:
                last = self.server.backend.complete(p, **params)
            for t, f in zip(last.texts, last.finish_reasons, strict=True):
                choices.append({"index": len(choices), "text": t, "finish_reason": f or "stop", "logprobs": None})
            pt += last.prompt_tokens
            ct += last.completion_tokens
        last.prompt_tokens, last.completion_tokens = pt, ct
        return self._envelope("text_completion", choices, last)

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.server.embedder is None:
            raise _BadRequest("no embedding model here: install 'datamill[llm]' and start with --embeddings")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise _BadRequest("'input' must be a string or a list of strings")
        with self.server.embed_lock:
            vectors = self.server.embedder.embed(texts)
        data = [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]} for i, v in enumerate(vectors)]
        tokens = sum(len(t.split()) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": self.server.embedder.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _envelope(self, obj: str, choices: list[dict[str, Any]], out: Any) -> dict[str, Any]:
        return {
            "id": f"{'chatcmpl' if obj == 'chat.completion' else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "object": obj,
            "created": int(time.time()),
            "model": self.server.model_id,
            "choices": choices,
            "usage": {
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "total_tokens": out.prompt_tokens + out.completion_tokens,
            },
        }


class LLMServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], backend: Any, model_id: str, embedder: Any = None):
        import threading

        super().__init__(address, Handler)
        self.backend = backend
        self.model_id = model_id
        self.embedder = embedder
        self.model_lock = threading.Lock()
        self.embed_lock = threading.Lock()


def make_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    backend: Any = None,
    model_path: str | None = None,
    n_ctx: int = 2048,
    n_threads: int | None = None,
    embedder: Any = None,
) -> LLMServer:
    """A server for ``backend`` (anything with ``chat(messages, **p)``/``complete(prompt, **p)``
    returning a Completion); default: the embedded Gemma model."""
    from datamill.llm.embedded import MODEL_ID, EmbeddedModel

    if backend is None:
        backend = EmbeddedModel(model_path, n_ctx, n_threads)
    return LLMServer((host, port), backend, MODEL_ID, embedder)


__all__ = ["HTTPStatus", "LLMServer", "make_server"]

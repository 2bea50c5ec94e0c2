"""A small OpenAI-compatible HTTP server on 127.0.0.1 that misbehaves on purpose (LLM-layer tests).

``FakeLLM.script`` is a list of behaviours used one per request, in order; when it runs out every
request gets ``route(body)`` when ``route`` (a function of the request body) is set, else ``default``.
A behaviour is one of:

- ``"ok"``: a valid answer (chat: ``reply`` — a string, or a function of the request body that returns
  one — or an echo of the last user message; completions; embeddings)
- ``("text", s)``: a valid chat answer whose content is ``s``
- ``("message", fields, extra)``: a chat answer whose message is ``{"role": "assistant", **fields}`` — e.g.
  ``{"content": None, "reasoning_content": "…"}`` as a reasoning server sends it; ``extra`` (optional)
  sets ``finish_reason`` (default ``"stop"``) and ``usage`` (default: 7 prompt + 3 completion tokens)
- ``("status", code, headers, body)``: that HTTP status (e.g. 429 with Retry-After, 500)
- ``"hang"``: no answer until the server stops (past any client timeout)
- ``"drop"``: close the connection without an answer
- ``"badjson"``: 200 with a body that is not JSON
- ``"nochoices"``: 200 with JSON that has no ``choices``

A chat request with ``logprobs: true`` gets ``choices[0].logprobs.content[0].top_logprobs`` from
``FakeLLM.logprobs`` (a list of ``{"token", "logprob"}``, or a function of the request body returning
one) when that is set; otherwise the answer has no logprobs, as from a server that does not support them.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        fake = self.server.fake
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        with fake.lock:
            fake.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            behaviour = fake.script.pop(0) if fake.script else fake.route(body) if fake.route else fake.default
        if behaviour == "hang":
            fake.stop_event.wait(30)
            return
        if behaviour == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if behaviour == "badjson":
            return self._json(200, b'{"choices": [ this is not json')
        if behaviour == "nochoices":
            return self._json(200, {"object": "chat.completion", "result": "?"})
        if isinstance(behaviour, tuple) and behaviour[0] == "status":
            _, code, headers, payload = behaviour
            return self._json(code, payload if isinstance(payload, bytes) else {"error": {"message": payload}}, headers)
        if isinstance(behaviour, tuple) and behaviour[0] == "message":
            fields, extra = behaviour[1], (behaviour[2] if len(behaviour) > 2 else {})
            message = {"role": "assistant", **fields}
            choice = {"index": 0, "message": message, "finish_reason": extra.get("finish_reason", "stop")}
            return self._answer(body, choice, extra.get("usage", USAGE))
        text = behaviour[1] if isinstance(behaviour, tuple) else None
        if self.path.endswith("/embeddings"):
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"index": i, "embedding": [float(len(t)), 1.0, float(i)]} for i, t in enumerate(inputs)]
            return self._json(200, {"data": data, "usage": {"prompt_tokens": len(inputs)}})
        if self.path.endswith("/chat/completions"):
            last = [m for m in body.get("messages", []) if m.get("role") == "user"][-1]["content"]
            reply = fake.reply(body) if callable(fake.reply) else fake.reply
            content = text if text is not None else (reply if reply is not None else f"echo: {last}")
            choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            if body.get("logprobs") and fake.logprobs is not None:
                top = fake.logprobs(body) if callable(fake.logprobs) else fake.logprobs
                choice["logprobs"] = {"content": [{**top[0], "top_logprobs": top}]}
        else:
            choice = {"index": 0, "text": text or f"completion of: {body.get('prompt')}", "finish_reason": "stop"}
        self._answer(body, choice, USAGE)

    def _answer(self, body: dict[str, Any], choice: dict[str, Any], usage: dict[str, Any]) -> None:
        self._json(
            200,
            {
                "id": "x",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [choice] * int(body.get("n") or 1),
                "usage": usage,
            },
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeLLM


class FakeLLM:
    def __init__(
        self,
        script: list | None = None,
        default: Any = "ok",
        reply: Any = None,
        port: int = 0,
        logprobs: Any = None,
        route: Callable[[dict[str, Any]], Any] | None = None,
    ):
        self.script = list(script or [])
        self.default = default
        self.route = route
        self.reply = reply
        self.logprobs = logprobs
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.fake = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        return len(self.requests)

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

"""A small HTTP/1.1 keep-alive transport for the LLM client: h11 (the parser httpx itself uses) over
asyncio streams, with a plain LIFO pool of idle connections.

Why not just httpx: its connection pool scans every connection on every request, so throughput
*falls* as concurrency rises (on 2 cores, 64 requests in flight against a 50 ms server: ~70 req/s
instead of ~1,200; see benchmarks/llm_client.py). This transport keeps one connection per
in-flight request (the client's semaphore bounds them) and does no per-request scanning.

It only POSTs JSON and reads whole responses (no streaming). TLS uses the default SSL context.
The client falls back to httpx when a proxy is configured in the environment (``transport: auto``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11


class TransportTimeout(Exception):
    pass


class TransportError(Exception):
    pass


class TransportConnectError(TransportError):
    """No connection could be opened (refused, unknown host): nothing is listening there."""


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class _Conn:
    __slots__ = ("reader", "writer", "h11")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.writer.close()


class FastTransport:
    def __init__(self, base_url: str, timeout: float, connect_timeout: float, headers: dict[str, str] | None = None):
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port]/path, got {base_url!r}")
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if u.scheme == "https" else None
        self.prefix = u.path.rstrip("/")
        default_port = self.port == (443 if u.scheme == "https" else 80)
        host_header = self.host if default_port else f"{self.host}:{self.port}"
        if ":" in self.host and not default_port:  # IPv6 literal
            host_header = f"[{self.host}]:{self.port}"
        self.base_headers = [("Host", host_header), ("User-Agent", "datamill"), ("Accept", "application/json")]
        self.base_headers += list((headers or {}).items())
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.idle: list[_Conn] = []
        self.closed = False

    async def _open(self) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None, limit=2**20
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise TransportTimeout(f"connect timed out after {self.connect_timeout:g}s") from None
        except OSError as e:
            raise TransportConnectError(f"cannot connect to {self.host}:{self.port}: {e.strerror or e}") from None
        return _Conn(reader, writer)

    def _take_idle(self) -> _Conn | None:
        while self.idle:
            conn = self.idle.pop()
            # the server may have closed a kept-alive connection meanwhile: the loop has seen its EOF
            if conn.reader.at_eof() or conn.writer.is_closing() or conn.reader._buffer:
                conn.close()
                continue
            return conn
        return None

    async def post(self, path: str, body: bytes, headers: list[tuple[str, str]]) -> Response:
        """POST ``body`` to ``prefix + path``; raises TransportTimeout or TransportError (the caller
        retries: every try is counted there)."""
        conn = self._take_idle() or await self._open()
        try:
            resp = await asyncio.wait_for(self._roundtrip(conn, f"{self.prefix}/{path}", body, headers), self.timeout)
        except TimeoutError:
            conn.close()
            raise TransportTimeout(f"no answer within {self.timeout:g}s") from None
        except (OSError, h11.ProtocolError, asyncio.IncompleteReadError, EOFError) as e:
            conn.close()
            raise TransportError(_describe(e)) from None
        except BaseException:
            conn.close()
            raise
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE and not self.closed:
            conn.h11.start_next_cycle()
            self.idle.append(conn)
        else:
            conn.close()
        return resp

    async def _roundtrip(self, conn: _Conn, target: str, body: bytes, headers: list[tuple[str, str]]) -> Response:
        h = conn.h11
        hdrs = [*self.base_headers, *headers, ("Content-Length", str(len(body)))]
        conn.writer.write(h.send(h11.Request(method="POST", target=target, headers=hdrs)) + h.send(h11.Data(data=body)))
        h.send(h11.EndOfMessage())
        await conn.writer.drain()
        status, resp_headers, chunks = 0, {}, []
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                h.receive_data(await conn.reader.read(65536))  # b"" = the peer closed; h11 raises if that is premature
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                resp_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, resp_headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("server closed the connection")
            # h11.InformationalResponse (100 Continue): keep reading

    async def aclose(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().close()


def _describe(e: BaseException) -> str:
    if isinstance(e, h11.RemoteProtocolError | EOFError | asyncio.IncompleteReadError):
        return "server disconnected without a complete answer"
    if isinstance(e, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(e, OSError):
        return f"connection error: {e.strerror or e}"
    return f"{type(e).__name__}: {e}"


def proxy_configured() -> bool:
    import urllib.request

    return bool({k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https", "all")})


__all__ = ["FastTransport", "Response", "TransportError", "TransportTimeout", "proxy_configured"]

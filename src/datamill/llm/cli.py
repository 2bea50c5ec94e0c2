"""``datamill llm``: serve the embedded model, chat with any model, list prompt templates."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from datamill.errors import DatamillError

llm_app = typer.Typer(
    help="The LLM layer: a local OpenAI-compatible server for the embedded model, a quick chat, prompts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@llm_app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one and prints it).")] = 8000,
    model_path: Annotated[str | None, typer.Option(help="A .gguf file (default: the shipped Gemma 3 270M).")] = None,
    n_ctx: Annotated[int, typer.Option(help="Context length in tokens.")] = 2048,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: half the cores).")] = None,
    embeddings: Annotated[
        bool, typer.Option("--embeddings/--no-embeddings", help="Also serve /v1/embeddings (local MiniLM).")
    ] = False,
) -> None:
    """Serve the embedded model as an OpenAI-compatible API: /v1/chat/completions, /v1/completions, /v1/models."""
    from datamill.llm.server import make_server

    try:
        embedder = None
        if embeddings:
            from datamill.llm.embeddings import LocalEmbedder

            embedder = LocalEmbedder()
            embedder.dim  # load now: fail at start, not on the first request  # noqa: B018
        server = make_server(host, port, model_path=model_path, n_ctx=n_ctx, n_threads=threads, embedder=embedder)
    except (DatamillError, OSError) as e:
        _fail(str(e))
    h, p = server.server_address[:2]
    # one machine-readable line on stdout (tests and scripts read the port from it), the rest on stderr
    print(f"serving {server.model_id} on http://{h}:{p}/v1", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print("[yellow]warning:[/] listening beyond loopback; this server has no authentication")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@llm_app.command("chat")
def chat_cmd(
    message: Annotated[str, typer.Argument(help="What to say ('-' reads standard input).")],
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="An OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (default: embedded)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name at the endpoint.")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="NAME of the env var holding the API key.")] = None,
    max_tokens: Annotated[int, typer.Option(help="Longest answer in tokens.")] = 128,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    retries: Annotated[int, typer.Option(help="Retries on 429/5xx/timeouts/connection errors.")] = 5,
    timeout: Annotated[float, typer.Option(help="Seconds for one try.")] = 60.0,
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Use the disk cache.")] = True,
    usage: Annotated[bool, typer.Option("--usage", help="Print token usage as JSON on stderr.")] = False,
) -> None:
    """Send one message and print the answer (the embedded model unless --base-url is given)."""
    from datamill.llm.client import LLMClient, LLMConfig, run_sync

    if message == "-":
        message = sys.stdin.read()
    settings: dict = {
        "backend": "openai" if base_url else "embedded",
        "max_tokens": max_tokens,
        "cache": cache,
        "max_retries": retries,
        "timeout": timeout,
    }
    for k, v in (("base_url", base_url), ("model", model), ("api_key_env", api_key_env)):
        if v is not None:
            settings[k] = v
    if temperature is not None:
        settings["temperature"] = temperature
    if seed is not None:
        settings["seed"] = seed
    try:
        config = LLMConfig(**settings)
    except ValueError as e:
        _fail(str(e).splitlines()[0] if "api_key_env" not in str(e) else "api_key_env must be a variable NAME")

    async def go(client: LLMClient):
        return await client.chat(message, system=system), client.usage

    try:
        answer, used = run_sync(go, config)
    except DatamillError as e:
        _fail(str(e))
    out.print(answer.text, highlight=False, markup=False)
    if usage:
        print(json.dumps(used.to_dict()), file=sys.stderr)


@llm_app.command("prompts")
def prompts_cmd(
    name: Annotated[str | None, typer.Argument(help="Show one template's text.")] = None,
    lang: Annotated[str, typer.Option(help="en or zh.")] = "en",
) -> None:
    """List the shipped prompt templates, or print one."""
    from datamill.llm import prompts

    if name is None:
        for n, langs in prompts.available().items():
            out.print(f"{n:14} {', '.join(langs)}", highlight=False)
        return
    try:
        path = prompts.resolve(name, lang)
    except DatamillError as e:
        _fail(str(e))
    out.print(path.read_text(encoding="utf-8"), highlight=False, markup=False)

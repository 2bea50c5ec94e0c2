"""``datamill prefs …``: reports over judged preference data (wired into the main CLI as a sub-app)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import orjson
import typer

from datamill.errors import DatamillError
from datamill.prefs.judge import agreement

prefs_app = typer.Typer(help="Preference data: judge reports.", no_args_is_help=True)


@prefs_app.callback()
def _group() -> None:
    """Preference data: judge reports (a group, so ``prefs agreement`` keeps its name)."""


def judgments_in(path: Path) -> list[dict]:
    """Every pairwise judgment recorded in a run's output folder (``data-*.jsonl`` written with the
    ``datamill`` format, and ``dropped.jsonl``, where make_pairs leaves the judged records) or in one
    JSONL file; each judged record counted once."""
    files = sorted(path.glob("data-*.jsonl")) + [path / "dropped.jsonl"] if path.is_dir() else [path]
    seen: set[str] = set()
    out: list[dict] = []
    for f in files:
        if not f.exists():
            continue
        for n, line in enumerate(f.open("rb"), 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise DatamillError(f"{f}:{n}: not JSON ({e})") from None
            rec = row.get("record", row) if isinstance(row, dict) else {}
            meta = rec.get("meta") if isinstance(rec, dict) else None
            if not isinstance(meta, dict) or not isinstance(meta.get("judgments"), list):
                continue
            key = str(rec.get("id") or f"{f}:{n}")
            if key not in seen:
                seen.add(key)
                out += [j for j in meta["judgments"] if isinstance(j, dict)]
    return out


@prefs_app.command("agreement")
def agreement_command(
    path: Annotated[Path, typer.Argument(help="a run's output folder, or a JSONL of judged records")],
    better: Annotated[str, typer.Option(help="the model the prior says is better")],
    worse: Annotated[str, typer.Option(help="the model the prior says is worse")],
) -> None:
    """How often the pairwise judge agreed with the prior "BETTER beats WORSE" (JSON on stdout)."""
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist")
    try:
        report = agreement(judgments_in(path), better, worse)
    except DatamillError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(report, ensure_ascii=False))

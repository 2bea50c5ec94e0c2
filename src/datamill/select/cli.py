"""``datamill select FILE -n N -o OUT``: the ``select`` operator on one file, outside a recipe."""

from __future__ import annotations

from typing import Annotated

import typer

from datamill.errors import DatamillError
from datamill.record import Record
from datamill.select.choose import Select


def select_file(
    src: str,
    dst: str,
    n: int,
    to: str | None = None,
    quota_by: str | None = None,
    quotas: dict[str, int] | None = None,
    quality_key: str | None = "quality_score",
    part: str = "prompt",
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, int]:
    """Select ``n`` records of one file into another (the ``datamill select`` command)."""
    import tempfile
    from pathlib import Path

    import datamill
    from datamill.io import outputs
    from datamill.ops.base import OpContext

    outputs.check_replace(Path(dst), overwrite)  # before the work, not after it

    config = Select.Config(n=n, part=part, quality_key=quality_key, quota_by=quota_by, quotas=quotas or {})
    read = list(datamill.read(src))
    good = [r for r in read if isinstance(r, Record)]
    with tempfile.TemporaryDirectory(prefix="datamill-select-") as tmp:
        op = Select(config, OpContext(seed=seed, step=0, workdir=Path(tmp)))
        kept = [r for r in op.run(good) if isinstance(r, Record)]
    written = datamill.write(kept, dst, to or "datamill", overwrite=overwrite)
    return {"read": len(read), "quarantined": len(read) - len(good), "selected": written}


def select_command(
    src: Annotated[str, typer.Argument(help="input dataset file")],
    n: Annotated[int, typer.Option("-n", "--n", help="records to keep")],
    out: Annotated[str, typer.Option("-o", "--out", help="output file")],
    to: Annotated[str, typer.Option("--to", help="output format")] = "datamill",
    quota_by: Annotated[str | None, typer.Option(help="meta field the quotas count, e.g. lang")] = None,
    quota: Annotated[list[str] | None, typer.Option(help="VALUE=COUNT, repeatable")] = None,
    quality_key: Annotated[str, typer.Option(help="meta field with a quality score")] = "quality_score",
    part: Annotated[str, typer.Option(help="text embedded: prompt | answer | all | text")] = "prompt",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file datamill did not write.")] = False,
) -> None:
    """Keep N records by quality × diversity (k-center greedy on MiniLM embeddings), with quotas."""
    quotas: dict[str, int] = {}
    for item in quota or []:
        value, sep, count = item.rpartition("=")
        if not sep or not count.isdigit():
            raise typer.BadParameter(f"--quota {item!r}: expected VALUE=COUNT, e.g. zh=500")
        quotas[value] = int(count)
    try:
        summary = select_file(src, out, n, to, quota_by, quotas, quality_key, part, overwrite=overwrite)
    except DatamillError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{summary['selected']} of {summary['read']} records selected → {out}"
        + (f" ({summary['quarantined']} unreadable, skipped)" if summary["quarantined"] else "")
    )

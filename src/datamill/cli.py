"""The ``datamill`` command. Every command calls the same functions as the Python API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from datamill import __version__, formats, ops, validate
from datamill.clean.cli import quality_app
from datamill.convert import Summary, convert
from datamill.dataset import Quarantined, read_with_format
from datamill.errors import DatamillError
from datamill.ingest.command import ingest_command
from datamill.inspect import inspect as inspect_file
from datamill.llm.cli import llm_app
from datamill.pipeline import dry_run as estimates
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner, RunResult
from datamill.prefs.cli import prefs_app
from datamill.report import handoff_command, report_command
from datamill.review.cli import review_app
from datamill.select.cli import select_command
from datamill.trace.command import trace_command
from datamill.train.cli import ablate_command, eval_command, run_recipe_blocks, train_command

app = typer.Typer(
    help="Build LLM training data: convert, validate and inspect datasets in every trainer's format.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(llm_app, name="llm")
out = Console()
err = Console(stderr=True)

FromOpt = Annotated[str | None, typer.Option("--from", "-f", help="Input format (default: detect).")]
EncodingOpt = Annotated[str | None, typer.Option(help="Input text encoding (default: detect).")]
OverwriteOpt = Annotated[
    bool, typer.Option(help="Replace existing files or folders that datamill did not write (refused by default).")
]


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"datamill {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """datamill — LLM training data, built reproducibly."""


@app.command("formats")
def formats_cmd() -> None:
    """List the dataset formats datamill reads and writes."""
    table = Table("format", "what it is", "cannot hold", show_lines=False)
    for f in formats.FORMATS.values():
        table.add_row(f.name, f.description, f.cannot_hold or "—")
    out.print(table)
    out.print(
        "Containers: .jsonl .json .csv .tsv .parquet .txt (pretrain), .gz of those, "
        "and saved Hugging Face datasets directories."
    )


@app.command("convert")
def convert_cmd(
    src: Annotated[Path, typer.Argument(help="Input file or saved dataset directory.")],
    dst: Annotated[Path, typer.Argument(help="Output file; its extension picks the container.")],
    to: Annotated[str, typer.Option("--to", "-t", help="Output format (see `datamill formats`).")],
    from_: FromOpt = None,
    encoding: EncodingOpt = None,
    name: Annotated[str | None, typer.Option(help="dataset_info.json entry name (default: file stem).")] = None,
    keep_meta: Annotated[bool, typer.Option(help="Also write each record's id and meta.")] = False,
    quarantine: Annotated[
        Path | None, typer.Option(help="Where unreadable records go (default: OUT-STEM.quarantine.jsonl).")
    ] = None,
    dataset_info: Annotated[bool, typer.Option(help="Write/update dataset_info.json next to the output.")] = True,
    overwrite: OverwriteOpt = False,
    media_paths: Annotated[
        str,
        typer.Option(
            help="Write image/video/audio paths relative to the output's folder, absolute, or keep them as read."
        ),
    ] = "relative",
    copy_media: Annotated[
        bool, typer.Option(help="Also copy the media files into NAME_media/ beside the output (NAME: --name).")
    ] = False,
) -> None:
    """Convert a dataset to another format; bad records go to a quarantine file, the rest are written."""
    try:
        formats.get(to)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} records"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task(f"converting {src.name}", total=None)
            summary = convert(
                src,
                dst,
                to,
                from_,
                encoding,
                name,
                keep_meta,
                quarantine,
                dataset_info,
                on_progress=lambda n: progress.update(task, completed=n),
                overwrite=overwrite,
                media_paths=media_paths,
                copy_media=copy_media,
            )
    except (DatamillError, OSError) as e:
        _fail(str(e))
    _print_summary(summary)
    if (why := summary.nothing_written()) is not None:
        _fail(f"nothing written to {summary.output}: {why}")


def _print_summary(s: Summary) -> None:
    out.print(f"{escape(s.input)} ({s.detected}) → {escape(s.output)} ({s.target})", highlight=False)
    table = Table(show_header=False)
    table.add_row("read", f"{s.read:,}")
    table.add_row("written", f"{s.written:,}")
    where = f"  → {s.quarantine_path}" if s.quarantine_path else ""
    table.add_row("quarantined", escape(f"{s.quarantined:,}{where}"))
    for reason, n in s.reasons.most_common(8):
        table.add_row("", escape(f"{n:,} × {reason}"))
    for code, n in s.warnings.most_common():
        table.add_row("warning", f"{n:,} × {code} (kept)")
    if s.dataset_info_path:
        table.add_row("dataset_info", escape(s.dataset_info_path))
    out.print(table)
    for example in s.examples:
        err.print(f"[yellow]quarantined[/] {escape(example)}", highlight=False)
    status = "[green]ok[/]" if s.balanced else "[red]MISMATCH[/]"
    out.print(f"{status}: read {s.read:,} = written {s.written:,} + quarantined {s.quarantined:,}")


@app.command("validate")
def validate_cmd(
    src: Annotated[Path, typer.Argument(help="Dataset file to check.")],
    from_: FromOpt = None,
    encoding: EncodingOpt = None,
    show: Annotated[int, typer.Option(help="How many problems to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per problem on stdout.")] = False,
    media_dir: Annotated[
        Path | None, typer.Option(help="Folder relative media paths start from (default: the input file's folder).")
    ] = None,
) -> None:
    """Check every record; list problems with file:line. Exit 1 if any record has an error
    (a missing media file is one)."""
    try:
        fmt, items = read_with_format(src, from_, encoding)
        counts = {"records": 0, "error": 0, "warning": 0}
        listed = 0
        for item in items:
            counts["records"] += 1
            problems = _problems(item, media_dir)
            for where, severity, message in problems:
                counts[severity] += 1
                if as_json:
                    print(json.dumps({"where": where, "severity": severity, "problem": message}, ensure_ascii=False))
                elif listed < show:
                    color = "red" if severity == "error" else "yellow"
                    out.print(f"[{color}]{severity}[/] {escape(where)}: {escape(message)}", highlight=False)
                    listed += 1
    except (DatamillError, OSError) as e:
        _fail(str(e))
    if not as_json:
        hidden = counts["error"] + counts["warning"] - listed
        if hidden > 0:
            out.print(f"… and {hidden:,} more (use --show or --json)")
        out.print(
            escape(f"{src}: {counts['records']:,} records ({fmt.name if fmt else 'empty'}), ")
            + f"{counts['error']:,} errors, {counts['warning']:,} warnings",
            highlight=False,
        )
    if counts["error"]:
        raise typer.Exit(1)


def _problems(item, media_dir: Path | None = None) -> list[tuple[str, str, str]]:
    if isinstance(item, Quarantined):
        return [(item.where, "error", item.error)]
    meta = item.meta
    where = f"{meta['source']}:{meta['line']}" if "line" in meta else f"{meta['source']}[#{meta['index']}]"
    problems = validate.check(item, media_files=True, media_dir=str(media_dir) if media_dir else None)
    return [(where, p.severity, f"{p.message} [{p.code}]") for p in problems]


@app.command("inspect")
def inspect_cmd(
    src: Annotated[Path, typer.Argument(help="Dataset file to describe.")],
    from_: FromOpt = None,
    encoding: EncodingOpt = None,
    samples: Annotated[int, typer.Option(help="How many records to show.")] = 2,
) -> None:
    """Describe a dataset: format, kinds, fields, roles, languages, lengths, samples."""
    try:
        report = inspect_file(src, from_, encoding, samples)
    except (DatamillError, OSError) as e:
        _fail(str(e))
    out.print(escape(str(src)), highlight=False)
    table = Table(show_header=False)
    table.add_row("format", report.format or "(empty file)")
    table.add_row("records", f"{report.records:,}")
    table.add_row("unreadable", f"{report.quarantined:,}")
    for label, counter in (
        ("kinds", report.kinds),
        ("fields", report.fields),
        ("roles", report.roles),
        ("script", report.scripts),
    ):
        if counter:
            table.add_row(label, escape(", ".join(f"{k} {v:,}" for k, v in counter.most_common())))
    out.print(table)
    lengths = report.lengths()
    if lengths:
        lt = Table("length", "min", "mean", "p50", "p95", "max", title="lengths (characters / turns)")
        for name, stats in lengths.items():
            lt.add_row(name, *(f"{stats[k]:,}" for k in ("min", "mean", "p50", "p95", "max")))
        out.print(lt)
    for rec in report.samples:
        out.print_json(json.dumps(_sample(rec), ensure_ascii=False))
    for e in report.errors:
        err.print(f"[yellow]unreadable[/] {escape(e)}", highlight=False)


def _sample(rec) -> dict:
    return {"id": rec.id, **_shorten(rec.content_dict())}


def _shorten(value, limit: int = 300):
    """Long strings cut for display, at any depth."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + " …"
    if isinstance(value, dict):
        return {k: _shorten(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v, limit) for v in value]
    return value


@app.command("run")
def run_cmd(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    inputs: Annotated[list[str] | None, typer.Option("--input", "-i", help="Replace the recipe's inputs.")] = None,
    outdir: Annotated[str | None, typer.Option("--output", "-o", help="Replace the output directory.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    executor: Annotated[str | None, typer.Option(help="local or ray (default: the recipe's).")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start one).")] = None,
    keep_work: Annotated[bool, typer.Option(help="Keep OUTDIR/.datamill-work after success.")] = False,
    overwrite: OverwriteOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Estimate each LLM step's requests, tokens, cost, time; send nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: print the estimate as JSON.")] = False,
) -> None:
    """Run a recipe: inputs → steps → OUTDIR/data-*, dropped.jsonl, quarantine.jsonl, stats.json, lock."""
    r = None
    if as_json and not dry_run:
        _fail("--json goes with --dry-run (a run's figures are in OUTDIR/stats.json)")
    try:
        r = recipes.load(recipe, inputs, outdir)
        for path in r.skipped:
            err.print(escape(f"note: optional input {path} not found; skipped"), highlight=False)
        if workers is not None:
            r.workers = workers
        if executor is not None:
            if executor not in ("local", "ray"):
                raise DatamillError(f"--executor must be local or ray, not '{executor}'")
            r.executor = executor
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=True) as progress:
            tasks: dict[str, int] = {}

            def report(label: str, done: int, total: int | None) -> None:
                if label not in tasks:
                    tasks[label] = progress.add_task(label, total=total)
                progress.update(tasks[label], completed=done, total=total)

            if dry_run:  # the real steps, no request sent, nothing written to OUTDIR
                found = estimates.estimate(r, progress=report)
            else:
                runner = Runner(r, progress=report, keep_work=keep_work, ray_address=ray_address, overwrite=overwrite)
                result = runner.run()
    except (DatamillError, OSError) as e:
        _fail(r.scrub(str(e)) if r is not None else str(e))  # a server's reply may quote a ${VAR} header back
    if dry_run:
        typer.echo(json.dumps(found.to_dict(), indent=2, ensure_ascii=False) if as_json else estimates.render(found))
        return
    _print_funnel(result)
    if not result.stats["kept"]:
        _fail(f"the run kept no record ({_top_losses(result.stats)}), so no data file was written or registered; "
              f"see {result.outdir / 'dropped.jsonl'} and {result.outdir / 'quarantine.jsonl'}")
    if r.train is not None:  # the recipe's train: / eval: blocks (datamill.train)
        run_recipe_blocks(r, result.outdir)


def _top_losses(st: dict) -> str:
    """Where the last records were lost: the reasons of the last step that dropped any."""
    if not st["input"] and not st.get("generated"):
        return "the input holds no records"
    last = next((step for step in reversed(st["steps"]) if step["dropped"]), None)
    if last is None:
        return f"{st['quarantined']:,} × unreadable input"
    reasons = sorted(last["dropped"].items(), key=lambda x: -x[1])[:3]
    return f"at {last['op']}: " + "; ".join(f"{n:,} × {reason}" for reason, n in reasons)


class RateColumn(ProgressColumn):
    """Records per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} rec/s")


def _print_funnel(result: RunResult) -> None:
    st = result.stats
    if result.up_to_date:
        out.print(
            f"[green]up to date[/]: {escape(str(result.outdir))} already holds this recipe's output "
            "(same recipe, inputs and versions); nothing to do"
        )
    table = Table("step", "op", "in", "generated", "out", "dropped", "seconds", title="funnel")
    table.add_row(
        "",
        "input",
        f"{st['input']:,}",
        "",
        f"{st['input'] - st['quarantined']:,}",
        escape(f"{st['quarantined']:,} quarantined"),
        "",
    )
    for step in st["steps"]:
        reasons = "; ".join(f"{n:,} {reason}" for reason, n in sorted(step["dropped"].items(), key=lambda x: -x[1]))
        table.add_row(
            str(step["step"]),
            step["op"],
            f"{step['in']:,}",
            f"{step.get('generated', 0):,}" if step.get("generated") else "",
            f"{step['out']:,}",
            escape(reasons),
            f"{step['seconds']:.2f}",
        )
    out.print(table)
    for step in st["steps"]:
        if step.get("counters"):
            counted = ", ".join(f"{n:,} {name}" for name, n in sorted(step["counters"].items()))
            out.print(escape(f"step {step['step']} {step['op']}: {counted}"), highlight=False)
    if st.get("phases") and not result.up_to_date:
        timed = " · ".join(
            f"{p['phase']} {p['seconds']:,.1f} s ({p['cores']} core{'s' * (p['cores'] != 1)})" for p in st["phases"]
        )
        out.print(escape(f"phases: {timed}"), highlight=False)
    if result.resumed_chunks:
        out.print(f"resumed: {result.resumed_chunks} chunk(s) were already done")
    status = "[green]ok[/]" if st["balanced"] else "[red]MISMATCH[/]"
    made = f" + generated {st['generated']:,}" if st.get("generated") else ""
    out.print(
        f"{status}: input {st['input']:,}{made} = kept {st['kept']:,} + dropped {st['dropped']:,} "
        f"+ quarantined {st['quarantined']:,}"
    )
    files = st.get("files", {})
    if files.get("unreadable"):
        out.print(
            f"[yellow]{files['unreadable']:,} of {files['input']:,} input file(s) unreadable[/] "
            "(their records are not counted above; see quarantine.jsonl):"
        )
        for entry in files["failures"][:10]:
            err.print(escape(f"  {entry['file']}: {entry['error']}"), highlight=False)
    out.print(escape(f"output: {result.outdir}/ ({', '.join(result.shards)})"), highlight=False)


@app.command("ops")
def ops_cmd(name: Annotated[str | None, typer.Argument(help="Show one operator in full.")] = None) -> None:
    """List the pipeline operators, or show one with its options."""
    registry = ops.load_all()
    if name is None:
        table = Table(Column("capability", no_wrap=True), Column("operator", no_wrap=True), "kind", "what it does")
        order = [*ops.MODULES, "other"]
        for op_name, cls in sorted(registry.items(), key=lambda kv: (order.index(ops.capability(kv[1])), kv[0])):
            summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())  # the first paragraph
            table.add_row(ops.capability(cls), op_name, cls.kind, escape(summary.replace("``", "")))
        out.print(table)
        return
    try:
        cls = ops.get(name)
    except DatamillError as e:
        _fail(f"{e}; known: {', '.join(sorted(registry))}")
    module_doc = (sys.modules[cls.__module__].__doc__ or "").strip()
    out.print(f"[bold]{name}[/] ({cls.kind})", highlight=False)
    out.print(escape((module_doc or (cls.__doc__ or "").strip()).replace("``", "")))
    table = Table("option", "type", "default", "constraints")
    for opt, info in cls.Config.model_fields.items():
        value = info.default_factory() if info.default_factory else info.get_default()
        value = value.model_dump(exclude_defaults=True) if isinstance(value, BaseModel) else value
        default = "required" if info.is_required() else json.dumps(value, ensure_ascii=False)
        constraints = ", ".join(str(m) for m in info.metadata)
        table.add_row(opt, escape(_type_name(info.annotation)), escape(default), escape(constraints))
    out.print(table)


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


# commands whose code lives with their subject (listed after the ones above in --help)
app.command("ingest")(ingest_command)
app.command("select")(select_command)
app.command("report")(report_command)
app.command("handoff")(handoff_command)
app.command("trace")(trace_command)
app.command("train")(train_command)
app.command("eval")(eval_command)
app.command("ablate")(ablate_command)
app.add_typer(prefs_app, name="prefs")
app.add_typer(quality_app, name="quality")
app.add_typer(review_app, name="review")


def run() -> None:  # pragma: no cover - console entry for `python -m datamill`
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)

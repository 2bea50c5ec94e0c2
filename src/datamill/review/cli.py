"""``datamill review …``: human review of a dataset — start a project, add people, serve the web app,
fit the active learner and auto-decide what it is sure of, export the decisions, measure agreement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from datamill.errors import DatamillError
from datamill.review import DEFAULT_PORT, ROLES
from datamill.review.items import TASKS

review_app = typer.Typer(
    help="Human review: people accept, edit, reject, compare, rate and label records in a local web app; "
    "the decisions export back into training files.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def _csv(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def _links(tokens: dict[str, str], port: int = DEFAULT_PORT) -> None:
    """Each login link on one unwrapped line (a cut token would be useless): shown once, never stored."""
    if not tokens:
        return
    out.print("login links (shown once; the project keeps only a hash of each token):")
    for name, token in tokens.items():
        out.print(escape(f"  {name}  http://127.0.0.1:{port}/login?token={token}"), soft_wrap=True, highlight=False)


@review_app.command("start")
def start_cmd(
    data: Annotated[Path, typer.Argument(help="A dataset file or folder datamill reads, or a run's OUTDIR.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The project file to create (PROJECT.db).")],
    task: Annotated[str, typer.Option(help=f"What reviewers do: {', '.join(TASKS)}.")] = "sft",
    guidelines: Annotated[Path | None, typer.Option(help="A text or markdown file shown as the guidelines.")] = None,
    annotators: Annotated[str | None, typer.Option(help="Comma-separated names, e.g. alice,bob,carol.")] = None,
    overlap: Annotated[int, typer.Option(help="How many annotators answer each item.")] = 1,
    labels: Annotated[str | None, typer.Option(help="label task: the label set, e.g. good,bad,unsure.")] = None,
    criteria: Annotated[
        str | None, typer.Option(help="rating task: the criteria, e.g. helpfulness,harmlessness.")
    ] = None,
    scale: Annotated[int, typer.Option(help="rating task: ratings run from 1 to this.")] = 5,
    dropped: Annotated[
        bool, typer.Option("--dropped", help="Review what a run's filters dropped (OUTDIR/dropped.jsonl).")
    ] = False,
    from_: Annotated[str | None, typer.Option("--from", "-f", help="Input format (default: detect).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the A/B orders and gold places (default: random).")] = None,
    questions: Annotated[
        Path | None, typer.Option(help="A YAML file of questions asked beside the task (label, multi_label, "
                                       "rating, text, edit, ranking).")  # fmt: skip
    ] = None,
    gold: Annotated[
        Path | None, typer.Option(help="Records with known answers (meta.gold), mixed into each queue, never exported.")
    ] = None,
    gold_rate: Annotated[
        float | None, typer.Option(help="The share of each queue that is gold (default 0.05).")
    ] = None,
) -> None:
    """Make a review project from DATA; print each annotator's login link once."""
    from datamill.review import questions as q
    from datamill.review.project import start

    try:
        text = guidelines.read_text(encoding="utf-8") if guidelines else ""
        asked = q.load(questions, task) if questions else None
        s = start(
            data, output, task, guidelines=text, annotators=_csv(annotators), overlap=overlap, labels=_csv(labels),
            criteria=_csv(criteria), scale=scale, dropped=dropped, fmt=from_, seed=seed, questions=asked, gold=gold,
            gold_rate=gold_rate,
        )  # fmt: skip
    except (DatamillError, OSError) as e:
        _fail(str(e))
    out.print(escape(f"{output}: {task} project, {s.items:,} items from {s.records:,} records"), highlight=False)
    table = Table(show_header=False)
    table.add_row("read", f"{s.read:,}")
    table.add_row("reviewed as items", f"{s.records:,}")
    for reason, n in s.skipped.most_common():
        table.add_row("skipped", escape(f"{n:,} × {reason}"))
    table.add_row("quarantined", f"{s.quarantined:,}")
    if s.gold:
        table.add_row("gold items", f"{s.gold:,} (mixed in, never exported)")
    out.print(table)
    _links(s.tokens)
    out.print(escape(f"next: datamill review serve {output}"), highlight=False)


@review_app.command("add-annotator")
def add_annotator_cmd(
    project: Annotated[Path, typer.Argument(help="The project file.")],
    name: Annotated[str, typer.Argument(help="Their name (letters, digits, - _ .).")],
    role: Annotated[str, typer.Option(help=f"{' or '.join(ROLES)} (an adjudicator sees everyone's answers).")] = (
        "annotator"
    ),
) -> None:
    """Add a person and print their login link once; an annotator gets the items still short of overlap."""
    from datamill.review.project import add_annotator
    from datamill.review.store import Project

    try:
        token = add_annotator(Project(project), name, role)
    except DatamillError as e:
        _fail(str(e))
    _links({name: token})


@review_app.command("suggest")
def suggest_cmd(
    project: Annotated[Path, typer.Argument(help="The project file.")],
    llm: Annotated[
        str | None,
        typer.Option(help="The judge: YAML keys of a recipe's llm: inline or a file (default: the embedded model)."),
    ] = None,
    judge: Annotated[
        str | None, typer.Option(help="quality (records; the default), pairwise (pairs; the default) or score.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Judge at most this many items.")] = None,
) -> None:
    """Pre-annotate items that have no judge suggestion yet (quality_judge, judge_pairwise or judge_score)."""
    from datamill.clean.cli import _llm_config
    from datamill.review.store import Project
    from datamill.review.suggest import suggest

    config = _llm_config(llm)
    try:
        s = suggest(Project(project), config, judge=judge, limit=limit)
    except DatamillError as e:
        _fail(str(e))
    table = Table(show_header=False, title=f"{s.judge} · {config.backend} {config.model}")
    table.add_row("items", f"{s.items:,}")
    table.add_row("had a judgment", f"{s.had:,}")
    table.add_row("judged now", f"{s.judged:,}")
    for reason, n in s.failed.most_common():
        table.add_row("no judgment", escape(f"{n:,} × {reason}"))
    if s.usage is not None:
        table.add_row("requests", f"{s.usage.requests:,} ({s.usage.cache_hits:,} from the cache)")
    out.print(table)


@review_app.command("serve")
def serve_cmd(
    project: Annotated[Path, typer.Argument(help="The project file.")],
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback needs annotators to exist.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
    refit_every: Annotated[
        int, typer.Option(help="Refit the learner in the background after this many new answers (from 20 on).")
    ] = 10,
    auto_confidence: Annotated[
        float | None, typer.Option(help="After each refit with a held-out accuracy, auto-decide the open items the "
                                        "learner is at least this sure of (e.g. 0.95).")  # fmt: skip
    ] = None,
) -> None:
    """Serve the review web app (every page needs a login link); the learner refits in the background."""
    from datamill.review.serve import server_for

    try:
        server = server_for(project, host, port, refit_every=refit_every, auto_confidence=auto_confidence)
    except DatamillError as e:
        _fail(str(e))
    out.print(escape(f"reviewing {project} on http://{host}:{port}/ — open your login link; Ctrl+C stops"))
    server.run()


def _learner_line(fit: dict) -> str:
    if fit["accuracy"] is None:
        return (f"learner fit on {fit['decisions']:,} decisions; too few of one kind to cross-validate, "
                "so it has no held-out accuracy")  # fmt: skip
    kinds = ", ".join(f"{n} × {k}" for k, n in fit["classes"].items())
    return (f"learner held-out accuracy {fit['accuracy']:.1%} ({fit['folds']}-fold cross-validation on "
            f"{fit['decisions']:,} human decisions: {kinds})")  # fmt: skip


@review_app.command("learn")
def learn_cmd(project: Annotated[Path, typer.Argument(help="The project file.")]) -> None:
    """Fit the active learner now (MiniLM embeddings + judge features → logistic regression) and reorder
    the queues: the items it is least sure of first. `review serve` also does this in the background."""
    from datamill.review.learner import fit
    from datamill.review.store import Project

    try:
        report = fit(Project(project))
    except DatamillError as e:
        _fail(str(e))
    out.print(escape(_learner_line(report)), highlight=False)
    out.print(f"predicted {report['predicted']:,} items ({report['embedded']:,} embedded now); queues reordered")


@review_app.command("auto")
def auto_cmd(
    project: Annotated[Path, typer.Argument(help="The project file.")],
    min_confidence: Annotated[float, typer.Option(help="Decide the open items the learner is at least this sure of.")],
) -> None:
    """Auto-decide the open items the learner is sure of (after its held-out accuracy exists: `review learn`);
    they are exported with meta.review.auto and the confidence."""
    from datamill.review.active import auto_decide
    from datamill.review.store import Project

    try:
        s = auto_decide(Project(project), min_confidence)
    except DatamillError as e:
        _fail(str(e))
    out.print(escape(_learner_line(s.report) + f", fit {s.report['at']}"), highlight=False)
    decided = ", ".join(f"{n:,} × {k}" for k, n in s.decided.most_common()) or "none"
    out.print(escape(f"auto-decided {sum(s.decided.values()):,} open items at confidence ≥ {min_confidence:g} "
                     f"({decided}); {s.below:,} left to people"), highlight=False)  # fmt: skip


@review_app.command("export")
def export_cmd(
    project: Annotated[Path, typer.Argument(help="The project file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The folder to write (like a run's OUTDIR); "
                                         "labelstudio: the tasks file; argilla: the dataset folder.")],  # fmt: skip
    to: Annotated[str, typer.Option("--to", "-t", help="Output format (see `datamill formats`), or labelstudio / "
                                    "argilla: the items, suggestions and answers for those tools.")],  # fmt: skip
    container: Annotated[str, typer.Option(help="jsonl, json, parquet or csv.")] = "jsonl",
    name: Annotated[str | None, typer.Option(help="dataset_info.json entry name (default: the folder name).")] = None,
    keep_meta: Annotated[bool, typer.Option(help="Write each record's id and meta (with meta.review).")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace files datamill did not write.")] = False,
) -> None:
    """Write the reviewed records in any format, or the project for Label Studio or Argilla.

    Rejected, tied and both-bad items go to dropped.jsonl. --to labelstudio writes the tasks file (-o
    tasks.json) and its labeling config beside it; --to argilla the folder rg.Dataset.from_disk reads;
    `review import` brings the answers given there back."""
    from datamill.review.export import export
    from datamill.review.interchange import TOOLS, export_to
    from datamill.review.store import Project

    if to in TOOLS:
        try:
            x = export_to(Project(project), output, to, overwrite=overwrite)
        except (DatamillError, OSError) as e:
            _fail(str(e))
        out.print(escape(f"{x.items:,} items, {x.answers:,} answers, {x.suggestions:,} suggestions → "
                         + ", ".join(map(str, x.paths))), highlight=False)  # fmt: skip
        return
    try:
        s = export(Project(project), output, to, container=container, name=name, keep_meta=keep_meta,
                   overwrite=overwrite)  # fmt: skip
    except (DatamillError, OSError, ValueError) as e:
        _fail(str(e))
    table = Table(show_header=False)
    table.add_row("items", f"{s.items:,}")
    table.add_row("written", escape(f"{s.written:,}" + (f"  → {s.output}" if s.output else "")))
    table.add_row("dropped", escape(f"{s.dropped:,}  → {s.dropped_path}"))
    for reason, n in s.reasons.most_common(8):
        table.add_row("", escape(f"{n:,} × {reason}"))
    table.add_row("pending", f"{s.pending:,} (not yet answered by everyone assigned)")
    for decision, n in s.decisions.most_common():
        table.add_row("decision", escape(f"{n:,} × {decision}"))
    out.print(table)
    status = "[green]ok[/]" if s.balanced else "[red]MISMATCH[/]"
    out.print(f"{status}: items {s.items:,} = written {s.written:,} + dropped {s.dropped:,} + pending {s.pending:,}")


@review_app.command("import")
def import_cmd(
    project: Annotated[Path, typer.Argument(help="The project file.")],
    file: Annotated[Path, typer.Argument(help="labelstudio: the JSON export; argilla: the to_disk folder or its "
                                              "records.json.")],  # fmt: skip
    from_: Annotated[str, typer.Option("--from", "-f", help="labelstudio or argilla.")],
    user: Annotated[
        list[str] | None, typer.Option(help="ID=NAME: the tool's user ID is this annotator (repeatable).")
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="Where the tasks that cannot be imported go (default: beside FILE).")
    ] = None,
) -> None:
    """Bring answers given in Label Studio or Argilla back into the project.

    Each answer is checked like the app's; a task with a wrong one is quarantined (its index and why), the
    rest imported in one transaction. People unknown to the project are added (their login links printed)."""
    from datamill.review.interchange import import_from
    from datamill.review.store import Project

    pairs = [u.split("=", 1) for u in user or []]
    if any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
        _fail("--user takes ID=NAME, e.g. --user 3=alice")
    try:
        s = import_from(Project(project), file, from_, users=dict(pairs), quarantine=quarantine)
    except (DatamillError, OSError) as e:
        _fail(str(e))
    table = Table(show_header=False)
    table.add_row("tasks", f"{s.tasks:,}")
    table.add_row("answers imported", f"{s.answers:,} new, {s.changed:,} changed, {s.unchanged:,} unchanged")
    for reason, n in s.skipped.most_common():
        table.add_row("skipped", escape(f"{n:,} × {reason}"))
    table.add_row("quarantined", escape(f"{len(s.quarantined):,}" + (f"  → {s.quarantine_path}" if s.quarantine_path
                                                                   else "")))  # fmt: skip
    for index, why in s.quarantined[:8]:
        table.add_row("", escape(f"task {index}: {why}"))
    out.print(table)
    if s.tokens:
        out.print(escape(f"added {len(s.tokens)} annotator(s) named in {file}"), highlight=False)
        _links(s.tokens)


@review_app.command("stats")
def stats_cmd(
    project: Annotated[Path, typer.Argument(help="The project file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Progress, agreement (Cohen's and Fleiss' kappa, Krippendorff's alpha), accuracy on gold, false drops."""
    from datamill.review.agreement import summary
    from datamill.review.store import Project

    try:
        s = summary(Project(project))
    except DatamillError as e:
        _fail(str(e))
    if as_json:
        print(json.dumps(s, ensure_ascii=False, indent=2))
        return
    people = Table("annotator", "role", "done", "chose A", "agrees with majority",
                   title=f"{s['task']} · {s['answers']:,} answers")  # fmt: skip
    for p in s["annotators"]:
        bias, major = p.get("first_position_share"), p["majority_agreement"]
        people.add_row(escape(p["name"]), p["role"], f"{p['answered']:,} / {p['total']:,}",
                       "—" if bias is None else f"{bias:.0%}",
                       "—" if major is None else f"{major:.0%} of {p['majority_checks']:,}")  # fmt: skip
    out.print(people)
    learn = s["learner"]
    if learn["fit"]:
        out.print(escape(_learner_line(learn["fit"])), highlight=False)
    elif learn["enabled"]:
        out.print(f"learner: starts at {learn['min_decisions']} human decisions (now {learn['decisions']:,})")
    if learn["auto"]:
        kinds = ", ".join(f"{n:,} × {k}" for k, n in learn["auto_decisions"].items())
        out.print(escape(f"auto-decided by the learner: {learn['auto']:,} ({kinds})"), highlight=False)
    if s["conflicts"]["open"] or s["conflicts"]["resolved"]:
        out.print(f"conflicts: {s['conflicts']['open']:,} to adjudicate, {s['conflicts']['resolved']:,} adjudicated")
    table = Table("question", "measure", "items", "value", title="agreement")
    for q in s["agreement"]:
        for m in q["measures"]:
            value = "—" if m["value"] is None else f"{m['value']:.3f}"
            table.add_row(escape(q["question"]), escape(m["measure"]), f"{m['items']:,}", value)
    if table.row_count:
        out.print(table)
    if s["note"]:
        out.print(escape(s["note"]))
    if s["gold"]:
        gold = Table("annotator", "gold items", "correct", "accuracy", title="accuracy on gold")
        for g in s["gold"]:
            acc = "—" if g["accuracy"] is None else f"{g['accuracy']:.0%}"
            gold.add_row(escape(g["name"]), f"{g['items']:,}", f"{g['correct']:,} / {g['checks']:,}", acc)
        out.print(gold)
    if s.get("false_drops"):
        drops = Table("filter", "reason", "decided", "kept", "false-drop rate", title="false drops per filter reason")
        for d in s["false_drops"]:
            rate = "—" if d["false_drop_rate"] is None else f"{d['false_drop_rate']:.0%}"
            drops.add_row(escape(d["op"]), escape(d["reason"]), f"{d['decided']:,}", f"{d['kept']:,}", rate)
        out.print(drops)

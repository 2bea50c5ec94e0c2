"""``datamill quality …``: train a learned quality classifier from good / bad files or from LLM scores,
and get those scores (``annotate``); the ``quality_classifier`` step then scores a whole corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from datamill.errors import DatamillError

quality_app = typer.Typer(
    help="Learned quality classifiers: train on good/bad files or on LLM 0-5 scores, annotate a sample with an LLM.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)
LANGS = ("zh", "en")
PartOpt = Annotated[str, typer.Option(help="Which text of a record: all, prompt, answer or text.")]
LangOpt = Annotated[str | None, typer.Option("--lang", help="Keep only texts in these languages (zh,en; by script).")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the held-out split (and of annotate's sample).")]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def _langs(value: str | None) -> list[str] | None:
    langs = [x.strip() for x in (value or "").split(",") if x.strip()]
    unknown = [x for x in langs if x not in LANGS]
    if unknown:
        _fail(f"--lang {','.join(unknown)}: the classifier tells zh and en apart by script (use language_filter first)")
    return langs or None


def _part(value: str) -> str:
    if value not in ("all", "prompt", "answer", "text"):
        _fail(f"--part {value}: expected all, prompt, answer or text")
    return value


def _ngrams(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        lo, hi = (int(x) for x in value.split("-"))
    except ValueError:
        lo = hi = 0
    if not 1 <= lo <= hi <= 8:
        _fail(f"--char-ngrams {value}: expected MIN-MAX, e.g. 2-4")
    return lo, hi


def _metrics_table(metrics: dict[str, Any]) -> Table:
    keys = [k for k, v in metrics.items() if k != "by_lang" and isinstance(v, int | float)]
    table = Table("held out", *keys)
    table.add_row("all", *(f"{metrics[k]:g}" for k in keys))
    for lang, m in metrics.get("by_lang", {}).items():
        table.add_row(lang, *(f"{m.get(k, 0):g}" for k in keys))
    return table


@quality_app.command("train")
def train_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="Model folder to write (model.json, weights.npz).")],
    pos: Annotated[
        list[Path] | None, typer.Option("--pos", help="Good texts: a dataset file (repeat for more).")
    ] = None,
    neg: Annotated[
        list[Path] | None, typer.Option("--neg", help="Bad texts: a dataset file (repeat for more).")
    ] = None,
    scores: Annotated[
        Path | None, typer.Option("--scores", help="A JSONL of {text, score 0-5} (from `quality annotate`).")
    ] = None,
    lang: LangOpt = None,
    test_share: Annotated[float, typer.Option(help="Share of each class held out to measure the model.")] = 0.1,
    seed: SeedOpt = 0,
    part: PartOpt = "all",
    threshold: Annotated[
        float | None, typer.Option(help="Good from: P(good) for --pos/--neg (0.5), the score for --scores (3).")
    ] = None,
    char_ngrams: Annotated[
        str | None, typer.Option(help="Also hash character n-grams, e.g. 2-4 (slower; see docs/cleaning.md).")
    ] = None,
) -> None:
    """Train a quality classifier on good/bad files (--pos/--neg) or 0-5 scores (--scores).

    Its held-out precision, recall and F1 (MAE too for scores) are printed and kept in model.json."""
    from datamill.clean import quality_classifier as qc

    langs, part, features = _langs(lang), _part(part), qc.Features(char_ngrams=_ngrams(char_ngrams))
    if scores is not None and (pos or neg):
        _fail("give either --scores or --pos/--neg, not both")
    if scores is None and not (pos and neg):
        _fail("give --pos and --neg files (good and bad texts), or --scores")
    common = {"test_share": test_share, "seed": seed, "part": part, "languages": langs}
    try:
        if scores is not None:
            texts, values = qc.read_scores(scores, langs)
            cut = 3.0 if threshold is None else threshold
            model = qc.train_scores(texts, values, features, threshold=cut, **common)
            model.info["data"] = {"scores": str(scores)}
        else:
            good, skipped_good = qc.read_texts(pos, part, langs)
            bad, skipped_bad = qc.read_texts(neg, part, langs)
            if not good or not bad:
                which, files = ("good", pos) if not good else ("bad", neg)
                _fail(f"no {which} texts in {', '.join(map(str, files))} (part {part}, languages {langs or 'any'})")
            model = qc.train_binary(good, bad, features, threshold=0.5 if threshold is None else threshold, **common)
            skipped = {"positives": dict(skipped_good), "negatives": dict(skipped_bad)}
            model.info["data"] = {
                "positives": list(map(str, pos)),
                "negatives": list(map(str, neg)),
                "skipped": skipped,
            }
        path = model.save(output)
    except DatamillError as e:
        _fail(str(e))
    trained = model.info["trained"]
    out.print(f"trained on {trained['train']:,} texts, held out {trained['test']:,} ({model.kind})", highlight=False)
    out.print(_metrics_table(model.info["metrics"]))
    speed = model.info["speed"]["docs_per_s"] or 0
    out.print(f"{speed:,.0f} docs/s on the held-out texts; wrote {path}", highlight=False)


def _llm_config(value: str | None) -> Any:
    from datamill.llm import LLMConfig

    if value is None:
        return LLMConfig()
    source = Path(value)
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8") if source.is_file() else value)
    except (OSError, yaml.YAMLError) as e:
        _fail(f"--llm: not YAML ({e})")
    if not isinstance(data, dict):
        _fail("--llm: expected a mapping of a recipe's llm: keys, e.g. '{backend: openai, base_url: http://…/v1}'")
    try:
        return LLMConfig(**data)
    except ValueError as e:
        _fail(f"--llm: {str(e).splitlines()[0]} — {str(e).splitlines()[-1].strip()}")


@quality_app.command("annotate")
def annotate_command(
    data: Annotated[list[Path], typer.Argument(help="Dataset files to sample from.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSONL of {text, score, reason, lang, source}.")],
    llm: Annotated[
        str | None,
        typer.Option(help="The model: YAML keys of a recipe's llm: inline or a file (default: the embedded model)."),
    ] = None,
    sample: Annotated[int, typer.Option(help="Texts to score (a uniform random sample; 0: all).")] = 1000,
    seed: SeedOpt = 0,
    part: PartOpt = "all",
    lang: LangOpt = None,
    template: Annotated[
        str, typer.Option(help="Prompt template name or .j2 path (zh/en variants).")
    ] = "quality_annotate",
    rubric: Annotated[str | None, typer.Option(help="Extra criteria appended to the rubric.")] = None,
    max_chars: Annotated[int, typer.Option(help="Characters of each text the LLM reads.")] = 1500,
) -> None:
    """Score a random sample 0-5 with an LLM and a rubric (FineWeb-Edu style), for `quality train --scores`."""
    from datamill.clean.quality_classifier_annotate import annotate

    config, langs, part = _llm_config(llm), _langs(lang), _part(part)
    if sample < 0:
        _fail("--sample must be 0 (all) or more")
    try:
        summary = annotate(
            data,
            output,
            config,
            sample=sample or None,
            seed=seed,
            part=part,
            languages=langs,
            template=template,
            rubric=rubric,
            max_chars=max_chars,
        )
    except DatamillError as e:
        _fail(str(e))
    typer.echo(json.dumps(summary, ensure_ascii=False))

"""``datamill train DATA`` and ``datamill eval --data HELDOUT``: the training and evaluation runs as commands.
Heavy imports (torch, transformers, TRL) happen only when a command runs, so ``datamill --help`` stays quick."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from datamill.errors import DatamillError

out = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(1)


def _quiet() -> None:
    """Keep the libraries' output for real problems: their info lines, deprecation notices and per-stage
    progress bars (loading weights, tokenizing) would bury datamill's own bar."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)


def train_command(
    data: Annotated[
        str, typer.Argument(help="dataset file / saved dataset folder, or a run's OUTDIR (its train split)")
    ],
    stage: Annotated[str, typer.Option(help="pt | sft | dpo | kto")] = "sft",
    method: Annotated[str, typer.Option(help="lora | qlora | prompt_tuning | prefix_tuning | full")] = "lora",
    model: Annotated[
        str | None, typer.Option(help="base model directory (default: the embedded Gemma 3 270M, converted once)")
    ] = None,
    out_dir: Annotated[
        str | None, typer.Option("-o", "--out", help="RUN folder (default: runs/DATA-STAGE-METHOD)")
    ] = None,
    epochs: Annotated[float, typer.Option(help="passes over the data")] = 3.0,
    max_steps: Annotated[int | None, typer.Option(help="optimizer steps (overrides --epochs)")] = None,
    lr: Annotated[
        float | None, typer.Option(help="learning rate (default: by method and stage, see docs/train.md)")
    ] = None,
    lora_r: Annotated[int, typer.Option(help="LoRA rank (alpha is twice it)")] = 8,
    virtual_tokens: Annotated[int, typer.Option(help="prompt / prefix tuning: virtual tokens")] = 20,
    cutoff_len: Annotated[int, typer.Option(help="max tokens per example (longer ones are cut)")] = 1024,
    batch_size: Annotated[int, typer.Option(help="examples per device step")] = 2,
    grad_accum: Annotated[int, typer.Option(help="gradient accumulation steps")] = 1,
    seed: Annotated[int, typer.Option(help="seed for initialization and data order")] = 42,
    save_steps: Annotated[
        int | None, typer.Option(help="checkpoint every N steps (default: a tenth of the run)")
    ] = None,
    logging_steps: Annotated[int | None, typer.Option(help="log the loss every N steps (default: ~50 points)")] = None,
    from_: Annotated[str | None, typer.Option("--from", "-f", help="input format (default: detect)")] = None,
    limit: Annotated[int | None, typer.Option(help="train on the first N records only")] = None,
    overwrite: Annotated[bool, typer.Option(help="discard what RUN holds and start over")] = False,
) -> None:
    """Fine-tune a model on DATA with TRL + PEFT into RUN: adapter, train.json, loss.svg (rerun to resume a kill)."""
    _quiet()
    from datamill.train.run import TrainConfig, train

    config = TrainConfig(
        stage, method, model, epochs, max_steps, lr, lora_r, virtual_tokens, cutoff_len, batch_size, grad_accum,
        seed, save_steps, logging_steps, from_, limit,
    )  # fmt: skip
    run_dir = Path(out_dir or Path("runs") / f"{Path(data).stem}-{stage}-{method}")
    try:
        result = train(data, run_dir, config, overwrite=overwrite)
    except (DatamillError, OSError) as e:
        _fail(str(e))
    _print_train(result)


def _print_train(result) -> None:
    info, run_dir = result.info, result.run_dir
    stage, method = info["config"]["stage"], info["config"]["method"]
    if result.up_to_date:
        out.print(f"[green]up to date[/]: {escape(str(run_dir))} already holds this finished run; nothing to do")
    table = Table(show_header=False, title=f"{stage} · {method}")
    d = info["data"]
    table.add_row("data", escape(f"{', '.join(d['paths'])} ({d['rows']:,} rows of {d['records']:,} records)"))
    for reason, n in d["skipped"].items():
        table.add_row("skipped", escape(f"{n:,} × {reason}"))
    table.add_row("model", escape(info["model"]))
    if result.resumed_from:
        table.add_row("resumed", f"from checkpoint-{result.resumed_from}")
    table.add_row("steps", f"{info['global_step']:,} ({info['seconds']:,.1f} s on {info['device']['name']})")
    if result.losses:
        table.add_row("loss", f"{result.losses[0]['loss']:.4f} → {result.losses[-1]['loss']:.4f}")
    if "eval_loss" in info:
        table.add_row("held-out loss", f"{info['eval_loss']:.4f}")
    table.add_row("saved", escape(f"{run_dir}/ (adapter or model, train.json, loss.svg)"))
    out.print(table)


def eval_command(
    data: Annotated[str, typer.Option("--data", help="held-out file, or a run's OUTDIR (its validation/test split)")],
    model: Annotated[
        str | None, typer.Option(help="base model directory (default: the adapter's base, else embedded)")
    ] = None,
    adapter: Annotated[str | None, typer.Option(help="RUN folder of `datamill train` to evaluate")] = None,
    out_path: Annotated[
        str | None, typer.Option("-o", "--out", help="eval.json path (default: RUN/eval.json or ./eval.json)")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="greedy generation length")] = 256,
    batch_size: Annotated[int, typer.Option(help="examples per forward pass")] = 4,
    cutoff_len: Annotated[int, typer.Option(help="max tokens per example for the loss")] = 1024,
    limit: Annotated[int | None, typer.Option(help="the first N records only")] = None,
    generate: Annotated[bool, typer.Option(help="generate and score against references (off: loss only)")] = True,
    from_: Annotated[
        str | None, typer.Option("--from", "-f", help="input format, e.g. qa for GSM8K (default: detect)")
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(help="win rate vs the base, judged by: embedded, or an OpenAI-compatible base URL"),
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="the endpoint's model name for --judge URL")] = None,
    judge_key_env: Annotated[str | None, typer.Option(help="env var holding the endpoint's API key")] = None,
    lm_eval: Annotated[
        str | None,
        typer.Option("--lm-eval", help="lm-evaluation-harness tasks (comma-separated), on the base and the adapter"),
    ] = None,
    lm_eval_include: Annotated[
        list[str] | None, typer.Option("--lm-eval-include", help="folder of those task YAMLs (local data files)")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an eval.json datamill did not write.")] = False,
) -> None:
    """Held-out loss and perplexity (answer tokens), and exact match (GSM8K ####) / ROUGE-L of greedy answers."""
    _quiet()
    from datamill.io import outputs
    from datamill.train.evaluate import EvalConfig, evaluate

    if lm_eval_include and not lm_eval:
        _fail("--lm-eval-include names where the --lm-eval TASKS are; give the tasks too")
    target = Path(out_path) if out_path else (Path(adapter) if adapter else Path(".")) / "eval.json"
    config = EvalConfig(model, adapter, from_, limit, cutoff_len, max_new_tokens, batch_size, generate)
    config.judge, config.judge_model, config.judge_key_env = judge, judge_model, judge_key_env
    config.lm_eval = [t.strip() for t in lm_eval.split(",") if t.strip()] if lm_eval else None
    config.lm_eval_include = lm_eval_include
    try:
        outputs.check_replace(target, overwrite)
        with err.status("evaluating"):
            result = evaluate(data, config)
        outputs.write_text(target, json.dumps(result, ensure_ascii=False, indent=2) + "\n", overwrite)
    except (DatamillError, OSError) as e:
        _fail(str(e))
    _print_eval(result, target)


def _print_eval(result: dict, target: Path) -> None:
    table = Table(show_header=False, title="eval")
    table.add_row("model", escape(result["model"] + (f" + {result['adapter']}" if result["adapter"] else "")))
    loss = result["loss"]
    table.add_row("loss", f"{loss['mean']:.4f} (perplexity {loss['perplexity']:,.2f}, {loss['tokens']:,} {loss['on']})")
    if "exact_match" in result:
        em = result["exact_match"]
        table.add_row(
            "exact match",
            f"{em['correct_strict']}/{em['items']} strict, {em['correct_flexible']}/{em['items']} flexible",
        )
    if "rouge_l" in result:
        table.add_row("ROUGE-L", f"{result['rouge_l']['mean']:.4f} over {result['rouge_l']['items']:,}")
    if "judge" in result:
        j = result["judge"]
        table.add_row(
            "judge vs base",
            f"{j['wins']} wins, {j['ties']} ties, {j['losses']} losses of {j['judged']} ({j['method']}, both orders)",
        )
    for task, scored in result.get("lm_eval", {}).get("tasks", {}).items():
        for metric, value in scored.get("base", {}).items():
            tuned = scored.get("tuned", {}).get(metric)
            shown = f"{value:.4g} base" + (f" → {tuned:.4g} tuned" if tuned is not None else "")
            table.add_row(escape(f"lm-eval {task}"), escape(f"{metric}: {shown}"))
    table.add_row("saved", escape(str(target)))
    out.print(table)


def ablate_command(
    config: Annotated[Path, typer.Argument(help="ablation YAML: train:, eval: (data: the held-out set) and arms:")],
    out_dir: Annotated[
        str | None, typer.Option("-o", "--out", help="output folder (default: the file's output:)")
    ] = None,
) -> None:
    """Train the same config on every arm's data, score all on one held-out set: OUT/ablate.json + ablate.html
    (rerun to resume a kill: finished arms are not retrained)."""
    _quiet()
    from datamill.train.ablate import ablate, columns, load

    try:
        ablation = load(config, out_dir)
        result = ablate(ablation, note=lambda line: err.print(escape(line), highlight=False))
    except (DatamillError, OSError) as e:
        _fail(str(e))
    cols = columns(result)
    table = Table(*(heading for heading, _ in cols), title=f"ablation {result['name']}")
    for arm in result["arms"]:
        table.add_row(*(escape(cell(arm)) for _, cell in cols))
    out.print(table)
    out.print(escape(f"lowest held-out loss: {result['best']}; saved {ablation.output}/ablate.json, ablate.html"))


def run_recipe_blocks(recipe, outdir: Path) -> None:
    """A recipe's ``train:`` (and ``eval:``) blocks, after ``datamill run`` wrote OUTDIR."""
    _quiet()
    from datamill.train.blocks import run_after

    err.print(escape(f"training on {outdir} (the recipe's train: block)"), highlight=False)
    try:
        result, report, reused = run_after(recipe.train, recipe.eval, outdir, Path(recipe.source).parent, recipe.seed)
    except (DatamillError, OSError) as e:
        _fail(recipe.scrub(str(e)))
    _print_train(result)
    if reused:
        out.print(f"[green]up to date[/]: {escape(str(result.run_dir))}/eval.json already holds this evaluation")
    if report is not None:
        _print_eval(report, result.run_dir / "eval.json")
        from datamill.report.build import refresh_evaluation

        try:
            page = refresh_evaluation(outdir, (result.run_dir / "eval.json",))
        except (DatamillError, OSError) as e:  # a report.html edited since the run: left as it is
            err.print(escape(f"note: report.html not updated with the evaluation: {e}"), highlight=False)
        else:
            if page is not None:
                out.print(escape(f"{page}: evaluation section updated"), soft_wrap=True)

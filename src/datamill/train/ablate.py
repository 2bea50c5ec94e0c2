"""``ablate``: the same small training on two or more datasets — raw vs cleaned, random N vs ``select`` N,
with vs without synthetic data — each arm trained by ``train`` and scored by ``evaluate`` on the same
held-out set, side by side in ``ablate.json`` and ``ablate.html``: "quality over quantity" as a number a
user computes on their own data instead of a belief.

An ablation is a YAML file: ``train:`` and ``eval:`` blocks as in a recipe (``eval.data`` is the held-out
set, required), a ``seed`` every arm shares, and ``arms``, each a dataset (``data:`` a file, a saved dataset
or a run's OUTDIR) or a recipe (``recipe:``, run first, itself resumable; its output is the arm's data).
Arms run one after another into ``OUT/arms/NAME``; a killed ablation resumes: a finished arm is neither
retrained nor re-evaluated, a killed one goes on from its last checkpoint. With ``eval.judge`` each arm's
answers are judged against the first arm's (both orders) — from the answers already generated."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from datamill.errors import DatamillError
from datamill.io import outputs
from datamill.io.yaml_file import read_yaml
from datamill.train import blocks, data
from datamill.train.run import TrainResult, train, versions

Note = Callable[[str], None]


class ArmModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[\w.-]+$", description="a folder name: OUT/arms/NAME")
    data: str | None = None
    recipe: str | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.data is None) == (self.recipe is None):
            raise ValueError("give either data: (a dataset) or recipe: (a recipe whose output is the data)")
        return self


class AblationModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "ablation"
    seed: int = 42
    train: dict[str, Any] = {}
    eval: dict[str, Any]
    arms: list[ArmModel] = Field(min_length=2)
    output: str = "ablation"

    @field_validator("arms")
    @classmethod
    def _distinct(cls, arms: list[ArmModel]) -> list[ArmModel]:
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must differ: {', '.join(names)}")
        return arms

    @field_validator("eval")
    @classmethod
    def _heldout(cls, block: dict[str, Any]) -> dict[str, Any]:
        if not block.get("data"):
            raise ValueError("give data: the held-out set every arm is scored on")
        return block

    @field_validator("train")
    @classmethod
    def _no_out(cls, block: dict[str, Any]) -> dict[str, Any]:
        if "out" in block:
            raise ValueError("no out: here, each arm trains into OUT/arms/NAME (set output: instead)")
        return block


@dataclass
class Ablation:
    name: str
    seed: int
    train: dict[str, Any]
    eval: dict[str, Any]
    arms: list[ArmModel]
    output: Path
    base: Path  # the config file's folder: relative paths start there


def load(path: str | Path, output: str | Path | None = None) -> Ablation:
    """Parse and check an ablation file (every problem at once); ``output`` (relative to the current folder)
    replaces its own."""
    path = Path(path)
    raw = read_yaml(path, "ablation")
    if not isinstance(raw, dict):
        raise DatamillError(f"{path}: an ablation is a mapping with train, eval and arms (see docs/train.md)")
    problems: list[str] = []
    try:
        model = AblationModel.model_validate(raw)
    except ValidationError as e:
        problems += [f"{'.'.join(map(str, err['loc'])) or 'ablation'}: {err['msg']}" for err in e.errors()]
    train_block, eval_block = raw.get("train", {}), raw.get("eval")
    if isinstance(train_block, dict) and isinstance(eval_block, dict | None):
        problems += [message for _, message in blocks.problems(train_block, eval_block)]
    if problems:
        raise DatamillError(f"{path}: " + "; ".join(problems))
    base = path.parent
    return Ablation(
        model.name,
        model.seed,
        model.train,
        model.eval,
        model.arms,
        Path(output) if output else base / model.output,
        base,
    )


def _arm_data(arm: ArmModel, base: Path, note: Note) -> Path:
    if arm.data is not None:
        return base / arm.data
    from datamill.pipeline import recipe as recipes
    from datamill.pipeline.runner import Runner

    note(f"{arm.name}: running {arm.recipe}")
    result = Runner(recipes.load(base / arm.recipe)).run()
    if not result.stats["kept"]:
        raise DatamillError(f"arm {arm.name}: the recipe {arm.recipe} kept no record")
    return result.outdir


def _prompts(files: list[Path], fmt: str | None = None) -> set[str]:
    recs, _, _ = data.records(files, fmt)
    return {" ".join(r.part("prompt").split()).lower() for r in recs if r.part("prompt").strip()}


def _status(result: TrainResult) -> str:
    if result.up_to_date:
        return "up to date"
    return f"resumed from checkpoint-{result.resumed_from}" if result.resumed_from else "trained"


def _arm_summary(arm: ArmModel, source: Path, result: TrainResult, report: dict[str, Any], overlap: int) -> dict:
    info = result.info
    losses = info.get("losses", [])
    summary = {
        "name": arm.name,
        "source": {"data": arm.data} if arm.data else {"recipe": arm.recipe, "outdir": str(source)},
        "run": str(result.run_dir),
        "status": _status(result),
        "data": {k: v for k, v in info["data"].items() if k != "files"},
        "train": {
            "global_step": info["global_step"],
            "seconds": info["seconds"],
            "trainable_params": info["trainable_params"],
            "loss_first": losses[0]["loss"] if losses else None,
            "loss_last": losses[-1]["loss"] if losses else None,
        },
        "heldout_loss": {k: report["loss"][k] for k in ("mean", "perplexity", "tokens", "items")},
        "heldout_overlap": overlap,
    }
    for key in ("exact_match", "rouge_l"):
        if key in report:
            summary[key] = report[key]
    return summary


def _head_to_head(baseline: dict, other: dict, judge: dict[str, Any]) -> dict[str, Any]:
    """``other``'s answers against ``baseline``'s on the same held-out prompts, both orders."""
    from datamill.train import judging

    a, b = baseline["samples"], other["samples"]
    if [s["id"] for s in a] != [s["id"] for s in b]:
        raise DatamillError("the arms' evaluations hold different held-out items; rerun the ablation")
    config = judging.judge_config(judge["judge"], judge.get("judge_model"), judge.get("judge_key_env"))
    report = judging.win_rate([s["prompt"] for s in a], [s["output"] for s in b], [s["output"] for s in a], config)
    report.pop("margins")
    report["winners"] = [{"tuned": "arm", "base": "baseline"}.get(w, w) for w in report["winners"]]
    return report


def ablate(
    ablation: Ablation,
    *,
    note: Note = lambda line: None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate every arm (resuming what a killed ablation left), write OUT/ablate.json after each
    arm and OUT/ablate.html at the end; returns what ablate.json holds."""
    started = time.monotonic()
    out = ablation.output
    outputs.refuse_unsafe(out)
    config = blocks.train_config(ablation.train, ablation.base, ablation.seed)
    heldout = ablation.base / ablation.eval["data"]
    judge = {k: ablation.eval[k] for k in ("judge", "judge_model", "judge_key_env") if ablation.eval.get(k)}
    eval_block = {k: v for k, v in ablation.eval.items() if k not in judge}
    heldout_files = data.data_files(heldout, "heldout")
    held_prompts = _prompts(heldout_files, eval_block.get("fmt"))
    result: dict[str, Any] = {
        "name": ablation.name,
        "seed": ablation.seed,
        "train": asdict(config),
        "eval": {**eval_block, "data": str(heldout), **judge},
        "heldout": {"paths": [str(f) for f in heldout_files], **data.fingerprint(heldout_files)},
        "arms": [],
        "finished": False,
        "versions": versions(),
    }
    reports: list[dict[str, Any]] = []
    n = len(ablation.arms)
    for i, arm in enumerate(ablation.arms, 1):
        note(f"arm {i}/{n} {arm.name}: preparing its data")
        source = _arm_data(arm, ablation.base, note)
        run_dir = out / "arms" / arm.name
        note(f"arm {i}/{n} {arm.name}: training ({source})")
        trained = train(source, run_dir, config, callbacks=callbacks, progress=progress, restart=True)
        note(f"arm {i}/{n} {arm.name}: {_status(trained)}, {trained.info['global_step']} steps; evaluating")
        report, reused = blocks.evaluate_run(run_dir, heldout, blocks.eval_config(eval_block, config.model, run_dir))
        overlap = len(held_prompts & _prompts(data.data_files(source, "train"), config.fmt))
        summary = _arm_summary(arm, source, trained, report, overlap)
        summary["evaluation"] = "reused" if reused else "evaluated"
        reports.append(report)
        result["arms"].append(summary)
        result["heldout"]["items"] = report["loss"]["items"]
        _write(out / "ablate.json", result)
        note(f"arm {i}/{n} {arm.name}: held-out loss {summary['heldout_loss']['mean']:.4f}")
    if judge and all("samples" in r for r in reports):
        baseline = ablation.arms[0].name
        for summary, report in zip(result["arms"][1:], reports[1:], strict=True):
            note(f"judging {summary['name']} against {baseline}")
            summary["judge_vs"] = {"baseline": baseline, **_head_to_head(reports[0], report, judge)}
    result["best"] = min(result["arms"], key=lambda a: a["heldout_loss"]["mean"])["name"]
    result["finished"] = True
    result["seconds_this_run"] = round(time.monotonic() - started, 2)  # a resumed run counts only its own part
    _write(out / "ablate.json", result)
    outputs.write_text(out / "ablate.html", render_html(result), overwrite=True)
    return result


def _write(path: Path, value: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    outputs.write_text(path, json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n", overwrite=True)


def columns(result: dict[str, Any]) -> list[tuple[str, Callable[[dict], str]]]:
    """The table's columns (heading, cell of an arm) for what the arms were scored on: the page and the CLI."""

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{v:.1%}"

    arms = result["arms"]
    cols: list[tuple[str, Callable[[dict], str]]] = [
        ("arm", lambda a: a["name"]),
        ("rows", lambda a: f"{a['data']['rows']:,}"),
        ("steps", lambda a: f"{a['train']['global_step']:,}"),
        ("train loss", lambda a: f"{a['train']['loss_first']:.3f} → {a['train']['loss_last']:.3f}"),
        ("held-out loss", lambda a: f"{a['heldout_loss']['mean']:.4f}"),
        ("perplexity", lambda a: f"{a['heldout_loss']['perplexity']:,.2f}"),
    ]
    if any("exact_match" in a for a in arms):
        cols.append(("exact match (strict)", lambda a: pct(a.get("exact_match", {}).get("strict"))))
        cols.append(("exact match (flexible)", lambda a: pct(a.get("exact_match", {}).get("flexible"))))
    if any("rouge_l" in a for a in arms):
        cols.append(("ROUGE-L", lambda a: f"{a['rouge_l']['mean']:.4f}" if "rouge_l" in a else "–"))
    if any("judge_vs" in a for a in arms):
        cols.append(
            ("win rate vs first", lambda a: pct(a["judge_vs"]["win_rate_ties_half"]) if "judge_vs" in a else "–")
        )
    cols.append(("held-out prompts in its data", lambda a: f"{a['heldout_overlap']:,}"))
    return cols


def render_html(result: dict[str, Any]) -> str:
    """ablate.html: the settings, the arms' table, bar charts of the held-out scores and the loss curves."""
    from datamill.report.build import CSS
    from datamill.report.svg import hbars
    from datamill.train.curve import curves_svg

    arms, cfg = result["arms"], result["train"]
    cols = columns(result)
    head = "".join(f"<th{' class=n' if i else ''}>{escape(h)}</th>" for i, (h, _) in enumerate(cols))
    rows = "".join(
        f'<tr data-arm="{escape(a["name"])}">'
        + "".join(f"<td{' class=n' if i else ''}>{escape(cell(a))}</td>" for i, (_, cell) in enumerate(cols))
        + "</tr>"
        for a in arms
    )
    length = f"{cfg['max_steps']} steps" if cfg["max_steps"] else f"{cfg['epochs']:g} epochs"
    setting = (
        f"{cfg['stage']} · {cfg['method']} · model {cfg['model'] or 'embedded Gemma 3 270M'} · "
        f"{length} · lr {cfg['lr'] or 'default'} · "
        f"batch {cfg['batch_size']}×{cfg['grad_accum']} · cutoff {cfg['cutoff_len']} · seed {cfg['seed']}"
    )
    name = escape(result["name"])
    parts = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>datamill ablation: {name}</title>',
        f"<style>{CSS}</style></head><body><h1>{name}</h1>",
        f"<p class='muted'>{escape(setting)}<br>held-out: {escape(result['eval']['data'])} "
        f"({result['heldout'].get('items', 0):,} items), the same for every arm</p>",
        f"<h2>Arms</h2><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>",
        f"<p>lowest held-out loss: <b>{escape(result.get('best', '–'))}</b>. Lower loss and perplexity are better; "
        "compare arms, not absolute scores, on a small base model.</p>",
        "<h2>Held-out loss (answer tokens; lower is better)</h2>",
        hbars([(a["name"], round(a["heldout_loss"]["mean"], 4)) for a in arms]),
    ]
    first = arms[0]["name"]
    charts: list[tuple[str, str, Callable[[dict], float]]] = [
        ("exact_match", "Exact match, strict (%)", lambda a: round(100 * a["exact_match"]["strict"], 1)),
        ("rouge_l", "ROUGE-L (mean)", lambda a: a["rouge_l"]["mean"]),
        ("judge_vs", f"Win rate against {first} (%, ties half, both orders)",
         lambda a: round(100 * (a["judge_vs"]["win_rate_ties_half"] or 0), 1)),
    ]  # fmt: skip
    for key, label, value in charts:
        scored = [(a["name"], value(a)) for a in arms if key in a]
        if scored:
            parts += [f"<h2>{escape(label)}</h2>", hbars(scored)]
    series = []
    for a in arms:
        info = json.loads((Path(a["run"]) / "train.json").read_text(encoding="utf-8"))
        series.append((a["name"], [(e["step"], e["loss"]) for e in info.get("losses", [])]))
    parts += ["<h2>Training loss</h2>", curves_svg(series, title="training loss per arm"), "</body></html>"]
    return "".join(parts)

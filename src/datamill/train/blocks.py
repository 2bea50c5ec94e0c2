"""The ``train:`` and ``eval:`` blocks that a recipe (run after its pipeline) and an ablation share: their
options are ``TrainConfig``'s and ``EvalConfig``'s, checked with the rest of the recipe before any work, so a
typo in ``max_steps`` fails at load time and not after an hour of synthesis.

``evaluate_run`` writes a RUN's eval.json once: a rerun with the same evaluation settings, the same
held-out files and the same trained steps reuses it, as the pipeline and the training reuse their work."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from datamill.errors import DatamillError
from datamill.io import outputs
from datamill.train import data
from datamill.train.evaluate import EvalConfig, evaluate
from datamill.train.run import TrainConfig, TrainResult, train

TRAIN_OWN = {"out"}  # block keys that are not TrainConfig fields: the RUN folder
EVAL_OWN = {"data"}  # the held-out data (default: the recipe output's validation / test split)
EVAL_SET = {"model", "adapter"}  # what the block's training decides, never written by hand


def problems(train_block: Any, eval_block: Any) -> list[tuple[tuple, str]]:
    """(YAML path, message) for every problem of the two blocks (empty: they are fine)."""
    found: list[tuple[tuple, str]] = []
    if eval_block is not None and train_block is None:
        found.append((("eval",), "eval: evaluates what train: trains; add a train: block"))
    for key, block, cls, own in (
        ("train", train_block, TrainConfig, TRAIN_OWN),
        ("eval", eval_block, EvalConfig, EVAL_OWN | EVAL_SET),
    ):
        if block is None:
            continue
        if key == "eval":
            found += [((key, k), f"eval.{k}: set by the train: block, not here") for k in EVAL_SET & set(block)]
        try:
            config = _config(cls, {k: v for k, v in block.items() if k not in own})
            if isinstance(config, TrainConfig):
                config.check()
        except ValidationError as e:
            for err in e.errors():
                loc = tuple(err["loc"])
                found.append(((key, *loc), f"{key}.{'.'.join(map(str, loc))}: {err['msg']}"))
        except DatamillError as e:
            found.append(((key,), f"{key}: {e}"))
    return found


def _config(cls: type, options: dict[str, Any]) -> Any:
    return TypeAdapter(cls).validate_python(options)


def train_config(block: dict[str, Any], base: Path, seed: int) -> TrainConfig:
    """The block's TrainConfig: a relative model path is the config file's, the seed the recipe's unless set."""
    options = {k: v for k, v in block.items() if k not in TRAIN_OWN}
    options.setdefault("seed", seed)
    config = _config(TrainConfig, options)
    if config.model and config.model != "embedded" and not Path(config.model).expanduser().is_absolute():
        local = base / config.model
        config.model = str(local) if local.exists() else config.model  # else a Hugging Face name
    return config


def eval_config(block: dict[str, Any] | None, model: str | None, adapter: Path) -> EvalConfig:
    options = {k: v for k, v in (block or {}).items() if k not in EVAL_OWN}
    return _config(EvalConfig, {**options, "model": model, "adapter": str(adapter)})


def evaluate_run(run_dir: Path, heldout: str | Path, config: EvalConfig) -> tuple[dict[str, Any], bool]:
    """(RUN/eval.json's content, whether it was reused): evaluated unless RUN/eval.json already holds this
    evaluation — the same settings, held-out files and trained run."""
    target = run_dir / "eval.json"
    trained = json.loads((run_dir / "train.json").read_text(encoding="utf-8"))
    of_run = {"identity": trained["identity"], "global_step": trained.get("global_step")}
    if target.is_file():
        old = json.loads(target.read_text(encoding="utf-8"))
        current = data.fingerprint(data.data_files(heldout, "heldout"))["sha256"]
        same = old.get("config") == asdict(config) and old.get("run") == of_run
        if same and old.get("data", {}).get("sha256") == current:
            return old, True
    result = {**evaluate(heldout, config), "run": of_run}
    outputs.write_text(target, json.dumps(result, ensure_ascii=False, indent=2) + "\n", overwrite=True)
    return result, False


def run_after(
    train_block: dict[str, Any],
    eval_block: dict[str, Any] | None,
    outdir: Path,
    base: Path,
    seed: int,
) -> tuple[TrainResult, dict[str, Any] | None, bool]:
    """A recipe's training on its output OUTDIR (its train split), then its evaluation on ``eval.data`` or
    OUTDIR's validation / test split; RUN is ``train.out`` (relative to the recipe) or OUTDIR/train. Returns the
    training, the evaluation (None without an eval: block) and whether RUN/eval.json was reused."""
    config = train_config(train_block, base, seed)
    run_dir = base / train_block["out"] if train_block.get("out") else outdir / "train"
    result = train(outdir, run_dir, config, restart=True)
    if eval_block is None:
        return result, None, False
    heldout = base / eval_block["data"] if eval_block.get("data") else outdir
    return result, *evaluate_run(run_dir, heldout, eval_config(eval_block, config.model, run_dir))

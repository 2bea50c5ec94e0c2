"""``train``: one TRL run (SFTTrainer for sft and pt, DPOTrainer, KTOTrainer) with a PEFT method, into a RUN
folder that holds its checkpoints, the final adapter (or model), ``train.json`` and ``loss.svg``.

Rerunning into the same RUN resumes from its last *complete* checkpoint (transformers writes
``trainer_state.json`` last, so a checkpoint without one was cut short by a kill and is removed), provided
the run is the same: same data fingerprint, model and settings (only epochs / max-steps may change, to
train further). A finished run is not trained again."""

from __future__ import annotations

import contextlib
import json
import math
import platform
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from datamill import __version__
from datamill.errors import DatamillError
from datamill.io import outputs
from datamill.train import data, methods
from datamill.train import model as models
from datamill.train.curve import loss_svg

STAGES = ("pt", "sft", "dpo", "kto")
PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes")
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
EXTENDABLE = {"epochs", "max_steps", "save_steps", "logging_steps"}  # may change between a run and its resume


@dataclass
class TrainConfig:
    """What a run is; everything here but ``EXTENDABLE`` must match for a rerun to resume."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # a recipe's train: block is checked against the fields

    stage: str = "sft"
    method: str = "lora"
    model: str | None = None  # a model directory; None: the embedded Gemma 3 270M
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs
    lr: float | None = None  # None: methods.default_lr
    lora_r: int = 8
    virtual_tokens: int = 20  # prompt / prefix tuning
    cutoff_len: int = 1024
    batch_size: int = 2
    grad_accum: int = 1
    seed: int = 42
    save_steps: int | None = None  # None: a tenth of the run
    logging_steps: int | None = None  # None: about 50 points on the curve
    fmt: str | None = None  # input format (None: detect)
    limit: int | None = None  # the first N records only

    def check(self) -> None:
        if self.stage not in STAGES:
            raise DatamillError(f"--stage {self.stage!r}: one of {', '.join(STAGES)}")
        if self.method not in methods.METHODS:
            raise DatamillError(f"--method {self.method!r}: one of {', '.join(methods.METHODS)}")
        if self.stage == "kto" and self.batch_size < 2:
            raise DatamillError("--stage kto needs --batch-size 2 or more (its KL term is estimated within a batch)")
        if self.method in ("prompt_tuning", "prefix_tuning") and self.stage in ("dpo", "kto"):
            raise DatamillError(
                f"--method {self.method} trains virtual tokens that TRL's {self.stage.upper()} log-probabilities "
                "do not line up with; use lora (or full) for preference stages"
            )


@dataclass
class TrainResult:
    run_dir: Path
    info: dict[str, Any]
    up_to_date: bool = False
    resumed_from: int | None = None
    losses: list[dict[str, Any]] = field(default_factory=list)


def versions() -> dict[str, str]:
    """The versions a result depends on (written into train.json and eval.json)."""
    out = {"datamill": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint in ``run_dir``; newer incomplete ones (a kill mid-save) are removed."""
    found = sorted(
        ((int(m.group(1)), p) for p in run_dir.glob("checkpoint-*") if p.is_dir() and (m := CHECKPOINT.match(p.name))),
        reverse=True,
    )
    for _, path in found:
        if (path / "trainer_state.json").is_file():
            return path
        shutil.rmtree(path)
    return None


def sft_form(tokenizer: Any) -> str:
    """``messages`` (loss on every assistant turn) when the chat template marks answers with
    ``{% generation %}`` or TRL knows how to patch it to; else ``prompt_completion`` (loss on the last answer)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return "messages"
    try:
        get_training_chat_template(tokenizer)
    except ValueError:
        return "prompt_completion"
    return "messages"


def _identity(config: TrainConfig, model_path: str, fingerprint: str) -> dict[str, Any]:
    kept = {k: v for k, v in asdict(config).items() if k not in EXTENDABLE}
    return {**kept, "model": model_path, "data_sha256": fingerprint}


def _check_run_dir(
    run_dir: Path, identity: dict[str, Any], overwrite: bool, restart: bool = False
) -> dict[str, Any] | None:
    """The earlier train.json of this same run (None for a fresh RUN); refuses another run's folder, or with
    ``restart`` (a recipe's or an ablation's own RUN, whose data was rebuilt) starts it over."""
    outputs.refuse_unsafe(run_dir)
    info_path = run_dir / "train.json"
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return None
    if not info_path.is_file():
        if overwrite:
            shutil.rmtree(run_dir)
            return None
        raise DatamillError(f"{run_dir}: not empty and not a datamill training run; choose another -o (or --overwrite)")
    old = json.loads(info_path.read_text(encoding="utf-8"))
    if overwrite:
        shutil.rmtree(run_dir)
        return None
    changed = {
        k: (old.get("identity", {}).get(k), v) for k, v in identity.items() if old.get("identity", {}).get(k) != v
    }
    if changed and restart:
        shutil.rmtree(run_dir)
        return None
    if changed:
        what = "; ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in changed.items())
        raise DatamillError(f"{run_dir} holds another run ({what}); choose another -o, or --overwrite to start over")
    return old


def _steps(config: TrainConfig, rows: int) -> int:
    if config.max_steps:
        return config.max_steps
    return max(1, math.ceil(config.epochs * math.ceil(rows / (config.batch_size * config.grad_accum))))


def _trainer(
    config: TrainConfig,
    run_dir: Path,
    model: Any,
    tokenizer: Any,
    train_ds: Any,
    eval_ds: Any,
    form: str,
    device: models.Device,
    total: int,
) -> Any:
    import trl

    args: dict[str, Any] = {
        "output_dir": str(run_dir),
        "max_length": config.cutoff_len,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.lr or methods.default_lr(config.method, config.stage),
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps or -1,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.03,
        "logging_steps": config.logging_steps or max(1, total // 50),
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": config.save_steps or max(1, math.ceil(total / 10)),
        "save_total_limit": 2,
        "seed": config.seed,
        "data_seed": config.seed,
        "bf16": device.bf16,
        "fp16": False,
        "use_cpu": device.name == "cpu",
        "activation_checkpointing": False,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    peft_config = methods.peft_config(config.method, config.lora_r, config.virtual_tokens)
    common = {"model": model, "train_dataset": train_ds, "eval_dataset": eval_ds, "processing_class": tokenizer}
    if config.stage in ("sft", "pt"):
        if config.stage == "sft":
            args |= {"assistant_only_loss": form == "messages", "completion_only_loss": form == "prompt_completion"}
        return trl.SFTTrainer(args=trl.SFTConfig(**args), peft_config=peft_config, **common)
    if config.stage == "dpo":
        return trl.DPOTrainer(args=trl.DPOConfig(**args, beta=0.1), peft_config=peft_config, **common)
    return trl.KTOTrainer(args=trl.KTOConfig(**args, beta=0.1), peft_config=peft_config, **common)


def _dataset(rows: list[dict[str, Any]]) -> Any:
    from datasets import Dataset

    keys = {k for r in rows for k in r}
    return Dataset.from_list([{k: r.get(k) for k in keys} for r in rows])


def train(
    data_path: str | Path,
    run_dir: str | Path,
    config: TrainConfig,
    *,
    overwrite: bool = False,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    restart: bool = False,
) -> TrainResult:
    """Train ``config`` on ``data_path`` into ``run_dir`` (resuming a killed run there); see the module doc."""
    config.check()
    device = models.pick_device()
    quantization = models.require_qlora(device) if config.method == "qlora" else None
    model_path = models.resolve(config.model)
    tokenizer = models.load_tokenizer(model_path, needs_template=config.stage != "pt")
    form = sft_form(tokenizer) if config.stage == "sft" else "messages"
    train_data = data.load(data.data_files(data_path, "train"), config.stage, form, config.fmt, config.limit)
    heldout = None
    if data.is_outdir(Path(data_path)):
        try:
            heldout = data.load(data.data_files(data_path, "heldout"), config.stage, form, config.fmt)
        except DatamillError:
            heldout = None  # no held-out split: train only
    run_dir = Path(run_dir)
    summary = train_data.summary()
    identity = _identity(config, model_path, summary["sha256"])
    old = _check_run_dir(run_dir, identity, overwrite, restart)
    total = _steps(config, len(train_data.rows))
    if old and old.get("finished") and old.get("global_step") == total:
        return TrainResult(run_dir, old, up_to_date=True, losses=old.get("losses", []))
    run_dir.mkdir(parents=True, exist_ok=True)
    resume = last_checkpoint(run_dir)
    info: dict[str, Any] = {
        "identity": identity,
        "config": asdict(config),
        "model": model_path,
        "data": summary,
        "heldout": heldout.summary() if heldout else None,
        "loss_on": {"sft": "assistant turns" if form == "messages" else "last answer", "pt": "all tokens"}.get(
            config.stage, config.stage
        ),
        "device": {"name": device.name, "bf16": device.bf16},
        "versions": versions(),
        "finished": False,
    }
    _write_json(run_dir / "train.json", info)

    from transformers import PrinterCallback, set_seed

    set_seed(config.seed)
    model = models.load_model(model_path, device, quantization)
    eval_ds = _dataset(heldout.rows) if heldout else None
    trainer = _trainer(config, run_dir, model, tokenizer, _dataset(train_data.rows), eval_ds, form, device, total)
    trainer.remove_callback(PrinterCallback)
    if progress:
        from datamill.train.progress import RichProgress

        trainer.add_callback(RichProgress(f"{config.stage} {config.method}"))
    for cb in callbacks:
        trainer.add_callback(cb)
    started = time.monotonic()
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    trainer.save_model(str(run_dir))
    losses = [entry for entry in trainer.state.log_history if "loss" in entry]
    info |= {
        "finished": True,
        "global_step": trainer.state.global_step,
        "resumed_from": _step_of(resume),
        "seconds": round(time.monotonic() - started, 2),
        "metrics": output.metrics,
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "losses": losses,
    }
    if eval_ds is not None:
        info["eval_loss"] = trainer.evaluate()["eval_loss"]
    _write_json(run_dir / "train.json", info)
    title = f"{config.stage} · {config.method} · {Path(model_path).name}"
    svg = loss_svg([(e["step"], e["loss"]) for e in losses], info.get("eval_loss"), title)
    outputs.write_text(run_dir / "loss.svg", svg, overwrite=True)
    return TrainResult(run_dir, info, resumed_from=info["resumed_from"], losses=losses)


def _step_of(checkpoint: Path | None) -> int | None:
    return int(CHECKPOINT.match(checkpoint.name).group(1)) if checkpoint else None


def _write_json(path: Path, value: Any) -> None:
    outputs.write_text(path, json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n", overwrite=True)

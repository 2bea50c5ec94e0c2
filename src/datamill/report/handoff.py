"""Trainer hand-off: a LLaMA-Factory training YAML (SFT / DPO / KTO / PT with LoRA) and a TRL script
written next to a run's outputs, pointing at them (for TRL at a copy in its columns under OUTDIR/trl/
when the run wrote another format), so training starts with one command:

    llamafactory-cli train OUTDIR/train_llamafactory.yaml
    python OUTDIR/train_trl.py

The stage comes from the ``dataset_info.json`` entry the run wrote (``ranking`` → DPO, a
``kto_tag`` column → KTO, a plain ``text`` prompt column → pretraining, else SFT) unless given.
Hyper-parameters are LLaMA-Factory's example defaults for LoRA; edit the files, they are yours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml

from datamill.errors import DatamillError
from datamill.io import outputs

Stage = Literal["sft", "dpo", "kto", "pt"]
DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
TRAINERS = {"sft": "SFTTrainer", "dpo": "DPOTrainer", "kto": "KTOTrainer", "pt": "SFTTrainer"}
CONFIGS = {"sft": "SFTConfig", "dpo": "DPOConfig", "kto": "KTOConfig", "pt": "SFTConfig"}
TRL_FORMAT = {"sft": "messages", "dpo": "trl", "kto": "trl", "pt": "pretrain"}


def detect_stage(entry: dict[str, Any]) -> Stage:
    columns = entry.get("columns") or {}
    if entry.get("ranking"):
        return "dpo"
    if "kto_tag" in columns:
        return "kto"
    if columns.get("prompt") == "text" and "response" not in columns and entry.get("formatting", "alpaca") == "alpaca":
        return "pt"
    return "sft"


def llamafactory_yaml(
    name: str, outdir: Path, stage: Stage, model: str, template: str, cutoff_len: int, eval_name: str | None
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model_name_or_path": model,
        "trust_remote_code": True,
        "stage": stage,
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 8,
        "lora_target": "all",
    }
    if stage in ("dpo", "kto"):
        cfg["pref_beta"] = 0.1
    if stage == "dpo":
        cfg["pref_loss"] = "sigmoid"
    cfg |= {
        "dataset": name,
        "dataset_dir": str(outdir.resolve()),
        "template": template,
        "cutoff_len": cutoff_len,
        "overwrite_cache": True,
        "preprocessing_num_workers": 4,
        "output_dir": f"saves/{name}/lora/{stage}",
        "logging_steps": 10,
        "save_steps": 500,
        "plot_loss": True,
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 8,
        "learning_rate": 5.0e-6 if stage in ("dpo", "kto") else 1.0e-4,
        "num_train_epochs": 3.0,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.1,  # a ratio: transformers 5.2 removed warmup_ratio (LLaMA-Factory 0.9.5 runs on ≤ 5.6)
        "bf16": True,
    }
    if eval_name:
        cfg |= {"eval_dataset": eval_name, "per_device_eval_batch_size": 1, "eval_strategy": "steps", "eval_steps": 500}
    return cfg


def trl_data(outdir: Path, data_files: list[str], stage: Stage, overwrite: bool = False) -> list[str]:
    """The data files in the form TRL reads (``TRL_FORMAT``), relative to ``outdir``: each file as it is when
    it has that form, else a copy converted into ``outdir/trl/`` — TRL renames sharegpt's ``from``/``value``
    keys but keeps its ``human``/``gpt`` roles, which no chat template knows, and reads no alpaca columns."""
    from datamill.convert import convert
    from datamill.dataset import read_with_format

    target = TRL_FORMAT[stage]
    made = []
    for name in data_files:
        fmt, _ = read_with_format(outdir / name)
        if fmt is not None and fmt.name == target:
            made.append(name)
            continue
        copy = Path("trl") / f"{Path(name).name.split('.')[0]}.jsonl"
        convert(outdir / name, outdir / copy, target, register=False, overwrite=overwrite)
        made.append(str(copy))
    return made


def trl_script(data_files: list[str], outdir: Path, stage: Stage, model: str, cutoff_len: int) -> str:
    files = [str((outdir / f).resolve()) for f in data_files]
    trainer, config = TRAINERS[stage], CONFIGS[stage]
    batch = 2 if stage == "kto" else 1
    return f'''"""TRL {stage.upper()} with LoRA on the datamill output in {outdir.resolve()}.

TRL reads conversational "messages" (SFT), "prompt"/"chosen"/"rejected" (DPO), "prompt"/"completion"/
"label" (KTO) or "text" (pretraining): `datamill handoff` converted the run's files into that form (trl/)
where they were in another.
"""

import torch
from datasets import load_dataset
from peft import LoraConfig
from trl import {config}, {trainer}

gpu = torch.cuda.is_available()
dataset = load_dataset("json", data_files={json.dumps(files)}, split="train")
args = {config}(
    output_dir="saves/trl-{stage}",
    bf16=gpu and torch.cuda.is_bf16_supported(),  # else float32; on a machine without a GPU, the CPU
    use_cpu=not gpu,
    per_device_train_batch_size={batch},  # KTO needs 2+: its KL term compares answers within a batch
    gradient_accumulation_steps={8 // batch},
    learning_rate={"5e-6" if stage in ("dpo", "kto") else "1e-4"},
    num_train_epochs=3,
    max_length={cutoff_len},
    logging_steps=10,
)
trainer = {trainer}(
    model="{model}",
    args=args,
    train_dataset=dataset,
    peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
)
trainer.train()
'''


def write_handoff(
    outdir: str | Path,
    stage: Stage | None = None,
    model: str = DEFAULT_MODEL,
    template: str = "qwen",
    cutoff_len: int = 2048,
    dataset: str | None = None,
    eval_dataset: str | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write OUTDIR/train_llamafactory.yaml and OUTDIR/train_trl.py (never over the user's own files,
    unless ``overwrite``); returns their paths."""
    out = Path(outdir)
    info_path = out / "dataset_info.json"
    if not info_path.exists():
        raise DatamillError(f"{out}: no dataset_info.json; run `datamill run` (or convert) into it first")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    name = dataset or next(iter(info), None)
    if name not in info:
        raise DatamillError(f"{info_path}: no entry named {name!r} (have: {', '.join(info) or 'none'})")
    entry = info[name]
    stage = stage or detect_stage(entry)
    file_name = entry.get("file_name", "")
    data_files = [file_name] if isinstance(file_name, str) else list(file_name)
    lf = llamafactory_yaml(name, out, stage, model, template, cutoff_len, eval_dataset)
    lf_path, trl_path = out / "train_llamafactory.yaml", out / "train_trl.py"
    header = f"# LLaMA-Factory {stage.upper()} + LoRA on datamill output '{name}': llamafactory-cli train {lf_path}\n"
    for path in (lf_path, trl_path):
        outputs.check_replace(path, overwrite)
    outputs.write_text(lf_path, header + yaml.safe_dump(lf, sort_keys=False, allow_unicode=True), overwrite)
    trl_files = trl_data(out, data_files, stage, overwrite)
    outputs.write_text(trl_path, trl_script(trl_files, out, stage, model, cutoff_len), overwrite)
    return lf_path, trl_path


def handoff_command(
    outdir: Annotated[str, typer.Argument(help="output directory with a dataset_info.json")],
    stage: Annotated[str | None, typer.Option(help="sft | dpo | kto | pt (default: from dataset_info.json)")] = None,
    model: Annotated[str, typer.Option(help="base model for training")] = DEFAULT_MODEL,
    template: Annotated[str, typer.Option(help="LLaMA-Factory chat template")] = "qwen",
    cutoff_len: Annotated[int, typer.Option(help="max tokens per example")] = 2048,
    dataset: Annotated[str | None, typer.Option(help="dataset_info.json entry (default: the first)")] = None,
    eval_dataset: Annotated[str | None, typer.Option(help="entry to evaluate on")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace training files datamill did not write.")] = False,
) -> None:
    """Write OUTDIR/train_llamafactory.yaml and OUTDIR/train_trl.py (LoRA) for the run's outputs."""
    if stage is not None and stage not in TRAINERS:
        raise typer.BadParameter(f"--stage {stage!r}: one of {', '.join(TRAINERS)}")
    try:
        paths = write_handoff(
            outdir, stage, model, template, cutoff_len, dataset, eval_dataset, overwrite  # type: ignore[arg-type]
        )
    except DatamillError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {paths[0]} and {paths[1]}")

"""What `datamill handoff` writes is what the trainers read (issue 18 item 5): the LLaMA-Factory YAML parsed by
LLaMA-Factory's own argument parser and the dataset it names loaded through dataset_info.json by its own loader
(``lf_align``), every record as datamill wrote it; the TRL script's data read by TRL's own data utilities, and
the script run as written — a few LoRA steps on test_train's tiny model."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_train import one_thread, tiny  # noqa: F401  (module fixtures: the tiny model, one thread)
from typer.testing import CliRunner

import datamill
from datamill.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path) -> tuple[Path, list[datamill.Record]]:
    """`datamill run` of the quickstart recipe on 16 sample records: sharegpt, with its dataset_info.json entry."""
    rows = json.loads((ROOT / "examples" / "alpaca_en_sample.json").read_text(encoding="utf-8"))[:16]
    (tmp_path / "in.json").write_text(json.dumps(rows), encoding="utf-8")
    out = tmp_path / "out"
    args = ["run", str(ROOT / "recipes" / "quickstart.yaml"), "-i", str(tmp_path / "in.json"), "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = [rec for path in sorted(out.glob("data-*")) for rec in datamill.read(path)]
    assert len(written) == json.loads((out / "stats.json").read_text())["kept"] > 8
    return out, written


def test_llamafactory_parses_the_yaml_and_loads_the_data(tmp_path):
    import lf_align
    from llamafactory.hparams.parser import _parse_train_args  # LLaMA-Factory's parser, before its GPU checks

    out, written = _run(tmp_path)
    result = CliRunner().invoke(app, ["handoff", str(out)])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((out / "train_llamafactory.yaml").read_text(encoding="utf-8"))
    assert cfg["bf16"]  # written for a GPU; transformers refuses bf16 on a CPU-only machine unless told so
    on_cpu = {} if __import__("torch").cuda.is_available() else {"use_cpu": True}
    _, data_args, training_args, finetuning_args, _ = _parse_train_args(cfg | on_cpu)  # no key unknown to it
    assert finetuning_args.stage == "sft" and finetuning_args.finetuning_type == "lora" and training_args.do_train
    assert Path(data_args.dataset_dir) == out.resolve() and data_args.template == "qwen"
    rows = lf_align.load(Path(data_args.dataset_dir), data_args.dataset[0])
    assert [(r["prompt"][-1]["content"], r["response"][0]["content"]) for r in rows] == [
        (rec.messages[-2].content, rec.messages[-1].content) for rec in written
    ]
    assert all(r["prompt"][-1]["role"] == "user" and r["response"][0]["role"] == "assistant" for r in rows)


def test_the_trl_script_runs_on_the_data(tiny, tmp_path):  # noqa: F811
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl.data_utils import apply_chat_template, is_conversational

    out, written = _run(tmp_path)
    result = CliRunner().invoke(app, ["handoff", str(out), "--model", tiny, "--cutoff-len", "128"])
    assert result.exit_code == 0, result.output
    script = (out / "train_trl.py").read_text(encoding="utf-8")
    files = json.loads(re.search(r"data_files=(\[.*?\])", script).group(1))
    assert files == [str((out / "trl" / p.name.split(".")[0]).resolve()) + ".jsonl" for p in sorted(out.glob("data-*"))]
    dataset = load_dataset("json", data_files=files, split="train")  # what the script loads, as it loads it
    assert len(dataset) == len(written) and all(is_conversational(row) for row in dataset)
    text = apply_chat_template(dataset[0], AutoTokenizer.from_pretrained(tiny))["text"]
    first = written[0].messages
    assert text.startswith(f"<|im_start|>user\n{first[0].content}<|im_end|>\n<|im_start|>assistant\n{first[1].content}")
    env = os.environ | {"OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(
        [sys.executable, str(out / "train_trl.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (checkpoint,) = (tmp_path / "saves" / "trl-sft").glob("checkpoint-*")
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["epoch"] == 3 and state["global_step"] == 3 * math.ceil(len(written) / 8)  # batch 1 × 8, 3 epochs
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert json.loads((checkpoint / "adapter_config.json").read_text())["base_model_name_or_path"] == tiny


@pytest.fixture(autouse=True)
def _hf_offline(monkeypatch):
    """Nothing here may reach the Hugging Face Hub: the model is the tiny local one."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_trl_kto_script_runs_on_kto_data(tiny, tmp_path):  # noqa: F811
    """KTO: TRL's KTOTrainer reads prompt / completion / label, so the hand-off converts a run's sharegpt
    (kto_tag) output into that form and the script trains on it."""
    from datasets import load_dataset

    out = tmp_path / "kto"
    kto = ROOT / "examples" / "kto_en_sample.json"
    result = CliRunner().invoke(app, ["convert", str(kto), str(out / "data-00000.json"), "--to", "sharegpt"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["handoff", str(out), "--model", tiny, "--cutoff-len", "128"])
    assert result.exit_code == 0, result.output
    script = (out / "train_trl.py").read_text(encoding="utf-8")
    assert "KTOTrainer" in script
    files = json.loads(re.search(r"data_files=(\[.*?\])", script).group(1))
    dataset = load_dataset("json", data_files=files, split="train")
    assert set(dataset.column_names) == {"prompt", "completion", "label"} and len(dataset) == 30
    assert sum(dataset["label"]) == sum(rec.label for rec in datamill.read(kto))
    env = os.environ | {"OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(
        [sys.executable, str(out / "train_trl.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    (checkpoint,) = (tmp_path / "saves" / "trl-kto").glob("checkpoint-*")
    assert (checkpoint / "adapter_model.safetensors").is_file()

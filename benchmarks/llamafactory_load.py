"""Load datamill's outputs with LLaMA-Factory's own data code — its parser (dataset_info.json →
DatasetAttr), loader (datasets.load_dataset) and converter (align_dataset) — and compare each with the
original demo file loaded the same way: every prompt, response, system prompt and tool list must be
identical, and every image path LLaMA-Factory resolves must open. Impossible targets must be refused.

LLaMA-Factory's requirements clash with datamill's dev extra (transformers, datasets, trl versions), so
this runs in a venv of its own instead of CI:

    python3 -m venv /tmp/lfvenv
    /tmp/lfvenv/bin/pip install torch==2.13.0 llamafactory==0.9.5
    /tmp/lfvenv/bin/pip uninstall -y torchvision torchaudio   # CUDA-only / no build for torch 2.13
    /tmp/lfvenv/bin/python benchmarks/llamafactory_load.py   # from the repository root; uses .venv/bin/datamill

``llamafactory.data`` imports torchaudio at module level for audio inputs; no torchaudio loads beside
torch 2.13.0 CPU, so an empty module stands in for it (none of these datasets has audio).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

from transformers import Seq2SeqTrainingArguments  # first, so it sees no torchaudio and never uses the stand-in

sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))

from llamafactory.data.loader import _load_single_dataset  # noqa: E402
from llamafactory.data.parser import get_dataset_list  # noqa: E402
from llamafactory.hparams import DataArguments, ModelArguments  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LF = ROOT / "tests" / "data" / "llamafactory"
DATAMILL = ROOT / ".venv" / "bin" / "datamill"
DEMOS = {  # the demo's entry in LLaMA-Factory's own dataset_info.json → its file
    "alpaca_en_demo": "alpaca_en_demo.json",
    "alpaca_zh_demo": "alpaca_zh_demo.json",
    "glaive_toolcall_en_demo": "glaive_toolcall_en_demo.json",
    "glaive_toolcall_zh_demo": "glaive_toolcall_zh_demo.json",
    "identity": "identity.json",
    "mllm_demo": "mllm_demo.json",
    "dpo_en_demo": "dpo_en_demo.json",
    "dpo_zh_demo": "dpo_zh_demo.json",
    "kto_en_demo": "kto_en_demo.json",
}
TARGETS = ["alpaca", "sharegpt"]
CONTAINERS = ["json", "jsonl", "parquet"]


def aligned(name: str, dataset_dir: Path) -> list[dict]:
    """The dataset as LLaMA-Factory's trainer sees it before tokenizing."""
    (attr,) = get_dataset_list([name], str(dataset_dir))
    data_args = DataArguments(dataset_dir=str(dataset_dir), media_dir=str(dataset_dir))
    training_args = Seq2SeqTrainingArguments(output_dir=str(dataset_dir / "_trainer"), report_to=[])
    model_args = ModelArguments(model_name_or_path="unused")  # the loader reads only its cache and token settings
    return list(_load_single_dataset(attr, model_args, data_args, training_args))


def comparable(rows: list[dict]) -> list[tuple]:
    return [
        (
            json.dumps(r["_prompt"], ensure_ascii=False, sort_keys=True),
            json.dumps(r["_response"], ensure_ascii=False, sort_keys=True),
            r["_system"] or "",
            json.dumps(json.loads(r["_tools"]), sort_keys=True) if r["_tools"] else "",
        )
        for r in rows
    ]


def quarantined_indexes(path: Path) -> set[int]:
    return {json.loads(line)["index"] for line in path.open(encoding="utf-8")} if path.exists() else set()


def images_open(rows: list[dict]) -> bool:
    from PIL import Image

    for r in rows:
        for path in r.get("_images") or []:
            with Image.open(path) as im:
                im.verify()
    return True


def convert(src: Path, out: Path, target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DATAMILL), "convert", str(src), str(out), "--to", target, "--name", "out"],
        capture_output=True,
        text=True,
    )


def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        originals = {name: aligned(name, LF) for name in DEMOS}
        for name, file in DEMOS.items():
            for target in TARGETS:
                for container in CONTAINERS:
                    out = work / f"{name}-{target}-{container}" / f"out.{container}"
                    proc = convert(LF / file, out, target)
                    label = f"{file} → {target} .{container}"
                    if proc.returncode != 0:
                        print(f"REFUSED {label}: {proc.stderr.strip().splitlines()[-1]}")
                        failures += 1
                        continue
                    got = aligned("out", out.parent)
                    aside = quarantined_indexes(out.with_name("out.quarantine.jsonl"))
                    expected = [r for i, r in enumerate(originals[name]) if i not in aside]
                    same = comparable(got) == comparable(expected)
                    # the only records a target may set aside are those it cannot hold (alpaca: tool turns)
                    allowed = not aside or (target == "alpaca" and "toolcall" in file)
                    ok = same and allowed and images_open(got)
                    failures += not ok
                    note = f", {len(aside)} with tool turns quarantined (alpaca cannot hold them)" if aside else ""
                    status = "ok  " if ok else "FAIL"
                    print(f"{status}    {label}: {len(got)} records{note}" + ("" if same else " DIFFER"))
                    shutil.rmtree(out.parent)
        for src, target, out in (
            ("c4_demo.jsonl", "alpaca", "c4.json"),  # pretraining text cannot be alpaca
            ("glaive_toolcall_en_demo.json", "sharegpt", "g.csv"),  # conversations in a CSV cell
            ("mllm_demo.json", "alpaca", "m.csv"),  # an image list in a CSV cell
        ):
            proc = convert(LF / src, work / "refuse" / out, target)
            refused = proc.returncode != 0 and not (work / "refuse" / "dataset_info.json").exists()
            failures += not refused
            print(f"{'ok  ' if refused else 'FAIL'}    {src} → {target} {out}: refused, nothing registered")
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

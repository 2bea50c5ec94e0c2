"""LLaMA-Factory's own reading of a dataset: its parser (dataset_info.json → DatasetAttr), loader
(``datasets.load_dataset``) and converter (``align_dataset``) — what its trainer sees before
tokenizing — as plain dicts (prompt, response, system, tools, images) for the tests to compare.

``llamafactory`` 0.9.5 is installed without its dependencies (``.ci/run``: ``pip install --no-deps``),
because it requires torchvision and torchaudio, which have no CPU build for torch 2.13.0 on the
package index; the dev extra holds the dependencies its data code needs (peft, accelerate,
omegaconf). Its version pins are older than the dev extra's transformers and datasets, so its check
is switched off (``DISABLE_VERSION_CHECK``) — the data code runs unchanged on them. ``llamafactory.data``
imports torchaudio at module level for audio inputs: an empty module stands in for it while
llamafactory imports (none of these datasets has audio), and is removed again so nothing else in
the test session sees it (transformers decided torchaudio is absent before it was put there)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

try:
    from transformers import Seq2SeqTrainingArguments  # first: transformers sees no torchaudio

    os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        from llamafactory.data.loader import _load_single_dataset
        from llamafactory.data.parser import get_dataset_list
        from llamafactory.hparams import DataArguments, ModelArguments
    finally:
        if getattr(sys.modules.get("torchaudio"), "__file__", None) is None:
            sys.modules.pop("torchaudio", None)
except ImportError as e:  # pragma: no cover - CI installs it (.ci/run); a missing one fails there
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"LLaMA-Factory is not installed ({e}); see .ci/run", allow_module_level=True)


def load(dataset_dir: Path, name: str) -> list[dict[str, Any]]:
    """Dataset ``name`` of ``dataset_dir``/dataset_info.json as LLaMA-Factory aligns it. A record it
    finds broken (roles out of order) comes back with an empty prompt and response, as there."""
    (attr,) = get_dataset_list([name], str(dataset_dir))
    data_args = DataArguments(dataset_dir=str(dataset_dir), media_dir=str(dataset_dir))
    training_args = Seq2SeqTrainingArguments(output_dir=str(dataset_dir / ".lf_trainer"), report_to=[])
    model_args = ModelArguments(model_name_or_path="unused", cache_dir=str(dataset_dir / ".hf_cache"))
    rows = _load_single_dataset(attr, model_args, data_args, training_args)
    return [
        {
            "prompt": row["_prompt"],
            "response": row["_response"],
            "system": row["_system"] or "",
            "tools": row["_tools"] or "",
            "images": row["_images"],
        }
        for row in rows
    ]

"""Write or update a LLaMA-Factory ``dataset_info.json`` entry next to an output, so the output loads
in LLaMA-Factory with ``dataset: NAME`` and ``dataset_dir`` pointing at that folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datamill.errors import DatamillError
from datamill.io.atomic import write_text_atomic


def entry_name(path: Path) -> str:
    name = path.name
    for suffix in reversed(path.suffixes):
        name = name.removesuffix(suffix)
    return name or path.name


def load(out: Path) -> dict[str, Any]:
    """The dataset_info.json beside ``out`` ({} if there is none); raises if it is broken."""
    info_path = out.parent / "dataset_info.json"
    info: dict[str, Any] = {}
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatamillError(f"{info_path}: exists but is not valid JSON ({e}); fix or remove it") from None
        if not isinstance(info, dict):
            raise DatamillError(f"{info_path}: exists but is not a JSON object; fix or remove it")
    return info


def update(out: Path, name: str, entry: dict[str, Any]) -> Path:
    """Set ``name`` in ``out``'s folder's dataset_info.json, keeping every other entry."""
    info_path = out.parent / "dataset_info.json"
    info = load(out)
    info[name] = {"file_name": out.name, **entry}
    write_text_atomic(info_path, json.dumps(info, ensure_ascii=False, indent=2) + "\n")
    return info_path

"""A test-side model of how LLaMA-Factory turns a dataset_info.json entry plus a file into
(prompt, response, system, tools, images) — following its data/parser.py defaults and
data/converter.py (Alpaca/Sharegpt converters). Used to check our outputs load the same way the
originals do. Files are loaded with ``datasets.load_dataset`` exactly as LLaMA-Factory does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

DEFAULT_COLUMNS = {
    "prompt": "instruction",
    "query": "input",
    "response": "output",
    "messages": "conversations",
}
DEFAULT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}


def load(dataset_dir: Path, name: str) -> list[dict[str, Any]]:
    entry = json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8"))[name]
    path = dataset_dir / entry["file_name"]
    builder = {".json": "json", ".jsonl": "json", ".txt": "text", ".csv": "csv", ".parquet": "parquet"}[path.suffix]
    ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=str(dataset_dir / ".hf_cache"))
    cols = {**DEFAULT_COLUMNS, **entry.get("columns", {})}
    tags = {**DEFAULT_TAGS, **entry.get("tags", {})}
    ranking = entry.get("ranking", False)
    align = _sharegpt if entry.get("formatting", "alpaca") == "sharegpt" else _alpaca
    return [align(ex, cols, tags, ranking) for ex in ds]


def _common(ex: dict[str, Any], cols: dict[str, str]) -> dict[str, Any]:
    return {
        "tools": ex.get(cols["tools"]) if "tools" in cols else "",
        "images": ex.get(cols["images"]) if "images" in cols else None,
    }


def _alpaca(ex: dict[str, Any], cols: dict[str, str], tags: dict[str, str], ranking: bool) -> dict[str, Any]:
    prompt = []
    if "history" in cols and isinstance(ex.get(cols["history"]), list):
        for old_prompt, old_response in ex[cols["history"]]:
            prompt += [
                {"role": "user", "content": old_prompt},
                {"role": "assistant", "content": old_response},
            ]
    query = [ex[cols[k]] for k in ("prompt", "query") if ex.get(cols[k])]
    prompt.append({"role": "user", "content": "\n".join(query)})
    if "kto_tag" in cols and isinstance(ex.get(cols["kto_tag"]), bool):
        response = [{"role": "assistant", "content": ex[cols["response"]]}, {"kto": ex[cols["kto_tag"]]}]
    elif ranking and isinstance(ex.get(cols.get("chosen", "")), str):
        response = [
            {"role": "assistant", "content": ex[cols["chosen"]]},
            {"role": "assistant", "content": ex[cols["rejected"]]},
        ]
    elif isinstance(ex.get(cols["response"]), str):
        response = [{"role": "assistant", "content": ex[cols["response"]]}]
    else:
        response = []
    system = ex.get(cols["system"]) if "system" in cols else ""
    return {"prompt": prompt, "response": response, "system": system or "", **_common(ex, cols)}


ROLE = {
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "observation",
    "function_tag": "function",
    "system_tag": "system",
}


def _sharegpt(ex: dict[str, Any], cols: dict[str, str], tags: dict[str, str], ranking: bool) -> dict[str, Any]:
    mapping = {tags[k]: v for k, v in ROLE.items()}
    odd = (tags["user_tag"], tags["observation_tag"])
    even = (tags["assistant_tag"], tags["function_tag"])
    msgs = ex[cols["messages"]]
    rt, ct = tags["role_tag"], tags["content_tag"]
    if msgs and msgs[0][rt] == tags["system_tag"]:
        system, msgs = msgs[0][ct], msgs[1:]
    else:
        system = ex.get(cols["system"]) if "system" in cols else ""
    aligned = []
    for i, m in enumerate(msgs):
        if m[rt] not in (odd, even)[i % 2]:
            return {"broken": True}
        aligned.append({"role": mapping[m[rt]], "content": m[ct]})
    if (not ranking and len(aligned) % 2) or (ranking and len(aligned) % 2 == 0):
        return {"broken": True}
    if "kto_tag" in cols and isinstance(ex.get(cols["kto_tag"]), bool):
        prompt, response = aligned[:-1], aligned[-1:] + [{"kto": ex[cols["kto_tag"]]}]
    elif ranking:
        ch, rj = ex[cols["chosen"]], ex[cols["rejected"]]
        prompt = aligned
        response = [
            {"role": mapping[ch[rt]], "content": ch[ct]},
            {"role": mapping[rj[rt]], "content": rj[ct]},
        ]
    else:
        prompt, response = aligned[:-1], aligned[-1:]
    return {"prompt": prompt, "response": response, "system": system or "", **_common(ex, cols)}

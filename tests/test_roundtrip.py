"""Round trips on every LLaMA-Factory demo file: same format, every container, cross-format, and
the LLaMA-Factory view (dataset_info.json + datasets.load_dataset) of what we write."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import LF

import datamill
from datamill.dataset import read_with_format
from datamill.errors import FileError
from datamill.formats import FORMATS
from datamill.record import MEDIA

DEMOS = {
    "alpaca_en_demo.json": ("alpaca", 999),
    "alpaca_zh_demo.json": ("alpaca", 1000),
    "dpo_en_demo.json": ("sharegpt", 300),
    "dpo_zh_demo.json": ("sharegpt", 300),
    "kto_en_demo.json": ("messages", 300),
    "glaive_toolcall_en_demo.json": ("sharegpt", 300),
    "glaive_toolcall_zh_demo.json": ("sharegpt", 300),
    "mllm_demo.json": ("messages", 6),
    "c4_demo.jsonl": ("pretrain", 300),
    "wiki_demo.txt": ("pretrain", 30),
    "identity.json": ("alpaca", 91),
}


def records(path, fmt=None):
    items = list(datamill.read(path, fmt))
    bad = [q for q in items if isinstance(q, datamill.Quarantined)]
    assert not bad, bad[:3]
    return items


def lines(path):
    return Path(path).read_text(encoding="utf-8").splitlines()


def contents(recs):
    """Content with media paths resolved (outputs rewrite them to open from where they are written)."""
    out = []
    for r in recs:
        d = r.content_dict()
        base = Path(r.meta["source"]).resolve().parent if "source" in r.meta else Path()
        out.append({k: [os.path.normpath(base / p) for p in v] if k in MEDIA else v for k, v in d.items()})
    return out


@pytest.mark.parametrize("name", DEMOS)
def test_detects_format_and_reads_every_record(name):
    fmt, items = read_with_format(LF / name)
    assert fmt.name == DEMOS[name][0]
    assert len([r for r in items if isinstance(r, datamill.Record)]) == DEMOS[name][1]


@pytest.mark.parametrize("name", DEMOS)
@pytest.mark.parametrize("ext", [".json", ".jsonl", ".parquet", ".csv"])
def test_same_format_round_trip_in_every_container(name, ext, tmp_path):
    fmt = DEMOS[name][0]
    original = records(LF / name)
    out = tmp_path / f"out{ext}"
    if ext == ".csv" and FORMATS[fmt].nested:  # a list in a CSV cell does not load in LLaMA-Factory
        with pytest.raises(FileError, match=FORMATS[fmt].nested):
            datamill.convert(LF / name, out, fmt)
        return
    summary = datamill.convert(LF / name, out, fmt)
    assert (summary.read, summary.written, summary.quarantined) == (len(original), len(original), 0)
    again = records(out, fmt)
    assert contents(again) == contents(original)
    # media paths are rewritten to open from the output, so only records without media keep their id
    assert [r.id for r in again if not r.media()] == [r.id for r in original if not r.media()]


def test_txt_round_trip_is_byte_identical(tmp_path):
    out = tmp_path / "wiki.txt"
    datamill.convert(LF / "wiki_demo.txt", out, "pretrain")
    src = [line for line in (LF / "wiki_demo.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    assert out.read_text(encoding="utf-8").splitlines() == src


@pytest.mark.parametrize("name", ["dpo_en_demo.json", "glaive_toolcall_zh_demo.json", "alpaca_zh_demo.json"])
def test_json_written_back_is_byte_identical_to_llamafactory_files(name, tmp_path):
    fmt = DEMOS[name][0]
    out = tmp_path / name
    datamill.convert(LF / name, out, fmt)
    original = json.loads((LF / name).read_text(encoding="utf-8"))
    assert json.loads(out.read_text(encoding="utf-8")) == original


def test_dpo_to_messages_and_back_reproduces_the_original(tmp_path):
    """The issue's example: dpo_en_demo.json → messages jsonl → sharegpt gives the original."""
    mid, back = tmp_path / "out.jsonl", tmp_path / "back.json"
    assert datamill.convert(LF / "dpo_en_demo.json", mid, "messages").written == 300
    first = json.loads(mid.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) == {"messages", "chosen", "rejected"} and first["chosen"]["role"] == "assistant"
    assert datamill.convert(mid, back, "sharegpt").written == 300
    assert json.loads(back.read_text(encoding="utf-8")) == json.loads((LF / "dpo_en_demo.json").read_text())


def test_hf_saved_dataset_round_trip(tmp_path):
    out = tmp_path / "glaive_ds"
    summary = datamill.convert(LF / "glaive_toolcall_en_demo.json", out, "sharegpt")
    assert summary.written == 300 and (out / "state.json").exists()
    assert contents(records(out)) == contents(records(LF / "glaive_toolcall_en_demo.json"))


# Which records each target format cannot hold, per source: (file, target) -> expected quarantined
CANNOT = {
    ("glaive_toolcall_en_demo.json", "alpaca"): "cannot hold",
    ("glaive_toolcall_zh_demo.json", "alpaca"): "cannot hold",
    ("glaive_toolcall_en_demo.json", "xtuner"): "xtuner",
    ("glaive_toolcall_zh_demo.json", "xtuner"): "xtuner",
}
CONVERSATIONAL = ["sharegpt", "messages", "alpaca", "trl", "conversation", "xtuner", "datamill"]


@pytest.mark.parametrize("name", [n for n, (f, _) in DEMOS.items() if f != "pretrain"])
@pytest.mark.parametrize("target", CONVERSATIONAL)
def test_cross_format_keeps_every_field_the_target_can_hold(name, target, tmp_path):
    """source → target → source: every record the target can hold comes back with the same
    content; the ones it cannot hold are quarantined with a reason, never silently changed."""
    source_fmt = DEMOS[name][0]
    original = records(LF / name)
    mid, back = tmp_path / "mid.jsonl", tmp_path / "back.jsonl"
    s1 = datamill.convert(LF / name, mid, target)
    assert s1.read == s1.written + s1.quarantined == len(original)
    kinds = {r.kind for r in original}
    target_holds_kind = target not in ("conversation", "xtuner") or kinds == {"sft"}
    media = any(r.media() for r in original)
    if not target_holds_kind or (media and target == "xtuner"):
        assert s1.written == 0 and s1.quarantined == len(original)
        return
    kept_ids = {json.loads(line)["id"] for line in lines(mid)} if target == "datamill" else None
    if (name, target) in CANNOT:
        quarantined = [json.loads(line) for line in lines(s1.quarantine_path)]
        assert quarantined and all(CANNOT[name, target] in q["error"] for q in quarantined)
        expected = [
            r
            for r in original
            if not any(m.role in ("function", "tool") for m in r.messages) and (target != "xtuner" or not r.tools)
        ]
    else:
        assert s1.quarantined == 0, s1.examples
        expected = original
    s2 = datamill.convert(mid, back, source_fmt)
    assert s2.quarantined == 0, s2.examples
    if target == "xtuner":  # an empty tool list is "no tools" there (documented)
        for r in expected:
            r.tools = r.tools or None
    assert contents(records(back, source_fmt)) == contents(expected)
    if kept_ids is not None:
        assert kept_ids == {r.id for r in original}


LF_CASES = [
    ("alpaca_en_demo.json", "alpaca_en_demo", "alpaca", ".json"),
    ("alpaca_zh_demo.json", "alpaca_zh_demo", "sharegpt", ".jsonl"),
    ("dpo_en_demo.json", "dpo_en_demo", "messages", ".jsonl"),
    ("dpo_zh_demo.json", "dpo_zh_demo", "alpaca", ".json"),
    ("kto_en_demo.json", "kto_en_demo", "sharegpt", ".json"),
    ("kto_en_demo.json", "kto_en_demo", "alpaca", ".jsonl"),
    ("glaive_toolcall_en_demo.json", "glaive_toolcall_en_demo", "sharegpt", ".jsonl"),
    ("mllm_demo.json", "mllm_demo", "sharegpt", ".json"),
    ("mllm_demo.json", "mllm_demo", "messages", ".jsonl"),
    ("c4_demo.jsonl", "c4_demo", "pretrain", ".jsonl"),
    ("wiki_demo.txt", "wiki_demo", "pretrain", ".parquet"),
]


@pytest.mark.parametrize(("name", "entry", "target", "ext"), LF_CASES)
def test_output_loads_in_llamafactory_like_the_original(name, entry, target, ext, tmp_path):
    """Our file + our dataset_info.json entry, read the way LLaMA-Factory reads datasets, gives the
    same prompts, responses, systems, tools and images as the original file with its official entry."""
    import lf_align

    src_dir = tmp_path / "src"
    src_dir.mkdir()
    shutil.copy(LF / name, src_dir / name)
    shutil.copy(LF / "dataset_info.json", src_dir / "dataset_info.json")
    (src_dir / "mllm_demo_data").symlink_to(LF / "mllm_demo_data")
    out_dir = tmp_path / "out"
    summary = datamill.convert(LF / name, out_dir / f"mine{ext}", target)
    assert summary.quarantined == 0
    ours = lf_align.load(out_dir, "mine")
    theirs = lf_align.load(src_dir, entry)
    assert len(ours) == len(theirs) == summary.read

    def norm(x, dataset_dir):  # images open from the dataset_dir, as LLaMA-Factory's media_dir
        tools = x.get("tools")
        images = [os.path.realpath(dataset_dir / p) for p in x["images"]] if x.get("images") else x.get("images")
        return {**x, "tools": json.loads(tools) if isinstance(tools, str) and tools else None, "images": images}

    assert [norm(x, out_dir) for x in ours] == [norm(x, src_dir) for x in theirs]
    assert all(os.path.isfile(p) for x in ours for p in x["images"] or [])  # LLaMA-Factory found every image


def test_dataset_info_entries_follow_llamafactory_conventions(tmp_path):
    datamill.convert(LF / "dpo_zh_demo.json", tmp_path / "pairs.json", "alpaca")
    datamill.convert(LF / "kto_en_demo.json", tmp_path / "kto.jsonl", "sharegpt")
    datamill.convert(LF / "c4_demo.jsonl", tmp_path / "c4.jsonl", "pretrain")
    datamill.convert(LF / "glaive_toolcall_en_demo.json", tmp_path / "tools.jsonl", "trl")
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["pairs"] == {
        "file_name": "pairs.json",
        "ranking": True,
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "system": "system",
            "chosen": "chosen",
            "rejected": "rejected",
        },
    }
    assert info["kto"]["formatting"] == "sharegpt" and info["kto"]["columns"]["kto_tag"] == "kto_tag"
    assert info["c4"] == {"file_name": "c4.jsonl", "columns": {"prompt": "text"}}
    assert "tools" not in info  # TRL layout: LLaMA-Factory cannot load it, so no entry


def test_every_format_is_listed_with_a_description():
    for fmt in FORMATS.values():
        assert fmt.description and fmt.name


def test_outputs_load_with_datasets(tmp_path):
    import datasets

    for target, ext in (
        ("sharegpt", ".jsonl"),
        ("messages", ".json"),
        ("trl", ".jsonl"),
        ("alpaca", ".parquet"),
    ):
        out = tmp_path / f"o_{target}{ext}"
        datamill.convert(LF / "dpo_en_demo.json", out, target)
        kind = "parquet" if ext == ".parquet" else "json"
        ds = datasets.load_dataset(kind, data_files=str(out), split="train", cache_dir=str(tmp_path / "c"))
        assert len(ds) == 300


def test_python_api_write_and_read_back(tmp_path):
    recs = [
        datamill.Record(
            messages=[datamill.Message("user", "你好"), datamill.Message("assistant", "你好！")],
            system="简洁回答",
        )
    ]
    assert datamill.write(recs, tmp_path / "x.jsonl", "alpaca") == 1
    back = records(tmp_path / "x.jsonl")
    assert back[0].content_dict() == recs[0].content_dict()
    assert back[0].id == recs[0].compute_id()

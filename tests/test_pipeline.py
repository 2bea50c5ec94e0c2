"""The pipeline engine end to end: recipe validation, accounting, kill -9 + resume, reproducibility,
no-op re-runs, secrets, executors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import LF, ROOT

import datamill
from datamill import validate
from datamill.clean.length import count_words
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner

OUTPUT_FILES = ("data-00000.jsonl", "dropped.jsonl", "quarantine.jsonl", "lineage.jsonl")


def write_recipe(tmp_path: Path, body: dict, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def run(path: Path, **overrides) -> Runner:
    r = recipes.load(path)
    for key, value in overrides.items():
        setattr(r, key, value)
    runner = Runner(r)
    runner.result = runner.run()
    return runner


@pytest.fixture
def mixed_input(tmp_path) -> Path:
    """A real mixed folder: alpaca SFT, sharegpt tool calls, pretraining text, and a jsonl whose
    third line is corrupt and fifth has a wrong field type."""
    d = tmp_path / "in"
    d.mkdir()
    for name in ("alpaca_zh_demo.json", "glaive_toolcall_en_demo.json", "c4_demo.jsonl"):
        (d / name).write_bytes((LF / name).read_bytes())
    lines = (LF / "alpaca_en_demo.json").read_text(encoding="utf-8")
    rows = json.loads(lines)[:40]
    text = [json.dumps(r, ensure_ascii=False) for r in rows]
    text[2] = text[2][:25]  # truncated line
    text[4] = json.dumps({"instruction": "x", "output": 7})
    (d / "broken.jsonl").write_text("\n".join(text) + "\n", encoding="utf-8")
    return d


def quickstart_like(inputs, out, **extra) -> dict:
    return {
        "name": "t",
        "seed": 7,
        "chunk_size": 150,
        "workers": 1,
        "inputs": inputs,
        "steps": [
            {"op": "length_filter", "part": "answer", "unit": "words", "min": 3},
            {"op": "exact_dedup", "part": "prompt"},
            {"op": "set_system", "prompt": "你是一个乐于助人的助手。", "mode": "if_missing"},
            {"op": "shuffle", "buckets": 4},
            {"op": "limit", "n": 1000},
        ],
        "output": {"path": str(out), "format": "sharegpt"},
        **extra,
    }


def test_recipe_problems_are_all_reported_with_lines_before_any_work(tmp_path):
    body = (
        "name: bad\n"
        "inputs:\n"
        f"  - {LF / 'alpaca_en_demo.json'}\n"
        "  - does/not/exist.jsonl\n"
        "steps:\n"
        "  - op: lenght_filter\n"
        "    min: 3\n"
        "  - op: length_filter\n"
        "    min: lots\n"
        "    colour: red\n"
        "output:\n"
        "  format: alpacca\n"
    )
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(recipes.RecipeError) as e:
        recipes.load(path)
    msg = str(e.value)
    assert "line 6: unknown operator 'lenght_filter'" in msg and "length_filter" in msg  # with a suggestion
    assert "line 9: length_filter: option 'min'" in msg
    assert "line 10: length_filter: option 'colour'" in msg
    assert "line 4: input 'does/not/exist.jsonl' matches no readable file" in msg
    assert "alpacca" in msg
    assert len(e.value.problems) == 5


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("inputs: [a.jsonl\nsteps: []\n", encoding="utf-8")
    with pytest.raises(recipes.RecipeError, match="line 2"):
        recipes.load(path)


def test_accounting_on_real_mixed_input_with_a_corrupt_line(tmp_path, mixed_input):
    out = tmp_path / "out"
    runner = run(write_recipe(tmp_path, quickstart_like([str(mixed_input)], out)))
    st = json.loads((out / "stats.json").read_text())
    assert st["balanced"] is True
    assert st["input"] == 1000 + 300 + 300 + 40
    assert st["quarantined"] == 2  # the truncated line and the wrong type
    quarantine = [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert {(Path(q["file"]).name, q["line"]) for q in quarantine} == {("broken.jsonl", 3), ("broken.jsonl", 5)}
    assert "invalid JSON" in quarantine[0]["error"] and "output" in quarantine[1]["error"]
    kept = (out / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()
    dropped = [json.loads(x) for x in (out / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(kept) == st["kept"] and len(dropped) == st["dropped"]
    assert st["input"] == st["kept"] + st["dropped"] + st["quarantined"]
    for step in st["steps"]:
        assert step["in"] == step["out"] + sum(step["dropped"].values())
    by_op = {s["op"]: s for s in st["steps"]}
    # pretraining text has no answer, so the answer-length filter drops all 300 c4 documents too
    short = sum(
        1
        for f in sorted(mixed_input.iterdir())
        for rec in datamill.read(f)
        if isinstance(rec, datamill.Record)
        and not validate.errors(validate.check(rec))
        and count_words(rec.part("answer")) < 3
    )
    assert short > 300
    assert by_op["length_filter"]["dropped"] == {"answer shorter than 3 words": short}
    assert by_op["limit"]["in"] > 1000 and by_op["limit"]["out"] == 1000
    assert all({"id", "step", "op", "reason", "record"} <= set(d) for d in dropped)
    assert runner.result.shards == ["data-00000.jsonl"]
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["t"]["file_name"] == "data-00000.jsonl" and info["t"]["formatting"] == "sharegpt"


def _cli_run(recipe: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "datamill", "run", str(recipe)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def _outputs(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUT_FILES}


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_then_resume_gives_the_same_output(tmp_path, mixed_input, workers):
    """SIGKILL at checkpoints inside stage 0, inside a global step and after the shards are written;
    each resumed run must end byte-identical to an uninterrupted one."""
    clean = tmp_path / "clean"
    run(write_recipe(tmp_path, quickstart_like([str(mixed_input)], clean, workers=workers), "clean.yaml"))
    expected = _outputs(clean)
    for kill_at in (3, 14, 40):
        out = tmp_path / f"killed-{kill_at}"
        recipe = write_recipe(tmp_path, quickstart_like([str(mixed_input)], out, workers=workers), f"k{kill_at}.yaml")
        crashed = _cli_run(recipe, {"DATAMILL_TEST_KILL_AFTER": str(kill_at)})
        assert crashed.returncode == -9, crashed.stderr
        assert not (out / "recipe.lock.yaml").exists()
        for done in sorted((out / ".datamill-work").glob("stage-*/done.json")):  # a finished global stage
            before = done.parent.with_name(f"stage-{int(done.parent.name[6:]) - 1:02d}")
            assert not list(before.glob("chunk-*[0-9].jsonl"))  # its input is gone, the drops stay
            assert len(list(before.glob("chunk-*.dropped.jsonl"))) == len(list(before.glob("chunk-*.stats.json")))
        resumed = _cli_run(recipe)
        assert resumed.returncode == 0, resumed.stderr + resumed.stdout
        assert "resumed" in resumed.stdout
        assert _outputs(out) == expected
        assert not (out / ".datamill-work").exists()
        assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_same_recipe_twice_is_byte_identical_and_rerun_is_a_no_op(tmp_path, mixed_input):
    a, b = tmp_path / "a", tmp_path / "b"
    run(write_recipe(tmp_path, quickstart_like([str(mixed_input)], a, workers=2), "a.yaml"))
    run(write_recipe(tmp_path, quickstart_like([str(mixed_input)], b, workers=1), "b.yaml"))
    assert _outputs(a) == _outputs(b)
    mtimes = {p.name: p.stat().st_mtime_ns for p in a.iterdir()}
    again = run(tmp_path / "a.yaml")
    assert again.result.up_to_date
    assert {p.name: p.stat().st_mtime_ns for p in a.iterdir()} == mtimes
    # a changed input is not a no-op
    with open(mixed_input / "broken.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"instruction": "新问题", "input": "", "output": "一个足够长的新回答，用来测试。"}) + "\n")
    rerun = run(tmp_path / "a.yaml")
    assert not rerun.result.up_to_date and rerun.result.stats["input"] == 1641


def test_env_secrets_are_substituted_but_never_written(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_SECRET_PROMPT", "sk-test-SECRET-123")
    body = {
        "inputs": [str(LF / "identity.json")],
        "steps": [
            {"op": "fill_placeholders", "values": {"name": "${DM_SECRET_PROMPT}", "author": "${DM_AUTHOR:-ACME}"}}
        ],
        "output": {"path": str(tmp_path / "out"), "format": "alpaca"},
    }
    run(write_recipe(tmp_path, body))
    out = tmp_path / "out"
    data = (out / "data-00000.jsonl").read_text(encoding="utf-8")
    assert "sk-test-SECRET-123" in data and "ACME" in data and "{{name}}" not in data  # substituted in the data
    lock = (out / "recipe.lock.yaml").read_text(encoding="utf-8")
    assert "${DM_SECRET_PROMPT}" in lock and "sk-test-SECRET-123" not in lock
    assert "sk-test-SECRET-123" not in (out / "stats.json").read_text()
    monkeypatch.delenv("DM_SECRET_PROMPT")
    with pytest.raises(recipes.RecipeError, match=r"DM_SECRET_PROMPT"):
        recipes.load(tmp_path / "recipe.yaml")


def test_cli_overrides_inputs_and_output(tmp_path):
    recipe = ROOT / "recipes" / "quickstart.yaml"
    out = tmp_path / "qs"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "datamill",
            "run",
            str(recipe),
            "-i",
            str(LF / "identity.json"),
            "-o",
            str(out),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "input 91 = kept" in proc.stdout
    rows = [json.loads(x) for x in (out / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all("{{" not in json.dumps(r, ensure_ascii=False) for r in rows)
    assert any("Datamill Assistant" in r["conversations"][-1]["value"] for r in rows)


def test_quickstart_recipe_runs(tmp_path):
    # the recipe's own inputs, its optional ../../shared files taken from tests/data: the same with or without ../shared
    samples = [ROOT / "examples" / n for n in ("alpaca_en_sample.json", "alpaca_zh_sample.json", "identity.json")]
    inputs = [str(p) for p in (*samples, LF / "alpaca_en_demo.json", LF / "alpaca_zh_demo.json")]
    r = recipes.load(ROOT / "recipes" / "quickstart.yaml", inputs=inputs, output=str(tmp_path / "qs"))
    result = Runner(r).run()
    assert result.stats["balanced"] and result.stats["kept"] > 1000


def test_output_format_that_cannot_hold_a_record_drops_it_with_reason(tmp_path):
    body = {
        "inputs": [str(LF / "glaive_toolcall_zh_demo.json")],
        "output": {"path": str(tmp_path / "o"), "format": "alpaca"},
    }
    runner = run(write_recipe(tmp_path, body))
    st = runner.result.stats
    out_step = st["steps"][-1]
    assert out_step["op"] == "output" and sum(out_step["dropped"].values()) == st["dropped"] > 0
    assert st["kept"] + st["dropped"] == 300


def test_sharded_parquet_output_registers_every_shard(tmp_path):
    body = {
        "inputs": [str(LF / "alpaca_en_demo.json")],
        "chunk_size": 100,
        "output": {
            "path": str(tmp_path / "o"),
            "format": "alpaca",
            "container": "parquet",
            "shard_size": 400,
            "name": "en",
        },
    }
    runner = run(write_recipe(tmp_path, body))
    assert runner.result.shards == ["data-00000.parquet", "data-00001.parquet", "data-00002.parquet"]
    info = json.loads((tmp_path / "o" / "dataset_info.json").read_text())
    assert sorted(info) == ["en-00000", "en-00001", "en-00002"]
    import pyarrow.parquet as pq

    assert sum(pq.read_metadata(tmp_path / "o" / s).num_rows for s in runner.result.shards) == 999


def test_ray_executor_gives_the_same_output_as_local(tmp_path, mixed_input):
    """A real local Ray instance (started by the executor) runs the same recipe to the same bytes."""
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    run(write_recipe(tmp_path, quickstart_like([str(mixed_input)], local, workers=2), "local.yaml"))
    runner = run(
        write_recipe(tmp_path, quickstart_like([str(mixed_input)], on_ray, workers=2, executor="ray"), "ray.yaml")
    )
    assert runner.result.stats["balanced"]
    assert _outputs(on_ray) == _outputs(local)


def test_operator_counters_reach_stats_json(tmp_path):
    """mask_pii counts what it masked; the runner sums it per step into stats.json."""
    rows = [
        {"instruction": "联系我", "input": "", "output": "请发邮件到 zhang.san@example.com 或拨打 13812345678"},
        {"instruction": "Contact", "input": "", "output": "Mail bob@example.org, then mail bob@example.org again."},
        {"instruction": "nothing", "input": "", "output": "No personal data here at all."},
    ]
    src = tmp_path / "pii.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    body = {"inputs": [str(src)], "steps": [{"op": "mask_pii"}], "output": {"path": str(tmp_path / "o")}}
    st = run(write_recipe(tmp_path, body)).result.stats
    counters = st["steps"][0]["counters"]
    assert counters.get("masked email") == 3 and counters.get("masked phone") == 1
    data = (tmp_path / "o" / "data-00000.jsonl").read_text(encoding="utf-8")
    assert "example.com" not in data and "13812345678" not in data and "<EMAIL>" in data


def test_stats_name_every_phase_with_its_time_and_cores(tmp_path):
    body = {
        "workers": 2,
        "inputs": [str(LF / "alpaca_en_demo.json")],
        "steps": [{"op": "length_filter", "min": 3}, {"op": "exact_dedup"}, {"op": "normalize_whitespace"}],
        "output": {"path": str(tmp_path / "out"), "format": "sharegpt", "report": True},
    }
    runner = run(write_recipe(tmp_path, body))
    on_disk = json.loads((tmp_path / "out" / "stats.json").read_text())["phases"]
    assert on_disk == runner.result.stats["phases"]
    assert [(p["phase"], p["cores"]) for p in on_disk] == [
        ("stage 0: length_filter", 2),
        ("stage 1: exact_dedup", 1),
        ("stage 2: normalize_whitespace", 2),
        ("write", 1),
        ("report", os.cpu_count()),
    ]
    assert all(isinstance(p["seconds"], float) and p["seconds"] >= 0 for p in on_disk)


def test_reading_stage_shows_an_estimated_total_from_the_bytes_then_the_exact_one(tmp_path):
    """Stage 0 of a JSON Lines input has a total (so the progress bar has a time left) after its first
    chunk: the rows planned scaled by the input's bytes; at the end, the exact row count."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"document {i} " + "x" * (i % 50)}) + "\n" for i in range(5000)))
    body = {
        "chunk_size": 500,
        "workers": 1,
        "inputs": [str(src)],
        "steps": [{"op": "length_filter", "min": 3}],
        "output": {"path": str(tmp_path / "out"), "format": "pretrain"},
    }
    seen: list[tuple[int, int | None]] = []
    Runner(
        recipes.load(write_recipe(tmp_path, body)),
        progress=lambda label, done, total: seen.append((done, total)) if label.startswith("stage 0") else None,
    ).run()
    estimates = [total for done, total in seen if 0 < done < 5000]
    assert estimates and all(total is not None and abs(total - 5000) <= 500 for total in estimates), seen
    assert seen[-1] == (5000, 5000)

"""The ``datamill`` command: in-process with typer's CliRunner, and through the installed entry point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DOCS, LF
from typer.testing import CliRunner

import datamill
from datamill import formats
from datamill.cli import app

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WIDE = {"COLUMNS": "400", "NO_COLOR": "1"}  # so rich does not wrap long tmp paths


def run(*args: str | Path, width: dict | None = None):
    """Invoke the CLI in-process; return (exit code, combined output without colour codes, result)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=WIDE if width is None else width)
    return result.exit_code, ANSI.sub("", result.output), result


def assert_clean_failure(result, output: str, code: int = 1) -> None:
    """A user error: exit code 1, a message, and no Python exception escaping the command."""
    assert result.exit_code == code, output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"uncaught {type(result.exception).__name__}: {result.exception}\n{output}")
    assert "Traceback" not in output
    assert "error" in output.lower()


def entry_point() -> list[str]:
    exe = Path(sys.executable).with_name("datamill")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "datamill"]


def run_process(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **WIDE}
    return subprocess.run([*entry_point(), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


def jsonl_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("columns", ["80", "400"])
def test_formats_lists_every_format(columns):
    code, out, result = run("formats", width={"COLUMNS": columns, "NO_COLOR": "1"})
    assert code == 0, out
    assert len(formats.FORMATS) >= 8
    listed = set(re.findall(r"[│|]\s*([a-z_]+)\s*[│|]", out))
    for name in formats.FORMATS:
        assert re.search(rf"(^|\W){re.escape(name)}(\W|$)", out, re.M), f"{name} missing:\n{out}"
        assert name in listed, f"{name} not in the format column:\n{out}"


def test_version():
    code, out, _ = run("--version")
    assert code == 0
    assert datamill.__version__ in out


def test_no_arguments_shows_help():
    code, out, _ = run()
    assert code in (0, 2)
    for command in ("convert", "validate", "inspect", "formats"):
        assert command in out


# -------------------------------------------------------------------------------------------- convert


def test_convert_alpaca_zh_to_sharegpt_jsonl(tmp_path):
    src = LF / "alpaca_zh_demo.json"
    raw = json.loads(src.read_text(encoding="utf-8"))
    assert len(raw) == 1000
    out = tmp_path / "out" / "alpaca_zh.jsonl"

    code, text, _ = run("convert", src, out, "--to", "sharegpt")

    assert code == 0, text
    rows = jsonl_rows(out)
    assert len(rows) == 1000
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1000
    for r, row in zip(raw, rows, strict=True):
        turns = row["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"]
        assert turns[0]["value"] == "\n".join(p for p in (r["instruction"], r["input"]) if p)
        assert turns[1]["value"] == r["output"]
    info = json.loads((out.parent / "dataset_info.json").read_text(encoding="utf-8"))
    entry = info["alpaca_zh"]
    assert entry["file_name"] == "alpaca_zh.jsonl"
    assert entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations"}
    assert "ranking" not in entry
    assert not (out.parent / "alpaca_zh.quarantine.jsonl").exists()
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == [".datamill-manifest.json", "alpaca_zh.jsonl", "dataset_info.json"]  # the manifest: ours
    # the summary tells the counts
    assert re.search(r"read\s+1,000\s*=\s*written\s+1,000\s*\+\s*quarantined\s+0", text), text
    assert "alpaca" in text and "sharegpt" in text


def test_convert_name_option_keeps_other_dataset_info_entries(tmp_path):
    out_dir = tmp_path / "lf"
    out_dir.mkdir()
    (out_dir / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "other.json"}}),
                                               encoding="utf-8")
    code, text, _ = run("convert", LF / "dpo_en_demo.json", out_dir / "dpo.json", "--to", "sharegpt",
                        "--name", "my_dpo")
    assert code == 0, text
    info = json.loads((out_dir / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["other"] == {"file_name": "other.json"}
    assert info["my_dpo"]["file_name"] == "dpo.json"
    assert info["my_dpo"]["ranking"] is True
    assert info["my_dpo"]["columns"]["chosen"] == "chosen"
    assert len(json.loads((out_dir / "dpo.json").read_text(encoding="utf-8"))) == 300


def test_convert_no_dataset_info(tmp_path):
    out = tmp_path / "c4.jsonl"
    code, text, _ = run("convert", LF / "c4_demo.jsonl", out, "--to", "pretrain", "--no-dataset-info")
    assert code == 0, text
    assert len(jsonl_rows(out)) == 300
    assert not (tmp_path / "dataset_info.json").exists()


def test_convert_reports_quarantine(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n{"instruction": "c"}\n',
                   encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, text, _ = run("convert", src, out, "--to", "sharegpt")
    assert code == 0, text
    assert len(jsonl_rows(out)) == 1
    q = tmp_path / "out.quarantine.jsonl"
    assert [r["line"] for r in jsonl_rows(q)] == [2, 3]
    assert str(q) in text
    assert f"{src}:2" in text and f"{src}:3" in text
    assert re.search(r"read\s+3\s*=\s*written\s+1\s*\+\s*quarantined\s+2", text), text


def test_convert_custom_quarantine_path(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"instruction": "a", "output": "b"}\nnot json\n', encoding="utf-8")
    q = tmp_path / "rejects" / "bad.jsonl"
    code, text, _ = run("convert", src, tmp_path / "out.jsonl", "--to", "alpaca", "--quarantine", q)
    assert code == 0, text
    assert len(jsonl_rows(q)) == 1
    assert not (tmp_path / "out.quarantine.jsonl").exists()


def test_convert_unknown_target_format(tmp_path):
    src = tmp_path / "in" / "in.jsonl"
    src.parent.mkdir()
    src.write_text('{"instruction": "a", "output": "b"}\n', encoding="utf-8")
    out_dir = tmp_path / "out"
    code, text, result = run("convert", src, out_dir / "x.jsonl", "--to", "llama9000")
    assert_clean_failure(result, text)
    assert "llama9000" in text
    for name in formats.FORMATS:
        assert name in text, f"{name} not listed:\n{text}"
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_convert_unknown_source_format(tmp_path):
    code, text, result = run("convert", LF / "alpaca_en_demo.json", tmp_path / "x.jsonl", "--to", "sharegpt",
                             "--from", "vicuna")
    assert_clean_failure(result, text)
    assert "vicuna" in text and "sharegpt" in text
    assert list(tmp_path.iterdir()) == []


def test_convert_undetectable_format(tmp_path):
    src = tmp_path / "odd.jsonl"
    src.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    code, text, result = run("convert", src, tmp_path / "x.jsonl", "--to", "sharegpt")
    assert_clean_failure(result, text)
    assert "question" in text and "--from" in text


# ------------------------------------------------------------------------------------------- validate


@pytest.mark.parametrize("name", ["alpaca_zh_demo.json", "mllm_demo.json", "c4_demo.jsonl"])
def test_validate_good_file_exits_0(name):
    code, text, _ = run("validate", LF / name)
    assert code == 0, text
    assert re.search(r"\b0 errors\b", text), text


def test_validate_file_with_errors_exits_1_and_names_file_line(tmp_path):
    src = tmp_path / "chat.jsonl"
    lines = [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        "{not json",
        {"conversations": [{"from": "gpt", "value": "I speak first"}, {"from": "human", "value": "q"}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]},  # warning only
        {"conversations": [{"from": "human", "value": "<image> what?"}, {"from": "gpt", "value": "x"}]},
    ]
    src.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")

    code, text, result = run("validate", src)

    assert code == 1, text
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in text
    for line in (2, 3, 4, 5):
        assert f"{src}:{line}:" in text, f"{src}:{line} not named:\n{text}"
    assert f"{src}:1:" not in text
    assert re.search(r"5 records .*\b3 errors\b.*\b1 warnings?\b", text), text


def test_validate_json_lines_output(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q", "output": 3}\n', encoding="utf-8")
    code, text, result = run("validate", src, "--json")
    assert code == 1
    problems = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(problems) == 1
    assert problems[0]["where"] == f"{src}:2"
    assert problems[0]["severity"] == "error"
    assert "output" in problems[0]["problem"]


def test_validate_warnings_only_exits_0(tmp_path):
    src = tmp_path / "w.jsonl"
    src.write_text('{"instruction": "q", "output": ""}\n', encoding="utf-8")
    code, text, _ = run("validate", src)
    assert code == 0, text
    assert f"{src}:1:" in text and "empty" in text


def test_validate_empty_file_exits_0():
    code, text, _ = run("validate", DOCS / "empty.txt")
    assert code == 0, text
    assert "0 records" in text


def test_validate_names_the_file_verbatim_even_with_brackets(tmp_path):
    src = tmp_path / "data[v2].jsonl"
    src.write_text('{"instruction": "q", "output": 3}\n', encoding="utf-8")
    code, text, result = run("validate", src)
    assert code == 1, text
    assert f"{src}:1:" in text
    assert re.search(re.escape(str(src)) + r": 1 records", text), text


# -------------------------------------------------------------------------------------------- inspect


@pytest.mark.parametrize("name, fmt, records, kinds", [
    ("alpaca_en_demo.json", "alpaca", 999, "sft 999"),
    ("dpo_en_demo.json", "sharegpt", 300, "preference 300"),
    ("c4_demo.jsonl", "pretrain", 300, "pretrain 300"),
    ("mllm_demo.json", "messages", 6, "sft 6"),
])
def test_inspect_demo_files(name, fmt, records, kinds):
    code, text, _ = run("inspect", LF / name, "--samples", "1")
    assert code == 0, text
    assert re.search(rf"format\s*[│|]\s*{fmt}\b", text), text
    assert re.search(rf"records\s*[│|]\s*{records:,}\b", text), text
    assert re.search(rf"kinds\s*[│|]\s*{kinds}\b", text), text
    assert re.search(r"unreadable\s*[│|]\s*0\b", text), text


def test_inspect_mllm_counts_images_and_languages():
    code, text, _ = run("inspect", LF / "mllm_demo.json", "--samples", "0")
    assert code == 0
    assert re.search(r"fields\s*[│|].*images 6", text), text
    assert re.search(r"script\s*[│|].*zh 3", text), text


def test_inspect_reports_unreadable_rows(tmp_path):
    src = tmp_path / "x.jsonl"
    src.write_text('{"text": "a"}\n{oops\n{"text": "b"}\n', encoding="utf-8")
    code, text, _ = run("inspect", src, "--samples", "0")
    assert code == 0, text
    assert re.search(r"records\s*[│|]\s*2\b", text), text
    assert re.search(r"unreadable\s*[│|]\s*1\b", text), text
    assert f"{src}:2" in text


def test_inspect_empty_file():
    code, text, _ = run("inspect", DOCS / "empty.txt")
    assert code == 0, text
    assert "empty" in text and re.search(r"records\s*[│|]\s*0\b", text)


# ------------------------------------------------------------------ errors never print a traceback


def _not_gzip(tmp: Path) -> list:
    p = tmp / "plain.jsonl.gz"
    p.write_text('{"text": "never compressed"}\n', encoding="utf-8")
    return ["validate", p]


def _bad_encoding_name(tmp: Path) -> list:
    p = tmp / "a.jsonl"
    p.write_text('{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    return ["convert", p, tmp / "o" / "out.jsonl", "--to", "sharegpt", "--encoding", "no-such-codec"]


def _wrong_encoding(tmp: Path) -> list:
    p = tmp / "a.jsonl"
    p.write_text('{"instruction": "你好", "output": "a"}\n', encoding="utf-8")
    return ["validate", p, "--encoding", "utf-16"]


def _output_under_a_file(tmp: Path) -> list:
    (tmp / "taken").write_text("a file, not a folder", encoding="utf-8")
    return ["convert", LF / "mllm_demo.json", tmp / "taken" / "out.jsonl", "--to", "sharegpt"]


def _unknown_extension(tmp: Path) -> list:
    return ["inspect", DOCS / "fake-doc.rtf"]


def _missing(tmp: Path) -> list:
    return ["validate", tmp / "nowhere.jsonl"]


def _txt_for_chat(tmp: Path) -> list:
    return ["convert", LF / "mllm_demo.json", tmp / "o" / "out.txt", "--to", "sharegpt"]


def _broken_dataset_info(tmp: Path) -> list:
    (tmp / "o").mkdir()
    (tmp / "o" / "dataset_info.json").write_text("{nope", encoding="utf-8")
    return ["convert", LF / "mllm_demo.json", tmp / "o" / "out.jsonl", "--to", "sharegpt"]


def _incomplete_json_txt(tmp: Path) -> list:
    return ["validate", DOCS / "fake-incomplete-json.txt"]


FAILURES = {
    "not-gzip": (_not_gzip, "plain.jsonl.gz"),
    "unknown-encoding-name": (_bad_encoding_name, "no-such-codec"),
    "wrong-explicit-encoding": (_wrong_encoding, "a.jsonl"),
    "output-under-a-file": (_output_under_a_file, "taken"),
    "unknown-extension": (_unknown_extension, ".rtf"),
    "missing-file": (_missing, "nowhere.jsonl"),
    "txt-output-for-chat": (_txt_for_chat, ".txt"),
    "broken-dataset-info": (_broken_dataset_info, "dataset_info.json"),
    "incomplete-json-txt": (_incomplete_json_txt, "fake-incomplete-json.txt"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_errors_exit_1_without_traceback(tmp_path, case):
    make, named = FAILURES[case]
    args = make(tmp_path)
    code, text, result = run(*args)
    assert_clean_failure(result, text)
    assert named in text, f"the message should name {named!r}:\n{text}"


BAD_RECORDS = {
    # records that must be quarantined, not crash the command
    "trl-system-only-completion": ("trl", {"prompt": "q", "completion": [{"role": "system", "content": "x"}]}),
    "datamill-text-not-string": ("datamill", {"id": "a", "meta": {}, "text": 5}),
    "datamill-content-not-string": ("datamill", {"id": "a", "meta": {}, "messages": [
        {"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}),
    "role-that-looks-like-markup": ("sharegpt", {"conversations": [{"from": "[/b]", "value": "x"}]}),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS))
@pytest.mark.parametrize("command", ["convert", "validate"])
def test_bad_records_are_reported_not_crashed(tmp_path, case, command):
    fmt, bad = BAD_RECORDS[case]
    good = {"trl": {"prompt": "q", "completion": "a"}, "datamill": {"id": "b", "meta": {}, "text": "doc"},
            "sharegpt": {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}}[fmt]
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    if command == "convert":
        out = tmp_path / "out.jsonl"
        code, text, result = run("convert", src, out, "--to", "datamill", "--from", fmt)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert code == 0, text
        assert len(jsonl_rows(out)) == 1
        assert [r["line"] for r in jsonl_rows(tmp_path / "out.quarantine.jsonl")] == [2]
    else:
        code, text, result = run("validate", src, "--from", fmt)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert code == 1, text
        assert f"{src}:2:" in text
    assert "Traceback" not in text


# ------------------------------------------------------------------------ the installed entry point


def test_entry_point_convert_and_version(tmp_path):
    proc = run_process("--version")
    assert proc.returncode == 0, proc.stderr
    assert datamill.__version__ in proc.stdout

    out = tmp_path / "alpaca_en.jsonl"
    proc = run_process("convert", LF / "alpaca_en_demo.json", out, "--to", "messages")
    assert proc.returncode == 0, proc.stderr
    rows = jsonl_rows(out)
    assert len(rows) == 999
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]
    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["alpaca_en"]["formatting"] == "sharegpt"
    assert info["alpaca_en"]["columns"]["messages"] == "messages"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_entry_point_truncated_json_keeps_the_intact_records(tmp_path):
    data = (LF / "dpo_zh_demo.json").read_bytes()
    src = tmp_path / "dpo_cut.json"
    src.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o" / "dpo.jsonl"
    proc = run_process("convert", src, out, "--to", "sharegpt")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "dpo_cut.json" in proc.stderr and "quarantined 1" in proc.stdout
    assert len(jsonl_rows(out)) > 10 and len(jsonl_rows(tmp_path / "o" / "dpo.quarantine.jsonl")) == 1


def test_entry_point_validate_names_file_line(tmp_path):
    src = tmp_path / "v.jsonl"
    src.write_text('{"text": "fine"}\n{"text": ["not", "a", "string"]}\n', encoding="utf-8")
    proc = run_process("validate", src)
    assert proc.returncode == 1
    assert f"{src}:2:" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_entry_point_formats():
    proc = run_process("formats")
    assert proc.returncode == 0, proc.stderr
    for name in formats.FORMATS:
        assert name in proc.stdout


def test_python_dash_m_datamill():
    proc = subprocess.run([sys.executable, "-m", "datamill", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert datamill.__version__ in proc.stdout


@pytest.mark.parametrize("case", ["unknown-encoding-name", "not-gzip"])
def test_entry_point_errors_without_traceback(tmp_path, case):
    make, named = FAILURES[case]
    proc = run_process(*make(tmp_path))
    both = proc.stdout + proc.stderr
    assert proc.returncode == 1, both
    assert "Traceback" not in both, both[-2000:]
    assert named in both, both[-2000:]

"""Broken and awkward inputs through the Python API (``datamill.convert`` / ``datamill.read``).

Every case checks the accounting invariant: each input record is either written or quarantined,
the counts in the summary match the files on disk, and a failed run leaves nothing behind.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import orjson
import pytest
from conftest import DOCS, LF
from typer.testing import CliRunner

import datamill
from datamill import Quarantined, Record
from datamill.cli import app
from datamill.errors import DatamillError, FileError
from datamill.io.outputs import MANIFEST

# --------------------------------------------------------------------------------------------- helpers


def write_jsonl(path: Path, rows: list, encoding: str = "utf-8") -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(text.encode(encoding))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def output_records(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return read_jsonl(path)


def leftovers(folder: Path) -> list[str]:
    """Temporary or hidden files a writer may leave behind (``.x.tmp-PID``, spools); the manifest of
    what datamill wrote is meant to stay."""
    return sorted(p.name for p in folder.rglob("*") if p.name != MANIFEST and (p.name.startswith(".")
                  or ".tmp-" in p.name or ".spool-" in p.name))


def qpath_of(out: Path) -> Path:
    return out.with_name(out.name.split(".")[0] + ".quarantine.jsonl")


def check_accounting(summary: datamill.Summary, out: Path, n_input: int) -> list[dict]:
    """The invariant: read = written + quarantined, and the files on disk say the same.
    Returns the quarantine rows."""
    assert summary.read == n_input, summary
    assert summary.read == summary.written + summary.quarantined, summary
    assert summary.balanced
    if summary.written:
        assert out.exists(), f"{out} missing"
        assert len(output_records(out)) == summary.written
    else:  # nothing usable: no empty file, no dataset_info entry (issue 16 item 4)
        assert not out.exists() and not (out.parent / "dataset_info.json").exists()
        assert summary.nothing_written()
    q = qpath_of(out)
    if summary.quarantined:
        assert summary.quarantine_path is not None and Path(summary.quarantine_path) == q
        rows = read_jsonl(q)
        assert len(rows) == summary.quarantined
        assert sum(summary.reasons.values()) == summary.quarantined
    else:
        assert not q.exists()
        assert summary.quarantine_path is None
        rows = []
    assert leftovers(out.parent) == []
    return rows


def first_records(name: str, n: int) -> list[dict]:
    return json.loads((LF / name).read_text(encoding="utf-8"))[:n]


# ------------------------------------------------------------------ truncated JSON object in a .txt


def test_incomplete_json_txt_raises_file_error_naming_file_and_line(tmp_path):
    src = DOCS / "fake-incomplete-json.txt"
    out = tmp_path / "out.jsonl"
    with pytest.raises(FileError) as info:
        datamill.convert(src, out, to="sharegpt")
    msg = str(info.value)
    assert "fake-incomplete-json.txt" in msg
    assert re.search(r"\bline 1[12]\b", msg), msg  # the object is cut after its 11th line
    assert "Traceback" not in msg
    assert list(tmp_path.iterdir()) == []  # no output, no quarantine, no dataset_info, no temp files


def test_incomplete_json_txt_read_raises_file_error():
    with pytest.raises(FileError, match="fake-incomplete-json.txt"):
        list(datamill.read(DOCS / "fake-incomplete-json.txt"))


# ------------------------------------------------------------------------------------ empty inputs


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.json", "empty.csv", "empty.txt", "blank.jsonl"])
def test_empty_file_reads_zero_records(tmp_path, name):
    src = tmp_path / name
    src.write_text("\n\n  \n" if name.startswith("blank") else "", encoding="utf-8")
    assert list(datamill.read(src)) == []
    assert list(datamill.read(src, fmt="alpaca")) == []


def test_shared_empty_txt_reads_zero_records():
    assert (DOCS / "empty.txt").stat().st_size == 0
    assert list(datamill.read(DOCS / "empty.txt")) == []


@pytest.mark.parametrize("src_name", ["empty.jsonl", "shared:empty.txt"])
@pytest.mark.parametrize("out_name", ["out.jsonl", "out.json"])
def test_convert_empty_file_writes_nothing_and_says_why(tmp_path, src_name, out_name):
    if src_name.startswith("shared:"):
        src = DOCS / src_name.split(":", 1)[1]
    else:
        src = tmp_path / "in" / src_name
        src.parent.mkdir()
        src.write_bytes(b"")
    out = tmp_path / "out" / out_name
    summary = datamill.convert(src, out, to="sharegpt")
    assert (summary.read, summary.written, summary.quarantined) == (0, 0, 0)
    assert summary.detected is None
    assert not summary.warnings
    check_accounting(summary, out, 0)
    assert "holds no records" in summary.nothing_written()


# -------------------------------------------------------------------------- one bad line in a jsonl


GOOD = [{"instruction": f"question {i}", "input": "", "output": f"answer {i}"} for i in range(6)]


@pytest.mark.parametrize("bad_line, error_part", [
    ('{"instruction": "cut here", "output": ', "invalid JSON"),
    ("{'instruction': 'single quotes'}", "invalid JSON"),
    ('["a", "list", "not", "an", "object"]', "JSON object"),
    ("garbage that is not json at all", "invalid JSON"),
])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_one_malformed_line_is_quarantined_rest_survive(tmp_path, bad_line, error_part, encoding):
    lines = [json.dumps(r) for r in GOOD[:3]] + [bad_line] + [json.dumps(r) for r in GOOD[3:]]
    src = tmp_path / "in.jsonl"
    src.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    out = tmp_path / "out.jsonl"

    summary = datamill.convert(src, out, to="alpaca")

    q = check_accounting(summary, out, 7)
    assert (summary.written, summary.quarantined) == (6, 1)
    assert [r["output"] for r in output_records(out)] == [f"answer {i}" for i in range(6)]
    (row,) = q
    assert row["file"] == str(src)
    assert row["line"] == 4
    assert row["stage"] == "read"
    assert error_part in row["error"]
    assert row["where"] == f"{src}:4"
    assert "raw" in row


def test_blank_lines_keep_real_line_numbers(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n" + json.dumps(GOOD[0]) + "\n\n\n{oops\n" + json.dumps(GOOD[1]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    summary = datamill.convert(src, out, to="sharegpt")
    (row,) = check_accounting(summary, out, 3)
    assert row["line"] == 5


def test_truncated_last_line_of_real_jsonl(tmp_path):
    data = (LF / "c4_demo.jsonl").read_bytes()
    n_lines = data.count(b"\n")
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    src = tmp_path / "c4_cut.jsonl"
    src.write_bytes(data[: last_start + 40])  # the last document is cut after 40 bytes
    out = tmp_path / "c4.jsonl"

    summary = datamill.convert(src, out, to="pretrain")

    (row,) = check_accounting(summary, out, n_lines)
    assert summary.detected == "pretrain"
    assert row["line"] == n_lines
    assert summary.written == n_lines - 1


def test_read_yields_quarantined_row_for_bad_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(GOOD[0]) + "\n{nope\n" + json.dumps(GOOD[1]) + "\n", encoding="utf-8")
    items = list(datamill.read(src))
    assert [type(i) for i in items] == [Record, Quarantined, Record]
    bad = items[1]
    assert bad.line == 2 and bad.file == str(src) and bad.stage == "read"
    assert "invalid JSON" in bad.error
    assert items[2].meta["line"] == 3


# ------------------------------------------------------------------ missing fields and wrong types


def _convert_rows(tmp_path: Path, rows: list, to: str = "sharegpt") -> tuple[datamill.Summary, list[dict], Path]:
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    summary = datamill.convert(src, out, to=to)
    q = check_accounting(summary, out, len(rows))
    return summary, q, out


def test_alpaca_missing_output_is_quarantined(tmp_path):
    rows = [GOOD[0], {"instruction": "no answer here", "input": ""}, GOOD[1]]
    summary, q, out = _convert_rows(tmp_path, rows)
    assert summary.detected == "alpaca"
    assert (summary.written, summary.quarantined) == (2, 1)
    (row,) = q
    assert row["line"] == 2 and row["stage"] == "read"
    assert "'output'" in row["error"]
    assert "missing" in row["error"]
    assert row["raw"] == rows[1]


WRONG_TYPES = [
    # (format of the file, a good row, a bad row, words the error must contain)
    ("alpaca", GOOD[0], {"instruction": "q", "output": 42}, ["'output'", "string", "int"]),
    ("alpaca", GOOD[0], {"instruction": ["q"], "output": "a"}, ["'instruction'", "string"]),
    ("alpaca", GOOD[0], {"instruction": "q", "output": "a", "history": [["only one"]]}, ["history[0]", "pair"]),
    ("alpaca", GOOD[0], {"instruction": "q", "output": "a", "history": [["u", 1]]}, ["history[0]", "pair"]),
    ("alpaca", GOOD[0], {"instruction": "q", "output": "a", "history": "not pairs"}, ["'history'", "list"]),
    ("alpaca", GOOD[0], {"instruction": "q", "output": "a", "images": "pic.jpg"}, ["'images'", "list"]),
    ("alpaca", GOOD[0], {"instruction": "q", "output": "a", "kto_tag": "maybe"}, ["'kto_tag'", "true or false"]),
    ("alpaca", GOOD[0], {"instruction": "q", "output": "a", "system": 7}, ["'system'", "string"]),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
     {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": 3}]}, ["conversations[1]", "string"]),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
     {"conversations": [{"from": "robot", "value": "q"}]}, ["conversations[0]", "'robot'"]),
    ("sharegpt", {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
     {"conversations": {"from": "human", "value": "q"}}, ["'conversations'", "list"]),
    ("messages", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]}, ["messages[0]", "string"]),
    ("messages", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": 5},
     ["'tools'"]),
    ("trl", {"prompt": "q", "completion": "a"}, {"prompt": "q", "completion": 12}, ["'completion'"]),
    ("trl", {"prompt": "q", "completion": "a"},
     {"prompt": "q", "completion": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]},
     ["'completion'", "one"]),
    # a completion that is only a system turn holds no answer at all
    ("trl", {"prompt": "q", "completion": "a"},
     {"prompt": "q", "completion": [{"role": "system", "content": "be nice"}]}, ["completion"]),
    ("trl", {"prompt": "q", "chosen": "a", "rejected": "b"},
     {"prompt": "q", "chosen": [{"role": "system", "content": "be nice"}], "rejected": "b"}, ["chosen"]),
    ("xtuner", {"conversation": [{"input": "q", "output": "a"}]},
     {"conversation": [{"input": "q", "output": None}]}, ["'output'"]),
    # datamill's own format read back from a hand-edited intermediate file
    ("datamill", {"id": "a", "meta": {}, "text": "a document"}, {"id": "b", "meta": {}, "text": 5}, ["text"]),
    ("datamill", {"id": "a", "meta": {}, "text": "a document"},
     {"id": "b", "meta": {}, "messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]},
     ["content"]),
    ("datamill", {"id": "a", "meta": {}, "text": "a document"},
     {"id": "b", "meta": {}, "messages": [{"role": "user", "content": "<image>q"},
                                          {"role": "assistant", "content": "a"}], "images": "pic.jpg"},
     ["images"]),
]


@pytest.mark.parametrize("fmt, good, bad, words", WRONG_TYPES,
                         ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG_TYPES)])
def test_wrong_types_are_quarantined_with_clear_message(tmp_path, fmt, good, bad, words):
    rows = [good, bad, good]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    target = "datamill" if fmt == "datamill" else "sharegpt"

    summary = datamill.convert(src, out, to=target, from_=fmt)

    q = check_accounting(summary, out, 3)
    assert (summary.written, summary.quarantined) == (2, 1), summary
    (row,) = q
    assert row["line"] == 2
    assert row["stage"] == "read", row  # a type error is a reading problem, found before validation
    for word in words:
        assert word in row["error"], row["error"]


# ----------------------------------------------------------------------------------------- encodings


ZH_ROWS = first_records("alpaca_zh_demo.json", 40) if LF.is_dir() else []


def _prompts(items) -> list[str]:
    assert all(isinstance(i, Record) for i in items), [i for i in items if not isinstance(i, Record)][:1]
    return [[m.content for m in r.messages] for r in items]


def _expected_zh(rows=None) -> list[list[str]]:
    rows = ZH_ROWS if rows is None else rows
    out = []
    for r in rows:
        prompt = "\n".join(p for p in (r["instruction"], r.get("input") or "") if p)
        out.append([prompt, r["output"]])
    return out


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "gb18030"])
@pytest.mark.parametrize("container", ["jsonl", "json"])
def test_chinese_text_in_other_encodings_is_auto_detected(tmp_path, encoding, container):
    assert any("\u4e00" <= ch <= "\u9fff" for ch in ZH_ROWS[0]["instruction"])
    src = tmp_path / f"zh.{container}"
    if container == "jsonl":
        write_jsonl(src, ZH_ROWS, encoding)
    else:
        src.write_bytes(json.dumps(ZH_ROWS, ensure_ascii=False, indent=2).encode(encoding))
    if encoding == "utf-16":
        assert src.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")  # with BOM
    if encoding in ("utf-16-le", "utf-16-be"):
        assert src.read_bytes()[:2] not in (b"\xff\xfe", b"\xfe\xff")  # without BOM

    items = list(datamill.read(src))

    assert _prompts(items) == _expected_zh()


@pytest.mark.parametrize("encoding", ["utf-16-le", "gb18030", "cp1252"])
def test_explicit_encoding_is_used(tmp_path, encoding):
    rows = [{"instruction": "Café “crème” — 15,50 €", "output": "Très bien"}] if encoding == "cp1252" else ZH_ROWS
    src = write_jsonl(tmp_path / "in.jsonl", rows, encoding)
    items = list(datamill.read(src, encoding=encoding))
    assert _prompts(items) == _expected_zh(rows)


def _cp1252_lines() -> list[str]:
    html = (DOCS / "fake-html-cp1252.html").read_bytes().decode("cp1252")
    body = html.split("<pre>", 1)[1].split("</pre>", 1)[0]
    lines = [line for line in body.splitlines() if line.strip()]
    assert any("€" in line for line in lines) and any("ñ" in line for line in lines)
    return lines


def test_cp1252_jsonl_is_auto_detected(tmp_path):
    lines = _cp1252_lines()
    src = write_jsonl(tmp_path / "cp.jsonl", [{"text": t} for t in lines], "cp1252")
    with pytest.raises(UnicodeDecodeError):
        src.read_bytes().decode("utf-8")
    items = list(datamill.read(src))
    assert [r.text for r in items] == lines


def test_cp1252_jsonl_converts_to_utf8(tmp_path):
    lines = _cp1252_lines()
    src = write_jsonl(tmp_path / "cp.jsonl", [{"text": t} for t in lines], "cp1252")
    out = tmp_path / "out.jsonl"
    summary = datamill.convert(src, out, to="pretrain")
    check_accounting(summary, out, len(lines))
    assert [r["text"] for r in read_jsonl(out)] == lines


def test_cp1252_with_non_ascii_late_in_file_reads_with_explicit_encoding(tmp_path):
    # the first 64 KiB are plain ASCII, so sniffing cannot tell; --encoding must work
    rows = [{"text": f"plain ascii line number {i} " + "x" * 60} for i in range(1200)]
    rows += [{"text": t} for t in _cp1252_lines()]
    src = write_jsonl(tmp_path / "late.jsonl", rows, "cp1252")
    items = list(datamill.read(src, encoding="cp1252"))
    assert [r.text for r in items] == [r["text"] for r in rows]


def test_undecodable_file_with_wrong_explicit_encoding_is_file_error(tmp_path):
    src = write_jsonl(tmp_path / "zh.jsonl", ZH_ROWS, "utf-8")
    with pytest.raises(FileError, match="zh.jsonl"):
        list(datamill.read(src, encoding="utf-16"))


# ------------------------------------------------------------------------------ truncated JSON array


def _truncated_array(tmp_path: Path) -> Path:
    data = (LF / "alpaca_en_demo.json").read_bytes()
    src = tmp_path / "in" / "alpaca_cut.json"
    src.parent.mkdir()
    src.write_bytes(data[: len(data) // 2])
    return src


def test_truncated_json_array_keeps_the_records_before_the_cut(tmp_path):
    """Issue 15 item 3: the intact records are written, the cut one is quarantined with its line —
    by the API and by the CLI alike (the whole file used to be lost)."""
    src = _truncated_array(tmp_path)
    whole = json.loads((LF / "alpaca_en_demo.json").read_bytes())
    out = tmp_path / "out" / "x.jsonl"
    summary = datamill.convert(src, out, to="alpaca")
    q = check_accounting(summary, out, summary.read)
    assert summary.quarantined == 1 and summary.written == summary.read - 1 > 400
    assert q[0]["line"] > 1 and "alpaca_cut.json" in q[0]["file"]
    written = output_records(out)
    assert [r["output"] for r in written] == [r["output"] for r in whole[: len(written)]]
    items = list(datamill.read(src))
    assert sum(isinstance(x, Quarantined) for x in items) == 1 and isinstance(items[-1], Quarantined)
    result = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "cli" / "x.jsonl"), "--to", "sharegpt"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "quarantined 1" in result.output, result.output


@pytest.mark.parametrize("n_lines", [300, 20], ids=["cut-after-64KiB", "cut-within-first-64KiB"])
def test_truncated_gzip_jsonl_keeps_the_lines_before_the_cut(tmp_path, n_lines):
    lines = (LF / "c4_demo.jsonl").read_bytes().splitlines(keepends=True)[:n_lines]
    data = gzip.compress(b"".join(lines))
    src = tmp_path / "in" / "c4.jsonl.gz"
    src.parent.mkdir()
    src.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out" / "c4.jsonl"
    summary = datamill.convert(src, out, to="pretrain")
    q = check_accounting(summary, out, summary.read)
    assert summary.quarantined == 1 and "cut short" in q[0]["error"]
    kept = [r["text"] for r in output_records(out)]
    assert kept == [json.loads(x)["text"] for x in lines[: len(kept)]]


def test_not_gzip_data_in_gz_file_is_file_error(tmp_path):
    src = tmp_path / "fake.jsonl.gz"
    src.write_bytes(b'{"text": "this was never compressed"}\n')
    with pytest.raises(FileError, match="fake.jsonl.gz"):
        list(datamill.read(src))


def test_json_scalar_is_file_error(tmp_path):
    src = tmp_path / "n.json"
    src.write_text("42\n", encoding="utf-8")
    with pytest.raises(FileError, match="n.json"):
        list(datamill.read(src))


# ------------------------------------------------------------------------------- unknown file types


@pytest.mark.parametrize("name, ext", [("data.xml", ".xml"), ("data.jsonl.bak", ".bak"), ("sheet.XLSX", ".XLSX")])
def test_unknown_extension_is_file_error_naming_it(tmp_path, name, ext):
    src = tmp_path / name
    src.write_text(json.dumps(GOOD[0]) + "\n", encoding="utf-8")
    with pytest.raises(FileError) as info:
        list(datamill.read(src))
    assert f"'{ext}'" in str(info.value) or ext in str(info.value)
    assert name in str(info.value)
    out_dir = tmp_path / "out"
    with pytest.raises(FileError):
        datamill.convert(src, out_dir / "x.jsonl", to="sharegpt")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_real_document_types_are_unknown_extensions():
    for name in ("empty.xlsx", "fake-doc.rtf", "fake-email.eml"):
        with pytest.raises(FileError, match=re.escape(Path(name).suffix)):
            list(datamill.read(DOCS / name))


def test_regular_file_without_extension_is_not_reported_as_directory(tmp_path):
    src = tmp_path / "data"
    src.write_text(json.dumps(GOOD[0]) + "\n", encoding="utf-8")
    with pytest.raises(FileError) as info:
        list(datamill.read(src))
    assert "data" in str(info.value)
    assert "a directory" not in str(info.value), str(info.value)


def test_missing_file_is_file_error(tmp_path):
    with pytest.raises(FileError, match="nope.jsonl"):
        list(datamill.read(tmp_path / "nope.jsonl"))


# ------------------------------------------------------------------------- validation in convert


def test_validation_errors_are_quarantined_with_stage_validate(tmp_path):
    ok = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    rows = [
        ok,
        # turns in the wrong order
        {"conversations": [{"from": "gpt", "value": "I speak first"}, {"from": "human", "value": "q"}]},
        # one <image> placeholder, two images
        {"conversations": [{"from": "human", "value": "<image>what is this?"}, {"from": "gpt", "value": "a cat"}],
         "images": ["a.jpg", "b.jpg"]},
        # preference prompt ending with the assistant
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
         "chosen": {"from": "gpt", "value": "good"}, "rejected": {"from": "gpt", "value": "bad"}},
        # conversation ending with the user
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"},
                           {"from": "human", "value": "and?"}]},
        # empty answer: a warning, kept
        {"conversations": [{"from": "human", "value": "say nothing"}, {"from": "gpt", "value": "  "}]},
        ok,
    ]
    summary, q, out = _convert_rows(tmp_path, rows, to="sharegpt")
    assert (summary.written, summary.quarantined) == (3, 4)
    assert [r["line"] for r in q] == [2, 3, 4, 5]
    assert {r["stage"] for r in q} == {"validate"}
    assert all(r["file"] == str(tmp_path / "in.jsonl") for r in q)
    errors = [r["error"] for r in q]
    assert "turn 1" in errors[0] and "assistant" in errors[0]
    assert "<image>" in errors[1] and "1" in errors[1] and "2" in errors[1]
    assert "preference" in errors[2] and "user" in errors[2]
    assert "assistant" in errors[3]
    assert summary.warnings["empty_answer"] == 1
    written = read_jsonl(out)
    assert written[1]["conversations"][1]["value"] == "  "
    # the quarantined row is the record itself, so it can be fixed and fed back
    assert q[1]["raw"]["images"] == ["a.jpg", "b.jpg"]


def test_real_multimodal_record_with_image_count_mismatch(tmp_path):
    rows = first_records("mllm_demo.json", 6)
    assert len(rows[0]["images"]) == 2
    rows[0]["images"] = rows[0]["images"][:1]  # two <image> placeholders, now one path
    summary, q, _ = _convert_rows(tmp_path, rows, to="sharegpt")
    assert summary.detected == "messages"
    assert (summary.written, summary.quarantined) == (5, 1)
    assert q[0]["stage"] == "validate" and q[0]["line"] == 1
    assert "<image>" in q[0]["error"]


def test_real_preference_prompt_ending_with_assistant(tmp_path):
    rows = first_records("dpo_en_demo.json", 10)
    rows[3]["conversations"].append({"from": "gpt", "value": "an answer inside the prompt"})
    summary, q, out = _convert_rows(tmp_path, rows, to="messages")
    assert (summary.written, summary.quarantined) == (9, 1)
    assert q[0]["stage"] == "validate" and q[0]["line"] == 4
    assert "preference" in q[0]["error"]
    assert all("chosen" in r and "rejected" in r for r in read_jsonl(out))


def test_empty_output_is_kept_as_warning(tmp_path):
    rows = [GOOD[0], {"instruction": "q", "input": "", "output": ""}, {"instruction": "", "output": "x"}, GOOD[1]]
    summary, q, out = _convert_rows(tmp_path, rows, to="alpaca")
    assert (summary.written, summary.quarantined) == (4, 0)
    assert summary.warnings["empty_answer"] == 1
    assert summary.warnings["empty_prompt"] == 1
    assert [r["output"] for r in read_jsonl(out)] == ["answer 0", "", "x", "answer 1"]


# ------------------------------------------------------------- records the target cannot hold


def test_glaive_tool_calls_to_alpaca_quarantined_at_convert_stage(tmp_path):
    src = LF / "glaive_toolcall_en_demo.json"
    raw = json.loads(src.read_text(encoding="utf-8"))
    with_tools = [i for i, r in enumerate(raw)
                  if any(t["from"] in ("function_call", "observation") for t in r["conversations"])]
    assert 0 < len(with_tools) < len(raw)
    out = tmp_path / "glaive.jsonl"

    summary = datamill.convert(src, out, to="alpaca")

    q = check_accounting(summary, out, len(raw))
    assert summary.quarantined == len(with_tools)
    assert summary.written == len(raw) - len(with_tools)
    assert [r["index"] for r in q] == with_tools
    assert {r["stage"] for r in q} == {"convert"}
    assert all("function/tool" in r["error"] and r["error"].startswith("alpaca") for r in q)
    assert all(r["file"] == str(src) for r in q)
    # quarantined rows keep the whole conversation, tool turns included
    assert any(m["role"] == "function" for m in q[0]["raw"]["messages"])
    written = read_jsonl(out)
    assert all(set(w) >= {"instruction", "input", "output"} for w in written)


def test_pretraining_text_to_sharegpt_all_quarantined(tmp_path):
    src = LF / "c4_demo.jsonl"
    n = sum(1 for line in src.read_bytes().splitlines() if line.strip())
    out = tmp_path / "c4.json"
    summary = datamill.convert(src, out, to="sharegpt")
    q = check_accounting(summary, out, n)
    assert (summary.written, summary.quarantined) == (0, n)
    assert {r["stage"] for r in q} == {"convert"}
    assert f"all {n:,} records" in summary.nothing_written()
    result = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "cli.json"), "--to", "sharegpt"])
    assert result.exit_code == 1 and "nothing written" in result.output and not (tmp_path / "cli.json").exists()


def test_txt_output_for_conversations_is_file_error(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", GOOD)
    with pytest.raises(FileError, match=r"\.txt"):
        datamill.convert(src, tmp_path / "out" / "x.txt", to="sharegpt")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_unknown_target_format_is_an_error_and_writes_nothing(tmp_path):
    (tmp_path / "in").mkdir()
    src = write_jsonl(tmp_path / "in" / "in.jsonl", GOOD)
    out_dir = tmp_path / "out"
    with pytest.raises(DatamillError, match="nope"):
        datamill.convert(src, out_dir / "x.jsonl", to="nope")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


# ---------------------------------------------------------------- failures after writing started


def test_broken_dataset_info_leaves_no_temp_files(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(GOOD[0]) + "\n{bad line\n", encoding="utf-8")
    (tmp_path / "dataset_info.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(DatamillError, match="dataset_info.json"):
        datamill.convert(src, tmp_path / "out.jsonl", to="sharegpt")
    assert leftovers(tmp_path) == []
    assert (tmp_path / "dataset_info.json").read_text(encoding="utf-8") == "{broken"


def test_mixed_good_and_bad_accounting_on_real_file(tmp_path):
    """Real records with every kind of problem mixed in: all of them add up."""
    rows = first_records("alpaca_en_demo.json", 50)
    lines = [orjson.dumps(r).decode() for r in rows]
    lines[5] = lines[5][:30]  # malformed JSON
    lines[10] = json.dumps({"instruction": "x"})  # missing output
    lines[20] = json.dumps({"instruction": "x", "output": 1})  # wrong type
    lines[30] = json.dumps({"instruction": "x", "output": "<image> without a file"})  # validation error
    lines[40] = json.dumps({"instruction": "x", "output": ""})  # warning, kept
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "mixed_out.json"
    summary = datamill.convert(src, out, to="sharegpt")
    q = check_accounting(summary, out, 50)
    assert [(r["line"], r["stage"]) for r in q] == [(6, "read"), (11, "read"), (21, "read"), (31, "validate")]
    assert summary.written == 46
    assert summary.warnings["empty_answer"] == 1

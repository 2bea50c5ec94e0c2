"""Encoding detection never corrupts valid text (issue 15, item 2): a file that is UTF-8 but for a few
bytes stays UTF-8 and only the records holding those bytes are quarantined, by line or index; a
guess of another encoding is made only on strong evidence, and a guess that fails later in the
file is reported record by record instead of turning into mojibake."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import datamill
from datamill import Quarantined, Record
from datamill.io.encoding import sniff_bytes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MIXED = "Café 🚀 中文 naïve"


def sample_rows(n: int = 60) -> list[dict]:
    rows = json.loads((EXAMPLES / "alpaca_en_sample.json").read_text(encoding="utf-8"))[:n]
    rows[0] = {**rows[0], "output": MIXED}
    return rows


def records_and_quarantined(path: Path) -> tuple[list[Record], list[Quarantined]]:
    items = list(datamill.read(path))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, Quarantined)]


def answers(records: list[Record]) -> list[str]:
    return [r.messages[-1].content for r in records]


def jsonl_with_bad_bytes(tmp_path: Path, bad: dict[int, bytes]) -> tuple[Path, list[dict]]:
    """A UTF-8 .jsonl whose line (index) i gets the bytes ``bad[i]`` inside its output string."""
    rows = sample_rows()
    lines = []
    for i, r in enumerate(rows):
        line = json.dumps(r, ensure_ascii=False).encode()
        if i in bad:
            line = line.replace(b'"output": "', b'"output": "' + bad[i], 1)
        lines.append(line)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, rows


def test_one_invalid_byte_in_the_head_keeps_the_file_utf8(tmp_path):
    path, rows = jsonl_with_bad_bytes(tmp_path, {3: b"\xff"})
    records, bad = records_and_quarantined(path)
    assert [q.line for q in bad] == [4]
    assert "not valid utf-8" in bad[0].error
    assert answers(records) == [r["output"] for i, r in enumerate(rows) if i != 3]
    assert answers(records)[0] == MIXED  # not cp1250/cp866 mojibake


def test_a_few_invalid_sequences_are_no_reason_for_a_legacy_codec(tmp_path):
    path, rows = jsonl_with_bad_bytes(tmp_path, {2: b"\xe9", 10: b"\x80\x81", 30: b"\xc3("})
    records, bad = records_and_quarantined(path)
    assert [q.line for q in bad] == [3, 11, 31]
    assert answers(records)[0] == MIXED


def test_one_nul_byte_does_not_make_the_file_utf16(tmp_path):
    rows = sample_rows()
    data = json.dumps(rows, indent=2, ensure_ascii=False).encode()
    at = data.index(b'"output"', 1000) + len(b'"output": "') + 2  # inside record 1 or 2's answer
    src = tmp_path / "nul.json"
    src.write_bytes(data[:at] + b"\x00" + data[at:])
    records, bad = records_and_quarantined(src)
    assert len(records) == len(rows) - 1 and len(bad) == 1
    assert bad[0].line is not None and "control character" in bad[0].error
    assert answers(records)[0] == MIXED
    assert sniff_bytes(src.read_bytes()[:65536]) == "utf-8"


def test_sniffing_still_finds_real_other_encodings():
    zh_rows = json.loads((EXAMPLES / "alpaca_zh_sample.json").read_text(encoding="utf-8"))
    zh = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in zh_rows)
    assert sniff_bytes(zh.encode("utf-16-le")[:65536]) == "utf-16-le"
    assert sniff_bytes(zh.encode("utf-16-be")[:65536]) == "utf-16-be"
    assert sniff_bytes(zh.encode("gb18030")[:65536]) == "gb18030"
    western = "".join(f'{{"text": "Café crème à {i} € — ñandú"}}\n' for i in range(200))
    assert sniff_bytes(western.encode("cp1252")[:65536]) == "cp1252"
    assert sniff_bytes(b'{"text": "plain"}\n' * 100 + b'{"text": "\xe9"}\n') == "utf-8"


def test_json_array_with_invalid_bytes_loses_only_that_record(tmp_path):
    rows = sample_rows()
    data = json.dumps(rows, indent=2, ensure_ascii=False).encode()
    at = data.index(b'"instruction"', len(data) // 2)
    src = tmp_path / "bad.json"
    src.write_bytes(data[:at] + b"\xff\xfe" + data[at:])
    records, bad = records_and_quarantined(src)
    assert len(bad) == 1 and "not valid utf-8" in bad[0].error
    assert bad[0].line == data[: data.rindex(b"{", 0, at)].count(b"\n") + 1  # where the record starts
    assert answers(records) == [r["output"] for i, r in enumerate(rows) if i != bad[0].index]


def test_csv_with_invalid_bytes_quarantines_rows_by_line(tmp_path):
    rows = sample_rows(40) * 40  # > 64 KiB, so one bad row comes after the sniffed head
    text = io.StringIO()
    w = csv.writer(text)
    w.writerow(["instruction", "input", "output"])
    for r in rows:
        w.writerow([r[k].replace("\n", " ") for k in ("instruction", "input", "output")])
    lines = text.getvalue().encode().split(b"\r\n")
    assert all(b"\n" not in ln for ln in lines)  # one physical line per row
    lines[5] = lines[5].replace(b",", b",\xff", 1)  # early: in the sniffed head
    lines[-200] = lines[-200].replace(b",", b",\xfe", 1)  # late
    src = tmp_path / "in.csv"
    src.write_bytes(b"\r\n".join(lines))
    assert len(src.read_bytes()) > 1 << 16
    records, bad = records_and_quarantined(src)
    assert [q.line for q in bad] == [6, len(lines) - 199]
    assert all("not valid utf-8" in q.error for q in bad)
    assert len(records) == len(rows) - 2
    assert answers(records)[0] == MIXED


def test_legacy_guess_that_fails_later_is_reported_not_garbled(tmp_path):
    western = [{"text": f"Café crème à {i} € — ñandú"} for i in range(300)]
    data = b"".join(json.dumps(r, ensure_ascii=False).encode("cp1252") + b"\n" for r in western)
    late_utf8 = json.dumps({"text": MIXED}, ensure_ascii=False).encode("utf-8") + b"\n"
    src = tmp_path / "legacy.jsonl"
    src.write_bytes(data + late_utf8 + data)
    records, bad = records_and_quarantined(src)
    assert [q.line for q in bad] == [301]
    assert "UTF-8" in bad[0].error
    assert [r.text for r in records] == [r["text"] for r in western] * 2
    assert all("Ã" not in r.text for r in records)


def test_gb18030_line_that_does_not_decode_is_quarantined_alone(tmp_path):
    zh = json.loads((EXAMPLES / "alpaca_zh_sample.json").read_text(encoding="utf-8"))
    lines = [json.dumps(r, ensure_ascii=False).encode("gb18030") for r in zh]
    lines[25] = lines[25][:-3] + b"\x81\x20" + lines[25][-3:]  # not a GB18030 sequence
    src = tmp_path / "zh.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    records, bad = records_and_quarantined(src)
    assert [q.line for q in bad] == [26]
    assert "gb18030" in bad[0].error
    assert len(records) == len(zh) - 1 and records[0].messages[0].content.startswith(zh[0]["instruction"])

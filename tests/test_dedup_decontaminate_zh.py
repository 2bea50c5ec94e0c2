"""decontaminate on Chinese multiple-choice benchmarks laid out like C-Eval (``id,question,A,B,C,D,answer,
explanation``, csv and jsonl) and CMMLU (an unnamed index column, ``Question,A,B,C,D,Answer``, a csv
saved with a BOM), and MMLU's ``choices`` list: a question copied into synthesized data with its
options, embedded in a longer instruction, or lightly reworded is caught by character n-grams and
fuzzy mode, naming the item; the answer letters and bare option texts are never matched, and none of
alpaca_zh_demo's 1,000 records is. (The items are written for this test in those layouts: C-Eval and
CMMLU themselves are under non-commercial licences.)"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import LF

import datamill
from datamill import ops
from datamill.dedup import benchmarks
from datamill.ops.base import OpContext
from datamill.record import Message, Record
from datamill.results import Drop

CEVAL = [
    {
        "id": 0,
        "question": "下列关于光合作用的叙述，正确的是____",
        "A": "光合作用只在白天的叶绿体基质中进行",
        "B": "光反应阶段产生的ATP用于暗反应中三碳化合物的还原",
        "C": "暗反应阶段不需要酶的参与",
        "D": "光合作用释放的氧气来自二氧化碳",
        "answer": "B",
        "explanation": "光反应产生的ATP和NADPH用于暗反应中三碳化合物的还原；释放的氧气来自水的光解。",
    },
    {
        "id": 1,
        "question": "某商品原价200元，先提价10%，再降价10%，现在的售价是____",
        "A": "200元",
        "B": "198元",
        "C": "202元",
        "D": "180元",
        "answer": "B",
        "explanation": "",
    },
    {
        "id": 2,
        "question": "下列诗句中，描写春天景色的是____",
        "A": "接天莲叶无穷碧，映日荷花别样红",
        "B": "春色满园关不住，一枝红杏出墙来",
        "C": "停车坐爱枫林晚，霜叶红于二月花",
        "D": "忽如一夜春风来，千树万树梨花开",
        "answer": "B",
        "explanation": "",
    },
    {
        "id": 3,
        "question": "在一个标准大气压下，纯净的水沸腾时的温度是____",
        "A": "90℃",
        "B": "100℃",
        "C": "110℃",
        "D": "120℃",
        "answer": "B",
        "explanation": "",
    },
]
CMMLU = [
    ["", "Question", "A", "B", "C", "D", "Answer"],
    ["0", "我国古代四大发明中，最早被用于航海导向的是哪一项？", "造纸术", "活字印刷术", "火药", "指南针", "D"],
    ["1", "计算机存储容量的单位中，1KB等于多少个字节？", "100", "1000", "1024", "2048", "C"],
    ["2", "函数f(x)=x²-4x+3在实数范围内的最小值是多少？", "-1", "0", "1", "3", "A"],
    ["3", "下列元素中，在常温常压下属于金属元素的是哪一种？", "碳", "硫", "钠", "氯", "C"],
]
MMLU = {"question": "唐朝诗人李白被后人誉为什么？", "choices": ["诗圣", "诗仙", "诗鬼", "诗佛"], "answer": 1}


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    with open(tmp_path / "ceval_val.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CEVAL[0]))
        writer.writeheader()
        writer.writerows(CEVAL[:2])
    (tmp_path / "ceval_dev.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in CEVAL[2:]) + "\n", encoding="utf-8"
    )
    with open(tmp_path / "cmmlu_test.csv", "w", encoding="utf-8-sig", newline="") as f:
        csv.writer(f).writerows(CMMLU)
    (tmp_path / "mmlu_zh.jsonl").write_text(json.dumps(MMLU, ensure_ascii=False) + "\n", encoding="utf-8")
    return [str(tmp_path / n) for n in ("ceval_val.csv", "ceval_dev.jsonl", "cmmlu_test.csv", "mmlu_zh.jsonl")]


def sft(q: str, a: str, rid: str) -> Record:
    rec = Record(messages=[Message("user", q), Message("assistant", a)])
    rec.id = rid
    return rec


def shown(q: str, options: list[str]) -> str:
    return "\n".join([q] + [f"{letter}. {o}" for letter, o in zip("ABCD", options, strict=False)])


def test_the_reader_takes_question_and_options_not_the_answer_letter(files):
    ceval = list(benchmarks.items(Path(files[0])))
    assert ceval[0].prompt == CEVAL[0]["question"]
    assert ceval[0].fields == [
        CEVAL[0]["question"],
        shown(CEVAL[0]["question"], [CEVAL[0][c] for c in "ABCD"]),
        CEVAL[0]["explanation"],
    ]
    assert len(ceval[1].fields) == 2  # an empty explanation is no field
    cmmlu = list(benchmarks.items(Path(files[2])))  # the BOM and the unnamed index column do not matter
    assert [i.prompt for i in cmmlu] == [row[1] for row in CMMLU[1:]]
    assert all("D" not in i.fields and "C" not in i.fields for i in cmmlu)
    (mmlu,) = benchmarks.items(Path(files[3]))
    assert mmlu.fields[1] == shown(MMLU["question"], MMLU["choices"])


def test_copied_embedded_and_reworded_questions_are_caught(tmp_path, files):
    q = [r["question"] for r in CEVAL] + [row[1] for row in CMMLU[1:]]
    exercise = "请回答下面的选择题：\n" + shown(q[0], [CEVAL[0][c] for c in "ABCD"])
    cases = [  # (id, synthesized instruction, answer, the item it leaks)
        # a generated exercise that copies an item with its options (C-Eval csv #0)
        ("copied", exercise, "答案是B。", "ceval_val.csv#0"),
        # the question inside a longer instruction (C-Eval jsonl #1 = CEVAL[3])
        ("embedded", f"老师布置了一道物理题：{q[3]}请说明理由并给出答案。", "100℃", "ceval_dev.jsonl#1"),
        # reworded: two characters changed (CMMLU #0)
        ("reworded", "我国古代四大发明里，最早被用于航海导航的是哪一项？", "指南针", "cmmlu_test.csv#0"),
        # the explanation given as a synthesized answer (C-Eval csv #0)
        ("explained", "光合作用中ATP有什么用？", CEVAL[0]["explanation"], "ceval_val.csv#0"),
        # the price question with the numbers kept and the wording shifted (C-Eval csv #1)
        ("price", "一件商品原价200元，先提价10%，再降价10%，现在的售价是多少元？", "198元", "ceval_val.csv#1"),
        ("mmlu", MMLU["question"], "诗仙", "mmlu_zh.jsonl#0"),
    ]
    planted = {rid: (sft(question, answer, rid), item) for rid, question, answer, item in cases}
    innocent = [
        sft("这道题选哪个？", "C", "letter"),  # an answer letter
        sft("四大发明之一是什么？", "指南针", "option"),  # a bare option text
        sft("1KB是多少字节？", "1024", "short"),
    ]
    zh = [r for r in datamill.read(LF / "alpaca_zh_demo.json") if isinstance(r, Record)]
    cls = ops.get("decontaminate")
    op = cls(cls.Config(benchmarks=files, mode=["ngram", "fuzzy"]), OpContext(0, 3, tmp_path / "w"))
    stream = [rec for rec, _ in planted.values()] + innocent + zh
    out = op.check(stream)
    drops = {d.record.id: d.reason for d in out if isinstance(d, Drop)}
    assert drops == {rid: f"benchmark overlap: {item}" for rid, (_, item) in planted.items()}
    assert len(out) == len(stream)
    modes = {rid: planted[rid][0].meta["contamination"]["mode"] for rid in planted}
    assert modes["copied"] == "ngram"
    assert modes["reworded"] == "fuzzy"
    part = tmp_path / "w" / "publish" / "leakage" / "chunk-000000.jsonl"  # this chunk's leakage lines
    leaks = [json.loads(x) for x in part.read_text("utf-8").splitlines()]
    assert {row["id"] for row in leaks} == set(planted)
    reworded = [row for row in leaks if row["id"] == "reworded"]
    assert [(r["mode"], r["benchmark"], r["index"]) for r in reworded] == [("fuzzy", "cmmlu_test.csv", 0)]
    assert "4-char n-grams" in reworded[0]["overlap"] and 0.5 <= reworded[0]["score"] < 1
    assert reworded[0]["benchmark_text"] == CMMLU[1][1] and reworded[0]["step"] == 3
    counters = op.take_counters()
    assert counters["benchmark items: ceval_val.csv"] == 2 and counters["benchmark items: cmmlu_test.csv"] == 4


def test_a_folder_of_subject_files_like_cmmlu(tmp_path):
    """CMMLU and C-Eval come as one csv per subject, in dev/ and test/ folders with the same file names."""
    root = tmp_path / "cmmlu"
    for split, rows in (("dev", CMMLU[:3]), ("test", [CMMLU[0], *CMMLU[3:]])):
        for subject in ("agronomy", "astronomy"):
            (root / split).mkdir(parents=True, exist_ok=True)
            with open(root / split / f"{subject}.csv", "w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerows(rows)
    (root / "README.md").write_text("# CMMLU-style\n", encoding="utf-8")
    (root / "LICENSE").write_text("for the test\n", encoding="utf-8")
    labels = [b.label for b in benchmarks.resolve(str(root))]
    assert labels == [
        "cmmlu/dev/agronomy.csv",
        "cmmlu/dev/astronomy.csv",
        "cmmlu/test/agronomy.csv",
        "cmmlu/test/astronomy.csv",
    ]
    cls = ops.get("decontaminate")
    op = cls(cls.Config(benchmarks=[str(root / "test")], mode=["ngram", "fuzzy"]), OpContext(0, 0, tmp_path / "w"))
    rec = sft(f"复习题：{CMMLU[4][1]}", "钠", "x")  # CMMLU[4] is the test split's second row
    (drop,) = op.check([rec])
    assert drop.reason == "benchmark overlap: test/agronomy.csv#1"
    assert op.take_counters()["benchmark items: test/astronomy.csv"] == 2
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.md").write_text("no data here\n", encoding="utf-8")
    with pytest.raises(datamill.errors.DatamillError, match="holds no data file"):
        benchmarks.resolve(str(tmp_path / "docs"))

"""Self-Instruct: ROUGE-L and its index, parsing, instruction filters, the seed-task format, and the
operator end to end against a scripted local OpenAI-compatible server."""

from __future__ import annotations

import json
import random
import re

import pytest
import yaml
from test_synth_fakes import llm_config, prompts_sent, routed

from datamill import formats
from datamill.formats.self_instruct import FORMAT as SEED_FORMAT
from datamill.ops import get
from datamill.ops.base import OpContext
from datamill.pipeline.recipe import load
from datamill.pipeline.runner import Runner
from datamill.record import Record
from datamill.results import Drop, Generated
from datamill.synth.instructions import instruction_problem
from datamill.synth.parse import instance_input_first, instance_output_first, numbered_items, yes_no
from datamill.synth.rouge import RougeIndex, lcs_len, rouge_l, tokenize


def _dp_lcs(a, b):
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(t[i - 1][j], t[i][j - 1])
    return t[-1][-1]


def seed_rows(data_dir, n=None):
    lines = (data_dir / "self_instruct" / "seed_tasks.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines[:n]]


def seed_records(data_dir, n=None):
    out = []
    for row in seed_rows(data_dir, n):
        rec = SEED_FORMAT.to_record(row)
        rec.id = rec.compute_id()
        out.append(rec)
    return out


def alpaca_instructions(data_dir, n):
    rows = json.loads((data_dir / "llamafactory" / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    return [r["instruction"] for r in rows[:n]]


def perturb(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(rng.randint(0, 3)):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.4 and len(words) > 3:
            del words[i]
        elif op < 0.7:
            words.insert(i, rng.choice(["new", "quick", "please", "the", "very"]))
        else:
            words[i] = rng.choice(["story", "list", "email", "poem"])
    return " ".join(words)


# ---- ROUGE-L ------------------------------------------------------------------------------------
def test_bit_parallel_lcs_matches_dynamic_programming():
    rng = random.Random(7)
    for _ in range(2000):
        a = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        assert lcs_len(a, b) == _dp_lcs(a, b)


def test_tokens_follow_rouge_score_and_split_chinese_characters():
    assert tokenize("Write a 2-line poem, please!") == ["write", "a", "2", "line", "poem", "please"]
    assert tokenize("写一首诗 about spring") == ["写", "一", "首", "诗", "about", "spring"]
    assert rouge_l("写一首关于春天的诗", "写一首关于秋天的诗") == pytest.approx(8 / 9)
    assert rouge_l("", "anything") == 0.0


def test_scores_equal_the_rouge_score_package(data_dir):
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    texts = [r["instruction"] for r in seed_rows(data_dir, 60)]
    rng = random.Random(3)
    for _ in range(300):
        a, b = rng.choice(texts), rng.choice(texts)
        b = perturb(b, rng) if rng.random() < 0.5 else b
        assert rouge_l(a, b) == scorer.score(a, b)["rougeL"].fmeasure


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
def test_index_finds_exactly_what_the_all_pairs_loop_finds(data_dir, threshold):
    pool = [r["instruction"] for r in seed_rows(data_dir)] + alpaca_instructions(data_dir, 300)
    rng = random.Random(11)
    index = RougeIndex(threshold, order_texts=pool)
    for t in pool:
        index.add(t)
    probes = [perturb(rng.choice(pool), rng) for _ in range(300)] + alpaca_instructions(data_dir, 500)[300:]
    hits = 0
    for p in probes:
        fast, slow = index.match(p), index.naive_match(p)
        assert fast == slow, p
        hits += fast is not None
    assert 0 < hits < len(probes)
    if threshold >= 0.7:  # the index scores a small fraction of the pairs
        assert index.scored < len(probes) * len(pool) / 20, index.scored


def test_index_on_chinese():
    index = RougeIndex(0.7)
    index.add("写一首关于春天的诗")
    assert index.match("写一首关于秋天的诗") is not None
    assert index.match("解释一下光合作用的原理") is None


# ---- parsing and filters -------------------------------------------------------------------------
def test_parsers():
    text = "Write a haiku about cats.\nTask 10: List three uses of salt.\n11. Explain why the sky is blue.\n\nmore"
    assert numbered_items(text) == [
        "Write a haiku about cats.",
        "List three uses of salt.",
        "Explain why the sky is blue.",
    ]
    assert numbered_items("任务9：写一首关于秋天的诗。\n任务10：解释光合作用。") == [
        "写一首关于秋天的诗。",
        "解释光合作用。",
    ]
    assert instance_input_first("Input: <noinput>\nOutput: Paris.\n\nTask: x") == ("", "Paris.")
    assert instance_input_first("输入：2+2\n输出：4") == ("2+2", "4")
    assert instance_input_first("Input: only an input") is None
    assert instance_input_first("Input: only an input", lenient=True) is None
    assert instance_input_first("Paris.\n\nTask: next one", lenient=True) == ("", "Paris.")
    assert instance_input_first("Paris.\nTask: next one", lenient=True) == ("", "Paris.")
    assert instance_input_first("Paris.") is None
    assert instance_output_first("Class label: Positive\nInput: I loved it.") == ("I loved it.", "Positive")
    assert instance_output_first("Class label: Positive") is None
    assert (yes_no(" Yes."), yes_no("否。"), yes_no("maybe")) == (True, False, None)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Draw a picture of a cat.", "banned keyword"),
        ("Plot the data in the file.", "banned keyword"),
        ("Hi there", "instruction too short"),
        ("word " * 151, "instruction too long"),
        ("1234 5678 9012 = ?? ###", "non-text"),
        ("，写一首关于猫的诗", "starts with punctuation"),
        ("请给我画一只猫的图片", "banned keyword"),
        ("Write a program that sorts numbers.", "banned keyword"),
        ("Summarize the following article in two sentences.", None),
        ("写一首关于秋天的诗。", None),
        ("Suggest a good name for a bakery (one word).", None),
        ("Calculate 12345 + 67890 - 1111.", None),
        ("x = [i**2 for i in range(10)]; print(x[::-1])", "non-text"),
    ],
)
def test_instruction_filters(text, reason):
    assert instruction_problem(text) == reason


# ---- the seed-task format --------------------------------------------------------------------------
def test_seed_format_round_trips_all_175_tasks(data_dir):
    rows = seed_rows(data_dir)
    assert len(rows) == 175
    for row in rows:
        assert SEED_FORMAT.detect(row)
        rec = SEED_FORMAT.to_record(row)
        assert rec.kind == "sft" and rec.messages[0].content.startswith(row["instruction"])
        expect = {k: row[k] for k in ("id", "name", "instruction", "instances", "is_classification")}
        assert SEED_FORMAT.from_record(rec) == expect
    multi = {**rows[0], "instances": [{"input": "a", "output": "b"}, {"input": "", "output": "c"}]}
    rec = SEED_FORMAT.to_record(multi)
    assert rec.messages[0].content == multi["instruction"] + "\na"
    assert rec.meta["task"]["more_instances"] == [{"input": "", "output": "c"}]
    assert SEED_FORMAT.from_record(rec)["instances"] == multi["instances"]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"instruction": "x", "instances": []}, "non-empty list"),
        ({"instruction": "x", "instances": [{"input": "", "output": 3}]}, "instances[0].output must be a string"),
        ({"instruction": "x", "instances": ["a"]}, "instances[0] must be an object"),
        ({"instruction": " ", "instances": [{"output": "y"}]}, "is empty"),
    ],
)
def test_seed_format_rejects_bad_rows(row, message):
    from datamill.errors import RecordError

    with pytest.raises(RecordError, match=re.escape(message)):
        SEED_FORMAT.to_record(row)


# ---- the operator ---------------------------------------------------------------------------------
class Script:
    """Answers for the fake server: each task prompt gets 2 fresh real instructions, a near-copy of a
    seed it was shown, a banned task, a too-short one and a duplicate of an earlier fresh one."""

    def __init__(self, fresh: list[str]):
        self.fresh = list(fresh)
        self.served: list[str] = []

    def __call__(self, prompt: str) -> str:
        if "Come up with" in prompt:
            shown = [
                line.split(": ", 1)[1] for line in prompt.splitlines() if line.startswith("Task ") and ": " in line
            ]
            new = [self.fresh.pop(0), self.fresh.pop(0)] if len(self.fresh) >= 2 else []
            self.served += new
            near = shown[0].replace("the ", "the given ", 1) if "the " in shown[0] else shown[0] + " now"
            dup = self.served[0] + "!"
            items = [*new, near, "Draw a picture of a sunset over the sea.", "Hi.", dup]
            return "\n".join(f"{i + 9}. {t}" for i, t in enumerate(items))
        if "Is it classification?" in prompt:
            task = prompt.rsplit("Task: ", 1)[1]
            return "Yes" if task.lower().startswith(("classify", "is ", "identify")) else "No"
        if "Class label" in prompt:
            return "Class label: positive\nInput: What a lovely day."
        task = prompt.rsplit("Task: ", 1)[1]
        if "sky" in task.lower():
            return "Input: the sky at noon"  # an input but no output: rejected
        return f"Input: <noinput>\nOutput: An answer to: {task[:40]}"


def run_op(records, fake, **options):
    op = get("self_instruct")(
        get("self_instruct").Config(llm=llm_config(fake, concurrency=4), **options),
        OpContext(seed=1, step=0, workdir=None),
    )
    return op, list(op.run(records))


def test_self_instruct_filters_and_generates(data_dir):
    seeds = seed_records(data_dir, 20)
    fresh = alpaca_instructions(data_dir, 40)
    script = Script(fresh)
    with routed(script) as fake:
        op, items = run_op(seeds, fake, target=6, seed_examples=4, machine_examples=2, prompts_per_round=2)
        sent = prompts_sent(fake)
    kept = [x for x in items if isinstance(x, Record)]
    made = [x.record for x in items if isinstance(x, Generated) and isinstance(x.record, Record)]
    rejected = [x.record for x in items if isinstance(x, Generated) and isinstance(x.record, Drop)]
    assert kept == seeds  # keep_seeds: the seeds pass through first, unchanged
    assert len(made) == 6
    reasons = {d.reason for d in rejected}
    assert {"rouge-l >= 0.7", "banned keyword", "instruction too short"} <= reasons
    near = [d for d in rejected if d.reason == "rouge-l >= 0.7"]
    assert all(d.record.meta["synth"]["rouge_l"] >= 0.7 for d in near)
    assert any(d.record.meta["synth"]["most_similar"] in [s.messages[0].content for s in seeds] for d in near)
    # every kept instruction is novel against the seeds and every other kept one (checked the slow way)
    seen = [s.meta.get("task", {}).get("instruction") or s.messages[0].content for s in seeds]
    for rec in made:
        instruction = rec.meta["task"]["instruction"]
        assert max(rouge_l(instruction, s) for s in seen) < 0.7
        seen.append(instruction)
        synth = rec.meta["synth"]
        assert synth["method"] == "self_instruct" and synth["model"] == "openai:fake"
        assert synth["template"] == "self_instruct_tasks.en" and synth["round"] >= 1
        assert synth["seed_ids"] and set(synth["seed_ids"]) <= {s.id for s in seeds}
        assert synth["instance_template"].startswith(("self_instruct_input_first", "self_instruct_output_first"))
        assert rec.messages[1].content
    assert any(d.reason == "no instance in the answer" for d in rejected) or not any("sky" in t.lower() for t in fresh)
    # later rounds show machine-made tasks among the examples
    assert any(r.meta["synth"].get("machine_ids") for r in made[2:])
    assert sum("Come up with" in p for p in sent) >= 2
    assert op.counters["candidates"] == len(rejected) + len(made) + op.counters.get("no instance", 0)
    assert op.counters["llm_requests"] == len(sent)


def test_self_instruct_stops_when_nothing_new(data_dir):
    seeds = seed_records(data_dir, 8)
    copy = seeds[0].messages[0].content.split("\n")[0]
    with routed(lambda p: f"9. {copy}\n10. Draw a map." if "Come up with" in p else "No") as fake:
        op, items = run_op(seeds, fake, target=5, patience=2, keep_seeds=False)
    drops = [x for x in items if isinstance(x, Drop)]
    assert len(drops) == 8 and {d.reason for d in drops} == {"seed task (keep_seeds: false)"}
    made = [x for x in items if isinstance(x, Generated) and isinstance(x.record, Record)]
    assert not made and op.counters["rounds"] == 2 and op.counters["target_missed_by"] == 5


def test_self_instruct_chinese_seeds():
    seeds = []
    for i, text in enumerate(["写一首关于春天的短诗。", "把下面的句子翻译成英文。", "判断这条评论是正面还是负面。"]):
        rec = SEED_FORMAT.to_record(
            {
                "id": str(i),
                "instruction": text,
                "instances": [{"input": "", "output": "好的"}],
                "is_classification": i == 2,
            }
        )
        rec.id = rec.compute_id()
        seeds.append(rec)

    def answer(prompt: str) -> str:
        if "新的、多样的任务" in prompt:
            return "写一首关于秋天的短诗。\n任务5：介绍一下长城的历史。\n任务6：列出三种常见的水果。"
        if "是分类任务吗" in prompt:
            return "否"
        return "输入：<无>\n输出：这是一个回答。"

    with routed(answer) as fake:
        _, items = run_op(seeds, fake, target=2)
    made = [x.record for x in items if isinstance(x, Generated) and isinstance(x.record, Record)]
    rejected = [x.record for x in items if isinstance(x, Generated) and isinstance(x.record, Drop)]
    assert [r.messages[0].content for r in made] == ["介绍一下长城的历史。", "列出三种常见的水果。"]
    assert made[0].meta["synth"]["template"] == "self_instruct_tasks.zh"
    assert any(d.reason == "rouge-l >= 0.7" and "秋天" in d.record.messages[0].content for d in rejected)


def test_self_instruct_recipe_runs_in_the_pipeline(data_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(formats.FORMATS, "self_instruct", SEED_FORMAT)  # until the lead registers it
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("\n".join(json.dumps(r) for r in seed_rows(data_dir, 10)) + "\n{broken\n", encoding="utf-8")
    with routed(Script(alpaca_instructions(data_dir, 40))) as fake:
        recipe = {
            "name": "si",
            "workers": 1,
            "inputs": [{"path": str(seeds), "format": "self_instruct"}],
            "steps": [{"op": "self_instruct", "target": 4, "llm": llm_config(fake).model_dump(mode="json")}],
            "output": {"path": str(tmp_path / "out"), "format": "alpaca"},
        }
        (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
        result = Runner(load(tmp_path / "r.yaml")).run()
    stats = result.stats
    assert stats["balanced"] and stats["input"] == 11 and stats["quarantined"] == 1
    step = stats["steps"][0]
    assert step["in"] == 10 and step["generated"] == step["out"] - 10 + sum(step["dropped"].values())
    rows = [json.loads(x) for x in (tmp_path / "out" / "data-00000.jsonl").read_text().splitlines()]
    assert len(rows) == 14 and all(r["instruction"] and r["output"] for r in rows)
    dropped = [json.loads(x) for x in (tmp_path / "out" / "dropped.jsonl").read_text().splitlines()]
    assert dropped and all(d["record"]["meta"]["synth"]["method"] == "self_instruct" for d in dropped)
    assert all(d["id"] == d["record"]["id"] and len(d["id"]) == 16 for d in dropped)


def test_self_instruct_survives_failing_requests(data_dir):
    seeds = seed_records(data_dir, 10)
    fresh = iter(
        [
            "Suggest a name for a coffee shop by the sea.",
            "Explain what a leap year is.",
            *alpaca_instructions(data_dir, 30),
        ]
    )
    calls = {"tasks": 0}

    def route(prompt: str):
        if "Come up with" in prompt:
            calls["tasks"] += 1
            if calls["tasks"] == 1:
                return ("status", 500, {}, "overloaded")  # the first task prompt fails for good
            return "\n".join(f"{i}. {next(fresh)}" for i in range(2))
        if "Task: Suggest a name for a coffee shop" in prompt:
            return ("status", 503, {}, "busy")  # this task's instance request fails
        return "Input: <noinput>\nOutput: fine"

    with routed(route) as fake:
        op, items = run_op(seeds, fake, target=3, classify=False, prompts_per_round=1)
    made = [x.record for x in items if isinstance(x, Generated) and isinstance(x.record, Record)]
    failed = {x.record.reason: x.record for x in items if isinstance(x, Generated) and isinstance(x.record, Drop)}
    assert len(made) == 3 and op.counters["llm_failed: http 500"] == 1
    assert failed["llm: http 503"].record.messages[0].content == "Suggest a name for a coffee shop by the sea."

"""The evaluation section of report.html: a recipe's train:/eval: blocks on test_train's tiny Llama update the
page the run wrote; `datamill report OUTDIR` finds eval.json / ablate.json in OUTDIR and its subfolders;
and lm-evaluation-harness on a local GSM8K-style task (base and adapter, merged into eval.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from test_report_report import parse
from test_train import ALPACA, GSM8K, one_thread, tiny  # noqa: F401  (module fixtures: the tiny model, one thread)
from typer.testing import CliRunner

from datamill.cli import app
from datamill.errors import DatamillError
from datamill.io import outputs
from datamill.report.build import EVAL_BEGIN, EVAL_END, refresh_evaluation


@pytest.fixture(scope="module")
def run_out(tiny, tmp_path_factory) -> Path:  # noqa: F811
    """`datamill run` of 60 demo records split 52 / 8, two LoRA steps on the tiny model, evaluated on the 8."""
    pytest.importorskip("llama_cpp")  # report.html's token lengths use the embedded tokenizer
    folder = tmp_path_factory.mktemp("evalreport")
    rows = json.loads(ALPACA.read_text(encoding="utf-8"))[:60]
    (folder / "demo.json").write_text(json.dumps(rows), encoding="utf-8")
    recipe = {
        "name": "eval-report",
        "seed": 3,
        "workers": 1,
        "inputs": ["demo.json"],
        "steps": [{"op": "split", "counts": {"validation": 8}}],
        "output": {"path": "out", "format": "alpaca", "report": True},
        "train": {"model": tiny, "max_steps": 2, "cutoff_len": 128, "batch_size": 4, "logging_steps": 1},
        "eval": {"max_new_tokens": 4},
    }
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(folder / "recipe.yaml")])
    assert result.exit_code == 0, result.output
    assert "evaluation section updated" in result.output
    return folder / "out"


def _cells(html: str, attr: str, key: str) -> list[str]:
    row = re.search(rf'<tr {attr}="{re.escape(key)}"[^>]*>(.*?)</tr>', html)
    assert row, f"no row {attr}={key}"
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))]


def test_the_runs_eval_block_fills_the_reports_evaluation_section(run_out):
    evaluated = json.loads((run_out / "train" / "eval.json").read_text(encoding="utf-8"))
    html = (run_out / "report.html").read_text(encoding="utf-8")
    assert outputs.is_ours(run_out / "report.html")  # rewritten through the manifest: later runs may replace it
    section = html[html.index(EVAL_BEGIN) : html.index(EVAL_END)]
    assert html.count(EVAL_BEGIN) == 1 and "<h2>Evaluation</h2>" in section and "<svg" in section
    row = [t for t in parse(section) if t[0] == "tr" and "data-eval" in t[1]]
    assert [t[1]["data-eval"] for t in row] == ["train/eval.json"]
    assert float(row[0][1]["data-loss"]) == evaluated["loss"]["mean"]
    cells = _cells(section, "data-eval", "train/eval.json")
    assert cells[2] == "8" and cells[3] == f"{evaluated['loss']['mean']:.4f}"
    assert cells[4] == f"{evaluated['loss']['perplexity']:,.2f}"
    assert cells[7] == f"{evaluated['rouge_l']['mean']:.4f}" and cells[8] == "–"  # no judge in this run
    before, after = html.split(EVAL_BEGIN)[0], html.split(EVAL_END)[1]
    again = refresh_evaluation(run_out)  # the default RUN (OUTDIR/train) is found without being named
    assert again.read_text(encoding="utf-8") == html and before.startswith("<!doctype html>") and after


def test_report_command_finds_eval_and_ablate_json(run_out, tmp_path):
    out = tmp_path / "copy"
    import shutil

    shutil.copytree(run_out, out)
    evaluated = json.loads((out / "train" / "eval.json").read_text(encoding="utf-8"))
    judged = {"wins": 5, "ties": 3, "losses": 2, "judged": 10, "pairs": 10, "position_inconsistent": 4,
              "win_rate": 0.5, "win_rate_ties_half": 0.65, "method": "verdict", "judge": "m"}  # fmt: skip
    exact = {"items": 10, "strict": 0.3, "flexible": 0.4, "correct_strict": 3, "correct_flexible": 4}
    (out / "eval.json").write_text(json.dumps({**evaluated, "judge": judged, "exact_match": exact}), encoding="utf-8")
    (out / "other").mkdir()
    (out / "other" / "eval.json").write_text('{"accuracy": 1}', encoding="utf-8")  # someone else's
    arm = {"name": "raw", "data": {"rows": 20}, "train": {"global_step": 4, "loss_first": 3.0, "loss_last": 2.5},
           "heldout_loss": {"mean": 2.75, "perplexity": 15.64}, "heldout_overlap": 0}  # fmt: skip
    arms = [arm, {**arm, "name": "cleaned", "heldout_loss": {"mean": 2.5, "perplexity": 12.18},
                  "judge_vs": {"baseline": "raw", "win_rate_ties_half": 0.75}}]  # fmt: skip
    ablation = {"name": "raw-vs-cleaned", "heldout": {"items": 6}, "arms": arms, "best": "cleaned"}
    (out / "ablation").mkdir()
    (out / "ablation" / "ablate.json").write_text(json.dumps(ablation), encoding="utf-8")
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    html = (out / "report.html").read_text(encoding="utf-8")
    cells = _cells(html, "data-eval", "eval.json")
    assert cells[5] == "30.0% (3/10)" and cells[6] == "40.0% (4/10)"
    assert cells[8] == "5 / 3 / 2 of 10" and cells[9] == "65.0%"
    assert _cells(html, "data-eval", "train/eval.json")[3] == f"{evaluated['loss']['mean']:.4f}"
    assert "<p class=bad>other/eval.json: not datamill's" in html  # named, not read, not a crash
    assert _cells(html, "data-arm", "cleaned")[4] == "2.5000" and "win rate against raw" in html
    assert "<title>cleaned held-out loss: 2.5</title>" in html


def test_an_edited_report_is_not_replaced(run_out, tmp_path):
    import shutil

    out = tmp_path / "edited"
    shutil.copytree(run_out, out)
    page = out / "report.html"
    page.write_text(page.read_text(encoding="utf-8") + "<!-- my note -->", encoding="utf-8")
    with pytest.raises(DatamillError, match="not written by datamill"):
        refresh_evaluation(out)
    assert page.read_text(encoding="utf-8").endswith("<!-- my note -->")
    assert refresh_evaluation(tmp_path) is None  # no report.html: nothing to update


GEN_TASK = """
task: gsm_local_gen
dataset_path: json
dataset_kwargs: {data_files: {test: gsm8k-10.jsonl}}   # relative: the YAML's folder
test_split: test
output_type: generate_until
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: "{{answer.split('####')[-1].strip()}}"
generation_kwargs: {until: ["Question:"], do_sample: false, max_gen_toks: 8}
filter_list:
  - name: strict-match
    filter: [{function: regex, regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"}, {function: take_first}]
metric_list: [{metric: exact_match, aggregation: mean, higher_is_better: true}]
"""
LL_TASK = """
task: gsm_local_ll
dataset_path: json
dataset_kwargs: {data_files: {test: gsm8k-10.jsonl}}
test_split: test
output_type: loglikelihood
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: " {{answer.split('####')[-1].strip()}}"
metric_list: [{metric: perplexity}, {metric: acc}]
"""


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> Path:
    """Two lm-eval tasks on 10 GSM8K test items kept on disk: generate-until exact match and the answer's
    log-likelihood; and a task that names a Hub dataset (refused)."""
    pytest.importorskip("lm_eval")
    folder = tmp_path_factory.mktemp("lmeval")
    (folder / "gsm8k-10.jsonl").write_text("".join(GSM8K.read_text().splitlines(True)[:10]), encoding="utf-8")
    (folder / "gen.yaml").write_text(GEN_TASK, encoding="utf-8")
    (folder / "ll.yaml").write_text(LL_TASK, encoding="utf-8")
    (folder / "hub.yaml").write_text("task: gsm_hub\ndataset_path: openai/gsm8k\noutput_type: loglikelihood\n")
    return folder


def test_lm_eval_tasks_on_disk_base_and_adapter(tiny, tasks, tmp_path, monkeypatch):  # noqa: F811
    from datamill.report.build import evaluation_section
    from datamill.train.run import TrainConfig, train

    monkeypatch.chdir(tmp_path)  # the task's relative data file is the YAML's, not the current folder's
    config = TrainConfig(model=tiny, fmt="qa", limit=20, max_steps=3, cutoff_len=128, batch_size=4, lr=5e-3)
    run = train(Path(GSM8K).with_name("train.jsonl"), tmp_path / "run", config).run_dir
    args = ["eval", "--adapter", str(run), "--data", str(tasks / "gsm8k-10.jsonl"), "--from", "qa", "--no-generate",
            "--lm-eval", "gsm_local_gen,gsm_local_ll", "--lm-eval-include", str(tasks)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lm = json.loads((run / "eval.json").read_text(encoding="utf-8"))["lm_eval"]
    assert lm["models"] == {"base": {"pretrained": tiny}, "tuned": {"pretrained": tiny, "peft": str(run)}}
    gen, ll = lm["tasks"]["gsm_local_gen"], lm["tasks"]["gsm_local_ll"]
    assert gen["items"] == ll["items"] == 10 and lm["include"] == [str(tasks.resolve())]
    assert gen["base"] == {"exact_match (strict-match)": 0.0} and set(gen["tuned"]) == set(gen["base"])
    assert set(ll["base"]) == {"perplexity", "acc"} and ll["higher_is_better"] == {"perplexity": False, "acc": True}
    assert ll["base"]["perplexity"] != ll["tuned"]["perplexity"]  # the adapter is applied (peft=)
    assert ll["base"]["perplexity"] == pytest.approx(_answer_perplexity(tiny, tasks / "gsm8k-10.jsonl"), rel=1e-4)
    assert "lm-eval gsm_local_ll" in " ".join(result.output.split())
    html = evaluation_section(run)
    assert '<tr data-lm-eval="gsm_local_ll · perplexity">' in html and "lm-eval tasks (eval.json; every item)" in html


def _answer_perplexity(model_dir: str, path: Path) -> float:
    """By hand: e^-(mean over items of the answer's summed log-likelihood after the prompt) — lm-eval's
    loglikelihood perplexity, the continuation being what the whole text's tokens add to the prompt's."""
    import math

    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        prompt = f"Question: {row['question']}\nAnswer:"
        context = tok(prompt)["input_ids"]
        whole = tok(prompt + " " + row["answer"].split("####")[-1].strip())["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([whole])).logits[0].log_softmax(-1)
        total.append(sum(float(logits[i - 1, whole[i]]) for i in range(len(context), len(whole))))
    return math.exp(-sum(total) / len(total))


def test_lm_eval_refuses_what_is_not_on_disk(tasks, tmp_path):
    from datamill.train import harness

    with pytest.raises(DatamillError, match="dataset_path openai/gsm8k is not local"):
        harness.task_configs(["gsm_hub"], [tasks])
    with pytest.raises(DatamillError, match=r"gsm_nope: not in .*tasks there: gsm_hub, gsm_local_gen, gsm_local_ll"):
        harness.task_configs(["gsm_nope"], [tasks])
    with pytest.raises(DatamillError, match="give their folder with --lm-eval-include"):
        harness.task_configs(["gsm_local_gen"], [])
    (tmp_path / "gen.yaml").write_text(GEN_TASK, encoding="utf-8")  # its data file is not beside it
    with pytest.raises(DatamillError, match="data file gsm8k-10.jsonl not found"):
        harness.task_configs(["gsm_local_gen"], [tmp_path])
    alone = CliRunner().invoke(app, ["eval", "--data", str(GSM8K), "--lm-eval-include", str(tasks)])
    assert alone.exit_code == 1 and "give the tasks too" in alone.output

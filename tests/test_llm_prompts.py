"""Prompt templates: zh/en chosen by language or explicitly, user files, sandboxed, text is data."""

from __future__ import annotations

import pytest

from datamill.llm import prompts
from datamill.llm.prompts import PromptError, detect_lang


def test_shipped_templates_have_both_languages():
    avail = prompts.available()
    for name in ("doc_qa", "judge", "paraphrase", "chat_frame", "json_fix"):
        assert sorted(avail[name]) == ["en", "zh"]


def test_language_detection_picks_the_variant():
    assert detect_lang("北京是中国的首都，也是一座历史悠久的城市。") == "zh"
    assert detect_lang("Paris is the capital of France.") == "en"
    assert detect_lang("用 Python 写一个 quicksort 函数") == "zh"
    assert detect_lang("12345 !!!") == "en"
    zh = prompts.render("doc_qa", text="长城是中国古代的军事防御工程。")
    en = prompts.render("doc_qa", text="The Great Wall is an ancient fortification.")
    assert "文档" in zh[-1]["content"] and "长城" in zh[-1]["content"]
    assert "Document" in en[-1]["content"] and zh[0]["role"] == en[0]["role"] == "system"
    forced = prompts.render("doc_qa", "en", text="长城是中国古代的军事防御工程。")
    assert "Document" in forced[-1]["content"]


def test_record_text_is_data_not_template():
    evil = "{{ 7 * 7 }} {% for x in range(3) %}loop{% endfor %} {{ ''.__class__.__mro__ }} {% raw %}"
    msgs = prompts.render("paraphrase", "en", text=evil)
    assert evil in msgs[0]["content"]
    assert "49" not in msgs[0]["content"] and "looploop" not in msgs[0]["content"]


def test_sandbox_refuses_unsafe_user_template(tmp_path):
    f = tmp_path / "evil.j2"
    f.write_text("{{ text.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8")
    with pytest.raises(PromptError, match="unsafe"):
        prompts.load(f).text(text="x")


def test_user_template_file_and_missing_variable(tmp_path):
    f = tmp_path / "mine.j2"
    f.write_text("{% block system %}Be {{ tone }}.{% endblock %}{% block user %}Summarise: {{ text }}{% endblock %}")
    msgs = prompts.render(f, text="a long story", tone="brief")
    assert msgs == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarise: a long story"}]
    with pytest.raises(PromptError, match="tone"):
        prompts.render(f, text="a long story")
    with pytest.raises(PromptError, match="not found"):
        prompts.load(tmp_path / "nope.j2")
    with pytest.raises(PromptError, match="shipped"):
        prompts.load("no_such_template")
    bad = tmp_path / "bad.j2"
    bad.write_text("line one\n{% if %}")
    with pytest.raises(PromptError, match=r"bad.j2:2"):
        prompts.load(bad)


def test_chat_frame_for_base_model():
    text = prompts.load("chat_frame", "en").text(
        system="Answer in one word.",
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Sky colour?"},
        ],
    )
    assert text.endswith("User: Hi\nAssistant: Hello.\n\nUser: Sky colour?\nAssistant:")
    assert "Answer in one word." in text and text.count("User:") == 5
    zh = prompts.load("chat_frame", "zh").text(system=None, messages=[{"role": "user", "content": "你好"}])
    assert zh.endswith("用户：你好\n助手：")

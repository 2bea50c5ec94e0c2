"""Document → QA: chunking, grounded pairs per chunk, the support judge, chunk references."""

from __future__ import annotations

import json

import pytest
from test_synth_evol import run
from test_synth_fakes import prompts_sent, routed

from datamill.record import Record
from datamill.results import Drop
from datamill.synth.chunking import chunk_text


@pytest.fixture(scope="module")
def wiki(data_dir) -> str:
    lines = (data_dir / "llamafactory" / "wiki_demo.txt").read_text(encoding="utf-8").splitlines()
    return "\n\n".join(lines[:3])


def test_chunks_are_exact_spans_within_the_size(wiki):
    chunks = chunk_text(wiki, 700)
    assert len(chunks) >= 3
    for c in chunks:
        assert wiki[c.start : c.end] == c.text and len(c.text) <= 700
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))


def test_headings_start_chunks_and_chinese_sentences_split():
    md = (
        "# 标题\n\n引言部分的文字。\n\n## 第一节\n\n"
        + "这是一个句子。" * 40
        + "\n\n## 第二节\n\n最后一段文字，足够长了。"
    )
    chunks = chunk_text(md, 100, 5)
    assert all(len(c.text) <= 100 for c in chunks)
    assert chunks[1].text.startswith("## 第一节") and chunks[-1].text.startswith("## 第二节")
    assert all(c.text.endswith(("。", "了。")) for c in chunks)


def qa_route(prompt: str) -> str:
    if "question-answer pairs that it answers" in prompt or "问答对" in prompt and "JSON" in prompt:
        doc = prompt.split('"""')[1].strip()
        if "BROKEN" in doc:
            return "no json at all"
        first = doc.split(".")[0][:80]
        return json.dumps(
            {
                "pairs": [
                    {"question": "What does the passage begin with?", "answer": first},
                    {"question": "Who wrote it?", "answer": "An invented author named Zed."},
                    {"question": " ", "answer": "x"},
                    {"question": "...", "answer": "..."},  # the template's placeholder copied back
                ]
            }
        )
    if "fully supported by the document" in prompt or "完全有文档依据" in prompt:
        return '{"supported": false}' if "invented" in prompt else '{"supported": true}'
    return "?"


def test_doc_qa_keeps_supported_pairs_with_chunk_reference(wiki):
    doc = Record(text=wiki, meta={"source": "wiki_demo.txt", "line": 1})
    doc.id = doc.compute_id()
    broken = Record(text="BROKEN. " * 30)
    broken.id = broken.compute_id()
    with routed(qa_route) as fake:
        op, [items, bitems], _ = run("doc_qa", [doc, broken], fake, chunk_chars=700, max_chunks=3, pairs_per_chunk=4)
        sent = prompts_sent(fake)
    assert isinstance(items[0], Drop) and items[0].record is doc and items[0].reason == "document turned into QA pairs"
    kept = [x for x in items[1:] if isinstance(x, Record)]
    drops = [x for x in items[1:] if isinstance(x, Drop)]
    chunks = chunk_text(wiki, 700)[:3]
    assert len(kept) == 3 and len(drops) == 9
    assert {d.reason for d in drops} == {"answer not supported by the chunk", "empty question or answer"}
    for rec, chunk in zip(kept, chunks, strict=True):
        ref = rec.meta["synth"]["chunk"]
        assert (ref["index"], ref["start"], ref["end"]) == (chunk.index, chunk.start, chunk.end)
        assert ref["doc_id"] == doc.id and ref["doc_source"] == "wiki_demo.txt"
        assert rec.messages[1].content in wiki[ref["start"] : ref["end"]]  # grounded in its own chunk
        assert rec.meta["synth"]["method"] == "doc_qa" and rec.meta["synth"]["template"] == "doc_qa.en"
    assert op.counters["chunks"] == 4 and op.counters["chunks without pairs: invalid json"] == 1
    assert [x.reason for x in bitems] == ["document turned into QA pairs"]
    assert sum("fully supported" in p for p in sent) == 6  # the blank pairs are never judged


def test_doc_qa_chinese_without_support_check_and_not_a_document():
    text = "长城是中国古代的军事防御工程。它东起山海关，西至嘉峪关，全长两万多公里。修建长城用了两千多年。"
    doc = Record(text=text)
    sft = Record(messages=[])
    with routed(qa_route) as fake:
        _, [items, sitems], _ = run(
            "doc_qa", [doc, sft], fake, check_support=False, keep_document=True, min_chunk_chars=10, include_chunk=True
        )
    assert items[0] is doc
    kept = [x for x in items[1:] if isinstance(x, Record)]
    assert len(kept) == 2 and kept[0].meta["synth"]["template"] == "doc_qa.zh"
    assert kept[0].meta["synth"]["chunk"]["text"] == text
    assert sitems[0].reason == "not a document (no text)"


def test_question_types_and_multi_hop_across_chunks(wiki):
    doc = Record(text=wiki)
    doc.id = doc.compute_id()
    with routed(qa_route) as fake:
        op, [items], _ = run(
            "doc_qa",
            [doc],
            fake,
            chunk_chars=700,
            max_chunks=3,
            pairs_per_chunk=1,
            question_types=["fact", "multi_hop"],
        )
        sent = prompts_sent(fake)
    kept = [x for x in items[1:] if isinstance(x, Record)]
    chunks = chunk_text(wiki, 700)[:3]
    assert [r.meta["synth"]["question_type"] for r in kept] == ["fact"] * 3 + ["multi_hop"] * 2
    assert all(r.meta["synth"]["template"] == "doc_qa_typed.en" for r in kept)
    hop = kept[3].meta["synth"]["chunk"]
    assert hop["indexes"] == [0, 1] and (hop["start"], hop["end"]) == (chunks[0].start, chunks[1].end)
    assert op.counters["questions: fact"] == 3 and op.counters["questions: multi_hop"] == 2
    asks = [p for p in sent if "question-answer pairs that it answers" in p]
    assert sum("specific facts" in p for p in asks) == 3
    hop_asks = [p for p in asks if "need information from both passages" in p]
    assert len(hop_asks) == 2 and chunks[0].text in hop_asks[0] and chunks[1].text in hop_asks[0]

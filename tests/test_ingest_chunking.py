"""Chunking: sizes respected, sentence ends respected in zh and en, heading paths, exact offsets,
overlap, and the ``chunk_text`` op's 1→N accounting."""

from __future__ import annotations

import pytest
from conftest import DATA

from datamill.ingest import read_documents
from datamill.ingest.chunk_text import ChunkText
from datamill.ingest.chunking import chunk, chunk_record, estimate_tokens, sentence_spans
from datamill.ops.base import OpContext
from datamill.record import Record
from datamill.results import Generated

ENDS = tuple('。！？.!?"”’)」`|') + ("```",)

ZH = (
    "# 数据处理\n\n"
    + "数据是训练大模型的基础。我们需要清洗、去重和合成数据！这样才能得到高质量的结果吗？当然可以。" * 6
    + "\n\n## 去重\n\n"
    + "近似去重使用 MinHash 和 LSH。中文按字符切分 n-gram，英文按词切分。" * 4
)


def _real_text() -> str:
    """Two real Wikipedia articles (their first 3,000 characters each) as paragraphs."""
    wiki = (DATA / "llamafactory" / "wiki_demo.txt").read_text(encoding="utf-8").splitlines()[:2]
    return "\n\n".join(line[:3000].rsplit(". ", 1)[0] + "." for line in wiki)


def test_sentences_zh_en_with_abbreviations_and_decimals():
    t = 'Dr. Smith paid 3.50 dollars. "Heavens! what a day!" he said. '
    t += "今天天气很好。我们去公园吧！你说呢？Fig. 3 shows it."
    assert [t[a:b] for a, b in sentence_spans(t)] == [
        "Dr. Smith paid 3.50 dollars.",
        '"Heavens! what a day!" he said.',
        "今天天气很好。",
        "我们去公园吧！",
        "你说呢？",
        "Fig. 3 shows it.",
    ]


def test_token_estimate_is_cjk_aware():
    assert estimate_tokens("今天天气很好") == 6
    assert estimate_tokens("the cat sat") == 3
    assert estimate_tokens("internationalization") == 5
    assert estimate_tokens("") == 0


@pytest.mark.parametrize(
    "which,unit,size,overlap",
    [
        ("zh", "tokens", 60, 0),
        ("zh", "tokens", 120, 30),
        ("zh", "chars", 100, 30),
        ("en", "tokens", 150, 0),
        ("en", "tokens", 200, 60),
        ("en", "chars", 800, 300),
    ],
)
def test_chunks_fit_and_never_cut_a_sentence(which, unit, size, overlap):
    for text in [ZH if which == "zh" else _real_text()]:
        chunks = chunk(text, size, overlap, unit)
        assert len(chunks) > 1
        covered = 0
        for c in chunks:
            assert text[c.start : c.end] == c.text  # exact provenance
            assert c.size <= size
            assert not c.split_sentence
            assert c.text.rstrip().endswith(ENDS) or text[c.end : c.end + 1] in ("\n", ""), repr(c.text[-30:])
            assert c.start <= covered + 1 or text[covered : c.start].strip() == ""  # nothing skipped
            covered = max(covered, c.end)
        assert text[covered:].strip() == ""
        if overlap == 0:
            assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))
        else:
            assert any(a.end > b.start for a, b in zip(chunks, chunks[1:], strict=False))


def test_headings_start_chunks_and_carry_their_path():
    chunks = chunk(ZH, 80, 0)
    assert chunks[0].text.startswith("# 数据处理") and chunks[0].headings == ["数据处理"]
    dedup = [c for c in chunks if c.text.startswith("## 去重")]
    assert len(dedup) == 1 and dedup[0].headings == ["数据处理", "去重"]
    assert all(c.headings == ["数据处理", "去重"] for c in chunks[chunks.index(dedup[0]) :])
    assert not any(c.text.rstrip().endswith("# 去重") for c in chunks)  # a heading never ends a chunk


def test_overlong_sentence_is_cut_and_flagged():
    text = "word " * 300 + "end."
    chunks = chunk(text, 50, 0)
    assert all(c.size <= 50 for c in chunks) and any(c.split_sentence for c in chunks)
    assert " ".join(c.text for c in chunks).split() == text.split()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        chunk("x", 10, 10)


def test_chunk_record_keeps_provenance_of_a_real_pdf_page():
    page = next(r for r in read_documents([DATA / "docs" / "layout-parser-paper-fast.pdf"]))
    parts = chunk_record(page, 100, 20)
    assert len(parts) > 3
    for i, p in enumerate(parts):
        assert p.meta["source"] == page.meta["source"] and p.meta["page"] == 1
        assert p.meta["parent_id"] == page.id
        info = p.meta["chunk"]
        assert info["index"] == i and info["count"] == len(parts) and info["unit"] == "tokens"
        assert page.text[info["start"] : info["end"]] == p.text


def test_chunk_text_op_accounts_for_every_record(tmp_path):
    op = ChunkText(ChunkText.Config(size=60, overlap=10), OpContext(seed=0, step=0, workdir=tmp_path))
    docs = [Record(text=ZH, meta={"source": "a"}), Record(text="short.", meta={"source": "b"})]
    chat = Record.from_dict({"messages": [{"role": "user", "content": "hi"}]})
    out = list(op.run([*docs, chat]))
    made = [o for o in out if isinstance(o, Generated)]
    kept = [o for o in out if isinstance(o, Record)]
    assert len(kept) == 3 and kept[2] is chat  # one per input: first chunk, the short doc, the chat
    assert len(made) == len(chunk(ZH, 60, 10)) - 1
    assert op.take_counters() == {"documents_chunked": 2}
    with pytest.raises(ValueError):
        ChunkText.Config(size=50, overlap=50)

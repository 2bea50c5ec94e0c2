"""doc_qa: question–answer pairs grounded in a document, one chunk at a time.

A document record (``text``) is cut into paragraph/sentence-aware chunks (``datamill.synth.chunking``);
for each chunk the model writes ``pairs_per_chunk`` pairs as JSON (the shipped ``doc_qa`` template),
then — with ``check_support`` — a judge prompt asks (as JSON) whether each answer is supported by the chunk
and unsupported pairs are dropped with that reason. Each kept pair is a new single-turn record that
points back at its document and chunk (``meta.synth.chunk``: index, start, end — an exact span of the
document text). ``question_types`` picks what to ask: ``any`` (the shipped ``doc_qa`` prompt), ``fact``,
``why_how``, ``summary``, or ``multi_hop`` — questions that need two adjacent chunks (the reference
then spans both). The document itself is dropped (``keep_document: false``, the default: a QA dataset
is usually written as SFT data) or passed through.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from datamill.llm import prompts
from datamill.llm.client import LLMClient, LLMError
from datamill.llm.prompts import detect_lang
from datamill.llm.structured import StructuredOutputError, generate_json
from datamill.ops import register
from datamill.ops.base import Generator, GeneratorConfig
from datamill.record import Record
from datamill.results import Drop
from datamill.synth.chunking import Chunk, chunk_text
from datamill.synth.common import provenance, sft_record
from datamill.synth.parse import clean


class _Pair(BaseModel):
    question: str
    answer: str


class _Pairs(BaseModel):
    pairs: list[_Pair]


class _Support(BaseModel):
    supported: bool


def _blank(text: str) -> bool:
    """Empty, or only punctuation (e.g. the template's own "..." placeholder copied back)."""
    return not any(ch.isalnum() for ch in text)


@register
class DocQA(Generator):
    """Chunk each document, write grounded QA pairs per chunk, keep those the judge finds supported."""

    name = "doc_qa"

    class Config(GeneratorConfig):
        pairs_per_chunk: int = Field(3, ge=1)
        chunk_chars: int = Field(1500, ge=100, description="largest chunk, in characters")
        min_chunk_chars: int = Field(80, ge=1, description="shorter chunks are skipped")
        max_chunks: int = Field(20, ge=1, description="chunks used per document")
        check_support: bool = Field(True, description="ask a judge whether each answer is supported by the chunk")
        include_chunk: bool = Field(False, description="also copy the chunk text into meta.synth.chunk.text")
        keep_document: bool = False
        question_types: list[Literal["any", "fact", "why_how", "summary", "multi_hop"]] = Field(
            default_factory=lambda: ["any"],
            description="any: the doc_qa prompt; others use doc_qa_typed; multi_hop spans two adjacent chunks",
        )
        prompt: str = Field("doc_qa", description="template for type 'any': name or path (gets text, n)")
        lang: Literal["auto", "en", "zh"] = "auto"

    async def agenerate(self, record: Record, llm: LLMClient | None) -> list[Record | Drop]:
        assert llm is not None
        c = self.config
        text = record.text
        if not text or not text.strip():
            return [Drop(record, "not a document (no text)")]
        out: list[Record | Drop] = [record if c.keep_document else Drop(record, "document turned into QA pairs")]
        lang = c.lang if c.lang != "auto" else detect_lang(text)
        chunks = chunk_text(text, c.chunk_chars, c.min_chunk_chars)[: c.max_chunks]
        if not chunks:
            self.counters["documents too short to chunk"] += 1
        for kind, text_, ref in self._units(record, chunks):
            self.counters["chunks"] += 1
            self.counters[f"questions: {kind}"] += 1
            template = prompts.load(c.prompt if kind == "any" else "doc_qa_typed", lang)
            try:
                msgs = template.messages(text=text_, n=c.pairs_per_chunk, kind=kind)
                found = await generate_json(llm, msgs, _Pairs)
            except StructuredOutputError as e:
                self.counters[f"chunks without pairs: {e.reason}"] += 1
                continue
            for pair in found.pairs[: c.pairs_per_chunk]:
                q, a = clean(pair.question), pair.answer.strip()
                prov = provenance(
                    "doc_qa", c.llm, template.path.stem, parent_id=record.id, question_type=kind, chunk=ref
                )
                rec = sft_record(q, "", a, prov)
                if _blank(q) or _blank(a):
                    out.append(Drop(rec, "empty question or answer"))
                    continue
                if c.check_support:
                    reason = await self._support(llm, lang, text_, q, a)
                    if reason is not None:
                        out.append(Drop(rec, reason))
                        continue
                out.append(rec)
        return out

    def _units(self, record: Record, chunks: list[Chunk]) -> list[tuple[str, str, dict[str, Any]]]:
        """(question type, text to ask about, chunk reference) per chunk and type; multi_hop joins each
        chunk with the next (its reference spans both)."""
        c = self.config
        base: dict[str, Any] = {"doc_id": record.id}
        for k in ("source", "line", "index"):
            if k in record.meta:
                base[f"doc_{k}"] = record.meta[k]
        out = []
        for kind in dict.fromkeys(c.question_types):
            if kind == "multi_hop":
                for a, b in zip(chunks, chunks[1:], strict=False):
                    ref = {**base, "index": a.index, "start": a.start, "end": b.end, "indexes": [a.index, b.index]}
                    text = f"{a.text}\n\n---\n\n{b.text}"
                    out.append((kind, text, {**ref, "text": text} if c.include_chunk else ref))
                continue
            for ch in chunks:
                ref = {**base, "index": ch.index, "start": ch.start, "end": ch.end}
                out.append((kind, ch.text, {**ref, "text": ch.text} if c.include_chunk else ref))
        return out

    async def _support(self, llm: LLMClient, lang: str, text: str, q: str, a: str) -> str | None:
        msgs = prompts.load("qa_support", lang).messages(text=text, question=q, answer=a)
        try:
            verdict = await generate_json(llm, msgs, _Support)
        except StructuredOutputError:
            return "support check unreadable"
        except LLMError as e:
            return f"support check failed: {e.reason}"
        return None if verdict.supported else "answer not supported by the chunk"

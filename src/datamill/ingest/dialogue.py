"""Structured data → dialogue: table/database rows and knowledge-graph triples become SFT
conversations through Jinja templates (``templates/{row,triple}.{en,zh}.j2``, blocks ``question`` /
``answer``), with the source row or triple in ``meta``. Every input is accounted for: each yields a
record, or a ``Skipped`` saying why not (an empty row, a label triple, a malformed line).

Styles for rows: ``fields`` — one multi-turn dialogue per row, a turn per non-empty column;
``overview`` — one question about the row, the answer lists its fields. Triples: one QA per triple,
or (``group_by_subject``) one multi-turn dialogue per subject with all its facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from datamill.ingest.database import Row
from datamill.ingest.kg import BadTriple, Triple
from datamill.record import Message, Record

TEMPLATES = Path(__file__).parent / "templates"
Lang = Literal["en", "zh"]


@dataclass(slots=True)
class Skipped:
    where: str
    reason: str
    raw: Any


@cache
def _template(kind: str, lang: str) -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, keep_trailing_newline=False
    )
    return env.get_template(f"{kind}.{lang}.j2")


def render(kind: str, lang: str, block: str, **values: Any) -> str:
    t = _template(kind, lang)
    return "".join(t.blocks[block](t.new_context(values))).strip()


def _value(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return " ".join(str(v).split())


def _subject_column(values: dict[str, Any], subject: str | None, key: Iterable[str]) -> str | None:
    if subject:
        return subject
    for name in ("name", "title", "名称", "姓名", "标题"):
        if name in values:
            return name
    key = set(key)
    for k, v in values.items():
        if k not in key and isinstance(v, str) and v.strip():
            return k
    return None


def rows_to_dialogue(
    rows: Iterable[Row],
    lang: Lang = "en",
    style: Literal["fields", "overview"] = "fields",
    subject: str | None = None,
    columns: list[str] | None = None,
) -> Iterator[Record | Skipped]:
    """One conversation per row. ``subject``: the column that names the row (default: ``name`` /
    ``title`` or the first text column); ``columns``: the columns to ask about (default: all others)."""
    for row in rows:
        where = f"{row.meta.get('source')}:{row.meta.get('table') or 'query'}#{row.meta.get('row')}"
        col = _subject_column(row.values, subject, (row.meta.get("key") or {}).keys())
        if col is not None and col not in row.values:
            raise ValueError(f"subject column '{col}' is not in the rows (columns: {', '.join(row.values)})")
        name = _value(row.values[col]) if col is not None and row.values.get(col) not in (None, "") else None
        if name is None:
            yield Skipped(where, "row has no name to ask about (empty subject column)", row.values)
            continue
        keys = set((row.meta.get("key") or {}).keys())
        wanted = columns or [k for k in row.values if k != col and k not in keys]
        fields = [(k, _value(row.values[k])) for k in wanted if row.values.get(k) not in (None, "")]
        if not fields:
            yield Skipped(where, "row has no values besides its name", row.values)
            continue
        table = row.meta.get("table")
        if style == "overview":
            msgs = [
                Message("user", render("row", lang, "overview_question", subject=name, table=table)),
                Message("assistant", render("row", lang, "overview_answer", subject=name, fields=fields)),
            ]
        else:
            msgs = []
            for k, v in fields:
                msgs.append(Message("user", render("row", lang, "question", subject=name, field=k, value=v)))
                msgs.append(Message("assistant", render("row", lang, "answer", subject=name, field=k, value=v)))
        meta = {**row.meta, "values": row.values, "template": f"row.{lang}.{style}", "lang": lang}
        rec = Record(messages=msgs, meta=meta)
        rec.id = rec.compute_id()
        yield rec


def triples_to_dialogue(
    triples: Iterable[Triple | BadTriple],
    lang: Lang = "en",
    group_by_subject: bool = False,
    multi_hop: int = 0,
) -> Iterator[Record | Skipped]:
    """One QA per triple, or one multi-turn dialogue per subject (facts in input order). With
    ``multi_hop=N``, up to N extra two-hop questions chaining two facts (A —r1→ B —r2→ C: "the r2 of
    the r1 of A"), answered step by step; their meta holds both triples."""
    groups: dict[str, list[Triple]] = {}
    facts: list[Triple] = []
    for t in triples:
        if isinstance(t, BadTriple):
            yield Skipped(t.where, t.error, t.raw)
            continue
        if t.meta.get("label"):
            yield Skipped(_where(t), "label triple: names a node, used for display", [t.subject, t.predicate, t.object])
            continue
        if multi_hop:
            facts.append(t)
        if group_by_subject:
            groups.setdefault(t.subject, []).append(t)
        else:
            yield _triple_record([t], lang)
    for group in groups.values():
        yield _triple_record(group, lang)
    if multi_hop:
        yield from _two_hop(facts, lang, multi_hop)


def _two_hop(facts: list[Triple], lang: str, limit: int) -> Iterator[Record]:
    by_subject: dict[str, list[Triple]] = {}
    for t in facts:
        by_subject.setdefault(t.subject, []).append(t)
    made = 0
    for first in facts:
        for second in by_subject.get(first.object, []):
            if made >= limit:
                return
            if second.object == first.subject:
                continue  # A → B → A says nothing new
            v = {
                "subject": first.subject,
                "predicate": first.predicate,
                "middle": first.object,
                "predicate2": second.predicate,
                "object": second.object,
            }
            msgs = [
                Message("user", render("triple", lang, "two_hop_question", **v)),
                Message("assistant", render("triple", lang, "two_hop_answer", **v)),
            ]
            meta = {
                "source": first.meta.get("source"),
                "triples": [[t.subject, t.predicate, t.object] for t in (first, second)],
                "where": [_where(first), _where(second)],
                "template": f"triple.{lang}.two_hop",
                "lang": lang,
                "hops": 2,
            }
            rec = Record(messages=msgs, meta=meta)
            rec.id = rec.compute_id()
            made += 1
            yield rec


def _where(t: Triple) -> str:
    return f"{t.meta.get('source')}:{t.meta.get('line', t.meta.get('index'))}"


def _triple_record(facts: list[Triple], lang: str) -> Record:
    msgs = []
    for t in facts:
        v = {"subject": t.subject, "predicate": t.predicate, "object": t.object}
        msgs.append(Message("user", render("triple", lang, "question", **v)))
        msgs.append(Message("assistant", render("triple", lang, "answer", **v)))
    meta: dict[str, Any] = {
        "source": facts[0].meta.get("source"),
        "triples": [[t.subject, t.predicate, t.object] for t in facts],
        "where": [_where(t) for t in facts],
        "template": f"triple.{lang}",
        "lang": lang,
    }
    rec = Record(messages=msgs, meta=meta)
    rec.id = rec.compute_id()
    return rec


# ------------------------------------------------------------------------------ LLM-written questions


async def fluent_questions(records: list[Record], llm: Any, lang: Lang = "en") -> list[Record]:
    """Rewrite the templated user turns of dialogue records into natural questions with an LLM
    (``datamill.llm.LLMClient``; prompt ``templates/fluent_question.LANG.j2``). Answers stay the
    templated, data-grounded ones. A rewrite is kept only when it is one line, still a question, not
    over three times longer and keeps every name the question asked about; otherwise (and on an LLM
    error) the template question stays. ``meta.fluent`` counts the rewritten turns."""
    from datamill.llm import LLMError, prompts

    prompt = prompts.load(TEMPLATES / f"fluent_question.{lang}.j2")
    jobs: list[tuple[int, int, list[str]]] = []  # record, turn, names that must survive
    batch = []
    for i, rec in enumerate(records):
        for j, m in enumerate(rec.messages):
            if m.role != "user" or j + 1 >= len(rec.messages):
                continue
            names = _names(rec)
            batch.append(prompt.messages(question=m.content, fact=rec.messages[j + 1].content))
            jobs.append((i, j, names))
    replies = await llm.chat_many(batch) if batch else []
    out = [Record.from_dict(r.to_dict()) for r in records]
    for (i, j, names), reply in zip(jobs, replies, strict=True):
        rec = out[i]
        old = rec.messages[j].content
        new = "" if isinstance(reply, LLMError) else reply.text.strip().strip('"“”')
        if _good_question(old, new, names):
            rec.messages[j] = Message("user", new)
            rec.meta["fluent"] = rec.meta.get("fluent", 0) + 1
    for rec in out:
        rec.id = rec.compute_id()
    return out


def _names(rec: Record) -> list[str]:
    if "triples" in rec.meta:
        return sorted({t[0] for t in rec.meta["triples"]})
    values = rec.meta.get("values") or {}
    return [str(v) for v in values.values() if isinstance(v, str) and v and v in rec.messages[0].content][:1]


def _good_question(old: str, new: str, names: list[str]) -> bool:
    return (
        bool(new)
        and "\n" not in new
        and new.rstrip().endswith(("?", "？"))
        and len(new) <= 3 * len(old) + 20
        and all(n in new for n in names)
    )

"""Benchmark files for ``decontaminate``: where they are and what one item's text is.

A benchmark is a file, a folder of them, or ``builtin:NAME`` for a test set datamill ships
(``resources/benchmarks``: GSM8K). A shipped one that is not installed is skipped with a note; a path
that does not exist is an error — a test set the user named and that is not checked would be a silent
leak.

Each item is read as its text *fields* (n-grams never span two) and its *prompt* (what the semantic
mode embeds and the leakage report shows):

- multiple-choice rows in the C-Eval / CMMLU / MMLU layout — a ``question`` column and option columns
  ``A``, ``B``, ``C``, ``D`` … (any case; or an MMLU ``choices`` list), csv or jsonl: the question alone,
  and the question with its options as a model sees it (``A. …``). The answer letter is no field — an
  ``A`` would match every record whose answer is ``A`` —; an ``explanation`` is;
- files ``datamill.read`` classifies (alpaca, sharegpt …): every piece of text of the record;
- any other rows (GSM8K's ``{"question", "answer"}``): every string field; the prompt is the
  ``question`` / ``prompt`` / ``instruction`` / ``problem`` / ``input`` field when there is one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datamill
from datamill.errors import DatamillError, FileError
from datamill.io.readers import container_of, iter_rows
from datamill.record import Record

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "resources" / "benchmarks"
SHIPPED = {"gsm8k": "gsm8k/test.jsonl.gz"}  # builtin:NAME → file under SHIPPED_DIR
PROMPT_KEYS = ("question", "prompt", "instruction", "problem", "query", "input")
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Benchmark:
    spec: str  # as the recipe names it
    path: Path
    label: str  # in drop reasons and the leakage report: the file name, or NAME for builtin:NAME
    shipped: bool


@dataclass(frozen=True)
class Item:
    fields: list[str]
    prompt: str


def resolve(spec: str) -> list[Benchmark]:
    """A benchmark spec → its files: ``builtin:NAME``, a file, or a folder of them (C-Eval and CMMLU come
    as one csv per subject), labelled by name — or, inside a folder, by the path from the folder's
    parent (``test/agronomy.csv``), since dev/ and test/ hold files of the same names."""
    if spec.startswith("builtin:"):
        name = spec.removeprefix("builtin:")
        if name not in SHIPPED:
            known = ", ".join(f"builtin:{n}" for n in sorted(SHIPPED))
            raise DatamillError(f"decontaminate: no shipped benchmark '{spec}' (shipped: {known}); or name a file")
        return [Benchmark(spec, SHIPPED_DIR / SHIPPED[name], name, True)]
    path = Path(spec)
    if not path.is_dir():
        return [Benchmark(spec, path, path.name.removesuffix(".gz"), False)]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".") and _is_data(p))
    if not files:
        raise DatamillError(f"decontaminate: benchmark folder {spec} holds no data file (.jsonl, .json, .csv …)")
    return [Benchmark(spec, p, str(p.relative_to(path.parent)).removesuffix(".gz"), False) for p in files]


def _is_data(path: Path) -> bool:
    try:
        return container_of(path) != "txt"  # not a README.txt beside the data
    except FileError:
        return False


def record_fields(rec: Record) -> list[tuple[str, str]]:
    """Every piece of text of a record, separately (n-grams never span two), with where it is."""
    pieces = [("system", rec.system or ""), ("text", rec.text or "")] + [(m.role, m.content) for m in rec.messages]
    pieces += [(name, m.content) for name, m in (("chosen", rec.chosen), ("rejected", rec.rejected)) if m is not None]
    return [(where, text) for where, text in pieces if text and text.strip()]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else "" if value is None else str(value).strip()


def _choice_item(row: dict[str, Any]) -> Item | None:
    """A C-Eval / CMMLU (``question`` + ``A``, ``B`` … columns) or MMLU (``choices`` list) row, or None."""
    keys = {k.lower(): k for k in row if isinstance(k, str)}
    question = _text(row[keys["question"]]) if "question" in keys else ""
    options = []
    for letter in LETTERS.lower():
        if letter not in keys:
            break
        options.append(_text(row[keys[letter]]))
    if len(options) < 2 and isinstance(row.get(keys.get("choices")), list):
        options = [_text(c) for c in row[keys["choices"]]]
    if not question or len(options) < 2:
        return None
    shown = "\n".join([question] + [f"{LETTERS[i]}. {o}" for i, o in enumerate(options) if o])
    fields = [question, shown]
    if "explanation" in keys and _text(row[keys["explanation"]]):
        fields.append(_text(row[keys["explanation"]]))
    return Item(fields, question)


def _row_item(row: dict[str, Any]) -> Item:
    fields = [v.strip() for v in row.values() if isinstance(v, str) and v.strip()]
    lowered = {k.lower(): v for k, v in row.items() if isinstance(k, str)}
    prompt = next((_text(lowered[k]) for k in PROMPT_KEYS if _text(lowered.get(k))), "")
    return Item(fields, prompt or (fields[0] if fields else ""))


def items(path: Path) -> Iterator[Item]:
    """The items of one benchmark file, in file order (an unreadable row is an empty item, so the
    numbers in reasons stay the item's position in the file)."""
    first = next((r.row for r in iter_rows(path) if isinstance(r.row, dict)), None)
    if first is not None and _choice_item(first) is not None:
        for raw in iter_rows(path):
            yield (_choice_item(raw.row) if isinstance(raw.row, dict) else None) or Item([], "")
        return
    try:
        records = list(datamill.read(path))
    except DatamillError:
        records = None
    if records is not None:
        for rec in records:
            if isinstance(rec, Record):
                yield Item([t for _, t in record_fields(rec)], rec.part("prompt") or rec.part("all"))
            else:
                yield Item([], "")
        return
    for raw in iter_rows(path):
        yield _row_item(raw.row) if isinstance(raw.row, dict) else Item([], "")

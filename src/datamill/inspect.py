"""``inspect``: what is in a dataset file — detected format, record kinds, roles, fields, script
(zh/en), length statistics and a few samples — in one streaming pass."""

from __future__ import annotations

import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from datamill.dataset import Quarantined, read_with_format
from datamill.record import Record

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass
class LengthStats:
    values: array = field(default_factory=lambda: array("I"))

    def add(self, n: int) -> None:
        self.values.append(n)

    def summary(self) -> dict[str, float]:
        if not self.values:
            return {}
        s = sorted(self.values)
        n = len(s)
        return {
            "min": s[0],
            "mean": round(sum(s) / n, 1),
            "p50": s[n // 2],
            "p95": s[min(n - 1, int(n * 0.95))],
            "max": s[-1],
        }


@dataclass
class Report:
    path: str
    format: str | None = None
    records: int = 0
    quarantined: int = 0
    kinds: Counter = field(default_factory=Counter)
    fields: Counter = field(default_factory=Counter)
    roles: Counter = field(default_factory=Counter)
    scripts: Counter = field(default_factory=Counter)
    turns: LengthStats = field(default_factory=LengthStats)
    prompt_chars: LengthStats = field(default_factory=LengthStats)
    answer_chars: LengthStats = field(default_factory=LengthStats)
    text_chars: LengthStats = field(default_factory=LengthStats)
    samples: list[Record] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def lengths(self) -> dict[str, dict[str, float]]:
        out = {
            "turns": self.turns,
            "prompt chars": self.prompt_chars,
            "answer chars": self.answer_chars,
            "text chars": self.text_chars,
        }
        return {k: v.summary() for k, v in out.items() if v.values}


def script_of(text: str) -> str:
    """zh when at least a fifth of the letters are CJK ideographs, else en/other (a cheap signal)."""
    sample = text[:2000]
    cjk = len(CJK.findall(sample))
    letters = sum(c.isalpha() for c in sample)
    return "zh" if letters and cjk / letters >= 0.2 else "en/other"


def inspect(path: str | Path, fmt: str | None = None, encoding: str | None = None, samples: int = 3) -> Report:
    found, items = read_with_format(path, fmt, encoding)
    report = Report(str(path), found.name if found else None)
    for item in items:
        if isinstance(item, Quarantined):
            report.quarantined += 1
            if len(report.errors) < 5:
                report.errors.append(f"{item.where}: {item.error}")
            continue
        _add(report, item)
        if len(report.samples) < samples:
            report.samples.append(item)
    return report


def _add(report: Report, rec: Record) -> None:
    report.records += 1
    report.kinds[rec.kind] += 1
    report.fields.update(rec.content_dict().keys())
    if rec.text is not None:
        report.text_chars.add(len(rec.text))
        report.scripts[script_of(rec.text)] += 1
        return
    report.turns.add(len(rec.messages))
    report.roles.update(m.role for m in rec.messages)
    prompts = [m.content for m in rec.messages if m.role == "user"]
    answers = [m.content for m in rec.messages if m.role == "assistant"]
    answers += [m.content for m in (rec.chosen, rec.rejected) if m is not None]
    report.prompt_chars.add(sum(map(len, prompts)))
    report.answer_chars.add(sum(map(len, answers)))
    report.scripts[script_of(" ".join(prompts[:1] + answers[:1]))] += 1

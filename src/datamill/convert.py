"""``convert``: read any supported file, check each record, write it in another format — every input
record ends up written or quarantined with its reason, and the counts are checked to add up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datamill import validate
from datamill.dataset import DatasetWriter, Quarantined, read_with_format
from datamill.errors import CannotExpress, FileError
from datamill.io import outputs
from datamill.io.writers import JsonlWriter
from datamill.record import Record


@dataclass
class Summary:
    input: str
    output: str
    detected: str | None = None
    target: str = ""
    read: int = 0
    written: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)  # quarantine reasons
    warnings: Counter = field(default_factory=Counter)  # kept records' warnings by code
    examples: list[str] = field(default_factory=list)  # first few quarantine messages, with where
    quarantine_path: str | None = None
    dataset_info_path: str | None = None

    @property
    def balanced(self) -> bool:
        return self.read == self.written + self.quarantined

    def nothing_written(self) -> str | None:
        """Why no output was written, when none was (the command then fails)."""
        if self.written:
            return None
        if not self.read:
            return f"{self.input} holds no records"
        top = ", ".join(f"{n:,} × {reason}" for reason, n in self.reasons.most_common(3))
        return f"all {self.read:,} records of {self.input} were quarantined ({top}); see {self.quarantine_path}"


def default_quarantine_path(out: Path) -> Path:
    """out/a.v2.jsonl → out/a.v2.quarantine.jsonl (the container suffix and .gz dropped)."""
    name = out.name.removesuffix(".gz")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return out.with_name(stem + ".quarantine.jsonl")


def _reason(error: str) -> str:
    """The error without record-specific details (for counting): up to the first colon after the format."""
    head = error.split(" got ")[0]
    return head[:120]


def convert(
    src: str | Path,
    dst: str | Path,
    to: str,
    from_: str | None = None,
    encoding: str | None = None,
    name: str | None = None,
    keep_meta: bool = False,
    quarantine: str | Path | None = None,
    register: bool = True,
    on_progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
    media_paths: str = "relative",
    copy_media: bool = False,
) -> Summary:
    """``overwrite`` lets the output and quarantine files replace files datamill did not write.
    ``media_paths`` (relative | absolute | keep) and ``copy_media`` make image/video/audio paths open
    from the output's folder (see ``DatasetWriter``)."""
    src, dst = Path(src), Path(dst)
    outputs.refuse_unsafe(dst)
    qpath = Path(quarantine) if quarantine else default_quarantine_path(dst)
    for target in (dst, qpath):
        t, s = target.resolve(), src.resolve()
        if t == s or t in s.parents or s in t.parents:
            raise FileError(f"{target}: is, holds or lies inside the input {src}; write the output somewhere else")
    outputs.check_replace(qpath, overwrite)
    summary = Summary(str(src), str(dst), target=to)
    fmt, items = read_with_format(src, from_, encoding, ids=keep_meta)
    summary.detected = fmt.name if fmt else None
    writer = DatasetWriter(
        dst,
        to,
        keep_meta=keep_meta,
        register=register,
        name=name,
        overwrite=overwrite,
        media_paths=media_paths,
        copy_media=copy_media,
    )
    qwriter: JsonlWriter | None = None

    def put_aside(q: Quarantined) -> None:
        nonlocal qwriter
        if qwriter is None:
            qwriter = JsonlWriter(qpath, output=True, overwrite=overwrite)
        qwriter.write(q.to_dict())
        summary.quarantined += 1
        summary.reasons[_reason(q.error)] += 1
        if len(summary.examples) < 5:
            summary.examples.append(f"{q.where}: {q.error}")

    try:
        for item in items:
            summary.read += 1
            if on_progress is not None and summary.read % 2048 == 0:
                on_progress(summary.read)
            if isinstance(item, Quarantined):
                put_aside(item)
                continue
            _convert_one(item, writer, summary, put_aside)
        if qwriter is not None:
            qwriter.commit()
            summary.quarantine_path = str(qpath)
        if writer.count:
            writer.commit()
        else:  # an empty file registered in dataset_info.json only fails later, obscurely, in the trainer
            writer.abort()
    except BaseException:
        writer.abort()
        if qwriter is not None:
            qwriter.abort()
        raise
    summary.written = writer.count
    if writer.info_path is not None:
        summary.dataset_info_path = str(writer.info_path)
    if on_progress is not None:
        on_progress(summary.read)
    assert summary.balanced, f"accounting broken: {summary}"
    return summary


def _convert_one(
    rec: Record, writer: DatasetWriter, summary: Summary, put_aside: Callable[[Quarantined], None]
) -> None:
    where = (
        f"{rec.meta.get('source')}:{rec.meta['line']}"
        if "line" in rec.meta
        else f"{rec.meta.get('source')}[#{rec.meta.get('index')}]"
    )

    def aside(error: str, stage: str) -> None:
        put_aside(
            Quarantined(
                where,
                str(rec.meta.get("source")),
                rec.meta.get("line"),
                rec.meta.get("index", -1),
                error,
                rec.to_dict(),
                stage,
            )
        )

    problems = validate.check(rec)
    bad = validate.errors(problems)
    if bad:
        aside("; ".join(p.message for p in bad), "validate")
        return
    try:
        writer.write(rec)
    except CannotExpress as e:
        aside(f"{writer.format.name}: {e}", "convert")
        return
    for p in problems:
        summary.warnings[p.code] += 1

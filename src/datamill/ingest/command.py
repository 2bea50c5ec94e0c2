"""``datamill ingest PATH... -o OUT``: documents → pretraining records (optionally chunked), bad
files to a quarantine file, and a summary of what was read and what was not, and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from datamill.dataset import DatasetWriter, Quarantined
from datamill.errors import CannotExpress, DatamillError
from datamill.ingest import SOURCE_FORMATS, read_documents
from datamill.ingest.chunking import Unit, chunk_record
from datamill.io import outputs
from datamill.io.writers import JsonlWriter
from datamill.record import Record


@dataclass
class IngestSummary:
    files_ok: list[str] = field(default_factory=list)
    files_failed: dict[str, str] = field(default_factory=dict)  # file (or directory) → reason
    dirs_failed: list[str] = field(default_factory=list)  # directories that could not be listed: files unread
    parts_failed: list[str] = field(default_factory=list)  # web archive members that could not be read (file@offset)
    sections: int = 0  # pages / slides / sheets / heading sections read
    written: int = 0
    quarantined: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)  # code trees: files that are no records, by reason
    output: Path | None = None
    quarantine_path: Path | None = None


def quarantine_path_for(out: Path) -> Path:
    name = out.name[: -len(".gz")] if out.name.endswith(".gz") else out.name
    return out.with_name(f"{Path(name).stem}.quarantine.jsonl")


def ingest(
    paths: list[str | Path],
    out: str | Path,
    fmt: str = "pretrain",
    chunk_size: int | None = None,
    overlap: int = 0,
    unit: Unit = "tokens",
    keep_meta: bool = True,
    quarantine: str | Path | None = None,
    overwrite: bool = False,
    code: bool = False,
    **read_options: Any,
) -> IngestSummary:
    """Read every document under ``paths`` (with ``code``: every source file of each folder, git working
    tree or tarball), write its records to ``out`` (chunked when ``chunk_size`` is set), quarantine each
    file that cannot be read with the reason."""
    out = Path(out)
    summary = IngestSummary(output=out)
    qpath = Path(quarantine) if quarantine else quarantine_path_for(out)
    outputs.check_replace(out, overwrite)  # before the quarantine file exists, so a refusal leaves nothing
    bad = JsonlWriter(qpath, output=True, overwrite=overwrite)
    ok_files: dict[str, None] = {}
    try:
        with DatasetWriter(out, fmt, keep_meta=keep_meta, overwrite=overwrite) as writer:
            for item in _items(paths, code, summary, read_options):
                if isinstance(item, Quarantined) and item.where != item.file:  # one member of an archive
                    summary.parts_failed.append(item.error)
                    bad.write(item.to_dict())
                    continue
                if isinstance(item, Quarantined):
                    summary.files_failed[item.file] = item.error
                    if Path(item.file).is_dir():
                        summary.dirs_failed.append(item.file)
                    bad.write(item.to_dict())
                    continue
                if item.text is None and writer.format.name == "pretrain":
                    raise DatamillError(
                        f"{item.meta.get('source')}: these are conversations; write them with --to "
                        "sharegpt (or messages, alpaca, datamill)"
                    )
                summary.sections += 1
                top = item.meta["source"].split("#", 1)[0]  # a page of a web archive: the archive file
                ok_files.setdefault(top)
                summary.by_type[(item.meta["language"] or "unknown") if code else item.meta["doc_type"]] += 1
                records = chunk_record(item, chunk_size, overlap, unit) if chunk_size else [item]
                for rec in records:
                    _write(writer, bad, rec, summary)
    except BaseException:
        bad.abort()
        raise
    summary.written = writer.count
    summary.quarantined = bad.count
    if bad.count:
        bad.commit()
        summary.quarantine_path = qpath
    else:
        bad.abort()
    summary.files_ok = [f for f in ok_files if f not in summary.files_failed]
    return summary


def _items(paths: list[str | Path], code: bool, summary: IngestSummary, options: dict[str, Any]) -> Iterator[Any]:
    if not code:
        return read_documents(paths, **options)
    from datamill.ingest.code import CodeStats, read_trees

    stats = CodeStats(skipped=summary.skipped)
    return read_trees(paths, stats)


def _key_values(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` options, each value read as YAML (``3`` is a number, ``true`` a boolean, ``[a, b]`` a list)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--source-option {pair!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _write(writer: DatasetWriter, bad: JsonlWriter, rec: Record, summary: IngestSummary) -> None:
    try:
        writer.write(rec)
    except CannotExpress as e:
        source = rec.meta.get("source", "?")
        entry = Quarantined(source, source, None, 0, f"{writer.format.name}: {e}", rec.to_dict(), stage="convert")
        bad.write(entry.to_dict())


def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Documents or directories (walked recursively).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.jsonl, .json, .parquet, .txt).")],
    to: Annotated[str, typer.Option("--to", "-t", help="Output format (pretrain, datamill).")] = "pretrain",
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Cut documents into chunks of this size (default: no chunking).")
    ] = None,
    overlap: Annotated[int, typer.Option(help="Chunk overlap, in whole sentences up to this size.")] = 0,
    unit: Annotated[str, typer.Option(help="Chunk size unit: tokens (CJK-aware estimate) or chars.")] = "tokens",
    pdf_engine: Annotated[str | None, typer.Option(help="pymupdf (default when installed) or pypdf.")] = None,
    keep_meta: Annotated[
        bool, typer.Option(help="Write provenance (source, page, headings …) with each record.")
    ] = True,
    quarantine: Annotated[
        Path | None, typer.Option(help="Where bad files go (default: OUT-STEM.quarantine.jsonl).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing file or folder datamill did not write (refused by default).")
    ] = False,
    code: Annotated[
        bool, typer.Option("--code", help="Each PATH is a code tree (folder, git repo, tarball): a record per file.")
    ] = False,
    source_format: Annotated[
        str | None,
        typer.Option("--from", help="Read every PATH as: stackexchange, latex (a .tar.gz, a folder) or reddit."),
    ] = None,
    source_option: Annotated[
        list[str] | None, typer.Option("--source-option", "-O", help="KEY=VALUE for that reader (docs/sources.md).")
    ] = None,
) -> None:
    """Ingest documents (PDF, DOCX, PPTX, XLSX, ODT, HTML, Markdown, TXT, CSV, EPUB, RTF, EML, images
    with OCR; web archives: WARC, WET, ARC, gzipped or not) into pretraining records with provenance;
    unreadable files and archive records are listed with the reason."""
    from rich.console import Console
    from rich.markup import escape

    out, err = Console(), Console(stderr=True)
    if unit not in ("tokens", "chars"):
        err.print(f"[bold red]error:[/] --unit must be tokens or chars, got {escape(unit)}")
        raise typer.Exit(2)
    if source_format is not None and source_format not in SOURCE_FORMATS:
        err.print(f"[bold red]error:[/] --from must be one of {', '.join(SOURCE_FORMATS)}, got {escape(source_format)}")
        raise typer.Exit(2)
    try:
        s = ingest(
            list(paths),
            output,
            to,
            chunk_size,
            overlap,
            unit,  # type: ignore[arg-type]
            keep_meta,
            quarantine,
            overwrite,
            code,
            pdf_engine=pdf_engine,
            source_format=source_format,
            source_options=_key_values(source_option or []),
        )
    except (DatamillError, ValueError) as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        raise typer.Exit(1) from None
    types = ", ".join(f"{k} {v}" for k, v in sorted(s.by_type.items()))
    dirs = len(s.dirs_failed)
    unlisted = f" ({dirs} director{'y' if dirs == 1 else 'ies'} unreadable)" if dirs else ""
    out.print(
        f"files ok: {len(s.files_ok)}   failed: {len(s.files_failed)}{unlisted}   sections: {s.sections} ({types})"
    )
    if s.skipped:
        out.print("not records: " + ", ".join(f"{k} {v}" for k, v in sorted(s.skipped.items())))
    if s.parts_failed:
        out.print(f"archive records unreadable: {len(s.parts_failed)} (the rest of their files was read)")
    for reason in [*s.files_failed.values(), *s.parts_failed]:
        err.print(f"[yellow]skipped[/] {escape(reason)}", highlight=False)
    where = f" → {s.quarantine_path}" if s.quarantine_path else ""
    out.print(f"records written: {s.written:,} → {s.output}; quarantined: {s.quarantined}{where}")

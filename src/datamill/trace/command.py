"""``datamill trace OUTDIR RECORD``: where a record of a run came from and what the run did to it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from datamill import formats
from datamill.errors import DatamillError
from datamill.record import Record
from datamill.trace.lookup import LINKS, Found, Trace, trace

SHOWN = 300  # characters of a turn shown in the text view
MAX_REFS = 10  # records naming the traced one listed in the text view (all of them with --json)
PROVENANCE = ("method", "model", "template", "round")  # the parts of a generated record's origin shown first


def report(t: Trace) -> dict[str, Any]:
    """The trace as JSON: each place the record is, what names it and where the records it names are."""
    return {
        "query": t.query,
        "records": [_record(f, t) for f in t.records],
        "referenced_by": [{**_brief(r.found), "paths": r.paths} for r in t.refs],
        "linked": {ident: [_brief(f) for f in places] for ident, places in t.linked.items()},
    }


def _record(f: Found, t: Trace) -> dict[str, Any]:
    out: dict[str, Any] = {"status": f.status, "at": f.at, "id": f.id}
    if f.status == "quarantined":
        e = f.entry
        return out | {k: e[k] for k in ("file", "line", "index", "stage", "scope", "error", "raw") if k in e}
    out["source"] = {k: f.meta[k] for k in ("source", "line", "index") if k in f.meta}
    if f.status == "kept":
        out["output"] = {"file": f.entry.get("file"), "row": f.entry.get("row")}
        out["record"] = f.row
    else:
        out["dropped"] = {k: f.entry.get(k) for k in ("step", "op", "reason")}
        out["record"] = {k: v for k, v in (f.entry.get("record") or {}).items() if k != "meta"}
    out["steps"] = _path(f, t.steps)
    origin = _origin(f.meta)
    if origin:
        out["generated"] = origin
    out["meta"] = f.meta
    return out


def _path(f: Found, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps the record went through: made, changed (with the changes), dropped, or passed."""
    by_step = {c.get("step"): c for c in f.changes if isinstance(c, dict)}
    made = next((c["step"] for c in f.changes if isinstance(c, dict) and c.get("made")), None)
    last = f.entry.get("step") if f.status == "dropped" else None
    out = []
    for st in steps:
        i = st.get("step")
        if not isinstance(i, int) or (made is not None and i < made) or (last is not None and i > last):
            continue
        entry: dict[str, Any] = {"step": i, "op": st.get("op")}
        change = by_step.get(i, {})
        if i == last:
            entry["did"] = "dropped"
        elif change.get("made"):
            entry["did"] = "made"
        elif change.get("changes"):
            entry["did"] = "changed"
        else:
            entry["did"] = "passed"
        if change.get("changes"):
            entry["changes"] = change["changes"]
        out.append(entry)
    return out


def _origin(meta: dict[str, Any]) -> dict[str, Any] | None:
    """A generated record's provenance: ``meta.synth`` (synthesis) or the method/parent keys the
    preference and verification steps set."""
    synth = meta.get("synth")
    if isinstance(synth, dict):
        return synth
    keys = ("method", "model", "parent", "parents", "candidate")
    origin = {k: meta[k] for k in keys if k in meta}
    return origin if "method" in origin and len(origin) > 1 else None


def _brief(f: Found) -> dict[str, Any]:
    out: dict[str, Any] = {"id": f.id, "status": f.status, "at": f.at}
    if f.status == "kept":
        out["output"] = {"file": f.entry.get("file"), "row": f.entry.get("row")}
    elif f.status == "dropped":
        out["dropped"] = {k: f.entry.get(k) for k in ("step", "op", "reason")}
    out["source"] = {k: f.meta[k] for k in ("source", "line", "index") if k in f.meta}
    return out


# ---- text --------------------------------------------------------------------------------------
def render(t: Trace) -> list[str]:
    """The trace as lines for a terminal."""
    lines: list[str] = []
    for f in t.records:
        lines += _render_record(f, t)
        lines.append("")
    if t.refs:
        lines.append(f"named by {len(t.refs)} record(s):")
        for r in t.refs[:MAX_REFS]:
            lines.append(f"  {_one_line(r.found)}  [{', '.join(r.paths)}]")
        if len(t.refs) > MAX_REFS:
            lines.append(f"  … and {len(t.refs) - MAX_REFS} more (--json lists all)")
    return lines


def _render_record(f: Found, t: Trace) -> list[str]:
    if f.status == "quarantined":
        e = f.entry
        where = _source(e.get("file"), e.get("line"), e.get("index"))
        out = [f"quarantined  {where}  ({f.at})", f"  error   {e.get('error')}"]
        if e.get("raw") is not None:
            out.append(f"  raw     {_short(json.dumps(e['raw'], ensure_ascii=False))}")
        return out
    if f.status == "kept":
        head = f"{f.id}  kept → {f.entry.get('file')} row {int(f.entry.get('row', 0)) + 1}  ({f.at})"
    else:
        head = f"{f.id}  dropped at step {f.entry.get('step')} {f.entry.get('op')}: {f.entry.get('reason')}  ({f.at})"
    out = [head]
    if "source" in f.meta:
        out.append(f"  source  {_source(f.meta['source'], f.meta.get('line'), f.meta.get('index'))}")
    origin = _origin(f.meta)
    if origin:
        out += _render_origin(origin)
    out += _render_links(f, t)
    path = _path(f, t.steps)
    if path:
        out.append("  steps   " + " · ".join(f"{s['step']} {s['op']}" + _mark(s["did"]) for s in path))
    record = _final(f, t.output_format)
    roles = [m.role for m in record.messages] if record is not None else []
    for s in path:
        for c in s.get("changes", []):
            out += _render_change(s, c, roles)
    if record is not None:
        out += _render_content(record, "  record  " if f.status == "kept" else "  as dropped  ")
    return out


def _mark(did: str) -> str:
    return {"passed": "", "changed": " (changed)", "made": " (made it)", "dropped": " (dropped it)"}[did]


def _render_origin(origin: dict[str, Any]) -> list[str]:
    shown = [f"{k} {origin[k]}" for k in PROVENANCE if origin.get(k) is not None]
    out = ["  made    " + " · ".join(shown)] if shown else []
    for key, value in origin.items():
        if key not in PROVENANCE and key not in LINKS and not isinstance(value, dict | list):
            out.append(f"  {key:<7} {value}")
    return out


def _render_links(f: Found, t: Trace) -> list[str]:
    """Each id the record names (parent, seeds, the duplicate kept instead …) and where that record is."""
    out = []
    for path, ids in f.links.items():
        label = path.rsplit(".", 1)[-1]
        for n, ident in enumerate(ids):
            places = [p for p in t.linked.get(ident, []) if p is not f]  # not itself: a duplicate's twin
            where = "; ".join(_one_line(p, with_id=False) for p in places) if places else "not in this run's outputs"
            out.append(f"  {label if n == 0 else ' ' * len(label)} {ident}  {where}")
    return out


def _render_change(step: dict[str, Any], c: dict[str, Any], roles: list[str]) -> list[str]:
    field = str(c.get("field"))
    turn = field.removeprefix("messages.")
    if turn.isdigit() and int(turn) < len(roles):
        field += f" ({roles[int(turn)]})"
    where = field
    if "at" in c:
        where += f" at character {c['at']}" + (" (long sides shortened)" if c.get("cut") else "")
    return [
        f"  step {step['step']} {step['op']} changed {where}:",
        f"    before  {_short(_text(c.get('before')), 2000)}",
        f"    after   {_short(_text(c.get('after')), 2000)}",
    ]


def _final(f: Found, fmt: str | None) -> Record | None:
    """The record as the run left it: the data row read back, or the record as dropped."""
    if f.status == "dropped":
        return Record.from_dict(f.entry["record"]) if isinstance(f.entry.get("record"), dict) else None
    if f.row is None or fmt is None:
        return None
    try:
        return formats.get(fmt).to_record(f.row)
    except DatamillError:  # a format unknown to this datamill, a row it reads no more: show no content
        return None


def _render_content(rec: Record, label: str) -> list[str]:
    pad = " " * len(label)
    parts = []
    if rec.text is not None:
        parts.append(f"text: {_short(rec.text)}")
    if rec.system:
        parts.append(f"system: {_short(rec.system)}")
    parts += [f"{m.role}: {_short(m.content)}" for m in rec.messages]
    for side in ("chosen", "rejected"):
        m = getattr(rec, side)
        if m is not None:
            parts.append(f"{side}: {_short(m.content)}")
    return [(label if i == 0 else pad) + p for i, p in enumerate(parts)]


def _one_line(f: Found, with_id: bool = True) -> str:
    lead = f"{f.id} " if with_id else ""
    if f.status == "kept":
        what = f"kept → {f.entry.get('file')} row {int(f.entry.get('row', 0)) + 1}"
    elif f.status == "dropped":
        what = f"dropped at step {f.entry.get('step')} {f.entry.get('op')}: {f.entry.get('reason')}"
    else:
        what = "quarantined"
    source = f" ← {_source(f.meta['source'], f.meta.get('line'), f.meta.get('index'))}" if "source" in f.meta else ""
    return f"{lead}{what}{source}"


def _source(file: Any, line: Any, index: Any) -> str:
    if line is not None:
        return f"{file} line {line}"
    return f"{file} record {int(index) + 1}" if isinstance(index, int) else str(file)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _short(text: str, limit: int = SHOWN) -> str:
    text = text.replace("\n", "⏎")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trace_command(
    outdir: Annotated[str, typer.Argument(help="output folder of a datamill run")],
    record: Annotated[
        str, typer.Argument(help="record id (or a unique prefix), INPUT_FILE:LINE, or DATA_FILE:ROW (1-based)")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON.")] = False,
) -> None:
    """Where a kept, dropped or quarantined record came from: its input file and line, every step that
    changed it (before and after), and for a generated record its parents, template, model and round."""
    try:
        t = trace(outdir, record)
    except DatamillError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report(t), ensure_ascii=False, indent=2, default=str))
    else:
        typer.echo("\n".join(render(t)).rstrip())

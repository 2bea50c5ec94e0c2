"""Knowledge-graph triples (subject, predicate, object) from CSV/TSV (three columns, an optional
header), N-Triples, Turtle or JSON-LD (read with rdflib). IRIs are shown by their label
(``rdfs:label``/``schema:name``/``skos:prefLabel`` in the same graph) or their last path segment, so
templates read "Marie Curie — award — Nobel Prize in Physics", not URLs. A malformed line is
reported with file and line; the rest is read."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamill.errors import FileError
from datamill.ingest.base import DocumentError
from datamill.io.encoding import sniff_bytes

RDF_FORMATS = {".nt": "nt", ".ttl": "turtle", ".jsonld": "json-ld", ".json": "json-ld", ".rdf": "xml", ".n3": "n3"}
HEADER_WORDS = {"subject", "predicate", "object", "head", "relation", "tail", "s", "p", "o", "主体", "关系", "客体"}


@dataclass(slots=True)
class Triple:
    subject: str
    predicate: str
    object: str
    meta: dict[str, Any]  # source, line or index, and the raw IRIs for RDF input


@dataclass(slots=True)
class BadTriple:
    where: str
    error: str
    raw: Any


def read_triples(path: str | Path) -> Iterator[Triple | BadTriple]:
    path = Path(path)
    if not path.is_file():
        raise FileError(f"{path}: no such file")
    ext = path.suffix.lower()
    if ext in (".csv", ".tsv"):
        yield from _table_triples(path, "\t" if ext == ".tsv" else ",")
    elif ext in RDF_FORMATS:
        yield from _rdf_triples(path, RDF_FORMATS[ext])
    else:
        raise FileError(f"{path}: unknown triples file type '{ext}'; use .csv, .tsv, .nt, .ttl, .jsonld")


def _table_triples(path: Path, delimiter: str) -> Iterator[Triple | BadTriple]:
    data = path.read_bytes()
    text = data.decode(sniff_bytes(data[: 1 << 16]), errors="replace")
    for lineno, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), 1):
        if not row or not any(c.strip() for c in row):
            continue
        if lineno == 1 and {c.strip().lower() for c in row} <= HEADER_WORDS:
            continue
        where = f"{path}:{lineno}"
        if len(row) != 3 or not all(c.strip() for c in row):
            yield BadTriple(where, f"expected 3 non-empty columns (subject, predicate, object), got {row}", row)
            continue
        s, p, o = (c.strip() for c in row)
        yield Triple(s, p, o, {"source": str(path), "line": lineno})


def _rdf_triples(path: Path, fmt: str) -> Iterator[Triple | BadTriple]:
    import rdflib
    from rdflib.namespace import RDFS, SKOS

    schema_name = rdflib.URIRef("https://schema.org/name")
    schema_name_http = rdflib.URIRef("http://schema.org/name")
    graph = rdflib.Graph()
    try:
        graph.parse(path, format=fmt)
    except Exception as e:  # rdflib raises parser-specific exceptions with the line in the message
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DocumentError(f"{path}: cannot parse as {fmt}: {why}") from None
    label_preds = (RDFS.label, SKOS.prefLabel, schema_name, schema_name_http)
    labels: dict[Any, str] = {}
    for pred in label_preds:
        for s, o in graph.subject_objects(pred):
            labels.setdefault(s, str(o))

    def show(node: Any) -> str:
        if isinstance(node, rdflib.Literal):
            return str(node)
        if node in labels:
            return labels[node]
        return _local_name(str(node))

    triples = sorted(graph, key=lambda t: (str(t[0]), str(t[1]), str(t[2])))  # stable order, any parser
    for i, (s, p, o) in enumerate(triples):
        meta = {"source": str(path), "index": i, "iri": [str(s), str(p), str(o)]}
        if p in label_preds:
            meta["label"] = True  # names a node; used for display, not a fact to ask about
        yield Triple(show(s), show(p), show(o), meta)


def _local_name(iri: str) -> str:
    tail = re.split(r"[/#:]", iri.rstrip("/#"))[-1] or iri
    tail = tail.replace("_", " ")
    return re.sub(r"(?<=[a-z])([A-Z])", lambda m: " " + m.group(1).lower(), tail)  # birthPlace → birth place

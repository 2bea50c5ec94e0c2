"""HTML → main content as sections at its headings. trafilatura (as in the ``html_to_text`` cleaning
op) drops navigation, scripts, ads and boilerplate and keeps tables; its markdown output keeps the
headings for the section path. Any encoding: the ``<meta charset>`` when there is one, else the
same sniffing as every datamill text file (UTF-16 and cp1252 included)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from datamill.ingest.base import Section, Source, markdown_sections
from datamill.io.encoding import sniff_bytes

_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)


def decode_html(data: bytes) -> str:
    enc = sniff_bytes(data[: 1 << 16])
    if not enc.startswith("utf-16") and not enc.startswith("utf-32"):
        m = _META_CHARSET.search(data[:4096])
        if m:
            declared = m.group(1).decode("ascii", "replace").lower()
            try:
                return data.decode(declared)
            except (LookupError, UnicodeDecodeError):
                pass  # a lying or unknown declaration: trust the sniffing
    return data.decode(enc, errors="replace")


def html_to_markdown(html: str) -> str:
    import trafilatura

    from datamill.clean.html import html_fragment_to_text

    text = trafilatura.extract(
        html, output_format="markdown", include_tables=True, include_comments=False, favor_precision=True
    )
    if not text:
        return html_fragment_to_text(html)
    meta = trafilatura.extract_metadata(html)
    title = meta.title if meta is not None else None
    if title and title not in text[:500]:
        text = f"# {title}\n\n{text}"
    return tidy(text)


def tidy(text: str) -> str:
    """Source indentation inside paragraphs ("George\n      Barros") → single spaces; table rows stay rows."""
    text = re.sub(r"[ \t]*\n[ \t]+(?=[^|\s-])", " ", text)
    return re.sub(r"[ \t]{2,}", " ", text)


def read(src: Source) -> Iterator[Section]:
    yield from markdown_sections(html_to_markdown(decode_html(src.data)))

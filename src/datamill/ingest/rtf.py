"""RTF → text with striprtf (tables come out as ``cell|cell`` lines), one section."""

from __future__ import annotations

from collections.abc import Iterator

from datamill.ingest.base import DocumentError, Section, Source


def read(src: Source) -> Iterator[Section]:
    from striprtf.striprtf import rtf_to_text

    raw = src.data.decode("latin-1")  # RTF is 7-bit; \'xx escapes carry the code page's bytes
    if not raw.lstrip().startswith("{\\rtf"):
        raise DocumentError("not an RTF file (it does not start with {\\rtf)")
    try:
        text = rtf_to_text(raw, errors="replace")
    except Exception as e:  # striprtf raises plain exceptions on malformed control words
        raise DocumentError(f"broken RTF: {e}") from None
    lines = [line.strip().strip("|").replace("|", " | ") if "|" in line else line.strip() for line in text.splitlines()]
    paras: list[str] = []
    for line in lines:
        if line:
            paras.append(line)
    yield Section("\n\n".join(paras))

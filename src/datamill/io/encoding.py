"""Guess a text file's encoding from its first bytes: BOMs, UTF-16 without BOM, then UTF-8,
then charset-normalizer's best guess (GB18030, cp1252, …)."""

from __future__ import annotations

import codecs
from pathlib import Path

import charset_normalizer

HEAD = 1 << 16
LATIN_GUESSES = {
    "cp1250",
    "cp1252",
    "cp1254",
    "cp1257",
    "latin_1",
    "iso8859_2",
    "iso8859_9",
    "iso8859_15",
    "mac_latin2",
    "mac_roman",
    "cp850",
    "cp437",
}
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(HEAD)
    return sniff_bytes(head)


def sniff_bytes(head: bytes) -> str:
    for bom, name in BOMS:
        if head.startswith(bom):
            return name
    if b"\x00" in head[:4096]:
        sample = head[:4096]
        even = sample[0::2].count(0)
        odd = sample[1::2].count(0)
        return "utf-16-be" if even > odd else "utf-16-le"
    for cut in range(4):  # the head may end inside a multi-byte character
        try:
            head[: len(head) - cut].decode("utf-8")
            return "utf-8"
        except UnicodeDecodeError:
            continue
    best = charset_normalizer.from_bytes(head).best()
    if best is None:
        return "utf-8"
    if best.encoding in LATIN_GUESSES and _decodes(head, "cp1252"):
        return "cp1252"  # the common Western single-byte encoding; near-ties otherwise go to cp1250 & co.
    return best.encoding


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False

"""Guess a text file's encoding from its first bytes: BOMs, UTF-16 without BOM, then UTF-8, then
charset-normalizer's best guess (GB18030, cp1252, …).

A guess other than UTF-8 is made only on strong evidence, because a wrong guess turns every record
into mojibake that nothing downstream can detect, while a UTF-8 file with a few bad bytes only
costs the records that hold them (the readers quarantine those by line): UTF-16 needs nearly every
other byte to be NUL, a legacy codec needs many invalid UTF-8 sequences and few valid ones."""

from __future__ import annotations

import codecs
from pathlib import Path

import charset_normalizer

HEAD = 1 << 16
UTF16_SAMPLE = 4096
MIN_INVALID = 8  # invalid UTF-8 sequences before a legacy codec is even considered
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
    utf16 = _utf16_without_bom(head[:UTF16_SAMPLE])
    if utf16 is not None:
        return utf16
    if not _clearly_not_utf8(head):
        return "utf-8"  # UTF-8 with a few bad bytes: the readers quarantine the lines that hold them
    half = len(head) // 2
    for part in (head, head[:half], head[half:]):  # a damaged spot spoils the guess for its half only
        best = charset_normalizer.from_bytes(part).best()
        if best is not None and _invalid(head, best.encoding) < MIN_INVALID:
            if best.encoding in LATIN_GUESSES and _invalid(head, "cp1252") == 0:
                return "cp1252"  # the common Western single-byte encoding; near-ties otherwise go to cp1250 & co.
            return best.encoding
    return "utf-8"  # no codec reads the head either: keep to UTF-8 and quarantine what does not decode


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 text of mostly ASCII markup has a NUL in nearly every other byte, on one side only;
    a stray NUL or two in UTF-8 text is no evidence."""
    sample = sample[: len(sample) // 2 * 2]
    if not sample:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    zeros, other = max(even, odd), min(even, odd)
    if zeros < max(1, len(sample) // 10) or other * 10 > zeros:  # NULs in at least 1 of 5 pairs
        return None
    name = "utf-16-be" if even > odd else "utf-16-le"
    return name if _decodes(sample, name) else None


def _clearly_not_utf8(head: bytes) -> bool:
    """Many invalid UTF-8 sequences, and more than twice as many as valid non-ASCII characters
    (legacy multi-byte text such as GB18030 forms some valid UTF-8 pairs by chance)."""
    invalid = _invalid(head, "utf-8")
    if invalid < MIN_INVALID:
        return False
    text = head.decode("utf-8", "replace")
    valid = sum(1 for ch in text if ch > "\x7f") - text.count("\ufffd")
    return invalid > 2 * valid


def _invalid(data: bytes, encoding: str) -> int:
    """How many undecodable sequences ``data`` holds, not counting a character cut by its end."""
    if _decodes(data, encoding):
        return 0
    text = data.decode(encoding, "replace").rstrip("\ufffd")
    return text.count("\ufffd") - data.count("\ufffd".encode()) + 1


def _decodes(data: bytes, encoding: str) -> bool:
    """Whether ``data`` decodes, allowing a character cut by the end of the sample."""
    for cut in range(4):
        try:
            data[: len(data) - cut].decode(encoding)
            return True
        except UnicodeDecodeError:
            continue
    return False

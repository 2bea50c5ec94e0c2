"""mask_pii: replace personal data with typed placeholders and count what was masked.

Detected: emails, phone numbers (mainland China mobiles with or without +86, Chinese landlines with
area code, international +CC numbers, North-American (xxx) xxx-xxxx), Chinese resident ID numbers
(18 digits, valid birth date and ISO 7064 checksum), bank card numbers (13–19 digits passing Luhn),
IPv4 and IPv6 addresses; and, when ``person`` is among the kinds (opt-in), person names —
English from the US Census name lists, Chinese from jieba's tagger (see ``datamill.clean.names``
and docs/cleaning.md for their precision).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Literal

from datamill.clean.checksums import luhn, valid_id_card
from datamill.clean.names import mask_names
from datamill.ops import register
from datamill.ops.base import Mapper, OpConfig
from datamill.record import Record

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
ID_CARD = re.compile(
    r"(?<![\dA-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![\dA-Za-z])"
)
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
CN_MOBILE = re.compile(r"(?<![\d+])(?:(?:\+|00)86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")
CN_LANDLINE = re.compile(
    r"(?<![\d+])(?:(?:\+|00)86[ -]?)?(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3})[ -]?\d{7,8}(?:-\d{1,5})?(?!\d)"
)
INTL_PHONE = re.compile(r"(?<![\w+])\+(?:[1-9]\d{0,2})[ -.]?(?:\(\d{1,4}\)[ -.]?)?\d{2,4}(?:[ -.]?\d{2,4}){2,3}(?!\d)")
NANP_PHONE = re.compile(r"(?<![\w(])(?:\(\d{3}\)\s?|\d{3}[-.])\d{3}[-.]\d{4}(?!\d)")
IPV4 = re.compile(
    r"(?<![\d.])(?<!\d\.)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)"
)
DIGIT = re.compile(r"\d+")
IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")

def _valid_ipv6(s: str) -> bool:
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return s.count(":") >= 3 and any(ch.isdigit() for ch in s)


KINDS = ("email", "id_card", "bank_card", "phone", "ip")


def mask(text: str, kinds: tuple[str, ...] = KINDS, counts: Counter[str] | None = None) -> str:
    """Mask PII in ``text`` with ``<EMAIL>``, ``<PERSON>``, ``<ID_CARD>``, ``<BANK_CARD>``, ``<PHONE>``, ``<IP>``;
    ``counts`` (if given) is increased per kind. Order matters: IDs and cards before phones."""
    counts = counts if counts is not None else Counter()

    def sub(pattern: re.Pattern, kind: str, check=None, s: str = "") -> str:
        def repl(m: re.Match) -> str:
            if check is not None and not check(m.group(0)):
                return m.group(0)
            counts[kind] += 1
            return f"<{kind.upper()}>"

        return pattern.sub(repl, s)

    if "email" in kinds and "@" in text:
        text = sub(EMAIL, "email", None, text)
    if "person" in kinds:
        text, n = mask_names(text)
        counts["person"] += n
    # each pattern needs this many digits (\d, as the patterns count them): most texts skip most scans
    digits = len(text) - len(DIGIT.sub("", text))
    if digits < 4 and ":" not in text:
        return text
    if "id_card" in kinds and digits >= 17:
        text = sub(ID_CARD, "id_card", valid_id_card, text)
    if "bank_card" in kinds and digits >= 13:
        text = sub(CARD, "bank_card", lambda s: _card_ok(s), text)
    if "ip" in kinds:
        if digits >= 4 and text.count(".") >= 3:
            text = sub(IPV4, "ip", None, text)
        if ":" in text:
            text = sub(IPV6, "ip", _valid_ipv6, text)
    if "phone" in kinds:
        for pattern, least in ((CN_MOBILE, 11), (CN_LANDLINE, 10), (INTL_PHONE, 7), (NANP_PHONE, 10)):
            if digits >= least and (pattern is not INTL_PHONE or "+" in text):
                text = sub(pattern, "phone", None, text)
    return text


def _card_ok(s: str) -> bool:
    digits = re.sub(r"\D", "", s)
    if not 13 <= len(digits) <= 19 or len(set(digits)) < 2:
        return False
    # unseparated 13–19 digit runs are cards only when they pass Luhn; so are grouped ones
    return luhn(digits)


@register
class MaskPii(Mapper):
    """Mask emails, phones, Chinese IDs, bank cards and IPs with typed placeholders.

    Replace emails, phones (incl. mainland China mobiles/landlines), Chinese resident IDs (checksum),
    bank cards (Luhn) and IPv4/IPv6 addresses with ``<EMAIL>``, ``<PHONE>``, ``<ID_CARD>``,
    ``<BANK_CARD>``, ``<IP>`` (and person names with ``<PERSON>`` when ``person`` is in ``kinds``);
    counts per kind go to ``meta["pii"]``."""

    name = "mask_pii"

    class Config(OpConfig):
        part: Literal["all", "prompt", "answer", "text"] = "all"
        # add "person" to also mask person names (slower; see docs/cleaning.md for its precision)
        kinds: list[Literal["email", "phone", "id_card", "bank_card", "ip", "person"]] = list(KINDS)

    def map(self, record: Record) -> Record:
        counts: Counter[str] = Counter()
        kinds = tuple(self.config.kinds)
        record.rewrite(self.config.part, lambda s: mask(s, kinds, counts))
        if counts:
            self.counters.update({f"masked {kind}": n for kind, n in counts.items()})
            pii = dict(record.meta.get("pii", {}))
            for k, v in counts.items():
                pii[k] = pii.get(k, 0) + v
            record.meta["pii"] = pii
        return record

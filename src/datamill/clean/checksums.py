"""Check digits that tell a real identifier from a look-alike number: the Chinese resident ID
(GB 11643, ISO 7064 MOD 11-2) and card numbers (Luhn). PII masking uses them to mask only valid
numbers; the planted-defect generator uses them to make valid ones."""

from __future__ import annotations

from datetime import date

ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def valid_id_card(s: str) -> bool:
    """Chinese resident ID (GB 11643): real birth date and the ISO 7064 MOD 11-2 check character."""
    if len(s) != 18:
        return False
    try:
        born = date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    if born > date.today() or born.year < 1880:
        return False
    total = sum(int(d) * w for d, w in zip(s[:17], ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11] == s[17].upper()


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0

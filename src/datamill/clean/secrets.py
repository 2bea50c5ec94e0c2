"""Secrets in code — cloud keys, tokens, private keys, passwords in assignments — found by detect-secrets'
plugins, run on the text itself (no file, no settings, never a verification request over the network)
and replaced by ``<SECRET:KIND>`` placeholders, the kind named after the plugin's secret type
(``AWS_ACCESS_KEY``, ``PRIVATE_KEY``, ``SECRET_KEYWORD`` …).

The default plugins are BigCode's for The Stack / StarCoder (bigcode-dataset ``pii/utils/keys_detection.py``)
without the two entropy detectors, which BigCode could only use behind a gibberish model (hashes and
ids are high-entropy too), and without the four slow ones (``SLOW_PLUGINS``); plus the three BigCode
left out and the token plugins detect-secrets added since: private keys (the whole ``BEGIN … END``
block is redacted, not only its first line), passwords and keys in assignments (``KeywordDetector``,
with the language-specific rules it picks from the file name) and ``user:password@`` URLs. Candidates
pass detect-secrets' own false-positive heuristics (templated ``${VAR}`` values, indirect references
like ``get_secret()``, sequential strings, UUIDs, id strings). A file is scanned line by line only
where a plugin's pattern or a keyword occurs at all."""

from __future__ import annotations

import bisect
import re
from collections import Counter
from functools import lru_cache

PLUGINS = (
    "AWSKeyDetector",
    "ArtifactoryDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "JwtTokenDetector",
    "KeywordDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)
# BigCode's IBM Cloud, IBM COS, Cloudant and SoftLayer detectors are opt-in (``plugins:``): their patterns
# open with optional groups the regex engine tries at every character, which made redaction 3.5x slower
# (1.4 against 5 MB/s on pandas' sources), and KeywordDetector still catches most of what they name.
SLOW_PLUGINS = ("CloudantDetector", "IbmCloudIamDetector", "IbmCosHmacDetector", "SoftlayerDetector")
PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|---- END SSH2 ENCRYPTED PRIVATE KEY ----")
KEY_LINES = 200  # the longest private key block looked for (a 16384-bit RSA key is ~170 lines)
PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----")


def kind(secret_type: str) -> str:
    """``AWS Access Key`` → ``AWS_ACCESS_KEY``: the placeholder's name for a plugin's secret type."""
    return re.sub(r"[^A-Z0-9]+", "_", secret_type.upper()).strip("_")


@lru_cache(maxsize=8)
def plugins(names: tuple[str, ...] = PLUGINS) -> tuple:
    """detect-secrets plugin instances by class name (any of its plugins, e.g. Base64HighEntropyString)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    classes = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ValueError(f"unknown detect-secrets plugin(s) {', '.join(unknown)}; known: {', '.join(sorted(classes))}")
    return tuple(classes[n]() for n in names)


@lru_cache(maxsize=1)
def _keywords() -> re.Pattern:
    """KeywordDetector's keywords, to find the lines worth its rules: matched on the lower-cased text,
    ten times faster than its case-insensitive pattern."""
    from detect_secrets.plugins.keyword import DENYLIST

    return re.compile("|".join(DENYLIST))


class _Lines:
    """Line numbers of pattern matches in one text (the line starts are found once, when needed)."""

    def __init__(self, text: str):
        self.text = text
        self.starts: list[int] | None = None

    def of(self, rx: re.Pattern) -> set[int]:
        hits = [m.start() for m in rx.finditer(self.text)]
        if hits and self.starts is None:
            self.starts = [0] + [nl.end() for nl in re.finditer("\n", self.text)]
        return {bisect.bisect_right(self.starts, h) - 1 for h in hits}  # type: ignore[arg-type]


def _candidates(text: str, active: tuple) -> dict[int, list]:
    """Line number → the plugins whose pattern (a keyword, for KeywordDetector) matches on it: one regex
    pass over the whole text per pattern instead of every plugin on every line."""
    out: dict[int, list] = {}
    plain, lowered = _Lines(text), None
    for plugin in active:
        if plugin.__class__.__name__ == "KeywordDetector":
            lowered = lowered or _Lines(text.lower())  # the same line numbers: lower() keeps the newlines
            lines = lowered.of(_keywords())
        else:
            lines = set().union(*(plain.of(rx) for rx in plugin.denylist))
        for n in lines:
            out.setdefault(n, []).append(plugin)
    return out


def _value(m: re.Match) -> str:
    """The secret in a plugin pattern's match: its first group when context comes before it
    (``aws_secret_access_key = "…"``, ``user:…@``), else the whole match (a group at the start is a
    token prefix such as ``ghp``), without the delimiters some patterns include."""
    if m.re.groups and m.group(1) and m.start(1) > m.start():
        return m.group(1)
    return m.group(0).strip(" \t=:\"'")


def _false_positive(secret: str, line: str, plugin) -> bool:
    from detect_secrets.filters import heuristic as h

    if h.is_sequential_string(secret) or h.is_potential_uuid(secret):
        return True
    if plugin.__class__.__name__ == "KeywordDetector":
        return (
            h.is_likely_id_string(secret, line, plugin)
            or h.is_templated_secret(secret)
            or h.is_indirect_reference(line)
            or h.is_prefixed_with_dollar_sign(secret)
            or h.is_not_alphanumeric_string(secret)
        )
    return False


def _secrets_in(line: str, filename: str, plugin) -> list[str]:
    if plugin.__class__.__name__ == "KeywordDetector":
        from detect_secrets.plugins.keyword import QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP, REGEX_BY_FILETYPE
        from detect_secrets.util.filetype import determine_file_type

        rules = REGEX_BY_FILETYPE.get(determine_file_type(filename), QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
        found = list(plugin.analyze_string(line, denylist_regex_to_group=rules))
    else:
        found = [_value(m) for rx in plugin.denylist for m in rx.finditer(line)]
    return sorted({s for s in found if s and not _false_positive(s, line, plugin)}, key=len, reverse=True)


def redact(text: str, filename: str = "", counts: Counter[str] | None = None, names: tuple[str, ...] = PLUGINS) -> str:
    """``text`` with every secret the plugins find replaced by ``<SECRET:KIND>``; ``counts`` (if given)
    is increased per kind. ``filename`` picks KeywordDetector's rules for the language (``.py``, ``.go`` …)."""
    counts = counts if counts is not None else Counter()
    candidates = _candidates(text, plugins(names))
    if not candidates:
        return text
    lines: list[str | None] = list(text.split("\n"))
    for n, found in sorted(candidates.items()):
        line = lines[n]
        for plugin in found:
            if line is None:  # inside a private key block already redacted
                break
            label = kind(plugin.secret_type)
            if label == "PRIVATE_KEY" and PEM_BEGIN.search(line):
                line = _redact_key_block(lines, n, line)
                counts[label] += 1
                continue
            for secret in _secrets_in(line, filename, plugin):
                if secret in line:
                    counts[label] += line.count(secret)
                    line = line.replace(secret, f"<SECRET:{label}>")
        lines[n] = line
    return "\n".join(x for x in lines if x is not None)


def _redact_key_block(lines: list[str | None], n: int, line: str) -> str:
    """Replace a private key from its BEGIN line to its END line with one placeholder; the later lines
    it covered become None (removed). Without an END within ``KEY_LINES`` lines, the rest of the BEGIN
    line only."""
    begin = PEM_BEGIN.search(line)
    head, rest = line[: begin.start()], line[begin.end() :]  # type: ignore[union-attr]
    if end := PEM_END.search(rest):
        return f"{head}<SECRET:PRIVATE_KEY>{rest[end.end() :]}"
    for m in range(n + 1, min(len(lines), n + KEY_LINES)):
        later = lines[m]
        if later is not None and (end := PEM_END.search(later)):
            for k in range(n + 1, m + 1):
                lines[k] = None
            return f"{head}<SECRET:PRIVATE_KEY>{later[end.end() :]}"
    return f"{head}<SECRET:PRIVATE_KEY>"

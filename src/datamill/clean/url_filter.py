"""url_filter: drop web pages by their URL (``meta.url``, as the web-archive reader stores it) before
any text work — block lists and allow lists of domains, URL substrings and regexes, from the recipe
or from files — and note what the URL says: its normalized form (for ``exact_dedup field:
url_normalized``) and a language hint from the top-level domain or a language path segment.

A block-list entry is ``example.com`` (that domain and its subdomains), ``substring:/ads/`` or
``regex:casino|poker``; ``file:PATH`` reads entries one per line (``#`` comments; a relative path is
relative to the working directory). Domain lists of any size cost one set lookup per label of the
host. An allow-list match keeps a page whatever blocks it."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field

from datamill.errors import DatamillError
from datamill.ops import register
from datamill.ops.base import Filter, OpConfig
from datamill.record import Record

TRACKING = re.compile(r"^(utm_.*|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|spm|_ga|ref_src)$", re.I)
TLD_LANG = {"cn": "zh", "tw": "zh", "hk": "zh", "mo": "zh", "uk": "en", "us": "en", "au": "en", "nz": "en", "ie": "en"}
PATH_LANG = re.compile(r"/(zh|zh[-_](?:cn|tw|hk|hans|hant)|cn|en|en[-_](?:us|gb|au))(?:/|$)", re.I)


def normalize_url(url: str) -> str:
    """The same page's URL written one way: scheme and host lower-cased, ``www.``, default ports,
    the fragment, tracking parameters and a trailing slash removed, the query sorted."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").removeprefix("www.")
        port = parts.port
    except ValueError:  # a malformed port or IPv6 literal: compare it as written
        return url.strip()
    scheme = parts.scheme.lower()
    if port and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = urlencode(
        sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not TRACKING.match(k))
    )
    path = parts.path.rstrip("/") or ""
    return urlunsplit(("http" if scheme in ("http", "https") else scheme, host, path, query, ""))


def url_language(url: str) -> str | None:
    """zh / en as the URL suggests it (a language path segment, else the country domain), or None."""
    m = PATH_LANG.search(urlsplit(url).path)
    if m:
        return "en" if m.group(1).lower().startswith("en") else "zh"
    host = urlsplit(url).hostname or ""
    return TLD_LANG.get(host.rsplit(".", 1)[-1])


class Rules:
    """Domains, substrings and regexes of one list, matched against a URL."""

    def __init__(self, entries: list[str]):
        self.domains: set[str] = set()
        substrings: list[str] = []
        patterns: list[str] = []
        for entry in _expand(entries):
            kind, _, value = entry.partition(":") if entry.startswith(("substring:", "regex:")) else ("", "", entry)
            if kind == "substring":
                substrings.append(re.escape(value))
            elif kind == "regex":
                try:
                    re.compile(value)
                except re.error as e:
                    raise DatamillError(f"url_filter: bad regex {value!r}: {e}") from None
                patterns.append(f"(?:{value})")
            else:
                self.domains.add(value.lower().removeprefix("www.").strip("."))
        joined = "|".join(substrings + patterns)
        self.pattern = re.compile(joined, re.I) if joined else None

    def match(self, url: str, host: str) -> str | None:
        """Which kind of entry matched (the drop reason, so reasons stay few), or None."""
        labels = host.split(".")
        if any(".".join(labels[i:]) in self.domains for i in range(len(labels))):
            return "domain"
        if self.pattern is not None and self.pattern.search(url):
            return "substring or regex"
        return None


def _expand(entries: list[str]) -> list[str]:
    out = []
    for entry in entries:
        entry = entry.strip()
        if entry.startswith("file:"):
            path = Path(entry[5:])
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as e:
                raise DatamillError(f"url_filter: cannot read the list {path}: {e.strerror}") from None
            out += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        elif entry:
            out.append(entry)
    return out


@register
class UrlFilter(Filter):
    """Drop pages whose URL is on a block list (domains, substrings, regexes) unless an allow list keeps it.

    Writes ``meta.url_normalized`` (for ``exact_dedup field: url_normalized``) and ``meta.url_lang``
    (a zh/en hint from the country domain or a language path segment). Records without ``meta.url``
    are kept (or dropped with ``require_url: true``)."""

    name = "url_filter"

    class Config(OpConfig):
        block: list[str] = Field(default_factory=list, description="domains, substring:…, regex:…, file:PATH")
        allow: list[str] = Field(default_factory=list, description="the same forms; a match is never dropped")
        url_key: str = "url"
        require_url: bool = False

    @cached_property
    def lists(self) -> tuple[Rules, Rules]:
        return Rules(self.config.block), Rules(self.config.allow)

    def reason(self, record: Record) -> str | None:
        url = record.meta.get(self.config.url_key)
        if not isinstance(url, str) or not url.strip():
            self.counters["no_url"] += 1
            return "no URL" if self.config.require_url else None
        record.meta["url_normalized"] = normalize_url(url)
        if lang := url_language(url):
            record.meta["url_lang"] = lang
        block, allow = self.lists
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            host = ""
        hit = block.match(url, host)
        if hit is None or allow.match(url, host) is not None:
            return None
        return f"blocked URL ({hit})"

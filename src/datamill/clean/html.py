"""HTML → text: a fragment (tags and boilerplate lines out, block ends kept as line breaks, code kept)
and a whole page (its main text). Used by the ``html_to_text`` mapper and by ``ingest`` for HTML
files and cells."""

from __future__ import annotations

import re

HTML_TAG = re.compile(
    r"</?(?:html|head|body|div|span|p|br|hr|a|b|i|u|em|strong|script|style|iframe|table|tr|td|th|ul|ol|li|"
    r"h[1-6]|img|meta|link|nav|footer|header|section|article|aside|font|center|noscript|form|input|button)\b"
    r"[^<>]*>",
    re.I,
)
_FENCE_OR_INLINE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.S)
_DROP_BLOCK = re.compile(r"<(script|style|noscript|iframe|nav|footer|header|aside|form)\b.*?</\1\s*>", re.I | re.S)
_AD_BLOCK = re.compile(
    r"<(div|span|p|section|aside)\b[^>]*(?:class|id)\s*=\s*[\"'][^\"']*\b(?:ad|ads|advert|advertisement|banner|"
    r"sponsor|promo|cookie|share|social|related|nav|menu|footer|sidebar)\b[^\"']*[\"'][^>]*>.*?</\1\s*>",
    re.I | re.S,
)
# whole lines of page furniture (C4-style phrases, en and zh) left once the tags are gone
BOILERPLATE_LINE = re.compile(
    r"subscribe to (?:our|the) (?:newsletter|channel|blog)|sign up (?:for|to) (?:our|the) newsletter"
    r"|click here to (?:subscribe|sign up|share|download|learn more|read more)|\b(?:this|our) (?:web)?site uses cookies"
    r"|accept (?:all )?cookies|cookie (?:policy|settings|preferences)|by (?:using|continuing to use) this (?:web)?site"
    r"|all rights reserved|^\W*(?:copyright\W*)?©|^\W*copyright \d{4}"
    r"|share (?:this|on) (?:article|post|page|story|facebook|twitter|linkedin)"
    r"|follow us on|read (?:our|the) privacy policy|^\W*(?:share|tweet|pin it|print|email)\W*$"
    r"|点击(?:这里)?订阅|订阅我们|分享到(?:微信|微博|朋友圈|QQ|qq)|版权所有|转载请注明|扫码关注|扫描二维码|关注(?:我们的)?公众号"
    r"|本网站使用\s*cookie|点击(?:这里|此处)(?:查看|阅读|下载|分享)",
    re.I,
)


def _drop_boilerplate(chunk: str) -> str:
    """Remove short lines that are page furniture (newsletter, cookie, share, copyright prompts)."""
    lines = chunk.split("\n")
    kept = [ln for ln in lines if len(ln.strip()) > 120 or not BOILERPLATE_LINE.search(ln.strip())]
    return "\n".join(kept) if len(kept) < len(lines) else chunk


_BLOCK_END = re.compile(r"<\s*(?:br|/p|/div|/li|/tr|/h[1-6]|hr)\b[^>]*>", re.I)
_ANY_TAG = re.compile(r"<!--.*?-->|<[^<>]+>", re.S)


def html_fragment_to_text(s: str) -> str:
    """Remove HTML markup from text that is mostly not HTML (an SFT answer): scripts, styles,
    navigation and ad blocks go with their content, other tags are dropped, entities decoded, and
    boilerplate lines (newsletter, cookie, share, copyright prompts) removed.
    Code (fenced or inline) is left untouched, so answers about HTML keep their examples."""
    import html

    if "<" not in s or not HTML_TAG.search(s):
        return s

    def clean(chunk: str) -> str:
        if not HTML_TAG.search(chunk):
            return chunk
        chunk = _DROP_BLOCK.sub("", chunk)
        chunk = _AD_BLOCK.sub("", chunk)
        chunk = _BLOCK_END.sub("\n", chunk)
        chunk = _ANY_TAG.sub("", chunk)
        chunk = _drop_boilerplate(html.unescape(chunk))
        chunk = re.sub(r"[ \t]+\n", "\n", chunk)
        return re.sub(r"\n{3,}", "\n\n", chunk)

    out, last = [], 0
    for m in _FENCE_OR_INLINE.finditer(s):
        out += [clean(s[last : m.start()]), m.group(0)]
        last = m.end()
    out.append(clean(s[last:]))
    return "".join(out).strip()


def looks_like_page(s: str) -> bool:
    head = s[:2000].lower()
    return "<html" in head or "<!doctype" in head or "<body" in head or "<head" in head


def html_page_to_text(s: str, favor: str = "precision") -> str:
    """Main text of a whole HTML page with trafilatura (boilerplate, navigation, ads, scripts removed);
    falls back to tag stripping when trafilatura finds no main content."""
    import trafilatura

    text = trafilatura.extract(
        s,
        include_comments=False,
        include_tables=True,
        favor_precision=favor == "precision",
        favor_recall=favor == "recall",
        deduplicate=True,
    )
    return text if text else html_fragment_to_text(s)

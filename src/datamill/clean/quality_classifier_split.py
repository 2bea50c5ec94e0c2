"""A labelled good/bad text split built from real data, per language: the ground truth the quality
classifier is measured on (``tests/test_quality_classifier.py``, ``benchmarks/quality_classifier.py``,
the table in docs/cleaning.md).

Positives are curated text: alpaca answers, identity answers (placeholders filled) and, for English,
Wikipedia paragraphs. Negatives are noisy web and forum text: c4 pages that datamill's own Gopher / C4
rules drop, forum listing pages assembled from real forum posts (title, excerpt, author, replies — as a
crawler sees a board's index; the Chinese ruozhiba posts in ``../shared/data/zh``) and page-furniture
pages (navigation, headline lists, pagination, share buttons, cookie banners, footers) whose headlines
are cut from the real texts. The furniture is the one assembled part; the tests use it for Chinese
because ``tests/data`` has no Chinese forum text.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from datamill import ops
from datamill.clean.text import script_lang
from datamill.ops.base import OpContext
from datamill.record import Record

NAV = {
    "en": ["Home", "News", "World", "Business", "Sport", "Tech", "Culture", "Opinion", "Contact", "About us"],
    "zh": ["首页", "新闻", "国际", "财经", "体育", "科技", "文化", "评论", "联系我们", "关于我们"],
}
FURNITURE = {
    "en": [
        "Sign in | Register",
        "Subscribe to our newsletter",
        "Share on Facebook  Share on Twitter  Email",
        "We use cookies to improve your experience. By continuing you accept our cookie policy. Accept",
        "© {year} {site}. All rights reserved. Privacy Policy | Terms of Use | Cookie Settings",
        "Advertisement",
        "Read more »",
        "Posted by admin on {date} · {n} comments",
        "Page 1 2 3 … {n} Next ›",
        "Tags: {tags}",
        "Most popular",
        "Loading…",
        "Skip to main content",
    ],
    "zh": [
        "登录 | 注册",
        "订阅我们的新闻邮件",
        "分享到微信  分享到微博  复制链接",
        "本网站使用Cookie以提升您的浏览体验，继续浏览即表示您同意我们的隐私政策。同意",
        "© {year} {site} 版权所有 | 隐私政策 | 免责声明 | 联系我们",
        "广告",
        "阅读全文 »",
        "发布者：管理员 {date} · {n} 条评论",
        "第 1 2 3 … {n} 页 下一页 ›",
        "标签：{tags}",
        "热门排行",
        "加载中…",
        "点击查看更多",
    ],
}


RULES = ("gopher_quality_filter", "gopher_repetition_filter", "c4_quality_filter")


def _dropped_by_rules(pages: list[str]) -> list[bool]:
    """Whether each page fails datamill's Gopher / C4 rules (the operators, found by name in the registry)."""
    ctx = OpContext(0, 0, Path("."))
    rules = [ops.get(name)(ops.get(name).Config(), ctx) for name in RULES]
    return [any(rule.reason(Record(text=t)) for rule in rules) for t in pages]


def _lang_of(text: str) -> str | None:
    return script_lang(text, strict=False)


def _fill(text: str) -> str:
    return text.replace("{{name}}", "Datamill Assistant").replace("{{author}}", "the datamill team")


def sft_answers(path: Path, lang: str) -> list[str]:
    """The answers (``output``) of an alpaca-style file that are written in ``lang``."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [t for r in rows if (t := _fill(r.get("output") or "").strip()) and _lang_of(t) == lang]


def wiki_paragraphs(path: Path, size: int = 1500) -> list[str]:
    """Wikipedia articles (one a line) cut at sentence ends into pieces of about ``size`` characters."""
    out = []
    for article in path.read_text(encoding="utf-8").splitlines():
        piece = ""
        for sentence in re.split(r"(?<=[.!?])(?=[A-Z])|(?<=[.!?])\s+", article):
            piece += sentence + " "
            if len(piece) >= size:
                out.append(piece.strip())
                piece = ""
        if len(piece) > 200:
            out.append(piece.strip())
    return out


def c4_pages(path: Path, dropped: bool = True) -> list[str]:
    """The c4 pages that datamill's Gopher quality, Gopher repetition or C4 rules drop (or, with
    ``dropped=False``, keep: ordinary web text, unlabelled — the docs report what the model makes of it)."""
    pages = [json.loads(line)["text"] for line in path.open(encoding="utf-8") if line.strip()]
    return [t for t, bad in zip(pages, _dropped_by_rules(pages), strict=True) if bad == dropped]


def forum_pages(path: Path, rng: random.Random, per_page: tuple[int, int] = (3, 8)) -> list[str]:
    """Forum index pages from real posts (a JSON list of ``title``, ``abs``, ``lz``, ``n_reply``), each
    post used once, as a board's listing shows them."""
    posts = [p for p in json.loads(path.read_text(encoding="utf-8")) if p.get("title")]
    rng.shuffle(posts)
    pages, i = [], 0
    while i < len(posts):
        n = rng.randint(*per_page)
        lines = []
        for p in posts[i : i + n]:
            lines.append(p["title"].replace("\n", " "))
            excerpt = (p.get("abs") or "").replace("\n", " ")
            if excerpt and not excerpt.startswith(p["title"][:10]):
                lines.append(excerpt)
            lines.append(f"{p.get('lz') or '匿名'} · {p.get('n_reply') or 0} 回复")
        pages.append("\n".join(lines))
        i += n
    return pages


def furniture_pages(headlines: list[str], lang: str, n: int, rng: random.Random) -> list[str]:
    """``n`` pages of site furniture around lists of ``headlines`` (index, tag and login pages)."""
    out = []
    for i in range(n):
        site = f"{rng.choice(['news', 'blog', 'forum', 'shop'])}{i}.example.{rng.choice(['com', 'cn', 'net'])}"
        values = {
            "year": rng.randint(2015, 2025),
            "site": site,
            "date": f"{rng.randint(2015, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "n": rng.randint(2, 60),
            "tags": ", ".join(rng.sample(NAV[lang], 3)),
        }
        lines = [" | ".join(rng.sample(NAV[lang], rng.randint(4, len(NAV[lang]))))]
        lines += [h for h in rng.sample(headlines, min(len(headlines), rng.randint(3, 12)))]
        lines += [s.format(**values) for s in rng.sample(FURNITURE[lang], rng.randint(3, 8))]
        head, tail = lines[:1], lines[1:]
        rng.shuffle(tail)
        out.append("\n".join(head + tail))
    return out


def headlines(texts: list[str], lang: str, rng: random.Random, k: int = 2000) -> list[str]:
    """Headline-like snippets cut from real texts: the first clause, 6-12 words or 8-24 characters."""
    out = []
    for t in rng.sample(texts, min(k, len(texts))):
        first = re.split(r"[。！？!?.\n]", t.strip(), maxsplit=1)[0]
        if lang == "zh":
            out.append(first[: rng.randint(8, 24)])
        else:
            out.append(" ".join(first.split()[: rng.randint(6, 12)]))
    return [h for h in out if h.strip()]


@dataclass
class Split:
    """Good and bad texts of one language; ``sources[i]`` names where ``negatives[i]`` came from."""

    positives: list[str]
    negatives: list[str]
    sources: list[str]


def labelled_split(
    llamafactory: Path, lang: str, forum: Path | None = None, seed: int = 0, furniture: int | None = None
) -> Split:
    """Positives and negatives for ``lang`` from LLaMA-Factory's demo folder (and, for Chinese, a forum
    posts file when given). ``furniture`` pages default to half the real negatives (at least 200)."""
    rng = random.Random(seed)
    lf = Path(llamafactory)
    pos = sft_answers(lf / f"alpaca_{lang}_demo.json", lang) + sft_answers(lf / "identity.json", lang)
    if lang == "en":
        pos += wiki_paragraphs(lf / "wiki_demo.txt")
        real, source = c4_pages(lf / "c4_demo.jsonl"), "c4 dropped by rules"
        cut = headlines([json.loads(line)["text"] for line in (lf / "c4_demo.jsonl").open(encoding="utf-8")], lang, rng)
    else:
        real, source = (forum_pages(forum, rng) if forum is not None else []), "forum pages"
        rows = json.loads((lf / f"alpaca_{lang}_demo.json").read_text(encoding="utf-8"))
        cut = headlines([r["instruction"] for r in rows if r.get("instruction")], lang, rng)
    pages = furniture_pages(cut, lang, furniture if furniture is not None else max(200, len(real) // 2), rng)
    return Split(pos, real + pages, [source] * len(real) + ["page furniture"] * len(pages))

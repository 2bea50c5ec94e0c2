"""Benchmark: a Common Crawl-style WARC through datamill's crawl recipe and through datatrove's
WarcReader → Trafilatura → GopherQuality → C4Quality → JsonlWriter, on the same file, one core each.

    .venv/bin/python benchmarks/crawl.py                 # N = 20,000 pages
    .venv/bin/python benchmarks/crawl.py 5000
    .venv/bin/python benchmarks/crawl.py sample examples/crawl_sample.warc.gz   # the shipped sample

The WARC (``benchmarks/_work/crawl_nN.warc.gz``, reused for the same N) holds, per page, a request,
a response and a metadata record, as Common Crawl's do: real text (c4_demo and wiki_demo from
``../shared/data/llamafactory`` for English, alpaca_zh_demo answers for Chinese) inside realistic
page furniture — navigation, scripts, an ad block, a cookie banner, related links, a footer — on a
few hundred domains, some pages served twice under tracking parameters, some in GBK. The sample
uses the repository's ``examples/`` files instead, so it needs nothing outside the repository.

datatrove is not a datamill dependency (its trafilatura pin clashes with ours): it runs from the venv
``/tmp/dtvenv`` (``python3 -m venv /tmp/dtvenv && /tmp/dtvenv/bin/pip install "datatrove[io,processing]"``),
in a subprocess, on the same file. Prints pages/s per core for both, the ratio, and the share of
pages on which the two make the same keep/drop decision (matched by WARC record id).
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import time
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "_work"
SHARED = ROOT.parent / "shared" / "data" / "llamafactory"
DTVENV = Path("/tmp/dtvenv/bin/python")

NAV = ["Home", "News", "World", "Business", "Sport", "Culture", "Contact", "About us"]
NAV_ZH = ["首页", "新闻", "国际", "财经", "体育", "文化", "联系我们", "关于"]
FOOTER = "© 2024 {site}. All rights reserved. Privacy Policy | Terms of Use | Cookie Settings"
COOKIE = "We use cookies to improve your experience. By continuing you accept our cookie policy. Accept"


def _texts(sample: bool) -> tuple[list[str], list[str]]:
    """English and Chinese page bodies from the demo corpora."""
    if sample:
        ex = ROOT / "examples"
        en = [json.loads(line)["text"] for line in (ex / "c4_sample.jsonl").open(encoding="utf-8")]
        zh = [r["output"] for r in json.loads((ex / "alpaca_zh_sample.json").read_text(encoding="utf-8"))]
        return en, zh
    en = [json.loads(line)["text"] for line in (SHARED / "c4_demo.jsonl").open(encoding="utf-8")]
    en += [p for p in (SHARED / "wiki_demo.txt").read_text(encoding="utf-8").split("\n") if len(p) > 200]
    zh = [r["output"] for r in json.loads((SHARED / "alpaca_zh_demo.json").read_text(encoding="utf-8"))]
    return en, zh


def page(site: str, title: str, body: str, zh: bool, rng: random.Random) -> str:
    """A page as a crawler meets it: the text in an article among navigation, scripts and ads."""
    nav = "".join(f'<li><a href="/{i}">{escape(x)}</a></li>' for i, x in enumerate(NAV_ZH if zh else NAV))
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in body.split("\n") if p.strip())
    related = "".join(f'<li><a href="/story/{rng.randrange(10**6)}">Related story {i}</a></li>' for i in range(5))
    lang = "zh-CN" if zh else "en"
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<script>window.dataLayer=window.dataLayer||[];function gtag(){{dataLayer.push(arguments)}}</script>"
        f"<style>body{{font-family:sans-serif}}</style></head><body><header><nav><ul>{nav}</ul></nav></header>"
        f'<div class="ad-banner">Advertisement — Buy now and save 50%!</div>'
        f"<main><article><h1>{escape(title)}</h1>{paragraphs}</article>"
        f"<aside><h3>Related</h3><ul>{related}</ul></aside></main>"
        f'<div id="cookie">{COOKIE}</div><footer>{escape(FOOTER.format(site=site))}</footer>'
        f'<script src="/static/app.{rng.randrange(10**6)}.js"></script></body></html>'
    )


def make_warc(path: Path, n: int, sample: bool = False, seed: int = 0) -> Path:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(seed)
    en, zh = _texts(sample)
    words, tlds = ["news", "blog", "forum", "shop", "wiki"], ["com", "org", "net", "cn"]
    kinds = [(rng.choice(words), rng.choice(tlds)) for _ in range(300)]
    sites = [f"{w}{i}.example.{tld}" for i, (w, tld) in enumerate(kinds)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        site_of = [sites[rng.randrange(len(sites))] for _ in range(n)]
        for i in range(n):
            again = i % 50 == 49  # the page before, crawled again under tracking parameters
            j = i - 1 if again else i
            is_zh = j % 3 == 2
            body = (zh if is_zh else en)[j % len(zh if is_zh else en)]
            site = site_of[j]
            url = f"https://{site}/{'zh-cn/' if is_zh else ''}article/{j}.html"
            if again:
                url = f"https://www.{site}/{'zh-cn/' if is_zh else ''}article/{j}.html?utm_source=feed&utm_medium=rss"
            html = page(site, body[:40].replace("\n", " "), body, is_zh, rng)
            gbk = is_zh and i % 7 == 0
            payload = html.replace('charset="utf-8"', 'charset="gbk"').encode("gbk", "ignore") if gbk else html.encode()
            ctype = f"text/html; charset={'GBK' if gbk else 'UTF-8'}"
            req = StatusAndHeaders(f"GET /article/{i}.html HTTP/1.1", [("Host", site)], is_http_request=True)
            writer.write_record(writer.create_warc_record(url, "request", http_headers=req))
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(url, "response", payload=io.BytesIO(payload), http_headers=http)
            )
            meta = f"fetchTimeMs: {rng.randrange(20, 900)}\n".encode()
            fields = "application/warc-fields"
            info = writer.create_warc_record(url, "metadata", payload=io.BytesIO(meta), warc_content_type=fields)
            writer.write_record(info)
    return path


DATATROVE = r"""
import json, sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters import GopherQualityFilter, C4QualityFilter
from datatrove.pipeline.writers import JsonlWriter
warc, out = sys.argv[1], sys.argv[2]
t = time.perf_counter()
from pathlib import Path
LocalPipelineExecutor(pipeline=[
    WarcReader(data_folder=str(Path(warc).parent), glob_pattern=Path(warc).name),
    Trafilatura(favour_precision=True, timeout=10.0),
    GopherQualityFilter(),
    C4QualityFilter(filter_no_terminal_punct=False),
    JsonlWriter(out, compression=None),
], tasks=1, workers=1, logging_dir=out + "/logs").run()
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def run_datamill(warc: Path, out: Path) -> tuple[float, set[str]]:
    import yaml

    from datamill.pipeline import recipe as recipes
    from datamill.pipeline.runner import Runner

    body = {
        "name": "crawl-bench",
        "workers": 1,
        "inputs": [str(warc)],
        "steps": [{"op": "html_to_text"}, {"op": "gopher_quality_filter"}, {"op": "c4_quality_filter"}],
        "output": {"path": str(out), "format": "datamill"},
    }
    recipe = WORK / "crawl_recipe.yaml"
    recipe.write_text(yaml.safe_dump(body), encoding="utf-8")
    subprocess.run(["rm", "-rf", str(out)], check=True)
    t = time.perf_counter()
    Runner(recipes.load(recipe)).run()
    seconds = time.perf_counter() - t
    kept = {json.loads(line)["meta"]["warc_record_id"] for line in (out / "data-00000.jsonl").open()}
    return seconds, kept


def run_datatrove(warc: Path, out: Path) -> tuple[float, set[str]] | None:
    if not DTVENV.exists():
        print(f"datatrove: not run ({DTVENV} missing; see the docstring)")
        return None
    subprocess.run(["rm", "-rf", str(out)], check=True)
    proc = subprocess.run([str(DTVENV), "-c", DATATROVE, str(warc), str(out)], capture_output=True, text=True)
    if proc.returncode:
        print(proc.stderr[-3000:])
        return None
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    kept = set()
    for f in sorted(out.glob("*.jsonl")):
        for line in f.open():
            kept.add(json.loads(line)["metadata"].get("warc_record_id") or json.loads(line)["id"])
    return seconds, kept


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "sample":
        path = make_warc(Path(sys.argv[2]), 60, sample=True)
        print(f"wrote {path} ({path.stat().st_size:,} bytes, 60 pages)")
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    warc = WORK / f"crawl_n{n}.warc.gz"
    if not warc.exists():
        make_warc(warc, n)
    ours_s, ours = run_datamill(warc, WORK / "crawl_out_datamill")
    print(f"datamill : {n:,} pages in {ours_s:.1f} s = {n / ours_s:,.0f} pages/s/core, kept {len(ours):,}")
    theirs = run_datatrove(warc, WORK / "crawl_out_datatrove")
    if theirs is None:
        return
    dt_s, dt = theirs
    print(f"datatrove: {n:,} pages in {dt_s:.1f} s = {n / dt_s:,.0f} pages/s/core, kept {len(dt):,}")
    same = n - len(ours ^ dt)
    print(f"ratio {dt_s / ours_s:.2f}x; same keep/drop decision on {same:,} of {n:,} pages ({same / n:.1%})")


if __name__ == "__main__":
    main()

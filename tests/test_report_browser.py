"""report.html in real headless Chromium with the network off: it renders, asks for nothing outside
the file, and shows the numbers of stats.json. Set DATAMILL_REPORT_SCREENSHOT=PATH to also save a
full-page screenshot (docs/select-report.png was made that way).

Playwright (the dev extra) drives Debian's /usr/bin/chromium through ``executable_path``; no browser
is downloaded. .ci/run installs ``chromium`` when it is missing, so under ``CI=true`` a missing
browser or Playwright is a failure, not a skip."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import LF

from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.report import write_report

try:
    from playwright import sync_api
except ImportError:  # not installed: skipped off CI, a failure on CI (see _require_browser)
    sync_api = None
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
ON_CI = os.environ.get("CI", "").strip().lower() in ("true", "1")


def _require_browser() -> None:
    missing = []
    if sync_api is None:
        missing.append("Playwright (pip install -e '.[dev]')")
    if CHROMIUM is None:
        missing.append("a Chromium binary (apt-get install chromium)")
    if not missing:
        return
    why = "needs " + " and ".join(missing)
    if ON_CI:
        pytest.fail(f"{why}: .ci/run installs them, so on CI (CI=true) this is a failure, not a skip")
    pytest.skip(why)


def test_report_renders_offline_in_chromium(tmp_path):
    _require_browser()
    body = {
        "name": "browser-demo",
        "seed": 1,
        "chunk_size": 500,
        "workers": 1,
        "inputs": [str(LF / "alpaca_en_demo.json"), str(LF / "alpaca_zh_demo.json")],
        "steps": [
            {"op": "count_tokens"},
            {"op": "length_filter", "part": "answer", "unit": "words", "min": 5},
            {"op": "cutoff_len", "cutoff_len": 512},
            {"op": "exact_dedup", "part": "prompt"},
            {"op": "split", "fractions": {"train": 0.9, "validation": 0.05, "test": 0.05}},
        ],
        "output": {"path": str(tmp_path / "out")},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    Runner(recipes.load(path)).run()
    html_path, _ = write_report(tmp_path / "out")
    stats = json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1040, "height": 900}, offline=True)
            page = context.new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html_path.resolve().as_uri())
            assert [u for u in requests if not u.startswith("file:")] == []
            assert page.title() == "datamill report: browser-demo"
            for key in ("input", "kept", "dropped", "quarantined"):
                assert page.locator(f'[data-stat="{key}"]').inner_text() == f"{stats[key]:,}"
            charts = page.locator("svg")
            assert charts.count() >= 8
            box = charts.first.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 50  # drawn, not collapsed
            page.locator("details").first.click()  # drop examples open
            assert page.locator("details[open] pre").count() >= 1
            shot = os.environ.get("DATAMILL_REPORT_SCREENSHOT")
            if shot:
                page.locator("details[open] summary").first.click()  # closed, as a reader first sees it
                page.screenshot(path=str(Path(shot)), full_page=True)
        finally:
            browser.close()

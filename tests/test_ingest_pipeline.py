"""Documents as recipe inputs: recipes/pretrain-from-docs.yaml on the real docs folder — every bad file
quarantined with its name, chunks generated and accounted for, provenance kept."""

from __future__ import annotations

import json

from conftest import DATA, ROOT
from test_pipeline import run

from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner


def test_pretrain_from_docs_recipe_on_the_docs_folder(tmp_path):
    r = recipes.load(ROOT / "recipes" / "pretrain-from-docs.yaml", inputs=[str(DATA / "docs")], output=str(tmp_path))
    runner = Runner(r)
    runner.result = runner.run()
    stats = runner.result.stats
    assert stats["balanced"] and stats["generated"] > 0
    assert stats["input"] + stats["generated"] == stats["kept"] + stats["dropped"] + stats["quarantined"]
    quarantined = [json.loads(line) for line in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    names = {q["file"].rsplit("/", 1)[-1] for q in quarantined}
    assert names == {"password.pdf", "copy-protected.pdf", "empty.xlsx", "fake-incomplete-json.txt"}
    assert all(q["file"].rsplit("/", 1)[-1] in q["error"] for q in quarantined)  # each message names its file
    kept = [json.loads(line) for line in (tmp_path / "data-00000.jsonl").read_text().splitlines()]
    text = "\n".join(k["text"] for k in kept)
    assert "LayoutParser" in text and "<script" not in text
    lock = (tmp_path / "recipe.lock.yaml").read_text()
    assert "chunk_text" in lock


def test_provenance_survives_the_pipeline(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"inputs: [{DATA / 'docs' / 'fake-memo.pdf'}, {DATA / 'docs' / 'fake-power-point.pptx'}]\n"
        f"steps: [{{op: chunk_text, size: 64}}]\noutput: {{path: {tmp_path / 'out'}, format: datamill}}\n",
        encoding="utf-8",
    )
    runner = run(recipe)
    kept = [json.loads(line) for line in (tmp_path / "out" / "data-00000.jsonl").read_text().splitlines()]
    assert runner.result.stats["balanced"]
    assert {k["meta"]["doc_type"] for k in kept} == {"pdf", "pptx"}
    assert all("page" in k["meta"] for k in kept if k["meta"]["doc_type"] == "pdf")
    assert all("slide" in k["meta"] for k in kept if k["meta"]["doc_type"] == "pptx")

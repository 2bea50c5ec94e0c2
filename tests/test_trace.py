"""``datamill trace``: real recipes run, then records traced back — kept, dropped, rewritten (before and
after), quarantined, generated (seeds, template, model, round) and missing — plus the lineage the
runner stores and the streaming scan it is read with."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from test_synth_fakes import llm_config, routed
from test_synth_self_instruct import Script, alpaca_instructions, seed_rows
from typer.testing import CliRunner

from datamill.cli import app
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.trace import lineage, lookup

EXAMPLES = ROOT / "examples"


def cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["trace", *map(str, args)], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def trace_json(out: Path, query: str) -> dict:
    code, text = cli(out, query, "--json")
    assert code == 0, text
    return json.loads(text)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def run_recipe(folder: Path, inputs: list, steps: list[dict], **output) -> Path:
    """Write a recipe into ``folder``, run it, return its OUTDIR (``folder/out``)."""
    folder.mkdir(exist_ok=True)
    body = {
        "name": "t",
        "workers": 1,
        "inputs": inputs,
        "steps": steps,
        "output": {"path": str(folder / "out"), **output},
    }
    (folder / "recipe.yaml").write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    Runner(recipes.load(folder / "recipe.yaml")).run()
    return folder / "out"


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory) -> Path:
    """recipes/quickstart.yaml on the shipped samples plus a jsonl (Chinese samples) with a corrupt line,
    an invalid row and, last, a copy of the first English sample."""
    tmp = tmp_path_factory.mktemp("quickstart")
    rows = json.loads((EXAMPLES / "alpaca_zh_sample.json").read_text(encoding="utf-8"))[:5]
    text = [json.dumps(r, ensure_ascii=False) for r in rows]
    text[1] = text[1][:20]  # line 2: cut short
    text[3] = json.dumps({"instruction": "x", "output": 7})  # line 4: output not a string
    text.append(json.dumps(json.loads((EXAMPLES / "alpaca_en_sample.json").read_text(encoding="utf-8"))[0]))
    (tmp / "broken.jsonl").write_text("\n".join(text) + "\n", encoding="utf-8")
    inputs = [str(EXAMPLES / "alpaca_en_sample.json"), str(EXAMPLES / "identity.json"), str(tmp / "broken.jsonl")]
    body = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text(encoding="utf-8"))
    body["inputs"] = inputs
    body["output"]["report"] = False  # the report has a test of its own below
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(body, allow_unicode=True), encoding="utf-8")
    Runner(recipes.load(tmp / "recipe.yaml", output=str(tmp / "out"))).run()
    return tmp / "out"


def test_a_rewritten_kept_record_shows_its_source_and_the_text_before_and_after(quickstart):
    rows = lines(quickstart / "lineage.jsonl")
    data = (quickstart / "data-00000.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(data)  # one lineage row per kept record
    entry = next(r for r in rows if r.get("lineage") and "{{name}}" in r["lineage"][0]["changes"][0]["before"])
    assert entry["meta"]["source"].endswith("identity.json")
    code, text = cli(quickstart, entry["id"])
    assert code == 0, text
    index = entry["meta"]["index"]
    original = json.loads((EXAMPLES / "identity.json").read_text(encoding="utf-8"))[index]
    assert f"kept → data-00000.jsonl row {entry['row'] + 1}" in text
    assert re.search(rf"source  \S+identity\.json (line {entry['meta'].get('line')}|record {index + 1})", text)
    assert "0 fill_placeholders (changed)" in text and "1 length_filter · 2 exact_dedup · 3 shuffle" in text
    before = re.search(r"before  (.*)", text).group(1)
    after = re.search(r"after   (.*)", text).group(1)
    assert "{{name}}" in before and "{{name}}" not in after and "Datamill Assistant" in after
    assert before.strip("…") in original["output"]
    final = json.loads(data[entry["row"]])
    assert after in final["conversations"][-1]["value"]  # the data row as written
    assert f"assistant: {final['conversations'][-1]['value'][:40]}" in text

    report = trace_json(quickstart, entry["id"])
    (rec,) = report["records"]
    assert rec["status"] == "kept" and rec["record"] == final
    assert rec["output"] == {"file": "data-00000.jsonl", "row": entry["row"]}
    (changed,) = [s for s in rec["steps"] if s["did"] == "changed"]
    change = changed["changes"][0]
    assert changed["op"] == "fill_placeholders" and change["field"] == "messages.1"
    # the hunk is exact: put back into the final text at its offset, it gives the original
    restored = final["conversations"][-1]["value"].replace(change["after"], change["before"], 1)
    assert restored == original["output"] and original["output"][change["at"] :].startswith(change["before"])


def test_the_data_rows_stay_as_before_and_the_lineage_moves_out_of_them(quickstart):
    data = lines(quickstart / "data-00000.jsonl")
    assert all(set(row) == {"conversations"} for row in data)
    lock = yaml.safe_load((quickstart / "recipe.lock.yaml").read_text(encoding="utf-8"))
    assert "lineage.jsonl" in lock["outputs"]
    assert lock["resolved"]["output"]["trace"] == "changes"


def test_lineage_is_the_same_bytes_on_one_worker_as_on_all(quickstart, tmp_path):
    r = recipes.load(quickstart.parent / "recipe.yaml", output=str(tmp_path / "one"))
    r.workers = 1
    Runner(r).run()
    for name in ("lineage.jsonl", "dropped.jsonl", "data-00000.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (quickstart / name).read_bytes()


def test_a_dropped_record_and_a_duplicate_name_the_step_the_reason_and_the_record_kept_instead(quickstart):
    dropped = lines(quickstart / "dropped.jsonl")
    short = next(d for d in dropped if d["op"] == "length_filter")
    code, text = cli(quickstart, short["id"])
    assert code == 0, text
    assert f"dropped at step 1 length_filter: {short['reason']}  (dropped.jsonl:" in text
    assert re.search(r"steps   0 fill_placeholders( \(changed\))? · 1 length_filter \(dropped it\)", text)
    assert "exact_dedup" not in text.split("steps", 1)[1].splitlines()[0]  # the steps after the drop are not shown
    source = short["record"]["meta"]["source"]
    assert f"source  {source}" in text

    # the copy of the first English sample: same content, so the same id as the record kept instead
    (dup,) = [d for d in dropped if d["op"] == "exact_dedup"]
    assert dup["record"]["meta"]["source"].endswith("broken.jsonl") and dup["record"]["meta"]["line"] == 6
    report = trace_json(quickstart, dup["id"])
    assert sorted(r["status"] for r in report["records"]) == ["dropped", "kept"]
    kept = next(r for r in report["records"] if r["status"] == "kept")
    assert kept["source"]["source"].endswith("alpaca_en_sample.json") and kept["source"]["index"] == 0
    code, text = cli(quickstart, dup["id"])
    assert re.search(rf"duplicate_of {dup['id']}  kept → data-00000.jsonl row \d+ ← \S+alpaca_en_sample.json", text)


def test_a_kept_record_is_found_by_its_data_row_and_by_its_input_line(quickstart):
    rows = lines(quickstart / "lineage.jsonl")
    entry = next(r for r in rows if r["meta"]["source"].endswith("broken.jsonl"))
    by_row = trace_json(quickstart, f"data-00000.jsonl:{entry['row'] + 1}")
    assert [r["id"] for r in by_row["records"]] == [entry["id"]]
    by_line = trace_json(quickstart, f"{entry['meta']['source']}:{entry['meta']['line']}")
    assert entry["id"] in [r["id"] for r in by_line["records"]]
    short = trace_json(quickstart, f"broken.jsonl:{entry['meta']['line']}")  # a shorter path
    assert entry["id"] in [r["id"] for r in short["records"]]
    assert trace_json(quickstart, entry["id"][:8])["records"][0]["id"] == entry["id"]  # a unique prefix


def test_a_quarantined_row_is_found_by_its_file_and_line(quickstart):
    broken = str(quickstart.parent / "broken.jsonl")
    code, text = cli(quickstart, f"{broken}:2")
    assert code == 0, text
    assert text.startswith(f"quarantined  {broken} line 2  (quarantine.jsonl:")
    assert "error" in text
    report = trace_json(quickstart, f"{broken}:4")
    (rec,) = report["records"]
    assert rec["status"] == "quarantined" and rec["raw"] == {"instruction": "x", "output": 7}
    assert "output" in rec["error"]


def test_a_missing_id_says_so_and_offers_the_close_matches(quickstart):
    real = lines(quickstart / "lineage.jsonl")[0]["id"]
    typo = real[:-1] + ("0" if real[-1] != "0" else "1")
    code, text = cli(quickstart, typo)
    assert code == 1
    assert f"no record with id '{typo}'" in text and "close matches:" in text and real in text
    code, text = cli(quickstart, "zzzzzzzzzzzz")
    assert code == 1 and "no record with id 'zzzzzzzzzzzz'" in text and "close matches" not in text
    code, text = cli(quickstart, f"data-00000.jsonl:{len(lines(quickstart / 'lineage.jsonl')) + 1}")
    assert code == 1 and "data-00000.jsonl of the run" in text and "has no row" in text
    code, text = cli(quickstart, "nowhere.json:3")
    assert code == 1 and "neither a data file nor an input" in text and "identity.json" in text
    code, text = cli(quickstart.parent, "abc")
    assert code == 1 and "no recipe.lock.yaml" in text


def test_a_generated_record_names_its_seeds_template_model_and_round(data_dir, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("\n".join(json.dumps(r) for r in seed_rows(data_dir, 10)) + "\n", encoding="utf-8")
    with routed(Script(alpaca_instructions(data_dir, 40))) as fake:
        llm = llm_config(fake).model_dump(mode="json")
        steps = [{"op": "self_instruct", "target": 4, "llm": llm}, {"op": "normalize_whitespace"}]
        out = run_recipe(tmp_path, [{"path": str(seeds), "format": "self_instruct"}], steps, format="alpaca")
    made = next(r for r in lines(out / "lineage.jsonl") if "synth" in r["meta"])
    synth = made["meta"]["synth"]
    assert made["lineage"][0] == {"step": 0, "op": "self_instruct", "made": True}
    code, text = cli(out, made["id"])
    assert code == 0, text
    assert (
        f"made    method self_instruct · model openai:fake · template {synth['template']} · round {synth['round']}"
        in text
    )
    assert "steps   0 self_instruct (made it) · 1 normalize_whitespace" in text
    for n, seed in enumerate(synth["seed_ids"]):
        line = next(x for x in text.splitlines() if seed in x)
        assert line.startswith(f"  {'seed_ids' if n == 0 else ' ' * 8} {seed}  kept → data-00000.jsonl row")
        assert "seeds.jsonl line" in line
    report = trace_json(out, made["id"])
    assert report["records"][0]["generated"] == synth
    assert set(report["linked"]) >= set(synth["seed_ids"])
    # a seed is named by the records made from it
    seed_report = trace_json(out, synth["seed_ids"][0])
    assert any(r["id"] == made["id"] and "meta.synth.seed_ids" in r["paths"] for r in seed_report["referenced_by"])
    # a rejected candidate: generated, then dropped by the step that made it
    rejected = next(d for d in lines(out / "dropped.jsonl") if d["op"] == "self_instruct")
    code, text = cli(out, rejected["id"])
    assert code == 0 and f"dropped at step 0 self_instruct: {rejected['reason']}" in text and "made    method" in text


def evolve(prompt: str) -> str:
    """The scripted model for evol_instruct: each evolution adds a constraint; answers are plain."""
    if "Rewrite the prompt below" in prompt or "brand-new prompt" in prompt:
        current = prompt.split("Prompt:\n", 1)[1].split("\n\n", 1)[0]
        return current + " Answer in exactly three numbered steps."
    return "First, gather what you need; second, do the work carefully; third, check the result twice."


def test_an_evolved_record_names_its_parent_chain_round_and_evolution(tmp_path):
    """evol_instruct runs on chunks (a generator, not a global step): round 2 descends from round 1."""
    src = tmp_path / "in.json"
    src.write_text((EXAMPLES / "alpaca_en_sample.json").read_text(encoding="utf-8"), encoding="utf-8")
    options = {"rounds": 2, "methods": ["constraints"], "check_gain": False}
    with routed(evolve) as fake:
        steps = [{"op": "limit", "n": 2}, {"op": "evol_instruct", **options, "llm": llm_config(fake).model_dump()}]
        out = run_recipe(tmp_path, [str(src)], steps, format="sharegpt")
    rows = lines(out / "lineage.jsonl")
    second = next(r for r in rows if r["meta"].get("synth", {}).get("round") == 2)
    synth = second["meta"]["synth"]
    first = next(r for r in rows if r["id"] == synth["parent_id"])
    root = next(r for r in rows if r["id"] == synth["root_id"])
    assert first["meta"]["synth"]["round"] == 1 and "source" in root["meta"]
    assert second["lineage"] == [{"step": 1, "op": "evol_instruct", "made": True}]
    code, text = cli(out, second["id"])
    assert code == 0, text
    assert "made    method evol_instruct · model openai:fake · template evol_depth.en · round 2" in text
    assert "evolution constraints" in text
    assert f"parent_id {first['id']}  kept → data-00000.jsonl row {first['row'] + 1}" in text
    source = f"{root['meta']['source']} record {root['meta']['index'] + 1}"
    assert f"root_id {root['id']}  kept → data-00000.jsonl row {root['row'] + 1} ← {source}" in text
    assert "steps   1 evol_instruct (made it) · 2 output" in text
    code, text = cli(out, root["id"])  # the original names its whole family
    assert re.search(rf"{second['id']} kept → .*\[meta\.synth\.root_id\]", text)
    assert re.search(rf"{first['id']} kept → .*\[meta\.synth\.parent_id, meta\.synth\.root_id\]", text)


def test_trace_full_keeps_whole_fields_and_a_datamill_output_keeps_its_meta_clean(tmp_path):
    src = tmp_path / "in.jsonl"
    long = "word " * 400
    rows = [{"text": f"{long}{{{{name}}}} {long}"}, {"text": "no placeholder here, left as it is"}]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    for mode in ("changes", "full"):
        steps = [{"op": "fill_placeholders", "values": {"name": "Ada"}}]
        out = run_recipe(tmp_path / mode, [str(src)], steps, format="datamill", trace=mode)
        data = lines(out / "data-00000.jsonl")
        assert all("lineage" not in row["meta"] for row in data)
        changed, same = lines(out / "lineage.jsonl")
        assert "lineage" not in same
        (change,) = changed["lineage"][0]["changes"]
        if mode == "full":
            assert change == {"field": "text", "before": rows[0]["text"], "after": data[0]["text"]}
        else:
            assert change["before"] == f"{long[-40:]}{{{{name}}}}{f' {long}'[:40]}" and change["at"] == len(long) - 40
            assert change["after"] == f"{long[-40:]}Ada{f' {long}'[:40]}"


def test_hunks_are_minimal_and_long_sides_are_shortened():
    assert lineage.hunk("abc", "abXc") == {"at": 0, "before": "abc", "after": "abXc"}
    before, after = "x" * 100 + "OLD" + "y" * 100, "x" * 100 + "NEW!" + "y" * 100
    h = lineage.hunk(before, after)
    assert h == {"at": 60, "before": "x" * 40 + "OLD" + "y" * 40, "after": "x" * 40 + "NEW!" + "y" * 40}
    assert lineage.hunk("aaaa", "aa") == {"at": 0, "before": "aaaa", "after": "aa"}
    big = lineage.hunk("a" + "b" * 5000, "c" + "d" * 5000)
    assert big["cut"] and len(big["before"]) < 1100 and big["before"].startswith("a") and big["after"].endswith("d")


def test_the_scan_finds_every_matching_line_across_block_boundaries(tmp_path, monkeypatch):
    path = tmp_path / "f.jsonl"
    body = [json.dumps({"id": f"{i:04d}", "pad": "p" * (i % 37)}) for i in range(500)]
    path.write_text("\n".join(body), encoding="utf-8")  # no newline after the last line
    monkeypatch.setattr(lookup, "BLOCK", 64)
    pattern = re.compile(rb'"id":"0\d\d7"')
    want = [(i + 1, line.encode()) for i, line in enumerate(body) if re.search(r'"id":"0\d\d7"', line)]
    assert list(lookup.grep(path, pattern)) == want
    assert lookup.nth_line(path, 0) == body[0].encode() and lookup.nth_line(path, 499) == body[499].encode()
    assert lookup.nth_line(path, 500) is None


def test_ids_the_input_gave_a_shared_prefix_and_quotes_in_an_id(tmp_path):
    src = tmp_path / "in.jsonl"
    ids = ["rec-0001", "rec-0002", 'say "hi"']
    rows = [{"id": i, "meta": {}, "text": f"document number {n}, long enough"} for n, i in enumerate(ids)]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = run_recipe(tmp_path, [{"path": str(src), "format": "datamill"}], [])
    code, text = cli(out, "rec-")
    assert code == 1 and "id prefix 'rec-' fits several records: rec-0001, rec-0002" in text
    assert trace_json(out, "rec-0002")["records"][0]["source"]["line"] == 2
    assert trace_json(out, 'say "hi"')["records"][0]["source"]["line"] == 3
    code, text = cli(out, "rec-0003")
    assert code == 1 and "close matches: rec-0001, rec-0002" in text


def test_the_report_heads_each_drop_example_with_the_trace_command(quickstart):
    from datamill.report import write_report

    write_report(quickstart)
    html = (quickstart / "report.html").read_text(encoding="utf-8")
    short = next(d for d in lines(quickstart / "dropped.jsonl") if d["op"] == "length_filter")
    assert f"{short['id']} ← {short['record']['meta']['source']}" in html
    command = f"datamill trace {quickstart} {short['id']}"
    assert command in html
    code, text = cli(*command.split()[2:])
    assert code == 0 and f"dropped at step 1 length_filter: {short['reason']}" in text

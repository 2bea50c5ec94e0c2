from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The real data the tests read ships with them (sources and licences: tests/data/README.md);
# ../shared/data, next to the project, is only for benchmarks.
DATA = Path(__file__).resolve().parent / "data"
LF = DATA / "llamafactory"
DOCS = DATA / "docs"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def run_judged_predictions(tmp_path: Path, limit: int, judge: dict) -> dict:
    """Self-Instruct's prediction files → ``group_answers`` → the first ``limit`` prompts → ``judge`` (a
    ``judge_pairwise`` step) → judged pairs in TRL form under ``tmp_path/o``; the run's stats."""
    import yaml

    from datamill.pipeline import recipe as recipes
    from datamill.pipeline.runner import Runner

    files = sorted((DATA / "self_instruct").glob("predictions_*.jsonl"))
    body = {
        "name": "judged",
        "workers": 1,
        "inputs": [{"path": str(p), "format": "predictions"} for p in files],
        "steps": [
            {"op": "group_answers"},
            {"op": "limit", "n": limit},
            {"op": "judge_pairwise", **judge},
            {"op": "make_pairs", "strategy": "judged"},
        ],
        "output": {"path": str(tmp_path / "o"), "format": "trl"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    return Runner(recipes.load(tmp_path / "r.yaml")).run().stats


def same_run_without_precompute(tmp_path: Path, monkeypatch, rows: list[dict], steps: list[dict], owner) -> dict:
    """Run ``steps`` on ``rows`` twice: with 2 workers (the global step's per-record work done by the
    workers of the stage before it: ``precompute``), then in one process with ``owner.precompute``
    removed (the step doing it all itself); assert the data, drops and lineage are the same bytes.
    Returns the first run's stats."""
    import json

    import yaml

    from datamill.pipeline import recipe as recipes
    from datamill.pipeline.runner import Runner

    (tmp_path / "in.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")

    def run(name: str, workers: int) -> tuple[dict, dict[str, bytes]]:
        body = {
            "chunk_size": 7,
            "workers": workers,
            "inputs": [str(tmp_path / "in.json")],
            "steps": steps,
            "output": {"path": str(tmp_path / name), "format": "alpaca"},
        }
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
        stats = Runner(recipes.load(tmp_path / f"{name}.yaml")).run().stats
        names = ("data-00000.jsonl", "dropped.jsonl", "lineage.jsonl")
        return stats, {n: (tmp_path / name / n).read_bytes() for n in names}

    stats, files = run("workers", 2)
    with monkeypatch.context() as m:
        m.delattr(owner, "precompute")
        alone_stats, alone = run("alone", 1)
    assert not any(k.endswith(("_by_workers", "_from_workers")) for k in alone_stats["steps"][-1]["counters"])
    assert files == alone
    return stats

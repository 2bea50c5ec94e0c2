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

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

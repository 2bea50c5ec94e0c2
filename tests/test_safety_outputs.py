"""Issue 15, items 1, 4, 6 (workers killed), 7 and 8: datamill never destroys what it did not write,
counts unreadable files as files, survives a worker killed by the system, locks its output folder,
and notices an input edited behind its back."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import datamill
from datamill import ops
from datamill.cli import app
from datamill.errors import DatamillError, FileError
from datamill.io import outputs
from datamill.ops.base import Mapper
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli(*args, cwd: Path | None = None):
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "400", "NO_COLOR": "1"})
    finally:
        os.chdir(old)
    return result.exit_code, ANSI.sub("", result.output), result


def assert_refused(result, output: str, *words: str) -> None:
    assert result.exit_code == 1, output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert "Traceback" not in output and "error" in output.lower()
    for w in words:
        assert w in output, output


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def recipe(tmp_path: Path, inputs, out: Path, steps=None, **extra) -> Path:
    body = {"name": "t", "seed": 1, "inputs": [str(i) for i in inputs], "steps": steps or [],
            "output": {"path": str(out), "format": "alpaca"}, **extra}
    path = tmp_path / f"recipe-{len(list(tmp_path.glob('recipe-*')))}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


def run(path: Path, **kw):
    return Runner(recipes.load(path), **kw).run()


@pytest.fixture
def sample(tmp_path) -> Path:
    src = tmp_path / "in" / "alpaca.json"
    src.parent.mkdir()
    shutil.copy(EXAMPLES / "alpaca_en_sample.json", src)
    return src


# ---- 1. outputs never destroy the user's files ------------------------------------------------------


def test_convert_into_an_existing_folder_refuses_and_keeps_it(sample):
    """Was: the folder (input included) was deleted recursively and the command said ok."""
    folder = sample.parent
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    before = snapshot(folder)
    code, text, result = cli("convert", sample, folder, "--to", "sharegpt")
    assert_refused(result, text, str(folder))
    assert snapshot(folder) == before


def test_convert_into_a_foreign_folder_refuses_and_a_saved_dataset_of_ours_is_replaced(tmp_path, sample):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine", encoding="utf-8")
    code, text, result = cli("convert", sample, foreign, "--to", "alpaca")
    assert_refused(result, text, "did not write")
    assert (foreign / "keep.txt").read_text(encoding="utf-8") == "mine"
    ours = tmp_path / "ds"
    for _ in range(2):  # a saved-datasets folder datamill wrote may be written again
        code, text, _ = cli("convert", sample, ours, "--to", "alpaca")
        assert code == 0, text
    assert (ours / "state.json").exists()


@pytest.fixture
def fake_home(tmp_path, monkeypatch) -> Path:
    """A throwaway home folder: these tests point outputs at "~", which the code before the fix deleted."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "keep").write_text("mine", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.mark.parametrize("target", [".", "~"])
def test_convert_to_the_current_or_home_folder_is_a_clear_error(tmp_path, sample, fake_home, target):
    work = tmp_path / "cwd"
    work.mkdir()
    shutil.copy(sample, work / "x.json")
    code, text, result = cli("convert", "x.json", os.path.expanduser(target), "--to", "sharegpt", cwd=work)
    assert_refused(result, text, "refusing")
    assert (work / "x.json").read_bytes() == sample.read_bytes()
    assert (fake_home / ".config" / "keep").read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize("target", ["/", "/etc", "/usr/lib", "/tmp", "~", "."])
def test_system_home_and_current_folders_are_refused_before_any_write(target, fake_home, tmp_path, monkeypatch):
    """Checked on the guard itself: nothing here may ever reach a writer."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileError, match="refusing"):
        outputs.check_replace(Path(os.path.expanduser(target)), overwrite=True)
    outputs.check_replace(tmp_path / "new-output", overwrite=False)  # an ordinary new path is fine


def test_convert_over_a_foreign_file_needs_overwrite_and_over_its_own_output_does_not(tmp_path, sample):
    out = tmp_path / "o" / "sft.jsonl"
    out.parent.mkdir()
    out.write_text("my own notes\n", encoding="utf-8")
    code, text, result = cli("convert", sample, out, "--to", "sharegpt")
    assert_refused(result, text, "--overwrite")
    assert out.read_text(encoding="utf-8") == "my own notes\n"
    code, text, _ = cli("convert", sample, out, "--to", "sharegpt", "--overwrite")
    assert code == 0, text
    code, text, _ = cli("convert", sample, out, "--to", "alpaca")  # ours now: replaced without a flag
    assert code == 0, text
    with out.open("a", encoding="utf-8") as f:  # edited by the user since: theirs again
        f.write('{"instruction": "added by hand", "output": "x"}\n')
    code, text, result = cli("convert", sample, out, "--to", "alpaca")
    assert_refused(result, text, "changed since")


def test_convert_onto_its_own_input_is_refused(sample):
    code, text, result = cli("convert", sample, sample, "--to", "alpaca", "--overwrite")
    assert_refused(result, text, "input")
    assert sample.read_bytes() == (EXAMPLES / "alpaca_en_sample.json").read_bytes()


def test_ingest_into_a_foreign_folder_refuses_and_keeps_it(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(EXAMPLES / "docs", docs)
    before = snapshot(docs)
    code, text, result = cli("ingest", docs, "-o", docs)
    assert_refused(result, text, "did not write")
    assert snapshot(docs) == before
    code, text, _ = cli("ingest", docs, "-o", tmp_path / "out.jsonl")
    assert code == 0, text


def test_select_into_a_foreign_folder_refuses(sample):
    code, text, result = cli("select", sample, "-n", "3", "-o", sample.parent)
    assert result.exit_code == 1 and "Traceback" not in text
    assert sample.exists()


def test_run_refuses_a_folder_holding_files_it_did_not_write(tmp_path, sample):
    """Was: every data-* in OUTDIR was deleted and README.md / stats.json overwritten."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("data-mine.jsonl", "README.md", "stats.json"):
        (out / name).write_text(f"my {name}", encoding="utf-8")
    before = snapshot(out)
    with pytest.raises(FileError, match="data-mine.jsonl.*--overwrite"):
        run(recipe(tmp_path, [sample], out))
    assert snapshot(out) == before
    result = run(recipe(tmp_path, [sample], out), overwrite=True)
    assert result.stats["kept"] > 0 and not (out / "data-mine.jsonl").exists()


def test_run_replaces_its_own_old_shards_only(tmp_path, sample):
    out = tmp_path / "out"
    three = recipe(tmp_path, [sample], out, output={"path": str(out), "format": "alpaca", "shard_size": 20})
    run(three)
    assert len(list(out.glob("data-*"))) >= 3
    (out / "data-notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FileError, match="data-notes.txt"):
        run(recipe(tmp_path, [sample], out))
    (out / "data-notes.txt").unlink()
    run(recipe(tmp_path, [sample], out))
    assert sorted(p.name for p in out.glob("data-*")) == ["data-00000.jsonl"]


@pytest.mark.parametrize("target", [".", "~"])
def test_run_into_the_current_or_home_folder_is_refused(tmp_path, sample, target, fake_home, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileError, match="refusing"):
        Runner(recipes.load(recipe(tmp_path, [sample], Path(os.path.expanduser(target)).resolve()))).run()


def test_report_and_handoff_do_not_replace_the_users_files(tmp_path, sample):
    out = tmp_path / "out"
    run(recipe(tmp_path, [sample], out))
    (out / "train_trl.py").write_text("# my training script\n", encoding="utf-8")
    code, text, result = cli("handoff", out, "--stage", "sft")
    assert result.exit_code == 1 and "not written by datamill" in text
    assert (out / "train_trl.py").read_text(encoding="utf-8") == "# my training script\n"
    (out / "README.md").write_text("# my notes\n", encoding="utf-8")
    code, text, result = cli("report", out, "--tokenizer", "words")
    assert result.exit_code == 1 and "not written by datamill" in text
    assert (out / "README.md").read_text(encoding="utf-8") == "# my notes\n"


# ---- 4. unreadable files are counted as files, not as one record -------------------------------------


def test_file_level_failures_are_counted_as_files(tmp_path, sample):
    """Was: a file that held no readable record counted as one quarantined "record"."""
    folder = sample.parent
    (folder / "fake.jsonl.gz").write_bytes(b"this is not gzip at all\n" * 10)
    good = (EXAMPLES / "alpaca_en_sample.json").read_bytes()
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = json.loads(good)
    pq.write_table(pa.Table.from_pylist(rows), folder / "cut.parquet")
    data = (folder / "cut.parquet").read_bytes()
    (folder / "cut.parquet").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = run(recipe(tmp_path, [folder], out))
    st = result.stats
    assert st["input"] == len(rows) and st["quarantined"] == 0 and st["kept"] + st["dropped"] == len(rows)
    assert st["files"]["input"] == 3 and st["files"]["unreadable"] == 2
    failed = {Path(f["file"]).name for f in st["files"]["failures"]}
    assert failed == {"fake.jsonl.gz", "cut.parquet"}
    q = [json.loads(x) for x in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {Path(e["file"]).name for e in q if e.get("scope") == "file"} == failed
    code, text, _ = cli("run", recipe(tmp_path, [folder], tmp_path / "out2"))
    assert code == 0 and "2 of 3 input file(s) unreadable" in text, text


# ---- 6. a worker killed by the system ---------------------------------------------------------------


class _KillWorker(Mapper):
    """Test op: SIGKILLs the worker process on the record at index 47 (chunk 4) — once, or every time."""

    name = "test_kill_worker"

    def map(self, record):
        marker = Path(os.environ["DM_TEST_KILL_MARKER"])
        if record.meta.get("index") == 47 and (os.environ.get("DM_TEST_KILL_ALWAYS") or not marker.exists()):
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return record


ops.register(_KillWorker)


def _killer_recipe(tmp_path, sample, out):
    return recipe(tmp_path, [sample], out, steps=[{"op": "test_kill_worker"}], chunk_size=10, workers=2)


def test_a_worker_killed_once_is_retried_and_the_run_matches_an_undisturbed_one(tmp_path, sample, monkeypatch):
    """Was: the run ended with a BrokenProcessPool traceback."""
    monkeypatch.setenv("DM_TEST_KILL_MARKER", str(tmp_path / "killed"))
    (tmp_path / "killed").touch()
    calm = run(_killer_recipe(tmp_path, sample, tmp_path / "calm"))
    (tmp_path / "killed").unlink()
    hit = run(_killer_recipe(tmp_path, sample, tmp_path / "hit"))
    assert (tmp_path / "killed").exists()
    assert hit.stats["kept"] == calm.stats["kept"]
    assert (tmp_path / "hit" / "data-00000.jsonl").read_bytes() == (tmp_path / "calm" / "data-00000.jsonl").read_bytes()


def test_a_worker_that_keeps_dying_stops_the_run_cleanly_and_a_rerun_resumes(tmp_path, sample, monkeypatch):
    monkeypatch.setenv("DM_TEST_KILL_MARKER", str(tmp_path / "killed"))
    monkeypatch.setenv("DM_TEST_KILL_ALWAYS", "1")
    out = tmp_path / "out"
    with pytest.raises(DatamillError, match="worker process died.*rerun"):
        run(_killer_recipe(tmp_path, sample, out))
    assert list((out / ".datamill-work" / "stage-00").glob("chunk-*.stats.json"))  # finished chunks kept
    monkeypatch.delenv("DM_TEST_KILL_ALWAYS")
    result = run(_killer_recipe(tmp_path, sample, out))
    assert result.resumed_chunks > 0 and result.stats["balanced"]


# ---- 7. one run at a time per output folder; checkpoints belong to their run -------------------------


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_first(tmp_path, sample):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import fcntl, os, sys, time\n"
            f"f = open({str(out / '.datamill-run.lock')!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
            "f.seek(0); f.truncate(); f.write(str(os.getpid())); f.flush(); print('locked', flush=True)\n"
            "time.sleep(60)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FileError, match=f"another datamill run \\(pid {holder.pid}\\)"):
            run(recipe(tmp_path, [sample], out))
    finally:
        holder.kill()
        holder.wait()
    assert run(recipe(tmp_path, [sample], out)).stats["balanced"]  # the kernel lock died with its holder


def test_lock_is_exclusive_within_one_process_too(tmp_path, sample):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".datamill-run.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(FileError, match="another datamill run"):
            run(recipe(tmp_path, [sample], out))


def test_a_checkpoint_from_another_run_is_redone_not_trusted(tmp_path, sample, monkeypatch):
    """Was: a work folder poisoned by a concurrent run failed every later rerun with 'accounting broken'."""
    out = tmp_path / "out"
    path = recipe(tmp_path, [sample], out, chunk_size=10, workers=1)
    clean = run(recipe(tmp_path, [sample], tmp_path / "clean", chunk_size=10, workers=1))
    monkeypatch.setenv("DATAMILL_TEST_KILL_AFTER", "3")
    proc = subprocess.run([sys.executable, "-m", "datamill", "run", str(path)], capture_output=True, timeout=300,
                          env={**os.environ})
    assert proc.returncode == -signal.SIGKILL
    monkeypatch.delenv("DATAMILL_TEST_KILL_AFTER")
    stage = out / ".datamill-work" / "stage-00"
    stats = json.loads((stage / "chunk-000000.stats.json").read_text())
    (stage / "chunk-000000.stats.json").write_text(json.dumps({**stats, "run": "another-run", "kept": 999}))
    (stage / "chunk-000000.jsonl").write_text("")  # what another run left there
    result = run(path)
    assert result.stats["balanced"] and result.stats["kept"] == clean.stats["kept"]
    assert (out / "data-00000.jsonl").read_bytes() == (tmp_path / "clean" / "data-00000.jsonl").read_bytes()


# ---- 8. an input edited in place with its size and mtime kept ----------------------------------------


def _edit_keeping_size_and_mtime(path: Path, old: bytes, new: bytes) -> None:
    assert len(old) == len(new)
    st = path.stat()
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # as cp -p, rsync -t and touch -r leave it
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def _big_sample(tmp_path: Path) -> tuple[Path, bytes]:
    """A jsonl over 2 MiB whose edited record sits in the middle (outside the first and last MiB)."""
    rows = json.loads((EXAMPLES / "alpaca_en_sample.json").read_text(encoding="utf-8"))
    lines = [json.dumps({**rows[i % len(rows)], "input": f"copy {i:06d}"}) for i in range(12_000)]
    path = tmp_path / "in" / "big.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > 3 << 20
    return path, b"copy 006000"


def test_a_same_size_same_mtime_edit_is_noticed_by_the_up_to_date_check(tmp_path):
    src, needle = _big_sample(tmp_path)
    path = recipe(tmp_path, [src], tmp_path / "out")
    run(path)
    _edit_keeping_size_and_mtime(src, needle, b"EDIT 006000")
    again = run(path)
    assert not again.up_to_date
    assert b"EDIT 006000" in (tmp_path / "out" / "data-00000.jsonl").read_bytes()


def test_a_same_size_same_mtime_edit_between_kill_and_resume_is_noticed(tmp_path, monkeypatch):
    src, needle = _big_sample(tmp_path)
    path = recipe(tmp_path, [src], tmp_path / "out", chunk_size=2000, workers=1)
    monkeypatch.setenv("DATAMILL_TEST_KILL_AFTER", "4")
    proc = subprocess.run([sys.executable, "-m", "datamill", "run", str(path)], capture_output=True, timeout=300,
                          env={**os.environ})
    assert proc.returncode == -signal.SIGKILL
    monkeypatch.delenv("DATAMILL_TEST_KILL_AFTER")
    _edit_keeping_size_and_mtime(src, needle, b"EDIT 006000")
    result = run(path)
    assert result.resumed_chunks == 0
    assert b"EDIT 006000" in (tmp_path / "out" / "data-00000.jsonl").read_bytes()


def test_manifest_records_only_what_datamill_wrote(tmp_path, sample):
    out = tmp_path / "o" / "a.jsonl"
    datamill.convert(sample, out, "alpaca")
    assert outputs.is_ours(out) and outputs.is_ours(out.parent / "dataset_info.json") is False
    time.sleep(0.01)
    out.write_bytes(out.read_bytes())  # rewritten by hand: mtime moves
    assert not outputs.is_ours(out)
    gz = tmp_path / "o" / "b.jsonl.gz"
    datamill.convert(sample, gz, "alpaca")
    with gzip.open(gz) as f:
        assert f.read()
    assert outputs.is_ours(gz)

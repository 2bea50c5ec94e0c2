"""Model-written code scored by ``rule_score: python_runs`` stays in its sandbox (issue 15, item 13).

Each escape snippet exits 0 only when its escape worked, so ``python_runs`` returning False means it was
stopped; where a blocked attempt could still exit 0 (a write into a private directory) the test checks
the host side instead. With CI=true a missing sandbox fails these tests instead of skipping them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from datamill.errors import DatamillError
from datamill.ops.base import OpContext
from datamill.prefs import rules, sandbox
from datamill.prefs.ranking import RuleScore
from datamill.record import Record


@pytest.fixture
def isolated():
    """The sandbox must work here: a failure on CI, a skip with the reason elsewhere."""
    problem = sandbox.problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI: the python_runs sandbox is missing: {problem}")
    pytest.skip(problem)


@pytest.fixture
def marker():
    """A unique word to find processes by their argv; any left alive are killed afterwards."""
    word = f"datamill-escape-{uuid.uuid4().hex}"
    yield word
    for proc in _processes_with(word):
        proc.kill()


def _processes_with(word: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(word in part for part in proc.info["cmdline"] or ()) and proc.pid != os.getpid():
            found.append(proc)
    return found


def test_model_code_cannot_read_the_parents_environment(isolated):
    """The key is in the scoring process's environment from its start, as an API key would be."""
    secret = f"sk-{uuid.uuid4().hex}"
    escape = f"""
import glob
found = False
for path in glob.glob("/proc/[0-9]*/environ"):
    try:
        found = found or "sk-" + {secret[3:]!r} in open(path, "rb").read().decode("latin-1")
    except OSError:
        pass
assert found
"""
    scorer = f"from datamill.prefs import rules; raise SystemExit(3 if rules.python_runs({escape!r}) else 0)"
    env = {**os.environ, "DATAMILL_TEST_SECRET": secret}
    assert subprocess.run([sys.executable, "-c", scorer], env=env).returncode == 0


def test_model_code_cannot_read_etc_shadow(isolated):
    assert rules.python_runs("assert open('/etc/shadow').read()") is False


def test_model_code_cannot_write_outside_its_private_tmp(isolated, tmp_path, marker):
    outdir = tmp_path / "run-outdir"
    outdir.mkdir()
    targets = [outdir / "escaped.txt", Path.home() / marker, Path(sys.prefix) / marker]
    escape = f"""
import os
for path in {[str(t) for t in targets]!r}:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").write("escaped")
    except OSError:
        pass
"""
    try:
        rules.python_runs(escape)
        assert [t for t in targets if t.exists()] == []
    finally:
        for t in targets:
            t.unlink(missing_ok=True)


def test_root_filesystem_is_read_only_but_tmp_and_cwd_are_writable(isolated, marker):
    probes = [Path(d) / marker for d in ("/", "/usr", "/etc", sys.prefix)]
    code = f"""
for path in {[str(p) for p in probes]!r}:
    try:
        open(path, "w").close()
    except OSError:
        pass
    else:
        raise SystemExit("wrote " + path)
open("/tmp/scratch", "w").write("ok")
open("here.txt", "w").write("ok")
"""
    try:
        assert rules.python_runs(code) is True
    finally:
        for p in probes:
            p.unlink(missing_ok=True)


def test_model_code_cannot_connect_to_loopback(isolated):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    escape = f"""
import socket
socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"escaped")
"""
    try:
        assert rules.python_runs(escape) is False
        with pytest.raises(BlockingIOError):  # a connection, had one been made, would be queued by now
            server.accept()
    finally:
        server.close()


def test_a_detached_daemon_does_not_outlive_the_call(isolated, marker):
    escape = f"""
import os, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
    os._exit(0)
os.wait()
"""
    assert rules.python_runs(escape) is True
    assert _processes_with(marker) == []


def test_timeout_kills_the_whole_process_tree(isolated, marker):
    code = f"""
import os, subprocess, sys
quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
subprocess.Popen([sys.executable, "-c", "while True: pass", {marker!r}], **quiet)
while True:
    pass
"""
    assert rules.python_runs(code, timeout=2.0) is False
    assert _processes_with(marker) == []
    assert rules.python_runs("import time; time.sleep(600)", timeout=1.0) is False  # asleep: no CPU limit hit


def test_fork_bomb_hits_the_process_limit(isolated):
    code = """
import os, time
n = 0
try:
    while n < 300:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError:
    pass
assert n < 300, n
"""
    assert rules.python_runs(code) is True


def test_correct_code_passes_and_failing_asserts_fail(isolated):
    assert rules.python_runs("def add(a, b):\n    return a + b", "assert add(2, 3) == 5") is True
    assert rules.python_runs("def add(a, b):\n    return a - b", "assert add(2, 3) == 5") is False
    assert rules.python_runs("def add(a, b) return a + b") is False
    assert rules.python_runs("import json, re, math, collections, subprocess; print(json.dumps([math.pi]))") is True
    rec = Record(meta={"tests": "assert add(2, 3) == 5"})
    good = {"text": "```python\ndef add(a, b):\n    return a + b\n```"}
    assert rules.get_rule("python_runs")(rec, good) == 10.0


def test_without_a_sandbox_model_code_is_refused_unless_allowed(monkeypatch):
    monkeypatch.setattr(sandbox, "problem", lambda: "bubblewrap (bwrap) is not installed")
    with pytest.raises(DatamillError, match="unsafe_no_sandbox"):
        rules.python_runs("pass")
    assert rules.python_runs("assert 1 + 1 == 2", unsafe_no_sandbox=True) is True
    assert rules.python_runs("assert 1 + 1 == 3", unsafe_no_sandbox=True) is False
    assert rules.python_runs("while True: pass", timeout=1.0, unsafe_no_sandbox=True) is False

    rec = Record(meta={"candidates": [{"text": "```python\nassert True\n```"}]})
    with pytest.raises(DatamillError, match="unsafe_no_sandbox"):
        RuleScore(RuleScore.Config(rule="python_runs"), OpContext(1, 0, None)).map(rec)
    op = RuleScore(RuleScore.Config(rule="python_runs", unsafe_no_sandbox=True), OpContext(1, 0, None))
    assert op.map(rec).meta["candidates"][0]["score"] == 10.0


def test_unsafe_no_sandbox_is_only_for_python_runs():
    with pytest.raises(ValueError, match="python_runs"):
        RuleScore.Config(rule="math", unsafe_no_sandbox=True)

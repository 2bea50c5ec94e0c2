"""Code corpora (issue 19, item 3): real code no one here wrote — part of rich (MIT) as installed, with its
LICENSE, plus a C header and a Cython file from numpy and a JavaScript worker from urllib3 — in a git
working tree built here with a remote in .git/config, a .gitignore, a planted fake AWS key pair, a
private key block, a minified JS file and binary files. Read as a folder and as a tarball; languages,
licence, repository, the redaction and the filter's drop reasons checked; a tarball with members that
climb out with '..' or are absolute is refused member by member."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy
import pytest
import rich
import urllib3
import yaml

from datamill.clean.code_filters import CodeQualityFilter, RedactSecrets
from datamill.clean.secrets import redact
from datamill.dataset import Quarantined
from datamill.ingest.code import CodeStats, Ignores, language, read_code, remote_url
from datamill.ingest.command import ingest
from datamill.ops.base import OpContext
from datamill.pipeline import recipe as recipes
from datamill.pipeline.runner import Runner
from datamill.record import Record

ROOT = Path(__file__).resolve().parents[1]
RICH = Path(rich.__file__).parent
RICH_FILES = ["__init__.py", "console.py", "text.py", "table.py", "markup.py", "color.py", "_loop.py", "box.py"]
AWS_ID, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented fakes
PEM = (  # a made-up key body: only its shape matters
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)


def _licence_file(dist: str) -> Path:
    files = metadata.distribution(dist).files or []
    path = next(f for f in files if f.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")))
    return Path(metadata.distribution(dist).locate_file(path))


def _minified_js() -> str:
    """A minified bundle: urllib3's real worker script with its newlines and indentation squeezed out."""
    src = (Path(urllib3.__file__).parent / "contrib/emscripten/emscripten_fetch_worker.js").read_text()
    return " ".join(line.strip() for line in src.splitlines() if line.strip() and not line.strip().startswith("//"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "rich"
    (root / "rich").mkdir(parents=True)
    for name in RICH_FILES:
        shutil.copy(RICH / name, root / "rich" / name)
    shutil.copy(_licence_file("rich"), root / "LICENSE")
    shutil.copy(Path(urllib3.__file__).parent / "contrib/emscripten/emscripten_fetch_worker.js", root / "worker.js")
    include = Path(numpy.get_include()) / "numpy"
    shutil.copy(include / "arrayobject.h", root / "arrayobject.h")
    shutil.copy(Path(numpy.__file__).parent / "__init__.pxd", root / "numpy.pxd")
    (root / "static").mkdir()
    (root / "static" / "bundle.min.js").write_text(_minified_js())
    (root / "scripts").mkdir()
    (root / "scripts" / "release").write_text("#!/usr/bin/env bash\nset -e\npython -m build\n")
    (root / "config").mkdir()
    (root / "config" / "settings.py").write_text(
        '"""Deployment settings."""\n'
        "import os\n\n"
        f'AWS_ACCESS_KEY_ID = "{AWS_ID}"\n'
        f'aws_secret_access_key = "{AWS_SECRET}"\n'
        'DATABASE_PASSWORD = os.environ["DATABASE_PASSWORD"]  # read at run time: not a secret\n'
        f'SIGNING_KEY = """{PEM}"""\n'
        'REGION = "eu-west-1"\n'
    )
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / "empty.py").write_text("")
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    (root / "debug.log").write_text("ignored by .gitignore\n")
    (root / "build").mkdir()
    (root / "build" / "generated.py").write_text("x = 1\n")
    git = root / ".git"
    (git / "objects").mkdir(parents=True)
    (git / "objects" / "pack.bin").write_bytes(b"\x00git object")
    (git / "config").write_text(
        '[core]\n\trepositoryformatversion = 0\n[remote "origin"]\n'
        "\turl = https://bot:ghp_notarealtoken@github.com/Textualize/rich.git\n"
        "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
    )
    return root


def _by_path(items) -> dict[str, Record]:
    return {r.meta["path"]: r for r in items if isinstance(r, Record)}


def test_folder_records_languages_licence_repository_and_what_is_left_out(repo):
    stats = CodeStats()
    items = list(read_code(repo, stats))
    assert not [i for i in items if isinstance(i, Quarantined)]
    recs = _by_path(items)
    expected = {f"rich/{name}" for name in RICH_FILES} | {
        "LICENSE", "worker.js", "arrayobject.h", "numpy.pxd", "static/bundle.min.js", "scripts/release",
        "config/settings.py", ".gitignore",
    }  # fmt: skip
    assert set(recs) == expected
    langs = {p: r.meta["language"] for p, r in recs.items()}
    assert all(langs[f"rich/{name}"] == "python" for name in RICH_FILES)
    assert (langs["worker.js"], langs["static/bundle.min.js"]) == ("javascript", "javascript")
    assert (langs["arrayobject.h"], langs["numpy.pxd"], langs["scripts/release"]) == ("c", "cython", "shell")
    console = recs["rich/console.py"]
    assert console.text == (RICH / "console.py").read_text(encoding="utf-8")
    assert console.meta["licence"] == "MIT"  # rich's LICENSE, by licenseclassifier
    assert console.meta["repository"] == "https://github.com/Textualize/rich.git"  # the token is not kept
    assert console.meta["size"] == (RICH / "console.py").stat().st_size
    assert console.meta["lines"] == len(console.text.splitlines())
    assert stats.skipped == {
        "binary (NUL bytes)": 1, "empty": 1, "ignored (.gitignore)": 2, ".git folder": 1,
    }  # fmt: skip
    assert stats.files == len(recs) and stats.languages["python"] == len(RICH_FILES) + 1


def test_a_tarball_reads_the_same_as_the_folder(repo, tmp_path):
    tgz = tmp_path / "rich.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(repo, arcname="rich-15.0.0")  # one top folder, as GitHub and `git archive` make them
    folder_stats, tar_stats = CodeStats(), CodeStats()
    folder = _by_path(read_code(repo, folder_stats))
    tarred = _by_path(read_code(tgz, tar_stats))
    assert set(tarred) == set(folder)
    for path, rec in folder.items():
        got = tarred[path].meta
        assert tarred[path].text == rec.text
        assert {k: got[k] for k in ("language", "licence", "repository", "size", "lines")} == {
            k: rec.meta[k] for k in ("language", "licence", "repository", "size", "lines")
        }
    assert tar_stats.files == folder_stats.files and tar_stats.languages == folder_stats.languages
    assert tar_stats.skipped["binary (NUL bytes)"] == 1 and tar_stats.skipped["ignored (.gitignore)"] == 2


def test_path_traversal_in_a_tarball_is_refused_and_nothing_lands_on_disk(tmp_path):
    tar = tmp_path / "evil.tar"
    with tarfile.open(tar, "w") as tf:
        for name, body in [
            ("ok/main.py", b"print('hello')\n"),
            ("setup.py", b"import setuptools\n"),
            ("../escaped.py", b"import os\n"),
            ("/etc/cron.d/evil.sh", b"#!/bin/sh\nrm -rf /\n"),
            ("ok/../../also_escaped.py", b"x = 1\n"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
        link = tarfile.TarInfo("ok/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    stats = CodeStats()
    items = list(read_code(tar, stats))
    refused = sorted(i.where for i in items if isinstance(i, Quarantined))
    assert refused == [f"{tar}@../escaped.py", f"{tar}@/etc/cron.d/evil.sh", f"{tar}@ok/../../also_escaped.py"]
    assert all("unsafe path" in i.error for i in items if isinstance(i, Quarantined))
    assert [r.meta["path"] for r in items if isinstance(r, Record)] == ["ok/main.py", "setup.py"]
    assert stats.skipped == {"link": 1}
    assert not (tmp_path.parent / "escaped.py").exists() and not (tmp_path / "escaped.py").exists()


def test_a_truncated_tarball_keeps_the_files_before_the_break(repo, tmp_path):
    tgz = tmp_path / "rich.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(repo, arcname="rich")
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(tgz.read_bytes()[: tgz.stat().st_size // 2])
    items = list(read_code(cut))
    good = [i for i in items if isinstance(i, Record)]
    bad = [i for i in items if isinstance(i, Quarantined)]
    assert good and len(bad) == 1 and "unreadable tarball from here on" in bad[0].error


def test_language_detection_and_git_helpers():
    cases = {"a.py": "python", "lib.rs": "rust", "Main.java": "java", "x.ts": "ts", "style.css": "css", "a.h": "c"}
    cases |= {"a.cpp": "c++", "Makefile": "makefile", "Dockerfile": "dockerfile", "q.sql": "sql", "x.nim": "nim"}
    assert {name: language(name) for name in cases} == cases  # .nim: identify knows none, pygments does
    assert language("run", b"#!/usr/bin/env python3\nprint(1)\n") == "python"
    assert language("notes.unknownext") is None
    config = '[remote "upstream"]\n\turl = git@github.com:a/b.git\n[remote "origin"]\n\turl = https://x:y@h.org/r.git\n'
    assert remote_url(config) == "https://h.org/r.git"
    ignores = Ignores()
    ignores.add("", "*.log\n!keep.log\nbuild/\n")
    ignores.add("src", "generated_*.py\n")
    paths = ("a.log", "keep.log", "build/x.py", "src/generated_a.py", "generated_a.py")
    assert [ignores.ignored(p) for p in paths] == [True, False, True, True, False]


def test_secrets_redacted_by_kind_and_the_minified_file_dropped(repo, tmp_path):
    recs = _by_path(read_code(repo))
    ctx = OpContext(seed=0, step=0, workdir=tmp_path)
    redactor = RedactSecrets(RedactSecrets.Config(), ctx)
    settings = redactor.map(recs["config/settings.py"])
    assert AWS_ID not in settings.text and AWS_SECRET not in settings.text and "PRIVATE KEY" not in settings.text
    assert 'AWS_ACCESS_KEY_ID = "<SECRET:AWS_ACCESS_KEY>"' in settings.text
    assert 'SIGNING_KEY = """<SECRET:PRIVATE_KEY>"""' in settings.text
    assert 'os.environ["DATABASE_PASSWORD"]' in settings.text and 'REGION = "eu-west-1"' in settings.text
    assert settings.meta["secrets"] == {"AWS_ACCESS_KEY": 2, "PRIVATE_KEY": 1}
    assert redactor.take_counters() == {"redacted AWS_ACCESS_KEY": 2, "redacted PRIVATE_KEY": 1}
    for name in RICH_FILES:  # real code without secrets comes through untouched
        assert redactor.map(recs[f"rich/{name}"]).text == (RICH / name).read_text(encoding="utf-8")

    counts: Counter[str] = Counter()
    text = redact('db_password = "correct-horse-battery"\ntoken = "${API_TOKEN}"\n', "app.py", counts)
    assert text == 'db_password = "<SECRET:SECRET_KEYWORD>"\ntoken = "${API_TOKEN}"\n'
    assert counts == {"SECRET_KEYWORD": 1}

    quality = CodeQualityFilter(CodeQualityFilter.Config(), ctx)
    reasons = {path: quality.reason(rec) for path, rec in recs.items()}
    assert reasons["static/bundle.min.js"] == "code: max line length"
    assert reasons["worker.js"] is None and all(reasons[f"rich/{n}"] is None for n in RICH_FILES)
    generated = Record(text="# Code generated by protoc-gen-go. DO NOT EDIT.\npackage pb\n", meta={"language": "go"})
    assert quality.reason(generated) == "code: autogenerated"
    wide = Record(text="\n".join(["x = '" + "a" * 150 + "'"] * 20), meta={"language": "python"})
    assert quality.reason(wide) == "code: mean line length"
    symbols = Record(text="\n".join(["#" * 40] * 30), meta={"language": "python"})
    assert quality.reason(symbols) == "code: alphanumeric share"
    big_json = Record(text=json.dumps({"k": list(range(3000))}), meta={"language": "json"})
    assert quality.reason(big_json) == "code: data file size"
    assert quality.reason(Record(text='<?xml version="1.0"?>\n<a/>\n', meta={"language": "xml"})) == "code: XML file"


def test_code_recipe_and_ingest_command(repo, tmp_path):
    out = tmp_path / "out"
    body = {
        "inputs": [{"path": str(repo), "format": "code"}],
        "steps": [
            {"op": "code_quality_filter"},
            {"op": "redact_secrets"},
            {"op": "exact_dedup", "lowercase": False},
            {"op": "minhash_dedup", "threshold": 0.7},
        ],
        "output": {"path": str(out), "format": "datamill"},
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    stats = Runner(recipes.load(tmp_path / "r.yaml")).run().stats
    assert stats["input"] == 16 and stats["quarantined"] == 0
    dropped = {
        json.loads(line)["record"]["meta"]["path"]: json.loads(line)["reason"]
        for line in (out / "dropped.jsonl").read_text().splitlines()
    }
    assert dropped["static/bundle.min.js"] == "code: max line length"
    assert stats["input"] == stats["kept"] + len(dropped)
    rows = [json.loads(line) for line in (out / "data-00000.jsonl").read_text().splitlines()]
    text = "\n".join(r["text"] for r in rows)
    assert AWS_ID not in text and "BEGIN RSA PRIVATE KEY" not in text and "<SECRET:AWS_ACCESS_KEY>" in text
    assert {r["meta"]["path"] for r in rows} >= {"rich/console.py", "worker.js", "config/settings.py"}

    summary = ingest([repo], tmp_path / "code.jsonl", code=True)
    assert summary.written == 16 and summary.skipped["binary (NUL bytes)"] == 1


def test_shipped_code_recipe_runs_on_its_urllib3_sample(tmp_path):
    result = Runner(recipes.load(ROOT / "recipes" / "code-corpus.yaml", output=str(tmp_path / "o"))).run()
    stats = result.stats
    assert stats["input"] == 17 and stats["quarantined"] == 0
    quality = next(s for s in stats["steps"] if s["op"] == "code_quality_filter")
    assert quality["dropped"] == {"code: autogenerated": 1, "code: unknown language": 1}  # _version.py, py.typed
    rows = [json.loads(line) for line in (tmp_path / "o" / "data-00000.jsonl").read_text().splitlines()]
    assert len(rows) == stats["kept"] == 15

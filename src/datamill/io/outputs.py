"""Where datamill may write: it replaces only what it can prove it wrote.

Every file or directory datamill publishes is recorded in a hidden manifest in the same folder
(``.datamill-manifest.json``: name → size and mtime as datamill left it). A destination that exists
and is not in that manifest as datamill left it — the user's own file, a folder of inputs, an output
edited since — is refused unless the caller passes ``overwrite``. The filesystem root, the home
folder, the current folder and its parents, and system folders are refused always.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datamill.errors import FileError
from datamill.io.atomic import temporary_beside, write_text_atomic

MANIFEST = ".datamill-manifest.json"
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr")
TOP_FOLDERS = ("/home", "/root", "/tmp", "/var", "/opt", "/srv", "/mnt", "/media", "/run")


def refuse_unsafe(path: Path) -> None:
    """Refuse destinations whose loss no output is worth: /, ~, the current folder and its parents,
    system folders (and top-level folders such as /tmp themselves)."""
    target = path.expanduser().resolve()
    home = Path.home().resolve()
    cwd = Path.cwd().resolve()
    why = None
    if target == Path(target.anchor):
        why = "the filesystem root"
    elif target == home:
        why = "your home folder"
    elif target == cwd or target in cwd.parents:
        why = "the current folder" if target == cwd else "a parent of the current folder"
    elif str(target) in TOP_FOLDERS or any(str(target) == t or str(target).startswith(t + "/") for t in SYSTEM_TREES):
        why = "a system folder"
    if why:
        raise FileError(f"{path}: refusing to write an output over {why}; name a new file or folder inside it")


def _entry(path: Path) -> dict[str, Any]:
    st = path.stat()
    if path.is_dir():
        return {"dir": True, "mtime_ns": st.st_mtime_ns}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_ours(path: Path) -> bool:
    """Whether ``path`` is exactly as datamill left it (recorded in its folder's manifest, unchanged since)."""
    recorded = _read_manifest(path.parent).get(path.name)
    try:
        return recorded is not None and _entry(path) == recorded
    except OSError:
        return False


def check_replace(path: Path, overwrite: bool = False) -> None:
    """Raise ``FileError`` unless writing ``path`` destroys nothing datamill did not write."""
    refuse_unsafe(path)
    if not os.path.lexists(path) or overwrite or is_ours(path):
        return
    if path.is_dir():
        raise FileError(
            f"{path}: an existing folder that datamill did not write. A path without a file extension is written "
            f"as a saved Hugging Face dataset folder, which would replace it; name a file inside it "
            f"(e.g. {path / 'data.jsonl'}), a new folder, or pass --overwrite"
        )
    raise FileError(
        f"{path}: exists and was not written by datamill (or was changed since); refusing to replace it. "
        "Choose a new name, or pass --overwrite"
    )


@contextlib.contextmanager
def _locked_manifest(folder: Path) -> Iterator[dict[str, Any]]:
    """The folder's manifest, read and written back under an exclusive lock (several writers may finish at once)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)  # the folder itself is the lock: no lock file left beside the outputs
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        manifest = _read_manifest(folder)
        yield manifest
        write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    finally:
        os.close(fd)


def _by_folder(paths: tuple[Path, ...]) -> dict[Path, list[Path]]:
    out: dict[Path, list[Path]] = {}
    for p in paths:
        out.setdefault(p.parent, []).append(p)
    return out


def record(*paths: Path) -> None:
    """Note that datamill has just written these paths."""
    for folder, members in _by_folder(paths).items():
        with _locked_manifest(folder) as manifest:
            manifest.update({p.name: _entry(p) for p in members})


def forget(*paths: Path) -> None:
    """Drop the entries of outputs datamill has removed."""
    for folder, members in _by_folder(paths).items():
        with _locked_manifest(folder) as manifest:
            for p in members:
                manifest.pop(p.name, None)


def publish(tmp: Path, path: Path) -> None:
    """Move a finished temporary file into place and record it as datamill's."""
    os.replace(tmp, path)
    record(path)


def write_text(path: Path, text: str, overwrite: bool = False) -> None:
    """Write a small text output atomically, refusing to replace a file datamill did not write."""
    check_replace(path, overwrite)
    tmp = temporary_beside(path)
    tmp.write_text(text, encoding="utf-8")
    publish(tmp, path)

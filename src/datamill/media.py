"""Media paths that still open from where a dataset is written.

Datasets name images, videos and audios by paths relative to the dataset file; LLaMA-Factory
resolves them against its ``dataset_dir`` (the output's folder, where dataset_info.json lies). A
record keeps the paths as read, so writing it elsewhere would break them: ``MediaPlacer`` rewrites
each local path relative to the output's folder (or absolute), and can copy the files beside the
output, into ``<name>_media/``, published atomically like any other output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
from pathlib import Path

from datamill.errors import CannotExpress, DatamillError
from datamill.io import outputs
from datamill.record import MEDIA, Record

MODES = ("relative", "absolute", "keep")
_REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|data:)")  # URLs and inline data are not files


def source_folder(source: object) -> str | None:
    """The absolute folder a record's relative media paths are relative to: its input file's folder
    (None when the record did not come from a file, e.g. built in Python or ingested)."""
    if not isinstance(source, str) or not os.path.exists(source):
        return None
    return os.path.dirname(os.path.abspath(source))


def resolve(path: str, folder: str | None) -> str | None:
    """The absolute path of a local media file, or None for a URL or a relative path without a folder."""
    if _REMOTE.match(path):
        return None
    if os.path.isabs(path):
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(folder, path)) if folder is not None else None


class MediaPlacer:
    """Rewrites (and optionally copies) the media of records written to ``out``."""

    def __init__(
        self, out: Path, mode: str = "relative", copy: bool = False, name: str | None = None, overwrite: bool = False
    ):
        if mode not in MODES:
            raise DatamillError(f"media paths must be one of {', '.join(MODES)}, not '{mode}'")
        if copy and mode == "keep":
            raise DatamillError("copying media rewrites their paths; use it with relative or absolute media paths")
        self.mode = mode
        self.base = os.path.abspath(out.parent)
        self.folders: dict[object, str | None] = {}  # meta source → its folder
        self.folder: Path | None = None
        self.copied: dict[str, str] = {}  # absolute source file → name under the copy folder
        self.names: set[str] = set()
        self.overwrite = overwrite
        if copy:
            self.folder = out.parent / f"{name or out.stem}_media"
            outputs.check_replace(self.folder, overwrite)
            self.tmp = self.folder.with_name(f".{self.folder.name}.tmp-{os.getpid()}")
            shutil.rmtree(self.tmp, ignore_errors=True)

    def place(self, rec: Record) -> Record:
        """``rec`` with its media paths rewritten (a copy; the caller's record is left alone). It keeps
        the id of the content as read, so the same record has the same id wherever it is written."""
        source = rec.meta.get("source")
        if source not in self.folders:
            self.folders[source] = source_folder(source)
        folder = self.folders[source]
        changes = {key: [self._path(p, folder) for p in getattr(rec, key)] for key in MEDIA if getattr(rec, key)}
        return dataclasses.replace(rec, id=rec.id or rec.compute_id(), **changes)

    def _path(self, path: str, folder: str | None) -> str:
        target = resolve(path, folder)
        if target is None:
            return path
        if self.folder is not None:
            target = os.path.join(os.path.abspath(self.folder), self._copy(path, target, folder))
        return os.path.relpath(target, self.base) if self.mode == "relative" else target

    def _copy(self, path: str, src: str, folder: str | None) -> str:
        """Copy one media file once; its name under the copy folder keeps its path relative to the
        input (files outside the input's folder, or clashing names, go under ``external/<hash>/``)."""
        if src in self.copied:
            return self.copied[src]
        if not os.path.isfile(src):
            raise CannotExpress(f"media file '{path}' does not exist ({src}), so it cannot be copied")
        rel = os.path.relpath(src, folder) if folder is not None else ""
        if not rel or rel.startswith("..") or rel in self.names:
            digest = hashlib.blake2b(os.path.dirname(src).encode(), digest_size=4).hexdigest()
            rel = os.path.join("external", digest, os.path.basename(src))
        dest = self.tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        self.copied[src] = rel
        self.names.add(rel)
        return rel

    def commit(self) -> None:
        """Move the copies into place (only when some record had media) and record them as datamill's."""
        if self.folder is None or not self.copied:
            return
        outputs.check_replace(self.folder, self.overwrite)
        if self.folder.is_dir() and not self.folder.is_symlink():
            shutil.rmtree(self.folder)
        os.replace(self.tmp, self.folder)
        outputs.record(self.folder)

    def abort(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

"""Files written whole or not at all: into a hidden temporary file beside the target, moved into place
only once complete, so a crash (or ``kill -9``) never leaves half a file under the real name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def temporary_beside(path: Path) -> Path:
    """The hidden temporary name for ``path`` (per process, so two writers never share one)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextmanager
def open_atomic(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` when the block ends without an error (else it is removed)."""
    tmp = temporary_beside(path)
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with open_atomic(path) as f:
        f.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))

"""Images (scans, photos of text) → OCR text with RapidOCR (ONNX models shipped inside the PyPI
package, offline, zh + en). Optional: without ``rapidocr-onnxruntime`` an image is reported as
unreadable, not silently skipped."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from datamill.ingest.base import DocumentError, Section, Source, join_lines


@cache
def _engine() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise DocumentError("OCR needs the optional package rapidocr-onnxruntime (pip install it)") from None
    return RapidOCR()


def read(src: Source) -> Iterator[Section]:
    result, _ = _engine()(src.data)
    lines = [text for _box, text, score in result or [] if float(score) >= 0.5]
    if lines:
        yield Section(join_lines(lines), {"ocr": "rapidocr"})

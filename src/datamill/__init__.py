"""datamill: build LLM training data — one record model, every trainer's format, small operators."""

from datamill.convert import Summary, convert
from datamill.dataset import DatasetWriter, Quarantined, read, write
from datamill.record import Message, Record

__version__ = "0.1.0"
__all__ = ["DatasetWriter", "Message", "Quarantined", "Record", "Summary", "convert", "read", "write"]

"""Errors that speak to users: what went wrong and where, never a traceback for bad input."""


class DatamillError(Exception):
    """Base class for every error datamill reports to a user."""


class RecordError(DatamillError, ValueError):
    """One input record cannot be read (bad JSON, missing field, wrong type): quarantine it."""


class CannotExpress(DatamillError, ValueError):
    """The target format cannot hold this record (e.g. tool turns in alpaca): quarantine it."""


class FileError(DatamillError):
    """A whole file cannot be read (truncated JSON array, unknown type): stop with exit code 1."""

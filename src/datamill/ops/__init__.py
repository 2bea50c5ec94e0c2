"""The operator registry. Every module in this package registers its operators with ``@register``;
adding an operator is one small module plus its test."""

from __future__ import annotations

import importlib
import pkgutil

from datamill.errors import DatamillError
from datamill.ops.base import Drop, Filter, Global, Mapper, Op, OpConfig, OpContext

OPS: dict[str, type[Op]] = {}


def register(cls: type[Op]) -> type[Op]:
    if cls.name in OPS and OPS[cls.name] is not cls:
        raise DatamillError(f"two operators are named '{cls.name}'")
    OPS[cls.name] = cls
    return cls


def get(name: str) -> type[Op]:
    load_all()
    try:
        return OPS[name]
    except KeyError:
        raise DatamillError(f"unknown operator '{name}'") from None


def load_all() -> dict[str, type[Op]]:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base":
            importlib.import_module(f"{__name__}.{mod.name}")
    return OPS


__all__ = ["OPS", "Drop", "Filter", "Global", "Mapper", "Op", "OpConfig", "OpContext", "get", "load_all", "register"]

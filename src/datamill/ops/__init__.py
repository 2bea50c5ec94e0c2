"""The operator registry. An operator lives in the package of the capability it belongs to (its
logic beside it) and registers itself with ``@register``; ``MODULES`` names every operator module,
by capability, in one place — adding an operator is one module listed here plus its test.

This package keeps the operator kinds (``base``), the registry and the generic steps that belong
to no capability (limit, sample, shuffle, set_system, fill_placeholders)."""

from __future__ import annotations

import importlib

from datamill.errors import DatamillError
from datamill.ops.base import Filter, Global, Mapper, Op, OpConfig, OpContext

OPS: dict[str, type[Op]] = {}

MODULES: dict[str, list[str]] = {  # capability → its operator modules (under datamill.)
    "ops": ["ops.limit", "ops.sample", "ops.shuffle", "ops.system", "ops.placeholders"],
    "ingest": ["ingest.chunk_text"],
    "clean": [
        "clean.mappers",
        "clean.pii",
        "clean.sft_filters",
        "clean.pretrain_filters",
        "clean.langid",
        "clean.url_filter",
        "clean.code_filters",
        "clean.length",
        "clean.model_scores",
        "clean.quality_classifier_op",
    ],
    "dedup": ["dedup.exact", "dedup.minhash_dedup", "dedup.semantic", "dedup.decontaminate"],
    "select": ["select.choose", "select.mix", "select.split", "select.groups", "select.tokens"],
    "synth": [
        "synth.self_instruct",
        "synth.evol_instruct",
        "synth.backtranslate",
        "synth.doc_qa",
        "synth.flan_templates",
        "synth.multi_turn",
        "synth.paraphrase",
        "synth.add_constraints",
    ],
    "prefs": ["prefs.answers", "prefs.ranking", "prefs.training_pairs"],
    "verify": ["verify.rejection", "verify.difficulty"],
}


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
    for modules in MODULES.values():
        for module in modules:
            importlib.import_module(f"datamill.{module}")
    return OPS


def capability(cls: type[Op]) -> str:
    """The capability an operator belongs to: the key of ``MODULES`` that lists its module."""
    module = cls.__module__.removeprefix("datamill.")
    return next((cap for cap, modules in MODULES.items() if module in modules), "other")


__all__ = [
    "MODULES",
    "OPS",
    "Filter",
    "Global",
    "Mapper",
    "Op",
    "OpConfig",
    "OpContext",
    "capability",
    "get",
    "load_all",
    "register",
]

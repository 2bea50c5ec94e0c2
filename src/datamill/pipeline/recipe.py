"""Recipes: YAML (loaded safely) describing inputs, steps and the output. ``load`` checks the whole
recipe before any work and reports every problem at once with its YAML line: unknown operators,
unknown or mistyped options, missing inputs, bad ``${ENV}`` references.

``${VAR}`` / ``${VAR:-default}`` in any string is replaced from the environment; the lock file keeps
the ``${VAR}`` form so secrets are never written or printed.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from datamill import formats, ingest, ops
from datamill.errors import DatamillError, FileError
from datamill.io.readers import container_of
from datamill.ops.base import OpConfig

ENV = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


class RecipeError(DatamillError):
    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s) in the recipe:\n{listing}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputModel(_Strict):
    path: str
    format: str | None = None
    encoding: str | None = None
    optional: bool = False  # skip (with a warning) instead of failing when nothing matches


class StepModel(BaseModel):
    model_config = ConfigDict(extra="allow")
    op: str


class OutputModel(_Strict):
    path: str = "out"
    format: str = "datamill"
    container: Literal["jsonl", "json", "parquet", "csv"] = "jsonl"
    shard_size: int | None = Field(default=None, ge=1)
    name: str | None = None
    split_key: str = "split"  # records with this meta field (the split op's) go to data-<split>-NNNNN files
    report: bool = False  # also write report.html and README.md (dataset card) at the end of the run


class RecipeModel(_Strict):
    name: str = "recipe"
    description: str = ""
    seed: int = 0
    executor: Literal["local", "ray"] = "local"
    workers: int | None = Field(default=None, ge=1)
    chunk_size: int = Field(default=10_000, ge=1)
    inputs: list[str | InputModel]
    steps: list[StepModel] = []
    output: OutputModel = OutputModel()
    llm: dict[str, Any] = Field(default_factory=dict, description="LLM settings shared by every LLM step")


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str | None = None
    encoding: str | None = None


@dataclass
class Step:
    index: int
    op: str
    options: dict[str, Any]
    config: OpConfig
    kind: str


@dataclass
class Recipe:
    name: str
    seed: int
    executor: str
    workers: int
    chunk_size: int
    inputs: list[InputFile]
    steps: list[Step]
    output: OutputModel
    source: str
    raw: dict[str, Any] = field(default_factory=dict)  # as written, ${VAR} unexpanded: for the lock
    skipped: list[str] = field(default_factory=list)  # optional inputs that matched nothing


def _line_map(text: str) -> dict[tuple, int]:
    """YAML path (keys and list indexes) → 1-based line, for error messages."""
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*path, key.value)] = key.start_mark.line + 1
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _line(lines: dict[tuple, int], path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _substitute(value: Any, missing: set[str]) -> Any:
    if isinstance(value, str):

        def repl(m: re.Match) -> str:
            if m.group(1) in os.environ:
                return os.environ[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            missing.add(m.group(1))
            return ""

        return ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, missing) for v in value]
    return value


def load(path: str | Path, inputs: list[str] | None = None, output: str | None = None) -> Recipe:
    """Parse and fully validate a recipe. ``inputs``/``output`` (CLI flags, relative to the current
    directory) replace the recipe's own."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise FileError(f"{path}: cannot read the recipe: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text)
        lines = _line_map(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise RecipeError(str(path), [f"{where}not valid YAML: {getattr(e, 'problem', e)}"]) from None
    if not isinstance(raw, dict):
        raise RecipeError(str(path), ["line 1: the recipe must be a mapping with inputs, steps and output"])
    return parse(raw, lines, path, inputs, output)


def parse(
    raw: dict[str, Any],
    lines: dict[tuple, int],
    path: Path,
    inputs: list[str] | None = None,
    output: str | None = None,
) -> Recipe:
    problems: list[str] = []
    missing: set[str] = set()
    data = _substitute(raw, missing)
    for var in sorted(missing):
        problems.append(f"environment variable ${{{var}}} is not set (and has no :-default)")
    if inputs:
        data["inputs"] = [str(Path(i).resolve()) for i in inputs]
    if output:
        data.setdefault("output", {})
        data["output"] = {**(data["output"] or {}), "path": str(Path(output).resolve())}
    try:
        model = RecipeModel.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(err["loc"])
            loc = tuple(x for x in loc if not (isinstance(x, str) and x in ("str", "InputModel")))
            problems.append(f"line {_line(lines, loc)}: {'.'.join(map(str, loc)) or 'recipe'}: {err['msg']}")
        raise RecipeError(str(path), problems) from None
    base = path.parent
    skipped: list[str] = []
    files = _resolve_inputs(model, base, lines, problems, skipped)
    steps = _resolve_steps(model, lines, problems)
    if model.output.format not in formats.FORMATS:
        problems.append(
            f"line {_line(lines, ('output', 'format'))}: output.format '{model.output.format}' is not one of "
            f"{', '.join(formats.FORMATS)}"
        )
    if not files:
        problems.append(f"line {_line(lines, ('inputs',))}: no input file found")
    if problems:
        raise RecipeError(str(path), problems)
    out_path = Path(model.output.path)
    model.output.path = str(out_path if out_path.is_absolute() else (base / out_path).resolve())
    return Recipe(
        name=model.name,
        seed=model.seed,
        executor=model.executor,
        workers=model.workers or os.cpu_count() or 1,
        chunk_size=model.chunk_size,
        inputs=files,
        steps=steps,
        output=model.output,
        source=str(path),
        raw=raw,
        skipped=skipped,
    )


def _resolve_inputs(
    model: RecipeModel, base: Path, lines: dict[tuple, int], problems: list[str], skipped: list[str]
) -> list[InputFile]:
    files: list[InputFile] = []
    for i, item in enumerate(model.inputs):
        spec = item if isinstance(item, InputModel) else InputModel(path=item)
        where = f"line {_line(lines, ('inputs', i))}"
        if spec.format is not None and spec.format not in (*formats.FORMATS, "document"):
            known = ", ".join((*formats.FORMATS, "document"))
            problems.append(f"{where}: input format '{spec.format}' is not one of {known}")
        pattern = spec.path if Path(spec.path).is_absolute() else str(base / spec.path)
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        found = [p.resolve() for m in matches for p in _expand(Path(m))]
        if not found and spec.optional:
            skipped.append(spec.path)
        elif not found:
            problems.append(f"{where}: input '{spec.path}' matches no readable file")
        files += [InputFile(p, spec.format, spec.encoding) for p in found]
    return files


def _expand(path: Path) -> list[Path]:
    """A file, a saved HF dataset directory, or every dataset file and document (PDF, DOCX, HTML …,
    read by ``datamill.ingest``) under a directory."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
        return [path]
    out = []
    for p in sorted(path.rglob("*")):
        if not p.is_file() or p.name.startswith(".") or p.name == "dataset_info.json":
            continue
        if ingest.is_pipeline_document(p):
            out.append(p)
            continue
        try:
            container_of(p)
        except FileError:
            continue
        out.append(p)
    return out


def _resolve_steps(model: RecipeModel, lines: dict[tuple, int], problems: list[str]) -> list[Step]:
    registry = ops.load_all()
    steps: list[Step] = []
    for i, step in enumerate(model.steps):
        options = dict(step.model_extra or {})
        cls = registry.get(step.op)
        if cls is not None and model.llm and "llm" in cls.Config.model_fields:
            options["llm"] = {**model.llm, **(options.get("llm") or {})}  # the step's own settings win
        if cls is None:
            close = [n for n in registry if n[:3] == step.op[:3]]
            hint = f" (did you mean {', '.join(close)}?)" if close else f"; see `datamill ops` ({len(registry)} ops)"
            problems.append(f"line {_line(lines, ('steps', i, 'op'))}: unknown operator '{step.op}'{hint}")
            continue
        try:
            config = cls.Config.model_validate(options)
        except ValidationError as e:
            for err in e.errors():
                loc = tuple(err["loc"])
                problems.append(
                    f"line {_line(lines, ('steps', i, *loc[:1]))}: {step.op}: option "
                    f"'{'.'.join(map(str, loc)) or step.op}': {err['msg']}"
                )
            continue
        steps.append(Step(i, step.op, options, config, cls.kind))
    return steps

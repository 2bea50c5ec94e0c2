"""Recipes: YAML (loaded safely) describing inputs, steps and the output. ``load`` checks the whole
recipe before any work and reports every problem at once with its YAML line: unknown operators,
unknown or mistyped options, missing inputs, bad ``${ENV}`` references.

``${VAR}`` / ``${VAR:-default}`` in any string is replaced from the environment; every value taken
from it is remembered (``Recipe.from_env``) and put back as ``${VAR}`` by ``Recipe.scrub`` wherever the
recipe is written or printed (the lock file, error messages), so secrets never are.

YAML aliases are bounded: the document is composed first (an alias is a shared node there, so
composing costs what the text does) and refused when its aliases would expand it past
``MAX_YAML_NODES`` or make it contain itself, before any Python object is built.
"""

from __future__ import annotations

import fnmatch
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
MAX_YAML_NODES = 100_000  # a real recipe has a few hundred; a 400-byte "billion laughs" has 387 million
SCRUB_SUBSTRING_MIN = 6  # shorter env values (a worker count, a flag) are put back only where they are a whole string


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
    options: dict[str, Any] = {}  # for stackexchange / latex / reddit inputs: their reader's options


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
    media_paths: Literal["relative", "absolute", "keep"] = "relative"  # image/video/audio paths, as they open
    trace: Literal["changes", "full"] = "changes"  # what lineage.jsonl keeps of a rewritten field (datamill trace)


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
    # run by `datamill run` after the pipeline, on its output (datamill.train.blocks; docs/train.md)
    train: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None


@dataclass(frozen=True)
class InputFile:
    path: Path
    format: str | None = None
    encoding: str | None = None
    options: dict[str, Any] = field(default_factory=dict, hash=False)  # a source reader's (ingest.source_reader)


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
    skipped: list[str] = field(default_factory=list)  # optional inputs that matched nothing (as written)
    # files and directories under the inputs that cannot be read: {"file": path, "error": reason}, for the
    # runner to quarantine as file-level entries (the run goes on without them)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    from_env: dict[str, str] = field(default_factory=dict)  # each value taken from the environment → "${VAR}"
    train: dict[str, Any] | None = None  # the train: / eval: blocks, run on the output after the pipeline
    eval: dict[str, Any] | None = None

    def scrub(self, value: Any) -> Any:
        """``value`` (a string, or dicts and lists of them) with every value that came from ``${VAR}`` put
        back as ``${VAR}``: for anything written or printed."""
        return scrub(value, self.from_env)


def scrub(value: Any, from_env: dict[str, str]) -> Any:
    if isinstance(value, str):
        if value in from_env:
            return from_env[value]
        for secret in sorted(from_env, key=len, reverse=True):  # a value inside a longer one: the longer first
            if len(secret) >= SCRUB_SUBSTRING_MIN:
                value = value.replace(secret, from_env[secret])
        return value
    if isinstance(value, dict):
        return {k: scrub(v, from_env) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, from_env) for v in value]
    return value


class _Refused(Exception):
    def __init__(self, node: yaml.Node, problem: str):
        self.problem = f"line {node.start_mark.line + 1}: {problem}"


def _check_aliases(root: yaml.Node) -> None:
    """Count the nodes the document has once its aliases are expanded, each shared node once (its size
    is remembered), and refuse at the first node that takes the count past ``MAX_YAML_NODES`` — the
    line that multiplies — or that contains itself."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _Refused(node, "an alias (*name) refers to the structure it sits in; a recipe cannot hold a loop")
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        open_nodes.add(key)
        total = 1 + sum(size(child) for child in children)
        open_nodes.discard(key)
        if total > MAX_YAML_NODES:
            raise _Refused(
                node, f"aliases (*name) expand the recipe past {MAX_YAML_NODES:,} values; write them out instead"
            )
        sizes[key] = total
        return total

    size(root)


def _line_map(root: yaml.Node | None) -> dict[tuple, int]:
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

    if root is not None:
        walk(root, ())
    return lines


def _line(lines: dict[tuple, int], path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def _substitute(value: Any, missing: set[str], from_env: dict[str, str]) -> Any:
    """``value`` with ``${VAR}`` replaced; records each value taken from the environment in ``from_env``."""
    if isinstance(value, str):

        def repl(m: re.Match) -> str:
            if m.group(1) in os.environ:
                if os.environ[m.group(1)]:
                    from_env.setdefault(os.environ[m.group(1)], m.group(0))
                return os.environ[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            missing.add(m.group(1))
            return ""

        return ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, missing, from_env) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, missing, from_env) for v in value]
    return value


def load(path: str | Path, inputs: list[str] | None = None, output: str | None = None) -> Recipe:
    """Parse and fully validate a recipe. ``inputs``/``output`` (CLI flags, relative to the current
    directory) replace the recipe's own."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise FileError(f"{path}: cannot read the recipe: {e.strerror}") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_aliases(root)
        raw = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise RecipeError(str(path), [f"{where}not valid YAML: {getattr(e, 'problem', e)}"]) from None
    except _Refused as e:
        raise RecipeError(str(path), [e.problem]) from None
    except RecursionError:
        raise RecipeError(str(path), ["the YAML is nested too deeply to be a recipe"]) from None
    finally:
        loader.dispose()
    lines = _line_map(root)
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
    from_env: dict[str, str] = {}
    data = _substitute(raw, missing, from_env)
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
        raise RecipeError(str(path), scrub(problems, from_env)) from None
    base = path.parent
    skipped: list[str] = []
    unreadable: list[dict[str, str]] = []
    files = _resolve_inputs(model, base, lines, problems, skipped, unreadable)
    steps = _resolve_steps(model, lines, problems)
    if model.output.format not in formats.FORMATS:
        problems.append(
            f"line {_line(lines, ('output', 'format'))}: output.format '{model.output.format}' is not one of "
            f"{', '.join(formats.FORMATS)}"
        )
    elif model.output.container == "csv" and formats.get(model.output.format).nested:
        nested = formats.get(model.output.format).nested
        problems.append(
            f"line {_line(lines, ('output', 'container'))}: output.format {model.output.format} keeps '{nested}' "
            "as a list in every row, which a .csv cell cannot carry for a trainer; use container jsonl, json "
            "or parquet"
        )
    if model.train is not None or model.eval is not None:
        from datamill.train.blocks import problems as train_problems

        problems += [f"line {_line(lines, loc)}: {message}" for loc, message in train_problems(model.train, model.eval)]
    if not files:
        why = "".join(f"; {u['file']}: {u['error']}" for u in unreadable)
        problems.append(f"line {_line(lines, ('inputs',))}: no readable file among the inputs{why}")
    if problems:
        raise RecipeError(str(path), scrub(problems, from_env))
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
        skipped=scrub(skipped, from_env),
        unreadable=unreadable,
        from_env=from_env,
        train=model.train,
        eval=model.eval,
    )


def _resolve_inputs(
    model: RecipeModel,
    base: Path,
    lines: dict[tuple, int],
    problems: list[str],
    skipped: list[str],
    unreadable: list[dict[str, str]],
) -> list[InputFile]:
    files: list[InputFile] = []
    for i, item in enumerate(model.inputs):
        spec = item if isinstance(item, InputModel) else InputModel(path=item)
        where = f"line {_line(lines, ('inputs', i))}"
        known_formats = (*formats.FORMATS, "document", "code", *ingest.SOURCE_FORMATS)
        if spec.format is not None and spec.format not in known_formats:
            known = ", ".join(known_formats)
            problems.append(f"{where}: input format '{spec.format}' is not one of {known}")
        pattern = spec.path if Path(spec.path).is_absolute() else str(base / spec.path)
        bad: list[tuple[Path, str]] = []
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            bad += _unlisted(pattern)
        else:
            matches = [pattern]
        found = []
        for m in matches:  # a code tree (folder or tarball) is one input, read by datamill.ingest.code
            one = spec.format in ("code", "latex") and Path(m).exists()  # a paper's folder is one input too
            ok, failed = ([Path(m)], []) if one else _expand(Path(m))
            found += [p.resolve() for p in ok]
            bad += failed
        for p, reason in bad:
            entry = {"file": str(p), "error": reason}
            if entry not in unreadable:  # one report per file, however many inputs name it
                unreadable.append(entry)
        if not found and not bad and spec.optional:
            skipped.append(spec.path)
        elif not found and not bad:
            problems.append(f"{where}: input '{spec.path}' matches no readable file")
        if spec.options:
            problems += [f"{where}: {e}" for e in ingest.source_option_problems(found, spec.format, spec.options)]
        files += [InputFile(p, spec.format, spec.encoding, spec.options) for p in found]
    return files


def _expand(path: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """A file, a saved HF dataset directory, or every dataset file and document (PDF, DOCX, HTML …,
    read by ``datamill.ingest``) under a directory — and, apart, what cannot be read (a file that
    does not open, a directory that cannot be listed, a broken link) with the reason, so the run can
    report it instead of missing it in silence or stopping at it."""
    if path.is_file():
        problem = _cannot_open(path)
        return ([], [(path, problem)]) if problem else ([path], [])
    if not path.is_dir():
        return [], []
    if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
        return [path], []
    files, problems = ingest.walk(path)
    out = []
    for p in files:
        if not _is_input(p):
            continue
        problem = _cannot_open(p)
        if problem:
            problems.append((p, problem))
        else:
            out.append(p)
    return out, sorted((p, why) for p, why in problems if p.is_dir() or _is_input(p))


def _is_input(p: Path) -> bool:
    if p.name.startswith(".") or p.name == "dataset_info.json":
        return False
    if ingest.is_pipeline_document(p):
        return True
    try:
        container_of(p)
    except FileError:
        return False
    return True


def _cannot_open(path: Path) -> str | None:
    try:
        with open(path, "rb"):
            return None
    except OSError as e:
        return f"cannot read: {e.strerror or e}"


def _unlisted(pattern: str) -> list[tuple[Path, str]]:
    """The directories a glob pattern had to list but could not (``glob`` passes over them without a
    word): followed part by part like ``glob`` does — hidden names skipped, ``**`` any depth."""
    parts = Path(pattern).parts
    start = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    level = [Path(*parts[:start])]
    problems: list[tuple[Path, str]] = []

    def subdirs(d: Path) -> list[Path]:
        try:
            with os.scandir(d) as entries:
                return sorted(Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir())
        except NotADirectoryError:
            return []
        except OSError as e:
            problems.append((d, f"cannot list the directory: {e.strerror or e}"))
            return []

    for part in parts[start:]:
        if part == "**":
            seen: set[Path] = set()
            todo, level = list(level), []
            while todo:
                d = todo.pop()
                if d.resolve() not in seen:  # a symlink loop is walked once
                    seen.add(d.resolve())
                    level.append(d)
                    todo += subdirs(d)
        elif glob.has_magic(part):
            level = [p for d in level for p in subdirs(d) if fnmatch.fnmatchcase(p.name, part)]
        else:
            for d in level:
                subdirs(d)  # only to find the directories that cannot be listed
            level = [d / part for d in level if (d / part).is_dir()]
    return sorted(set(problems))


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

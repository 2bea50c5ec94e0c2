"""lm-evaluation-harness (PyPI ``lm_eval``) on benchmarks kept on disk: task YAMLs in a folder (``include``)
whose data are local files — ``dataset_path: json`` (or csv, parquet, text, arrow) with
``dataset_kwargs.data_files``, or ``dataset_path`` a local dataset folder — run through lm-eval's ``hf`` model on
the base and, with an adapter, on the base + adapter (its ``peft=``), into eval.json's ``lm_eval``.

Nothing is fetched: only the include folders are indexed (not lm-eval's own Hub-backed tasks), and a task
whose data is not local is refused before any model loads. A relative data file is the task YAML's (its
folder), else the current folder's, as ``datasets`` would read it."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from datamill.errors import DatamillError

LOCAL_BUILDERS = {"json", "csv", "parquet", "text", "arrow"}


def _lm_eval():
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
        from lm_eval.tasks._index import Kind
        from lm_eval.tasks._yaml_loader import load_yaml
    except ImportError as e:
        raise DatamillError(
            f"--lm-eval needs lm-evaluation-harness ({e}); install the train extra: pip install -e '.[train]'"
        ) from None
    return lm_eval, TaskManager, Kind, load_yaml


def _local_files(task: str, yaml_path: Path, files: Any) -> Any:
    """``data_files`` (a path, a list, or split → path(s)) with every path made absolute; missing ones refused."""
    if isinstance(files, dict):
        return {split: _local_files(task, yaml_path, f) for split, f in files.items()}
    if isinstance(files, list):
        return [_local_files(task, yaml_path, f) for f in files]
    path = Path(str(files)).expanduser()
    for candidate in (path,) if path.is_absolute() else (yaml_path.parent / path, Path.cwd() / path):
        if candidate.exists():
            return str(candidate.resolve())
    raise DatamillError(f"lm-eval task {task} ({yaml_path}): data file {files} not found (relative: to the YAML)")


def task_configs(names: Sequence[str], include: Sequence[str | Path]) -> tuple[Any, list[dict[str, Any]]]:
    """(lm-eval's TaskManager over the include folders, each task's full config with local data files)."""
    _, TaskManager, Kind, load_yaml = _lm_eval()
    if not include:
        raise DatamillError("--lm-eval runs task YAMLs kept on disk: give their folder with --lm-eval-include DIR")
    for folder in include:
        if not Path(folder).is_dir():
            raise DatamillError(f"--lm-eval-include {folder}: not a folder")
    manager = TaskManager(include_path=[str(f) for f in include], include_defaults=False)
    configs = []
    for name in names:
        entry = manager.task_index.get(name)
        if entry is None:
            known = ", ".join(sorted(manager.all_subtasks)) or "none"
            raise DatamillError(f"lm-eval task {name}: not in {', '.join(map(str, include))} (tasks there: {known})")
        if entry.kind is not Kind.TASK or entry.yaml_path is None:
            raise DatamillError(f"lm-eval {name}: a {entry.kind.name.lower()}, not a task YAML; name its tasks")
        config = load_yaml(entry.yaml_path)
        source = str(config.get("dataset_path", ""))
        kwargs = dict(config.get("dataset_kwargs") or {})
        if source in LOCAL_BUILDERS and kwargs.get("data_files"):
            kwargs["data_files"] = _local_files(name, entry.yaml_path, kwargs["data_files"])
        elif source and (entry.yaml_path.parent / source).is_dir():
            config["dataset_path"] = str((entry.yaml_path.parent / source).resolve())
        elif not (source and Path(source).expanduser().is_dir()):
            raise DatamillError(
                f"lm-eval task {name} ({entry.yaml_path}): dataset_path {source or '(none)'} is not local; datamill "
                "reads no Hub dataset: use dataset_path: json with dataset_kwargs: {data_files: {test: FILE}}"
            )
        configs.append({**config, "dataset_kwargs": kwargs})
    return manager, configs


def _scores(results: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """lm-eval's ``metric,filter`` keys as ``metric`` (filter ``none``) or ``metric (filter)``: values, stderrs."""
    values, errors = {}, {}
    for key, value in results.items():
        if "," not in key or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        metric, filt = key.split(",", 1)
        target = errors if metric.endswith("_stderr") else values
        metric = metric.removesuffix("_stderr")
        target[metric if filt == "none" else f"{metric} ({filt})"] = round(float(value), 6)
    return values, errors


def run(
    names: Sequence[str],
    include: Sequence[str | Path],
    prepared: tuple[Any, list[dict[str, Any]]],
    models: Sequence[tuple[str, dict[str, Any]]],
    *,
    limit: int | None,
    batch_size: int,
) -> dict[str, Any]:
    """Every task (``prepared`` by ``task_configs``, checked before any model loads) on every (role, lm-eval
    ``hf`` model args) of ``models`` — ``base`` and ``tuned`` — merged per task: ``tasks[name][role][metric]``,
    its ``stderr``, items and which way is better."""
    lm_eval, *_ = _lm_eval()
    manager, configs = prepared
    report: dict[str, Any] = {
        "version": metadata.version("lm_eval"),
        "include": [str(Path(f).resolve()) for f in include],
        "limit": limit,
        "models": {role: {k: v for k, v in args.items() if k in ("pretrained", "peft")} for role, args in models},
        "tasks": {name: {} for name in names},
    }
    started = time.monotonic()
    for role, args in models:
        try:
            out = lm_eval.simple_evaluate(
                model="hf",
                model_args=args,
                tasks=configs,
                task_manager=manager,
                batch_size=batch_size,
                limit=limit,
                log_samples=False,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise DatamillError(f"lm-eval on the {role} model: {type(e).__name__}: {e}") from None
        for name in names:
            task = report["tasks"][name]
            task[role], task.setdefault("stderr", {})[role] = _scores(out["results"].get(name, {}))
            task["items"] = out.get("n-samples", {}).get(name, {}).get("effective")
            task["higher_is_better"] = out.get("higher_is_better", {}).get(name, {})
    report["seconds"] = round(time.monotonic() - started, 2)
    return report

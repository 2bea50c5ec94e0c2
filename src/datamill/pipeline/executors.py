"""Executors run chunk tasks: in this process (1 worker), on a local process pool (all cores), or
as Ray tasks on a cluster. Each keeps a bounded number of tasks in flight so memory stays flat,
and yields results as tasks finish. Chunk outputs are files, so completion order does not matter."""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from datamill.errors import DatamillError


def make(kind: str, workers: int, ray_address: str | None = None) -> Executor:
    if kind == "ray":
        return RayExecutor(workers, ray_address)
    return LocalExecutor(workers)


class Executor:
    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release workers."""


class LocalExecutor(Executor):
    def __init__(self, workers: int):
        self.workers = workers
        self.pool: cf.ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        if self.workers <= 1:
            for task in tasks:
                yield fn(task)
            return
        if self.pool is None:
            self.pool = cf.ProcessPoolExecutor(self.workers, initializer=_die_with_parent)
        pending: set[cf.Future] = set()
        for task in tasks:
            pending.add(self.pool.submit(fn, task))
            if len(pending) >= 2 * self.workers:
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                yield from (f.result() for f in done)
        for f in cf.as_completed(pending):
            yield f.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def _die_with_parent() -> None:
    """Worker processes end when the runner dies, even by SIGKILL (Linux), so a killed run leaves
    no orphans holding its files or terminal."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


PR_SET_PDEATHSIG = 1


class RayExecutor(Executor):
    """Ray tasks over chunks; workers must see the same filesystem (a shared path on a cluster)."""

    def __init__(self, workers: int, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise DatamillError("the ray executor needs `pip install 'datamill[ray]'`") from None
        self.ray = ray
        self.workers = workers
        self.started = False
        if not ray.is_initialized():
            ray.init(
                address=address,
                num_cpus=None if address else workers,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            self.started = True

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        remote = self.ray.remote(fn)
        pending = []
        for task in tasks:
            pending.append(remote.remote(task))
            if len(pending) >= 2 * self.workers:
                done, pending = self.ray.wait(pending, num_returns=1)
                yield from self.ray.get(done)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            yield from self.ray.get(done)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

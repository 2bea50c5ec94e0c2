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
from concurrent.futures.process import BrokenProcessPool
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
    """A process pool. A worker killed from outside (the OOM killer, a signal) breaks the whole pool:
    the pool is started afresh and the unfinished tasks resubmitted, up to ``RESTARTS`` times; after
    that the run stops with a message (finished chunks are on disk, so a rerun resumes)."""

    RESTARTS = 2

    def __init__(self, workers: int):
        self.workers = workers
        self.pool: cf.ProcessPoolExecutor | None = None
        self.restarts = 0

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        if self.workers <= 1:
            for task in tasks:
                yield fn(task)
            return
        pending: dict[cf.Future, Any] = {}
        for task in tasks:
            self._submit(fn, task, pending)
            if len(pending) >= 2 * self.workers:
                yield from self._collect(fn, pending)
        while pending:
            yield from self._collect(fn, pending)

    def _submit(self, fn: Callable[[Any], Any], task: Any, pending: dict[cf.Future, Any]) -> None:
        if self.pool is None:
            self.pool = cf.ProcessPoolExecutor(self.workers, initializer=_start_worker, initargs=(self.workers,))
        try:
            pending[self.pool.submit(fn, task)] = task
        except BrokenProcessPool:  # the pool died before we noticed it in a result
            self._restart(fn, pending, [task])

    def _collect(self, fn: Callable[[Any], Any], pending: dict[cf.Future, Any]) -> Iterator[Any]:
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        broken = []
        for f in done:
            task = pending.pop(f)
            try:
                result = f.result()
            except BrokenProcessPool:
                broken.append(task)
                continue
            yield result
        if broken:
            self._restart(fn, pending, broken)

    def _restart(self, fn: Callable[[Any], Any], pending: dict[cf.Future, Any], broken: list[Any]) -> None:
        """Resubmit every task the dead pool held (its other futures fail too) to a new pool."""
        self.restarts += 1
        lost = broken + list(pending.values())
        pending.clear()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        if self.restarts > self.RESTARTS:
            raise DatamillError(
                f"a worker process died {self.restarts} times (killed by the system — out of memory? — or by a "
                "signal); the chunks finished so far are saved: free memory or use fewer --workers, then rerun "
                "the same command to resume"
            )
        for task in lost:
            self._submit(fn, task, pending)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def _start_worker(workers: int) -> None:
    _die_with_parent()
    _share_cores(workers)


def _share_cores(workers: int) -> None:
    """A worker's share of the cores for torch's own threads (MiniLM embeddings in a worker), so the
    workers do not each start one thread per core. torch already imported by the parent gets one: its
    OpenMP threads did not survive the fork, and a parallel region in the child would wait for them
    forever."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    else:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


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

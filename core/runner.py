"""The one place that owns Dask: scheduler choice, partitioning, progress and retries.

Stages hand `map_partitions` a list of small picklable work items and a function that processes one partition
(writing its own files atomically) and returns small metadata; results come back in input order. Tasks must be
idempotent (skip finished work), which is what makes retries and resubmission after a lost worker safe.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RunnerConfig:
    """``scheduler``: None for the local scheduler or the address of a running Dask scheduler (``tcp://host:port``).

    Locally, ``workers`` threads (``local="threads"``: no start-up, but the Python parts of the work share one GIL)
    or processes (``local="processes"``: started once per `Runner` by ``start_method``; `vton prepare` uses them, 1.3x
    the threads' throughput on 2 cores); ``workers=1`` runs everything in this thread.
    """
    workers: int = 1
    scheduler: str | None = None
    local: str = "threads"
    partition_size: int = 64
    retries: int = 3
    progress: bool = True
    start_method: str | None = None  # local processes: None is forkserver where the platform has it, else spawn


class _Batch:
    """A partition, opaque to dask's argument traversal (which would walk a list of dataclasses field by field)."""
    __slots__ = ("items",)

    def __init__(self, items: list) -> None:
        self.items = items

    def __repr__(self) -> str:
        return f"_Batch({self.items!r})"


def _call(fn: Callable[..., list[R]], batch: _Batch, *args: Any) -> list[R]:
    return fn(batch.items, *args)


def _partitions(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def map_partitions(fn: Callable[..., list[R]], items: Sequence[T], config: RunnerConfig, *args: Any) -> list[R]:
    """``fn(partition, *args)`` over partitions of ``items``; the concatenated results in input order."""
    with Runner(config) as runner:
        return runner.map(fn, items, *args)


class Runner:
    """Runs several `map_partitions` stages on one set of local worker processes, started once.

    The stages of one pipeline (prepare's ingest, then its placing) share the pool, so worker start-up is paid once;
    a pool whose worker died is replaced for the retry.
    """

    def __init__(self, config: RunnerConfig, preload: str | None = None) -> None:
        """``preload``: the module of the stages' functions; given, local worker processes start at ``__enter__``,
        while the caller still prepares the first stage's work."""
        self.config = config
        self.preload = preload
        self._pool: Executor | None = None
        self._starter: threading.Thread | None = None

    def __enter__(self) -> Runner:
        if self.preload and _local_processes(self.config):
            # The workers boot (an interpreter, the stage's imports) while this thread imports dask and builds tasks.
            self._starter = threading.Thread(target=self._start_quietly, args=(self.preload,), daemon=True)
            self._starter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._started()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, fn: Callable[..., list[R]], items: Sequence[T], *args: Any) -> list[R]:
        """``fn(partition, *args)`` over partitions of ``items``; the concatenated results in input order."""
        import dask

        if not items:
            return []
        parts = _partitions(items, max(1, self.config.partition_size))
        call = dask.delayed(_call, pure=True)
        # Keys from a hash of the arguments' repr (dask's own tokenizing is slow on thousands of small objects):
        # the same work gets the same key, different runs on one cluster do not clash.
        salt = repr(args).encode()
        keys = [f"{fn.__name__}-{hashlib.sha1(salt + repr(part).encode()).hexdigest()}" for part in parts]
        tasks = [call(fn, _Batch(part), *args, dask_key_name=key) for part, key in zip(parts, keys)]
        if self.config.scheduler:
            results = _run_distributed(tasks, self.config)
        else:
            results = self._run_local(tasks, fn.__module__)
        return [r for part in results for r in part]

    def _run_local(self, tasks: list, module: str) -> list:
        import dask
        from dask.base import named_schedulers
        from dask.diagnostics import ProgressBar

        config = self.config
        if config.local not in ("threads", "processes"):
            raise ValueError(f"local scheduler must be 'threads' or 'processes', got {config.local!r}")
        name = "sync" if config.workers <= 1 else config.local
        processes = _local_processes(config)
        for attempt in range(config.retries + 1 if processes else 1):
            # The scheduler function itself, not its name: a name makes dask import distributed (a quarter of a
            # second of start-up) to look for a default client first.
            options: dict[str, Any] = {"scheduler": named_schedulers[name]}
            if name != "sync":
                options["num_workers"] = config.workers
            if processes:
                self._started()
                options.update(pool=self._process_pool(module), chunksize=1)
            try:
                if config.progress:
                    with ProgressBar(dt=0.1):  # its exit waits up to dt for the drawing thread
                        return list(dask.compute(*tasks, **options))
                return list(dask.compute(*tasks, **options))
            except _pool_errors() as exc:  # a worker process died: rerun; finished work is skipped by the tasks
                self.close()
                if attempt == config.retries:
                    raise
                logging.getLogger(__name__).warning("a worker process died (%s); retrying", exc)
        raise AssertionError("unreachable")

    def _start_quietly(self, module: str) -> None:
        try:
            self._process_pool(module)
        except Exception:  # noqa: BLE001  # raised again, in the caller's thread, by the first map
            pass

    def _started(self) -> None:
        """Wait for the start begun at ``__enter__`` (had it failed, `_process_pool` raises its error again)."""
        if self._starter is not None:
            self._starter.join()
            self._starter = None

    def _process_pool(self, module: str) -> Executor:
        """The pool; with forkserver the stage's module is imported once, in the server, not in every worker."""
        if self._pool is None:
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.config.workers, mp_context=_context(self.config, module))
            for _ in range(self.config.workers):  # start them now, not at the first task
                self._pool.submit(int)
        return self._pool


def _local_processes(config: RunnerConfig) -> bool:
    return not config.scheduler and config.workers > 1 and config.local == "processes"


def _context(config: RunnerConfig, module: str) -> BaseContext:
    """The start method's context; forkserver preloads ``module`` and __main__ (else every worker runs the main script
    again). No plain fork: this process may run other threads, such as the progress bar's, when workers start."""
    import multiprocessing

    method = config.start_method
    if method is None:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    if method not in ("forkserver", "spawn"):
        raise ValueError(f"start_method must be 'forkserver' or 'spawn', got {method!r}")
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["__main__", module])
    return context


def boot_workers(config: RunnerConfig, module: str) -> None:
    """Start booting the fork server of ``config``'s local worker processes now, without waiting for it: its
    interpreter and imports of ``module`` then overlap the caller's own imports (a command line calls this first)."""
    if _local_processes(config) and _context(config, module).get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _pool_errors() -> tuple[type[BaseException], ...]:
    from concurrent.futures.process import BrokenProcessPool

    return (BrokenProcessPool,)


def _run_distributed(tasks: list, config: RunnerConfig) -> list:
    from distributed import Client, progress

    with Client(config.scheduler, set_as_default=False) as client:
        futures = client.compute(tasks, retries=config.retries)
        if config.progress:
            progress(futures)
        return client.gather(futures)

"""The one place that owns Dask: scheduler choice, partitioning, progress and retries.

Stages hand `map_partitions` a list of small picklable work items and a function that processes one partition
(writing its own files atomically) and returns small metadata; results come back in input order. Tasks must be
idempotent (skip finished work), which is what makes retries and resubmission after a lost worker safe.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RunnerConfig:
    """``scheduler``: None for the local scheduler (``workers`` processes; 1 runs in this process) or the address
    of a running Dask scheduler (``tcp://host:port``)."""
    workers: int = 1
    scheduler: str | None = None
    partition_size: int = 64
    retries: int = 3
    progress: bool = True


def _partitions(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def map_partitions(fn: Callable[..., list[R]], items: Sequence[T], config: RunnerConfig, *args: Any) -> list[R]:
    """``fn(partition, *args)`` over partitions of ``items``; the concatenated results in input order."""
    import dask

    if not items:
        return []
    parts = _partitions(items, max(1, config.partition_size))
    fn_delayed = dask.delayed(fn, pure=True)
    tasks = [fn_delayed(part, *args) for part in parts]  # keys tokenized from the arguments: no clash between runs
    if config.scheduler:
        results = _run_distributed(tasks, config)
    else:
        results = _run_local(tasks, config)
    return [r for part in results for r in part]


def _run_local(tasks: list, config: RunnerConfig) -> list:
    import dask
    from dask.diagnostics import ProgressBar

    scheduler = "sync" if config.workers <= 1 else "processes"
    options: dict[str, Any] = {"scheduler": scheduler}
    if scheduler == "processes":
        options["num_workers"] = config.workers
    attempts = config.retries + 1 if scheduler == "processes" else 1
    for attempt in range(attempts):
        try:
            if config.progress:
                with ProgressBar(dt=0.5):
                    return list(dask.compute(*tasks, **options))
            return list(dask.compute(*tasks, **options))
        except _pool_errors() as exc:  # a worker process died: rerun; finished work is skipped by the tasks
            if attempt + 1 == attempts:
                raise
            logging.getLogger(__name__).warning("a worker process died (%s); retrying", exc)
    raise AssertionError("unreachable")


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

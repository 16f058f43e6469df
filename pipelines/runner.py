"""The one place that owns Dask: scheduler choice, partitioning, progress and retries.

Stages hand `map_partitions` a list of small picklable work items and a function that processes one partition
(writing its own files atomically) and returns small metadata; results come back in input order. Tasks must be
idempotent (skip finished work), which is what makes retries and resubmission after a lost worker safe.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RunnerConfig:
    """``scheduler``: None for the local scheduler or the address of a running Dask scheduler (``tcp://host:port``).

    Locally, ``workers`` threads (``local="threads"``: the default, as decoding, encoding, hashing and file I/O
    release the GIL and no process start-up is paid) or processes (``local="processes"``: for GIL-bound work);
    ``workers=1`` runs everything in this thread.
    """
    workers: int = 1
    scheduler: str | None = None
    local: str = "threads"
    partition_size: int = 64
    retries: int = 3
    progress: bool = True


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
    import dask

    if not items:
        return []
    parts = _partitions(items, max(1, config.partition_size))
    call = dask.delayed(_call, pure=True)
    # Keys from a hash of the arguments' repr (dask's own tokenizing is slow on thousands of small objects):
    # the same work gets the same key, different runs on one cluster do not clash.
    salt = repr(args).encode()
    keys = [f"{fn.__name__}-{hashlib.sha1(salt + repr(part).encode()).hexdigest()}" for part in parts]
    tasks = [call(fn, _Batch(part), *args, dask_key_name=key) for part, key in zip(parts, keys)]
    if config.scheduler:
        results = _run_distributed(tasks, config)
    else:
        results = _run_local(tasks, config)
    return [r for part in results for r in part]


def _run_local(tasks: list, config: RunnerConfig) -> list:
    import dask
    from dask.diagnostics import ProgressBar

    if config.local not in ("threads", "processes"):
        raise ValueError(f"local scheduler must be 'threads' or 'processes', got {config.local!r}")
    scheduler = "sync" if config.workers <= 1 else config.local
    options: dict[str, Any] = {"scheduler": scheduler}
    if scheduler != "sync":
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

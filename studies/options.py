"""Defaults of the study commands, defined once: the functions and the CLI both read them (no heavy imports here)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportOptions:
    """`vton amt export`: which trials, how many per HIT, how many catch trials, the seed of the design."""

    subset: str = "all"
    trials_per_hit: int = 10
    catch_rate: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class AnalyzeOptions:
    """`vton amt analyze`: the worker exclusion rule and the bootstrap."""

    min_catch_accuracy: float = 0.75
    n_boot: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class ServeOptions:
    """`vton study serve`: loopback by default, so nobody else can take part unless asked."""

    host: str = "127.0.0.1"
    port: int = 8000

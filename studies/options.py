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
    cant_tell: bool = False  # relaxed 2AFC: a third answer, counted as half a win for each side


@dataclass(frozen=True)
class AnalyzeOptions:
    """`vton amt analyze`: the worker exclusion rule and the bootstrap."""

    min_catch_accuracy: float = 0.75
    max_attention_failures: int = 0
    n_boot: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class ServeOptions:
    """`vton study serve`: loopback by default, so nobody else can take part unless asked; Prolific's codes; how
    much each participant does; the limits that keep one client from holding the server."""

    host: str = "127.0.0.1"
    port: int = 8000
    completion_code: str | None = None  # Prolific: redirect there when done; without it, Prolific entries are refused
    failed_check_code: str | None = None  # Prolific: for a participant who failed an attention check (else screen-out)
    hits_per_participant: int = 0  # 0: every HIT the participant has not done yet
    attention_checks: int = 1  # instructed-response rows per page (Prolific: at least one per study)
    lease_minutes: float = 60.0  # an assignment shown but not submitted stops counting towards its HIT's load then
    max_form_bytes: int = 64 * 1024
    body_timeout_s: float = 10.0  # a form that has not fully arrived by then is refused (a Content-Length lie)

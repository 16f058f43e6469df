"""What an evaluation run was asked to do (`Settings`, recorded in summary.json) and what it does after the checks
(`Work`: the metrics left, and why each other one was skipped)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vton.eval.registry import ALL_METRICS, SPECS, SUBSET_METRIC, MetricSpec


@dataclass(frozen=True)
class Settings:
    """Every choice that can change a score; recorded in summary.json. The CLI takes its defaults from here.

    ``metrics``: the metrics named by the user, or None for all of them. A named metric that cannot be computed is a
    failure the CLI reports (exit status ``EXIT_SKIPPED``); of the default set, what cannot run is skipped with a note.

    ``eval_size``: the (height, width) the ``vton`` protocol scores at; None: the results' own size (that of the
    first prediction scored). Ground truth is resized to it; a prediction of another size is an error unless
    ``resize_predictions``, which resizes it as the ground truth (both recorded).
    """

    metrics: tuple[str, ...] | None = None
    device: str | None = None  # None: cuda when available
    batch_size: int = 32
    workers: int | None = None  # None: min(4, cpu count)
    seed: int = 0  # IS shuffle, KID subsets, bootstrap
    n_boot: int = 1000
    is_splits: int = 10
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    subset_size: int = 50  # LARGE / SMALL: the top / bottom cloths by TV
    weights_dir: Path | None = None
    progress: bool = True
    eval_size: tuple[int, int] | None = None  # (height, width); None: the size of the results
    resize_predictions: bool = False

    @property
    def chosen(self) -> tuple[str, ...]:
        return ALL_METRICS if self.metrics is None else self.metrics

    def __post_init__(self) -> None:
        unknown = set(self.chosen) - set(ALL_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(ALL_METRICS)}")
        if self.batch_size < 1 or self.is_splits < 1 or self.kid_subsets < 1 or self.n_boot < 1:
            raise ValueError("batch size, IS splits, KID subsets and bootstrap resamples must be positive")
        if self.eval_size is not None:
            if len(self.eval_size) != 2 or min(self.eval_size) < 1:
                raise ValueError(f"eval size must be (height, width), both positive; got {self.eval_size}")
            object.__setattr__(self, "eval_size", (int(self.eval_size[0]), int(self.eval_size[1])))


@dataclass
class Work:
    """What this run computes after weights and inputs were checked: the metrics left, in table order."""

    metrics: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    missing_weights: list[str] = field(default_factory=list)  # why weight files were missing, once each

    @classmethod
    def of(cls, settings: Settings) -> Work:
        """The chosen metrics, and always the one that defines the cloth subsets."""
        return cls([m for m in ALL_METRICS if m in settings.chosen or m == SUBSET_METRIC])

    def skip(self, metric: str, reason: str) -> None:
        if metric in self.metrics:
            self.metrics.remove(metric)
            self.skipped[metric] = reason

    def skip_for_weights(self, metrics: Iterable[str], error: Exception) -> None:
        """Skip ``metrics`` because a weight file (or the package holding the network) is missing."""
        metrics = list(metrics)
        if self.any(metrics) and str(error) not in self.missing_weights:
            self.missing_weights.append(str(error))
        for metric in metrics:
            self.skip(metric, str(error))

    def any(self, names: Iterable[str]) -> bool:
        return any(m in self.metrics for m in names)

    def specs(self, setting: str | None = None, level: str | None = None) -> list[MetricSpec]:
        """The rows still to compute, optionally of one setting and level."""
        return [SPECS[m] for m in self.metrics
                if (setting is None or SPECS[m].setting == setting) and (level is None or SPECS[m].level == level)]

    def needs(self, item: str, setting: str | None = None) -> bool:
        """Whether a row still to compute reads the input or network ``item``."""
        return any(item in s.inputs or item in s.networks for s in self.specs(setting))

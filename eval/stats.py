"""Summary statistics for per-image scores: pure functions of their inputs (and a seed)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float] | np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (resampling images with replacement); None without values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def describe(values: Sequence[float] | np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, object]:
    """mean, sample std (ddof 1), bootstrap 95% CI and n of the finite values (NaN marks 'undefined for this image')."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"mean": None, "std": None, "ci95": None, "n": 0}
    ci = bootstrap_ci(x, n_boot, seed)
    return {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if x.size > 1 else None,
            "ci95": list(ci) if ci else None, "n": int(x.size)}


def set_level(mean: float | None, std: float | None, n: int) -> dict[str, object]:
    """A set-level score (IS, FID, KID): its own mean/std, no bootstrap interval."""
    def finite(v: float | None) -> float | None:
        return v if v is not None and math.isfinite(v) else None

    return {"mean": finite(mean), "std": finite(std), "ci95": None, "n": int(n)}

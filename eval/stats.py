"""Pure statistics for evaluation and human studies: per-image summaries, bootstrap intervals, preference tests."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _st

# --- per-image scores -----------------------------------------------------------------------------


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

# --- human preference studies (A/B votes) -------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; unlike the normal interval it stays inside [0, 1]."""
    if n <= 0:
        return (math.nan, math.nan)
    z = float(_st.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def binomial_test(successes: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test p-value of ``successes`` out of ``n`` against rate ``p``."""
    if n <= 0:
        return math.nan
    return float(_st.binomtest(successes, n, p, alternative="two-sided").pvalue)


def cluster_bootstrap_preference(
    workers: np.ndarray, items: np.ndarray, prefer_a: np.ndarray, n_boot: int = 2000, seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the share of votes for A, resampling workers and items (two-way cluster bootstrap).

    Votes from one worker or on one item are correlated, so vote-level intervals are too narrow; each replicate
    draws workers and items with replacement and weights every vote by (times its worker drawn) x (times its item
    drawn), as in the AMT_Real_vs_Fake analysis.
    """
    y = np.asarray(prefer_a, dtype=np.float64)
    if y.size == 0:
        return (math.nan, math.nan)
    _, w_idx = np.unique(np.asarray(workers), return_inverse=True)
    _, i_idx = np.unique(np.asarray(items), return_inverse=True)
    n_w, n_i = int(w_idx.max()) + 1, int(i_idx.max()) + 1
    rng = np.random.default_rng(seed)
    shares = np.empty(n_boot)
    for b in range(n_boot):
        wc = np.bincount(rng.integers(0, n_w, n_w), minlength=n_w)
        ic = np.bincount(rng.integers(0, n_i, n_i), minlength=n_i)
        weight = wc[w_idx] * ic[i_idx]
        total = weight.sum()
        shares[b] = (weight * y).sum() / total if total else np.nan
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(shares, [alpha, 1 - alpha])
    return (float(lo), float(hi))


# --- comparing two runs on the same images ------------------------------------------------------


def paired_wilcoxon(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of per-image scores ``a`` vs ``b`` (same images, same order).

    All-zero differences (identical runs) give p = 1; fewer than two pairs cannot be tested (nan).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan
    if not np.any(d):
        return 1.0
    return float(_st.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)

"""Ranking N methods from pairwise votes: win-rate matrix and Bradley-Terry strengths (choix) with a bootstrap over
participants.

Ties ("can't tell", relaxed 2AFC) count as half a win for each side, as FastChat's Bradley-Terry analysis of
Chatbot Arena votes does. The maximum-likelihood fit is choix's iterative Luce Spectral Ranking on the dense
comparison matrix (``choix.ilsr_pairwise_dense``, Maystre & Grossglauser, NeurIPS 2015), which takes the half wins as
they are. The estimate exists only when every method both wins and loses against the rest (the comparison graph is
strongly connected); otherwise there is no finite strength to report, which is said rather than guessed.
"""
from __future__ import annotations

import choix
import numpy as np
from scipy.sparse.csgraph import connected_components


def estimable(c: np.ndarray) -> bool:
    """Whether Bradley-Terry has a finite maximum-likelihood estimate: the 'i beat j' graph strongly connected."""
    n, _ = connected_components(c > 0, directed=True, connection="strong")
    return n == 1


def bradley_terry(c: np.ndarray) -> np.ndarray:
    """Log-strengths (mean zero) maximising the Bradley-Terry likelihood of comparison matrix ``c``;
    P(i beats j) = 1 / (1 + exp(s_j - s_i)). ValueError when they do not exist."""
    if not estimable(c):
        raise ValueError("some method never wins or never loses against the others: no finite strengths")
    return np.asarray(choix.ilsr_pairwise_dense(c, alpha=0.0, max_iter=1000, tol=1e-10))


def win_rates(c: np.ndarray) -> np.ndarray:
    """``W[i, j]`` = share of i-vs-j comparisons that i won (ties as halves); NaN where the pair never met."""
    n = c + c.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, c / n, np.nan)


def bootstrap_bradley_terry(per_participant: np.ndarray, n_boot: int, seed: int,
                            confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, int]:
    """Percentile intervals of the log-strengths, resampling participants with replacement (votes cluster by
    participant). ``per_participant`` is (participants, N, N). Replicates without a finite estimate are left out;
    their count is returned with the lower and upper bounds."""
    rng = np.random.default_rng(seed)
    w = per_participant.shape[0]
    flat = per_participant.reshape(w, -1)
    fits = []
    for _ in range(n_boot):
        c = (np.bincount(rng.integers(0, w, w), minlength=w) @ flat).reshape(per_participant.shape[1:])
        if estimable(c):
            fits.append(bradley_terry(c))
    alpha = (1 - confidence) / 2
    if not fits:
        nan = np.full(per_participant.shape[1], np.nan)
        return nan, nan, n_boot
    lo, hi = np.quantile(np.array(fits), [alpha, 1 - alpha], axis=0)
    return lo, hi, n_boot - len(fits)

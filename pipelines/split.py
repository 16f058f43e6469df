"""Seeded, leak-free train/test split of clean pairs, and the unpaired test list.

A *group* is a connected set of IDs (two IDs are connected when one pair uses both); a group is never split across
train and test. Groups of one size are ordered by a hash of (seed, group key), reproducible across machines and Python
versions.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from vton.core.formats import OFFICIAL_TEST_PAIRS, OFFICIAL_TRAIN_PAIRS


def official_share(n: int) -> int:
    """VITON's test share of ``n`` pairs (2,032 of 16,253), rounded."""
    return round(n * OFFICIAL_TEST_PAIRS / (OFFICIAL_TRAIN_PAIRS + OFFICIAL_TEST_PAIRS))


def split_sizes(n: int, train_size: int | None, test_size: int | None) -> tuple[int, int]:
    """The requested sizes, or VITON's 14,221 / 2,032 when ``n`` allows, else the same proportion of ``n``."""
    if train_size is None and test_size is None:
        if n >= OFFICIAL_TRAIN_PAIRS + OFFICIAL_TEST_PAIRS:
            return OFFICIAL_TRAIN_PAIRS, OFFICIAL_TEST_PAIRS
        test = official_share(n)
        return n - test, test
    train = n - test_size if train_size is None else train_size
    test = n - train_size if test_size is None else test_size
    if train < 0 or test < 0 or train + test > n:
        raise ValueError(f"cannot split {n} clean pairs into {train} train + {test} test")
    return train, test


def groups(links: Sequence[Sequence[str]]) -> list[str]:
    """Union-find over the keys each element links; returns each element's group key (its smallest member key)."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        parent.setdefault(k, k)
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for keys in links:
        roots = sorted({find(k) for k in keys})
        for r in roots[1:]:
            parent[r] = roots[0]
    return [find(keys[0]) for keys in links]


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def seeded_split(links: Sequence[Sequence[str]], seed: int, train_size: int, test_size: int) -> list[str]:
    """``"train"``, ``"test"`` or ``""`` (left over) per element, with exactly the requested counts."""
    keys = groups(links)
    members: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        members.setdefault(k, []).append(i)
    # Larger groups first (singletons then fill the sizes exactly), each to the split with the larger share of its
    # room left, so groups spread in proportion; the seeded hash orders groups of one size.
    order = sorted(members, key=lambda k: (-len(members[k]), _rank(seed, k)))
    out = [""] * len(links)
    room = {"test": test_size, "train": train_size}
    wanted = {"test": max(test_size, 1), "train": max(train_size, 1)}
    for k in order:
        size = len(members[k])
        fits = [s for s in ("test", "train") if room[s] >= size]
        if fits:
            split = max(fits, key=lambda s: room[s] / wanted[s])
            room[split] -= size
            for i in members[k]:
                out[i] = split
    if any(room.values()):
        raise ValueError(f"groups of linked IDs do not fill exactly {train_size} train + {test_size} test pairs "
                         f"(short by train {room['train']}, test {room['test']})")
    return out


def unpaired_cloths(cloths: Sequence[str], seed: int) -> list[str]:
    """A seeded permutation of the test cloths, as VITON's test list (a person may get its own cloth by chance)."""
    perm = np.random.default_rng(seed).permutation(len(cloths))
    return [cloths[i] for i in perm]

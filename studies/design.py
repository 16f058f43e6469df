"""The balanced pairwise design of a study of N methods: every item once per pair of methods, left/right balanced.

A pure function of the counts and the seed, so the same inputs give the same design. Within each pair of methods
the items are shuffled and the first half shows the pair's first method on the left, the rest on the right (an odd
count gives the extra item to a seeded coin flip): no method sits on one side more often than the other by more
than one trial, which a per-trial coin flip does not promise.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

SIDES = ("left", "right")


@dataclass(frozen=True)
class Comparison:
    """Item ``item`` judged between methods ``a`` and ``b`` (indices, a < b); ``a_side`` is where a is shown."""

    item: int
    a: int
    b: int
    a_side: str


def method_pairs(n_methods: int) -> list[tuple[int, int]]:
    """Every unordered pair of methods, as (i, j) with i < j, in a fixed order."""
    return list(itertools.combinations(range(n_methods), 2))


def pairwise_design(n_methods: int, n_items: int, rng: random.Random) -> list[Comparison]:
    """Items x method pairs comparisons in a seeded random order, sides balanced within each pair of methods."""
    if n_methods < 2:
        raise ValueError(f"a comparison needs at least two methods, not {n_methods}")
    design = []
    for a, b in method_pairs(n_methods):
        items = list(range(n_items))
        rng.shuffle(items)
        n_left = n_items // 2 + (n_items % 2 and rng.random() < 0.5)
        design += [Comparison(item, a, b, SIDES[k >= n_left]) for k, item in enumerate(items)]
    rng.shuffle(design)
    return design

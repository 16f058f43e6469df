"""Near-duplicates among a set of images: signatures (on the runner), candidates per kind (`search`), confirmation
(`confirm`), clusters. The images are `Node`s: one item (person or cloth) of one split, at one file; a file listed in
two splits is two nodes, which the audit pairs at distance 0."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from vton.core.runner import Runner
from vton.pipelines.audit.confirm import pixel_score
from vton.pipelines.audit.search import candidate_pairs, hamming
from vton.pipelines.audit.signature import Signature, Unreadable, decode, sign_files, thumb_array, work_image
from vton.pipelines.layouts.base import CLOTH, PERSON, Item
from vton.pipelines.layouts.files import read

SPLIT_ORDER = ("test", "train", "")  # a pair names its test side first


@dataclass(frozen=True)
class NearSettings:
    """The thresholds of a near-duplicate, recorded with every result. ``radius``: the largest embedding distance
    of a candidate (`search.pair_distances`: unit vectors, shift-probed, plus a contrast term); ``min_score``: the
    least pixel agreement of the aligned pair (`confirm.pixel_score`, 0..1) that confirms one."""
    radius: float = 0.16
    min_score: float = 0.94

    def __post_init__(self) -> None:
        if not 0 < self.radius <= 2 or not 0 <= self.min_score <= 1:
            raise ValueError(f"near-duplicate thresholds out of range: radius {self.radius} (0..2], "
                             f"min score {self.min_score} [0..1]")

    def record(self) -> dict:
        return asdict(self)


class Node(NamedTuple):
    item: Item
    split: str  # "train", "test", or "" where the split is not known (no pairs files)
    path: str  # the image file, relative to the root


class Duplicate(NamedTuple):
    a: Node
    b: Node
    phash_distance: int
    embedding_distance: float
    pixel_score: float


@dataclass
class DuplicateSet:
    nodes: list[Node]
    duplicates: list[Duplicate]  # confirmed pairs, each with its test side (`SPLIT_ORDER`) first
    candidates: dict[str, int]  # pairs the search found, by kind
    unreadable: list[tuple[Node, str]]

    def clusters(self) -> dict[Node, int]:
        """Cluster id of every node in a duplicate: connected components of the confirmed pairs, numbered with the
        clusters spanning two splits first, then by size (largest first), then by their first file."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        members = sorted({n for d in self.duplicates for n in (d.a, d.b)}, key=node_key)
        index = {n: k for k, n in enumerate(members)}
        rows = [index[d.a] for d in self.duplicates]
        cols = [index[d.b] for d in self.duplicates]
        graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(members), len(members)))
        _, labels = connected_components(graph, directed=False)
        groups: dict[int, list[Node]] = {}
        for node, label in zip(members, labels):
            groups.setdefault(int(label), []).append(node)
        order = sorted(groups.values(), key=lambda g: (not crosses(g), -len(g), node_key(g[0])))
        return {node: cid for cid, group in enumerate(order) for node in group}

    def train_copies_of_test(self) -> dict[Item, Duplicate]:
        """Each train item with a near copy among the test items: its first such pair (closest first)."""
        return _across(self.duplicates, lambda d: d.b.item)

    def test_items_copied_in_train(self) -> dict[Item, Duplicate]:
        """Each test item with a near copy among the train items."""
        return _across(self.duplicates, lambda d: d.a.item)


def crosses(nodes: Sequence[Node]) -> bool:
    """Whether ``nodes`` lie in two different (known) splits."""
    return len({n.split for n in nodes if n.split}) > 1


def relation(a: Node, b: Node) -> str:
    """``across`` (train and test), ``within train``, ``within test`` or ``within`` (splits unknown)."""
    if crosses((a, b)):
        return "across"
    return f"within {a.split}".strip() if a.split == b.split else "within"


def node_key(node: Node) -> tuple[int, str, str]:
    """Test nodes first (`SPLIT_ORDER`), then by file and kind."""
    return SPLIT_ORDER.index(node.split), node.path, node.item.kind


def _across(duplicates: list[Duplicate], side: Callable[[Duplicate], Item]) -> dict[Item, Duplicate]:
    """The test-train pairs by the item ``side`` picks, the most similar pair first."""
    found: dict[Item, Duplicate] = {}
    for d in sorted(duplicates, key=lambda d: (-d.pixel_score, d.embedding_distance, node_key(d.a), node_key(d.b))):
        if (d.a.split, d.b.split) == ("test", "train"):
            found.setdefault(side(d), d)
    return found


def _ordered(a: Node, b: Node) -> tuple[Node, Node]:
    return (a, b) if node_key(a) <= node_key(b) else (b, a)


def find_duplicates(root: str, nodes: list[Node], settings: NearSettings, workers: Runner,
                    progress: bool = False) -> DuplicateSet:
    """Sign every file once (on ``workers``), search candidates within each kind, confirm them by their pixels."""
    paths = sorted({n.path for n in nodes})

    @lru_cache(maxsize=256)
    def work(path: str) -> Image.Image:
        """A candidate's image at the working size, read again (the signatures keep only the thumbnails)."""
        return work_image(decode(read(Path(root), path)))

    signed: dict[str, Signature | Unreadable] = dict(zip(paths, workers.map(sign_files, paths, str(root))))
    unreadable = [(n, signed[n.path].reason) for n in nodes if isinstance(signed[n.path], Unreadable)]
    duplicates: list[Duplicate] = []
    candidates: dict[str, int] = {}
    for kind in (PERSON, CLOTH):
        group = [n for n in nodes if n.item.kind == kind and isinstance(signed[n.path], Signature)]
        sigs = [signed[n.path] for n in group]
        if not group:
            candidates[kind] = 0
            continue
        thumbs = np.stack([thumb_array(s) for s in sigs])
        hashes = np.array([s.phash for s in sigs], dtype=np.uint64)
        found, distances = candidate_pairs(thumbs, settings.radius)
        candidates[kind] = len(found)
        bits = hamming(hashes[found[:, 0]], hashes[found[:, 1]]) if len(found) else []
        for (i, j), hash_bits, distance in zip(tqdm(found, desc=f"confirm {kind}", unit="pair", disable=not progress),
                                               bits, distances):
            score = 1.0 if sigs[i] == sigs[j] else pixel_score(thumbs[i], thumbs[j], work(group[i].path),
                                                               work(group[j].path))
            if score >= settings.min_score:
                a, b = _ordered(group[i], group[j])
                duplicates.append(Duplicate(a, b, int(hash_bits), round(float(distance), 6), round(score, 6)))
    return DuplicateSet(nodes, duplicates, candidates, unreadable)

"""`vton audit DATA`: the near-duplicates of a dataset of any layout, within and across its splits.

Items come from the layout's adapter as `vton prepare` reads them (`Layout.discover`: the pairs lists, or the image
folders without them; each test person's own cloth too), their image files from `Layout.person_files` /
`Layout.cloth_files`. Output: ``duplicates.parquet`` (one row per confirmed pair) and ``audit.json`` (thresholds,
method, library versions, counts); the HTML page is `vton.reports.audit`'s.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

from vton.core.io import atomic_write_bytes, atomic_write_json
from vton.core.runner import Runner, RunnerConfig
from vton.core.versions import library_versions
from vton.pipelines.audit import confirm, search, signature
from vton.pipelines.audit.duplicates import DuplicateSet, NearSettings, Node, crosses, find_duplicates, relation
from vton.pipelines.layouts import detect
from vton.pipelines.layouts.base import CLOTH, PERSON, Item, Layout, Pair

DUPLICATES_FILE = "duplicates.parquet"
AUDIT_FILE = "audit.json"
RELATIONS = ("across", "within train", "within test", "within")
METHOD = {
    "signature": f"decode (JPEG at a reduced DCT scale), resize to {signature.WORK_WH[0]}x{signature.WORK_WH[1]} "
                 "bilinear; pHash: imagehash.phash of the decoded image (64 bits)",
    "embedding": f"thumbnail ({signature.THUMB_WH[0]}x{signature.THUMB_WH[1]}, Gaussian blur sigma "
                 f"{signature.THUMB_BLUR} x width, box resize) as a grid of {search.CELL}x{search.CELL}-pixel RGB "
                 f"cell means, minus their mean, unit length, plus {search.CONTRAST_WEIGHT} x log RMS contrast; "
                 f"also with the content shifted by {list(search.SHIFTS)} px in x and y (edges repeated)",
    "candidates": "pairs of one kind within the radius: least Euclidean distance of one's shifted embeddings to the "
                  "other's own; scipy cKDTree.query_ball_point of every shifted embedding in a tree of the own ones "
                  f"on the {search.TREE_DIMS} leading principal axes, then the distance on {search.PROJECTED_DIMS} "
                  "axes, then the full distance",
    "confirmation": f"thumbnails aligned over scales {list(confirm.SCALES)} and shifts up to {confirm.MAX_SHIFT} px "
                    "(least mean-removed squared difference), refined at the working size (blur sigma "
                    f"{confirm.FINE_BLUR} px), brightness and contrast matched (gain within 1 +- {confirm.MAX_GAIN}); "
                    "score: share of pixels within "
                    f"{confirm.TOLERANCE} levels of the range of the other's 3x3 neighbourhood in every channel, both "
                    "ways; a near-duplicate at score >= min_score",
    "clusters": "connected components of the confirmed pairs; clusters spanning train and test first",
}


def pair_nodes(adapter: Layout, pairs: list[Pair], official: bool) -> list[Node]:
    """The person and cloth nodes of ``pairs`` (each once per split), and with the official split the own cloth of
    each test person (the paired test list's)."""
    seen: dict[tuple[Item, str], Node] = {}

    def add(item: Item, split: str) -> None:
        files = (adapter.person_files(item.src_split, item.name).image if item.kind == PERSON
                 else adapter.cloth_files(item.src_split, item.name).cloth)
        seen.setdefault((item, split), Node(item, split, files))

    for pair in pairs:
        if pair.person is None or pair.cloth is None:
            continue
        add(pair.person, pair.split)
        add(pair.cloth, pair.split)
        if official and pair.split == "test":
            add(Item(CLOTH, adapter.own_cloth(pair.person.name), pair.person.src_split), "test")
    return list(seen.values())


def dataset_nodes(root: Path) -> tuple[Layout, list[Node]]:
    adapter = detect(root)
    pairs, official = adapter.discover(root, resplit=False)
    return adapter, pair_nodes(adapter, pairs, official)


def counts(found: DuplicateSet) -> dict:
    """Items per kind and split; pairs, clusters and test items with a train copy by relation."""
    clusters = found.clusters()
    members: dict[int, list[Node]] = {}
    for node, cid in clusters.items():
        members.setdefault(cid, []).append(node)
    kinds = (PERSON, CLOTH)
    pairs = Counter((d.a.item.kind, relation(d.a, d.b)) for d in found.duplicates)
    groups = Counter((nodes[0].item.kind, "across" if crosses(nodes) else relation(nodes[0], nodes[0]))
                     for nodes in members.values())
    copied = Counter(item.kind for item in found.test_items_copied_in_train())
    items = Counter((n.item.kind, n.split) for n in found.nodes)
    return {
        "items": {k: {s or "unsplit": n for (kind, s), n in sorted(items.items()) if kind == k} for k in kinds},
        "unreadable": len(found.unreadable),
        "candidates": found.candidates,
        "pairs": {r: sum(pairs[(k, r)] for k in kinds) for r in RELATIONS},
        "pairs_by_kind": {k: {r: pairs[(k, r)] for r in RELATIONS} for k in kinds},
        "clusters": {r: sum(groups[(k, r)] for k in kinds) for r in RELATIONS},
        "test_items_with_a_train_copy": {k: copied[k] for k in kinds},
    }


def audit_record(found: DuplicateSet, settings: NearSettings) -> dict:
    """The thresholds, method, versions and counts of a search (audit.json; prepare.json's ``near_duplicates``)."""
    return {"settings": settings.record(), "method": METHOD, **counts(found),
            "versions": library_versions("imagehash", "numpy", "pillow", "scipy")}


def write_duplicates(path: Path, found: DuplicateSet) -> None:
    """One row per confirmed pair (test side first), ordered by cluster; written to a temp file and renamed."""
    import pandas as pd

    clusters = found.clusters()
    rows = [{"cluster": clusters[d.a], "kind": d.a.item.kind, "a": d.a.path, "a_split": d.a.split, "b": d.b.path,
             "b_split": d.b.split, "splits": relation(d.a, d.b), "phash_distance": d.phash_distance,
             "embedding_distance": d.embedding_distance, "pixel_score": d.pixel_score} for d in found.duplicates]
    columns = ["cluster", "kind", "a", "a_split", "b", "b_split", "splits", "phash_distance", "embedding_distance",
               "pixel_score"]
    frame = pd.DataFrame(rows, columns=columns).sort_values(["cluster", "a", "b"], kind="stable")
    frame = frame.astype({"cluster": "int64", "phash_distance": "int64", "embedding_distance": "float64",
                          "pixel_score": "float64"})
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def audit_dataset(root: str | os.PathLike, out: str | os.PathLike, settings: NearSettings = NearSettings(),
                  runner: RunnerConfig = RunnerConfig()) -> dict:
    """Audit ``root`` (any layout the registry detects) into ``out``: duplicates.parquet and audit.json (returned)."""
    root_path, out_path = Path(root).resolve(), Path(out).resolve()
    adapter, nodes = dataset_nodes(root_path)
    with Runner(runner, preload="vton.pipelines.audit.signature") as workers:
        found = find_duplicates(str(root_path), nodes, settings, workers, runner.progress)
    out_path.mkdir(parents=True, exist_ok=True)
    write_duplicates(out_path / DUPLICATES_FILE, found)
    record = {"root": str(root_path), "layout": adapter.name, **audit_record(found, settings),
              "unreadable_files": [{"file": n.path, "split": n.split, "kind": n.item.kind, "reason": reason}
                                   for n, reason in found.unreadable]}
    atomic_write_json(out_path / AUDIT_FILE, record)
    return record

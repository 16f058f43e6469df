"""The page of an audit (`vton audit`): counts, thresholds and method, then each cluster of near-duplicates with
thumbnails, the clusters spanning train and test first (their order in duplicates.parquet)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vton.core.io import atomic_write_text, read_data_file
from vton.reports.html import picture
from vton.reports.render import render

AUDIT_PAGE = "audit.html"
CLUSTERS_SHOWN = 200
RELATIONS = ("across", "within train", "within test", "within")


def _cluster(root: Path, cid: int, rows: pd.DataFrame) -> dict:
    members = dict.fromkeys([(s, f) for s, f in zip(rows.a_split, rows.a)] + [(s, f) for s, f in zip(rows.b_split,
                                                                                                     rows.b)])
    relation = "across" if len({s for s, _ in members if s}) > 1 else rows.splits.iloc[0]
    return {"id": cid, "kind": rows.kind.iloc[0], "relation": relation,
            "pictures": [picture(f"{split or 'unsplit'}: {path}", root / path) for split, path in members],
            "rows": rows.to_dict("records")}


def write_audit_page(folder: str | Path, shown: int = CLUSTERS_SHOWN) -> Path:
    """Write ``folder``/audit.html from its audit.json and duplicates.parquet (thumbnails read from the audited
    root, a missing or unreadable file shown as a placeholder); return its path."""
    folder = Path(folder)
    record = json.loads(read_data_file(folder / "audit.json"))
    frame = pd.read_parquet(folder / "duplicates.parquet")
    root = Path(record["root"])
    ids = list(dict.fromkeys(frame.cluster))
    clusters = [_cluster(root, cid, frame[frame.cluster == cid]) for cid in ids[:shown]]
    page = folder / AUDIT_PAGE
    atomic_write_text(page, render("audit.html.j2", a=record, relations=RELATIONS, clusters=clusters,
                                   total=len(ids)))
    return page

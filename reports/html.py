"""``vton report``: one self-contained offline HTML page over evaluation runs and/or prepared datasets."""
from __future__ import annotations

import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from vton.core import formats as fm
from vton.core.io import atomic_write_text
from vton.core.versions import VTON_VERSION as __version__
from vton.eval.images import ImageError
from vton.eval.protocols import PROTOCOLS
from vton.eval.registry import HIGHER_IS_BETTER
from vton.eval.stats import paired_wilcoxon
from vton.eval.summary import subset_mask, subsets_of
from vton.reports.media import histogram_svg, thumbnail_uri
from vton.reports.render import render
from vton.reports.runs import EvalRun, PreparedRun, cloth_subsets, load_run

GALLERY_SIZE = 4
SUBSET_GALLERY_SIZE = 8
REJECTED_SHOWN = 50
SAMPLES_SHOWN = 12
ALPHA = 0.05
SEED = 0


@dataclass(frozen=True)
class Picture:
    label: str
    uri: str | None  # None: shown as a placeholder "<gap> <label>"
    gap: str = "no"  # "no": the file is missing; "unreadable"


def picture(label: str, path: Path | None) -> Picture:
    """A thumbnail; a missing or unreadable file is a placeholder, so one bad image never stops the report."""
    if path is None:
        return Picture(label, None)
    try:
        return Picture(label, thumbnail_uri(path))
    except ImageError:
        return Picture(label, None, "unreadable")


def direction(metric: str) -> bool | None:
    """True when higher is better, False when lower is, None when the metric is unknown."""
    return HIGHER_IS_BETTER.get(metric)


def fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.4g}" if isinstance(x, (int, float)) else str(x)


def fmt_ci(ci: Any) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "–"


def metric_rows(run: EvalRun) -> list[dict[str, str]]:
    rows = []
    for key, by_subset in sorted(run.summary["metrics"].items()):
        for subset in subsets_of(run.summary):
            s = (by_subset or {}).get(subset)
            if s:
                rows.append({"metric": key, "subset": subset, "mean": fmt(s.get("mean")), "std": fmt(s.get("std")),
                             "ci95": fmt_ci(s.get("ci95")), "n": fmt(s.get("n"))})
    return rows


def category_table(run: EvalRun) -> dict[str, Any] | None:
    """Every metric by garment category (DressCode): mean [95% CI] (n) per category and over all; None without."""
    block = run.summary.get("categories") or {}
    names = ["all", *block.get("names", ())]
    if len(names) == 1:
        return None

    def cell(s: dict | None) -> str:
        return f"{fmt(s.get('mean'))} {fmt_ci(s.get('ci95'))} (n={fmt(s.get('n'))})" if s else ""

    return {"names": names, "reference": block.get("set_level_reference", ""),
            "rows": [{"metric": key, "cells": [cell((by or {}).get(n)) for n in names]}
                     for key, by in sorted(run.summary["metrics"].items())]}


def per_image(run: EvalRun, key: str, subset: str) -> pd.Series:
    """Per-image values of ``setting/metric`` indexed by (person, cloth); empty for set-level metrics."""
    setting, _, metric = key.partition("/")
    m = run.metrics
    rows = m[(m["setting"] == setting) & (m["metric"] == metric)]
    rows = rows[subset_mask(rows, subset)]
    return rows.groupby(["person", "cloth"])["value"].mean().astype(np.float64)  # one value per pair


def compare_cell(best: EvalRun, other: EvalRun, key: str, subset: str, s_best: dict, s_other: dict) -> tuple[str, bool]:
    """Significance of ``other`` against the best run: paired Wilcoxon on shared images, else disjoint CIs."""
    a, b = per_image(best, key, subset), per_image(other, key, subset)
    shared = a.index.intersection(b.index)
    if len(shared) >= 2:
        p = paired_wilcoxon(a.loc[shared].to_numpy(), b.loc[shared].to_numpy())
        return f"p={fmt(p)} (Wilcoxon, n={len(shared)})", bool(p < ALPHA)
    ci_a, ci_b = s_best.get("ci95"), s_other.get("ci95")
    if ci_a and ci_b:
        disjoint = ci_a[1] < ci_b[0] or ci_b[1] < ci_a[0]
        return ("CIs disjoint" if disjoint else "CIs overlap"), disjoint
    return "not testable (set-level metric)", False


def comparison(runs: list[EvalRun]) -> dict[str, Any]:
    """One row per metric and subset; the best run marked (direction from HIGHER_IS_BETTER) and others tested."""
    keys = sorted({k for r in runs for k in r.summary["metrics"]})
    subsets = list(dict.fromkeys(s for r in runs for s in subsets_of(r.summary)))
    rows = []
    for key in keys:
        metric = key.rpartition("/")[2]
        higher = direction(metric)
        for subset in subsets:
            stats = [((r.summary["metrics"].get(key) or {}).get(subset) or {}) for r in runs]
            if not any(stats):
                continue
            means = [s.get("mean") for s in stats]
            valid = [i for i, m in enumerate(means) if isinstance(m, (int, float)) and math.isfinite(m)]
            best = None
            if higher is not None and valid:
                best = (max if higher else min)(valid, key=lambda i: means[i])
            cells = []
            for i, s in enumerate(stats):
                note, significant = "", False
                if best is not None and i != best and s:
                    note, significant = compare_cell(runs[best], runs[i], key, subset, stats[best], s)
                cells.append({"mean": fmt(s.get("mean")), "ci95": fmt_ci(s.get("ci95")), "best": i == best,
                              "note": note, "significant": significant})
            rows.append({"metric": key, "subset": subset,
                         "direction": {True: "higher", False: "lower", None: "unknown"}[higher], "cells": cells})
    return {"runs": [r.name for r in runs], "rows": rows}


def distributions(runs: list[EvalRun]) -> list[Markup]:
    """One histogram per per-image metric, runs overlaid on shared bins."""
    keys = sorted(
        {
            (str(s), str(m))
            for r in runs
            for s, m in r.metrics[["setting", "metric"]].drop_duplicates().itertuples(index=False)
        }
    )
    charts = []
    for setting, metric in keys:
        series = []
        for r in runs:
            v = r.metrics[(r.metrics["setting"] == setting) & (r.metrics["metric"] == metric)]["value"]
            if len(v):
                series.append((r.name, v.to_numpy(dtype=np.float64)))
        charts.append(Markup(histogram_svg(series, f"{setting}/{metric}")))
    return charts


def gallery_item(run: EvalRun, setting: str, person: str, cloth: str, value: float) -> dict[str, Any]:
    return {
        "person": person, "cloth": cloth, "value": fmt(value),
        "pictures": [
            picture("person", run.data_image(fm.IMAGE_DIR, person)),
            picture("cloth", run.data_image(fm.CLOTH_DIR, cloth)),
            picture("warped cloth", run.result_image(setting, fm.WARP_CLOTH_DIR, person)),
            picture("try-on", run.result_image(setting, fm.TRYON_DIR, person)),
            picture("real person", run.real_wearer(cloth)),
        ],
    }


def galleries(run: EvalRun) -> list[dict[str, Any]]:
    """Best, worst and random pairs for every per-image try-on metric (the cloth-only TV rows are not pairs)."""
    out = []
    m = run.metrics
    for (setting, metric), rows in m[m["setting"] != "cloth"].groupby(["setting", "metric"], sort=True):
        rows = rows.sort_values(["value", "person", "cloth"], kind="mergesort")
        higher = direction(str(metric))
        top, bottom = rows.iloc[::-1][:GALLERY_SIZE], rows[:GALLERY_SIZE]
        best, worst = (top, bottom) if higher in (True, None) else (bottom, top)
        names = ("best", "worst") if higher is not None else ("highest", "lowest")
        picks = sorted(random.Random(SEED).sample(range(len(rows)), min(GALLERY_SIZE, len(rows))))
        for title, chosen in ((names[0], best), (names[1], worst), ("random", rows.iloc[picks])):
            out.append({
                "title": f"{setting}/{metric}: {title}",
                "entries": [gallery_item(run, str(setting), r.person, r.cloth, r.value) for r in chosen.itertuples()],
            })
    return out


def subset_galleries(run: EvalRun) -> list[dict[str, Any]]:
    """The LARGE and SMALL cloth subsets (CP-VTON's top/bottom TV-norm cloths) with their TV where recorded."""
    tv = run.metrics[(run.metrics["setting"] == "cloth")].groupby("cloth")["value"].first()
    subsets = cloth_subsets(run.metrics)
    out = []
    for subset in ("large", "small"):
        cloths = sorted(c for c, s in subsets.items() if s == subset)[:SUBSET_GALLERY_SIZE]
        if cloths:
            out.append({"title": subset.upper(), "entries": [
                {"cloth": c, "value": fmt(tv.get(c)), "picture": picture("cloth", run.data_image(fm.CLOTH_DIR, c))}
                for c in cloths
            ]})
    return out


def protocol_comparison(summary: dict[str, Any]) -> dict[str, Any] | None:
    """summary.json's protocol comparison as a table: one row per metric, one column per protocol, then the settings
    that differ; None when one protocol ran."""
    names = [n for n in PROTOCOLS if n in (summary.get("protocols") or {})]
    if not set(names) - {"vton"}:
        return None
    rows = [{"metric": r["metric"],
             "cells": [fmt(r["values"].get(n)) if n in r["values"] else "" for n in names],
             "differ": [(setting, [by.get(n, "") for n in names]) for setting, by in r["differ"].items()]}
            for r in summary.get("comparison") or []]
    return {"names": names, "rows": rows}


def eval_section(run: EvalRun) -> dict[str, Any]:
    protocol = dict(run.summary.get("protocol") or {})
    versions = protocol.pop("versions", {}) or {}
    return {
        "kind": "eval",
        "name": run.name,
        "path": str(run.path),
        "data": str(run.data or ""),
        "results": {k: str(v) for k, v in (run.summary.get("results") or {}).items()},
        "versions": sorted((str(k), str(v)) for k, v in versions.items()),
        "protocol": [
            (str(k), json.dumps(v, indent=1, sort_keys=True, default=str)) for k, v in sorted(protocol.items())
        ],
        "skipped": sorted((str(k), str(v)) for k, v in (run.summary.get("skipped") or {}).items()),
        "metrics": metric_rows(run),
        "categories": category_table(run),
        "protocols": protocol_comparison(run.summary),
        "galleries": galleries(run),
        "subsets": subset_galleries(run),
    }


def prepared_section(run: PreparedRun) -> dict[str, Any]:
    info = run.info
    by_reason = Counter((r.get("stage", ""), r.get("reason", "")) for r in run.rejected)
    rejections = (
        [{"stage": s, "reason": why, "count": n} for (s, why), n in sorted(by_reason.items())]
        if by_reason else list(info.get("rejections") or [])
    )
    return {
        "kind": "prepare",
        "name": run.name,
        "path": str(run.path),
        "source": str(info.get("source", "")),
        "layout": str(info.get("layout", "")),
        "seed": str(info.get("seed", "")),
        "pairs": sorted((str(k), str(v)) for k, v in (info.get("pairs") or {}).items()),
        "splits": sorted((str(k), str(v)) for k, v in (info.get("splits") or {}).items()),
        "versions": sorted((str(k), str(v)) for k, v in (info.get("versions") or {}).items()),
        "rejections": rejections,
        "rejected": [
            {k: r.get(k) or "" for k in ("pair", "split", "stage", "reason")} for r in run.rejected[:REJECTED_SHOWN]
        ],
        "rejected_total": len(run.rejected),
        "samples": [picture(p.name, p) for p in run.samples[:SAMPLES_SHOWN]],
    }


def report_html(runs: list[EvalRun | PreparedRun]) -> str:
    evals = [r for r in runs if isinstance(r, EvalRun)]
    sections = [eval_section(r) if isinstance(r, EvalRun) else prepared_section(r) for r in runs]
    return render(
        "report.html.j2",
        title="vton report: " + ", ".join(r.name for r in runs),
        version=__version__,
        sections=sections,
        comparison=comparison(evals) if len(evals) >= 2 else None,
        distributions=distributions(evals),
        alpha=ALPHA,
    )


def write_report(runs: list[Path], out: Path | None = None) -> Path:
    """Write the report for ``runs`` (evaluation runs and/or prepared datasets) to ``out`` (default RUN/report.html)."""
    if not runs:
        raise ValueError("no run given")
    loaded = [load_run(Path(p)) for p in runs]
    out = Path(out) if out is not None else Path(runs[0]) / "report.html"
    atomic_write_text(out, report_html(loaded))
    return out

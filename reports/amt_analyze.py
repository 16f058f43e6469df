"""``vton amt analyze``: preference for run A over run B from an MTurk-format results CSV and the study key.

Reads per-field answers (``Answer.choice_<i>``) and the Crowd-HTML single-column form (``Answer.taskAnswers``, a
JSON list of objects). Workers whose catch-trial accuracy is below a threshold are dropped before counting.
"""
from __future__ import annotations

import html
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vton.eval.stats import binomial_test, cluster_bootstrap_preference, wilson_interval
from vton.pipelines.io import atomic_write_json, atomic_write_text
from vton.reports.amt_export import KEY_FIELDS, SIDES
from vton.reports.render import render
from vton.reports.sheets import read_csv, write_csv

CHOICE = re.compile(r"^choice_(\d+)$")
PREFERENCE_FIELDS = ("subset", "votes", "prefer_a", "share_a", "wilson_lo", "wilson_hi", "p_binomial",
                     "bootstrap_lo", "bootstrap_hi", "items", "workers")
WORKER_FIELDS = ("worker", "assignments", "catch_correct", "catch_total", "kept")


class ResultsError(ValueError):
    """The results CSV cannot be matched to the study key."""


def _answer_value(value: Any) -> str:
    """A submitted value as text: plain strings, or Crowd-HTML radio groups ``{"left": true, "right": false}``."""
    if isinstance(value, dict):
        chosen = [k for k, v in value.items() if v is True]
        return chosen[0] if len(chosen) == 1 else ""
    return html.unescape(str(value)).strip().lower()


def parse_answers(row: dict[str, str]) -> dict[int, str]:
    """Trial index -> submitted side from ``Answer.choice_<i>`` columns and/or ``Answer.taskAnswers`` JSON."""
    answers: dict[int, str] = {}
    fields: dict[str, Any] = {}
    raw = (row.get("Answer.taskAnswers") or "").strip()
    if raw:
        try:
            parsed = json.loads(html.unescape(raw))
        except json.JSONDecodeError as exc:
            raise ResultsError(f"Answer.taskAnswers of assignment {row.get('AssignmentId', '')!r} is not JSON: {exc}") from exc
        for obj in parsed if isinstance(parsed, list) else [parsed]:
            if isinstance(obj, dict):
                fields.update(obj)
    fields.update({k[len("Answer."):]: v for k, v in row.items() if k and k.startswith("Answer.") and v})
    for name, value in fields.items():
        m = CHOICE.match(name)
        if m:
            answers[int(m.group(1))] = _answer_value(value)
    return answers


def _finite(obj: Any) -> Any:
    """NaN (no votes left) as JSON null, so analysis.json stays standard JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def preference_row(subset: str, votes: list[dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    k, n = sum(v["prefer_a"] for v in votes), len(votes)
    lo, hi = wilson_interval(k, n)
    b_lo, b_hi = cluster_bootstrap_preference(
        np.array([v["worker"] for v in votes], dtype=object), np.array([v["item"] for v in votes], dtype=object),
        np.array([v["prefer_a"] for v in votes], dtype=bool), n_boot=n_boot, seed=seed,
    ) if votes else (float("nan"), float("nan"))
    return {
        "subset": subset, "votes": n, "prefer_a": k, "share_a": k / n if n else float("nan"),
        "wilson_lo": lo, "wilson_hi": hi, "p_binomial": binomial_test(k, n),
        "bootstrap_lo": b_lo, "bootstrap_hi": b_hi,
        "items": len({v["item"] for v in votes}), "workers": len({v["worker"] for v in votes}),
    }


def analyze_results(
    results: Path, key: Path, out: Path | None = None, min_catch_accuracy: float = 0.75, n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``preference.csv``, ``workers.csv``, ``analysis.json`` and ``analysis.html`` to ``out``; return the summary."""
    key_rows = read_csv(Path(key))
    if not key_rows:
        raise ResultsError(f"{key} lists no trials")
    absent = [f for f in KEY_FIELDS if f not in key_rows[0]]
    if absent:
        raise ResultsError(f"{key} is not a key.csv of `vton amt export`: no column {', '.join(absent)}")
    trials: dict[str, dict[int, dict[str, str]]] = defaultdict(dict)
    for r in key_rows:
        trials[r["hit_id"]][int(r["trial"])] = r
    a_run, b_run = key_rows[0]["a_run"], key_rows[0]["b_run"]
    out = Path(out) if out is not None else Path(results).parent / "analysis"

    catch: dict[str, list[bool]] = defaultdict(list)
    assignments: dict[str, int] = defaultdict(int)
    ab_votes: list[dict[str, Any]] = []
    unanswered = 0
    for row in read_csv(Path(results)):
        hit = row.get("Input.hit_id", "")
        if hit not in trials:
            raise ResultsError(f"results row for HIT {hit!r} has no trials in {key}")
        worker = row.get("WorkerId", "")
        assignments[worker] += 1
        answers = parse_answers(row)
        for i, t in trials[hit].items():
            side = answers.get(i, "")
            if side not in SIDES:
                unanswered += 1
            elif t["kind"] == "catch":
                catch[worker].append(side == t["correct"])
            else:
                ab_votes.append({"worker": worker, "item": f'{t["person"]} {t["cloth"]}', "subset": t["subset"],
                                 "prefer_a": side == t["a_side"]})

    worker_rows = []
    for w in sorted(assignments):
        c = catch.get(w, [])
        kept = not c or sum(c) / len(c) >= min_catch_accuracy
        worker_rows.append({"worker": w, "assignments": assignments[w], "catch_correct": sum(c),
                            "catch_total": len(c), "kept": kept})
    kept_workers = {r["worker"] for r in worker_rows if r["kept"]}
    votes = [v for v in ab_votes if v["worker"] in kept_workers]
    subsets = ["all"] + sorted({v["subset"] or "other" for v in votes})
    rows = [preference_row(s, votes if s == "all" else [v for v in votes if (v["subset"] or "other") == s],
                           n_boot, seed) for s in subsets]
    summary = {
        "a_run": a_run, "b_run": b_run, "min_catch_accuracy": min_catch_accuracy, "bootstrap": n_boot,
        "seed": seed, "workers": len(worker_rows), "workers_dropped": len(worker_rows) - len(kept_workers),
        "votes_dropped": len(ab_votes) - len(votes), "unanswered": unanswered, "preference": rows,
    }
    write_csv(out / "preference.csv", PREFERENCE_FIELDS, rows)
    write_csv(out / "workers.csv", WORKER_FIELDS, worker_rows)
    atomic_write_json(out / "analysis.json", _finite(summary))
    atomic_write_text(out / "analysis.html", render("analysis.html.j2", s=summary, workers=worker_rows))
    return {**summary, "out": str(out)}

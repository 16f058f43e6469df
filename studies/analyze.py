"""``vton amt analyze``: preference for run A over run B from an MTurk-format results CSV and the study key.

Reads per-field answers (``Answer.choice_<i>``) and the Crowd-HTML single-column form (``Answer.taskAnswers``, a
JSON list of objects). Workers whose catch-trial accuracy is below a threshold are dropped before counting. A row or
cell the analysis cannot read (malformed JSON, an answer of the wrong type, a HIT the key lacks) stops it with an
error naming the row: silently skipping it would bias the counts. An answer that is no side counts as unanswered.
"""
from __future__ import annotations

import html
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vton.core.io import atomic_write_json, atomic_write_text
from vton.eval.stats import binomial_test, cluster_bootstrap_preference, wilson_interval
from vton.reports.render import render
from vton.reports.shapes import FLAG, TEXT, ListOf, MapOf, Obj, check, parse_json
from vton.reports.sheets import read_csv, write_csv
from vton.studies.export import KEY_FIELDS, SIDES
from vton.studies.options import AnalyzeOptions

CHOICE = re.compile(r"^choice_(\d+)$")
PREFERENCE_FIELDS = ("subset", "votes", "prefer_a", "share_a", "wilson_lo", "wilson_hi", "p_binomial",
                     "bootstrap_lo", "bootstrap_hi", "items", "workers")
WORKER_FIELDS = ("worker", "assignments", "catch_correct", "catch_total", "kept")
RESULT_COLUMNS = ("WorkerId", "Input.hit_id")
TASK_ANSWERS = (Obj(), ListOf(Obj()))  # one object of fields, or a list of them (one per page of the task)
CHOICE_VALUE = (TEXT, MapOf(FLAG))  # a side, or a Crowd-HTML radio group {"left": true, "right": false}
MAX_BOOTSTRAP = 100_000  # replicates; more only tighten the Monte-Carlo error of an interval that is already stable


class ResultsError(ValueError):
    """The results CSV cannot be matched to the study key, or an option is out of range."""


def check_options(min_catch_accuracy: float, n_boot: int, seed: int) -> None:
    """The analysis options, checked before any file is read (NaN is out of every range)."""
    if not 0 <= min_catch_accuracy <= 1:
        raise ResultsError(f"--min-catch-accuracy must be in [0, 1], not {min_catch_accuracy}")
    if not 1 <= n_boot <= MAX_BOOTSTRAP:
        raise ResultsError(f"--bootstrap must be in [1, {MAX_BOOTSTRAP}], not {n_boot}")
    if seed < 0:
        raise ResultsError(f"--seed must be non-negative, not {seed}")


def _answer_value(value: Any) -> str:
    """A submitted value as text: plain strings, or Crowd-HTML radio groups ``{"left": true, "right": false}``."""
    if isinstance(value, dict):
        chosen = [k for k, v in value.items() if v is True]
        return chosen[0] if len(chosen) == 1 else ""
    return html.unescape(str(value)).strip().lower()


def parse_answers(row: dict[str, str], where: str) -> dict[int, str]:
    """Trial index -> submitted side from ``Answer.choice_<i>`` columns and/or ``Answer.taskAnswers`` JSON.

    ``where`` names the row in errors: a taskAnswers cell that is not JSON, not objects, or holds a choice that is
    neither a string nor a radio group is a ShapeError.
    """
    answers: dict[int, str] = {}
    fields: dict[str, Any] = {}
    raw = row.get("Answer.taskAnswers", "").strip()
    if raw:
        cell = f"{where} Answer.taskAnswers"
        parsed = parse_json(html.unescape(raw), cell, TASK_ANSWERS)
        for obj in parsed if isinstance(parsed, list) else [parsed]:
            fields.update(check(obj, Obj(optional={k: CHOICE_VALUE for k in obj if CHOICE.match(k)}), cell))
    fields.update({k[len("Answer."):]: v for k, v in row.items() if k and k.startswith("Answer.") and v})
    for name, value in fields.items():
        m = CHOICE.match(name)
        if m:
            answers[int(m.group(1))] = _answer_value(value)
    return answers


def read_rows(path: Path, columns: tuple[str, ...], what: str, empty: str) -> list[dict[str, str]]:
    """The rows of CSV ``path``, which has the ``columns`` of ``what``; ResultsError when it has none or lacks one."""
    rows = read_csv(path)
    if not rows:
        raise ResultsError(f"{path} {empty}")
    absent = [c for c in columns if c not in rows[0]]
    if absent:
        raise ResultsError(f"{path} is not {what}: no column {', '.join(absent)}")
    return rows


def _key_fault(row: dict[str, str]) -> str | None:
    """What makes a key.csv row unusable, or None."""
    if not row["trial"].isdecimal():
        return f"trial must be a non-negative integer, not {row['trial']!r}"
    if row["kind"] not in ("ab", "catch"):
        return f"kind must be ab or catch, not {row['kind']!r}"
    side = "a_side" if row["kind"] == "ab" else "correct"
    if row[side] not in SIDES:
        return f"{side} must be left or right for kind {row['kind']}, not {row[side]!r}"
    return None


def read_key(path: Path) -> list[dict[str, str]]:
    """The trials of a key.csv of `vton amt export`; ResultsError naming the first row the analysis cannot use."""
    rows = read_rows(path, KEY_FIELDS, "a key.csv of `vton amt export`", "lists no trials")
    for n, row in enumerate(rows, start=1):
        fault = _key_fault(row)
        if fault:
            raise ResultsError(f"{path} row {n}: {fault}")
    return rows


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
    results: Path, key: Path, out: Path | None = None,
    min_catch_accuracy: float = AnalyzeOptions.min_catch_accuracy, n_boot: int = AnalyzeOptions.n_boot,
    seed: int = AnalyzeOptions.seed,
) -> dict[str, Any]:
    """Write preference.csv, workers.csv, analysis.json and analysis.html to ``out``; return the summary."""
    check_options(min_catch_accuracy, n_boot, seed)
    key_rows = read_key(Path(key))
    result_rows = read_rows(Path(results), RESULT_COLUMNS, "an MTurk results file", "holds no assignments")
    trials: dict[str, dict[int, dict[str, str]]] = defaultdict(dict)
    for r in key_rows:
        trials[r["hit_id"]][int(r["trial"])] = r
    a_run, b_run = key_rows[0]["a_run"], key_rows[0]["b_run"]
    out = Path(out) if out is not None else Path(results).parent / "analysis"

    catch: dict[str, list[bool]] = defaultdict(list)
    assignments: dict[str, int] = defaultdict(int)
    ab_votes: list[dict[str, Any]] = []
    unanswered = 0
    for n, row in enumerate(result_rows, start=1):
        where = f"{results} row {n} (assignment {row.get('AssignmentId', '')!r})"
        hit = row["Input.hit_id"]
        if hit not in trials:
            raise ResultsError(f"{where}: HIT {hit!r} has no trials in {key}")
        worker = row["WorkerId"]
        assignments[worker] += 1
        answers = parse_answers(row, where)
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

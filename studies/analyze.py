"""``vton amt analyze``: preferences between the runs of a study from an MTurk-format results CSV and the study key.

Reads per-field answers (``Answer.choice_<i>``) and the Crowd-HTML single-column form (``Answer.taskAnswers``, a
JSON list of objects). Workers are excluded by one recorded rule: catch-trial accuracy below a threshold, or more
failed attention checks than allowed (the ``AttentionChecksFailed`` column `vton study results` writes). A row or
cell the analysis cannot read (no WorkerId, malformed JSON, an answer of the wrong type, a HIT the key lacks) stops
it with an error naming the row: silently skipping it would bias the counts. A worker's second assignment of a HIT is
dropped with a warning (nobody is counted twice). An answer that is no side counts as unanswered; "can't tell"
(relaxed 2AFC) counts as half a win for each side.

Two runs: the share of votes preferring A, with a Wilson interval, an exact binomial test on the decisive votes and
a participant x item bootstrap. More: every pair's share, the win-rate matrix and Bradley-Terry strengths with a
participant bootstrap (`studies.ranking`).
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
from vton.studies.export import ANSWERS, KEY_FIELDS, SIDES
from vton.studies.options import AnalyzeOptions
from vton.studies.ranking import bootstrap_bradley_terry, bradley_terry, estimable, win_rates

CHOICE = re.compile(r"^choice_(\d+)$")
PREFERENCE_FIELDS = ("a_run", "b_run", "subset", "votes", "prefer_a", "ties", "share_a", "wilson_lo", "wilson_hi",
                     "p_binomial", "bootstrap_lo", "bootstrap_hi", "items", "workers")
WORKER_FIELDS = ("worker", "assignments", "catch_correct", "catch_total", "catch_accuracy", "attention_checks",
                 "attention_failed", "kept", "excluded_by")
STRENGTH_FIELDS = ("rank", "run", "log_strength", "bootstrap_lo", "bootstrap_hi", "wins", "ties", "comparisons")
TIE = "cant_tell"
SCORE = {True: 1.0, False: 0.0}
RESULT_COLUMNS = ("WorkerId", "Input.hit_id")
TASK_ANSWERS = (Obj(), ListOf(Obj()))  # one object of fields, or a list of them (one per page of the task)
CHOICE_VALUE = (TEXT, MapOf(FLAG))  # a side, or a Crowd-HTML radio group {"left": true, "right": false}
MAX_BOOTSTRAP = 100_000  # replicates; more only tighten the Monte-Carlo error of an interval that is already stable


class ResultsError(ValueError):
    """The results CSV cannot be matched to the study key, or an option is out of range."""


def check_options(min_catch_accuracy: float, n_boot: int, seed: int, max_attention_failures: int = 0) -> None:
    """The analysis options, checked before any file is read (NaN is out of every range)."""
    if max_attention_failures < 0:
        raise ResultsError(f"--max-attention-failures must be non-negative, not {max_attention_failures}")
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
    if row["kind"] == "ab" and (not row["a_run"] or not row["b_run"] or row["a_run"] == row["b_run"]):
        return f"an ab trial names two different runs, not {row['a_run']!r} and {row['b_run']!r}"
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


def preference_row(a_run: str, b_run: str, subset: str, votes: list[dict[str, Any]], n_boot: int,
                   seed: int) -> dict[str, Any]:
    """Share of ``votes`` for A (ties as halves) with a Wilson interval, the exact binomial test of the decisive
    votes (ties carry no direction, as in a sign test) and the participant x item bootstrap interval."""
    wins = sum(v["score"] == 1.0 for v in votes)
    ties = sum(v["score"] == 0.5 for v in votes)
    n = len(votes)
    lo, hi = wilson_interval(wins + ties / 2, n)
    b_lo, b_hi = cluster_bootstrap_preference(
        np.array([v["worker"] for v in votes], dtype=object), np.array([v["item"] for v in votes], dtype=object),
        np.array([v["score"] for v in votes], dtype=float), n_boot=n_boot, seed=seed,
    ) if votes else (float("nan"), float("nan"))
    return {
        "a_run": a_run, "b_run": b_run, "subset": subset, "votes": n, "prefer_a": wins, "ties": ties,
        "share_a": (wins + ties / 2) / n if n else float("nan"), "wilson_lo": lo, "wilson_hi": hi,
        "p_binomial": binomial_test(wins, n - ties), "bootstrap_lo": b_lo, "bootstrap_hi": b_hi,
        "items": len({v["item"] for v in votes}), "workers": len({v["worker"] for v in votes}),
    }


def unique_assignments(rows: list[dict[str, str]], path: Path) -> tuple[list[tuple[int, dict[str, str]]], int]:
    """The rows (numbered from 1) without a worker's repeated assignments of one HIT (the first is kept), and how
    many were dropped; a row without a WorkerId is an error, since nobody could tell whose answer it is."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for n, row in enumerate(rows, start=1):
        if not row["WorkerId"].strip():
            raise ResultsError(f"{path} row {n} (assignment {row.get('AssignmentId', '')!r}): no WorkerId")
        key = (row["WorkerId"], row["Input.hit_id"])
        if key not in seen:
            seen.add(key)
            kept.append((n, row))
    return kept, len(rows) - len(kept)


def count_cell(row: dict[str, str], column: str, where: str) -> int:
    """A count column of `vton study results` (absent or empty in MTurk's own files: 0)."""
    value = row.get(column, "") or "0"
    if not value.isdecimal():
        raise ResultsError(f"{where}: {column} must be a non-negative integer, not {value!r}")
    return int(value)


def exclusion(catch: list[bool], failed: int, min_catch_accuracy: float, max_attention_failures: int) -> str:
    """Why the rule excludes a worker ('' when it keeps them)."""
    reasons = []
    if catch and sum(catch) / len(catch) < min_catch_accuracy:
        reasons.append(f"catch accuracy {sum(catch) / len(catch):.3f} < {min_catch_accuracy}")
    if failed > max_attention_failures:
        reasons.append(f"{failed} failed attention checks > {max_attention_failures}")
    return "; ".join(reasons)


def ranking(runs: list[str], votes: list[dict[str, Any]], n_boot: int, seed: int) -> dict[str, Any]:
    """Win-rate matrix and Bradley-Terry strengths of ``runs`` (ties as halves) with a participant bootstrap."""
    index = {r: i for i, r in enumerate(runs)}
    workers = sorted({v["worker"] for v in votes})
    w_index = {w: i for i, w in enumerate(workers)}
    per = np.zeros((len(workers), len(runs), len(runs)))
    for v in votes:
        w, a, b = w_index[v["worker"]], index[v["a"]], index[v["b"]]
        per[w, a, b] += v["score"]
        per[w, b, a] += 1 - v["score"]
    c = per.sum(axis=0)
    rates = win_rates(c)
    result: dict[str, Any] = {"runs": runs, "win_rates": [[None if math.isnan(x) else x for x in row] for row in rates],
                              "comparisons": (c + c.T).astype(int).tolist(), "strengths": [], "note": ""}
    if not estimable(c):
        result["note"] = "no Bradley-Terry fit: some run never wins or never loses against the others"
        return result
    strength = bradley_terry(c)
    lo, hi, degenerate = bootstrap_bradley_terry(per, n_boot, seed)
    ties = [sum(v["score"] == 0.5 for v in votes if r in (v["a"], v["b"])) for r in runs]
    met = (c + c.T).sum(axis=1)
    result["strengths"] = [
        {"rank": rank + 1, "run": runs[i], "log_strength": float(strength[i]), "bootstrap_lo": float(lo[i]),
         "bootstrap_hi": float(hi[i]), "wins": float(c[i].sum()), "ties": ties[i], "comparisons": int(met[i])}
        for rank, i in enumerate(np.argsort(-strength, kind="stable"))
    ]
    result["degenerate_replicates"] = degenerate
    return result


def analyze_results(
    results: Path, key: Path, out: Path | None = None,
    min_catch_accuracy: float = AnalyzeOptions.min_catch_accuracy, n_boot: int = AnalyzeOptions.n_boot,
    seed: int = AnalyzeOptions.seed, max_attention_failures: int = AnalyzeOptions.max_attention_failures,
) -> dict[str, Any]:
    """Write preference.csv, workers.csv, analysis.json and analysis.html (and, for three runs or more,
    strengths.csv and win_rates.csv) to ``out``; return the summary."""
    check_options(min_catch_accuracy, n_boot, seed, max_attention_failures)
    key_rows = read_key(Path(key))
    result_rows = read_rows(Path(results), RESULT_COLUMNS, "an MTurk results file", "holds no assignments")
    trials: dict[str, dict[int, dict[str, str]]] = defaultdict(dict)
    for r in key_rows:
        trials[r["hit_id"]][int(r["trial"])] = r
    runs = list(dict.fromkeys(x for r in key_rows if r["kind"] == "ab" for x in (r["a_run"], r["b_run"])))
    if not runs:
        raise ResultsError(f"{key} lists no A/B trials")
    order = {r: i for i, r in enumerate(runs)}
    out = Path(out) if out is not None else Path(results).parent / "analysis"
    rows, duplicates = unique_assignments(result_rows, Path(results))

    catch: dict[str, list[bool]] = defaultdict(list)
    assignments: dict[str, int] = defaultdict(int)
    checks: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    all_votes: list[dict[str, Any]] = []
    unanswered = 0
    for n, row in rows:
        where = f"{results} row {n} (assignment {row.get('AssignmentId', '')!r})"
        hit = row["Input.hit_id"]
        if hit not in trials:
            raise ResultsError(f"{where}: HIT {hit!r} has no trials in {key}")
        worker = row["WorkerId"]
        assignments[worker] += 1
        checks[worker][0] += count_cell(row, "AttentionChecks", where)
        checks[worker][1] += count_cell(row, "AttentionChecksFailed", where)
        answers = parse_answers(row, where)
        for i, t in trials[hit].items():
            side = answers.get(i, "")
            if side not in ANSWERS:
                unanswered += 1
            elif t["kind"] == "catch":
                catch[worker].append(side == t["correct"])
            else:  # oriented so that A is the run listed first
                score = 0.5 if side == TIE else SCORE[side == t["a_side"]]
                a, b = sorted((t["a_run"], t["b_run"]), key=order.__getitem__)
                all_votes.append({"worker": worker, "item": f'{t["person"]} {t["cloth"]}', "subset": t["subset"],
                                  "a": a, "b": b, "score": score if a == t["a_run"] else 1 - score})

    worker_rows = []
    for w in sorted(assignments):
        c = catch.get(w, [])
        why = exclusion(c, checks[w][1], min_catch_accuracy, max_attention_failures)
        worker_rows.append({"worker": w, "assignments": assignments[w], "catch_correct": sum(c),
                            "catch_total": len(c), "catch_accuracy": sum(c) / len(c) if c else float("nan"),
                            "attention_checks": checks[w][0], "attention_failed": checks[w][1], "kept": not why,
                            "excluded_by": why})
    kept_workers = {r["worker"] for r in worker_rows if r["kept"]}
    votes = [v for v in all_votes if v["worker"] in kept_workers]
    pref_rows = []
    pairs = dict.fromkeys(tuple(sorted((r["a_run"], r["b_run"]), key=order.__getitem__))
                          for r in key_rows if r["kind"] == "ab")
    for a, b in pairs:
        pair = [v for v in votes if (v["a"], v["b"]) == (a, b)]
        by_subset = {"all": pair}
        for v in sorted(pair, key=lambda v: v["subset"] or "other"):
            by_subset.setdefault(v["subset"] or "other", []).append(v)
        pref_rows += [preference_row(a, b, s, sub, n_boot, seed) for s, sub in by_subset.items()]
    rule = (f"a worker is excluded when their catch-trial accuracy is below {min_catch_accuracy} or they failed "
            f"more than {max_attention_failures} attention checks")
    warnings = [f"{duplicates} repeated assignments (a worker's second answer to a HIT) dropped; the first kept"] \
        if duplicates else []
    summary = {
        "runs": runs, "a_run": runs[0], "b_run": runs[1], "exclusion_rule": rule,
        "min_catch_accuracy": min_catch_accuracy, "max_attention_failures": max_attention_failures,
        "bootstrap": n_boot, "seed": seed, "workers": len(worker_rows),
        "workers_dropped": len(worker_rows) - len(kept_workers), "votes_dropped": len(all_votes) - len(votes),
        "duplicates_dropped": duplicates, "unanswered": unanswered, "ties": sum(v["score"] == 0.5 for v in votes),
        "warnings": warnings, "preference": pref_rows,
        "ranking": ranking(runs, votes, n_boot, seed) if len(runs) > 2 else None,
    }
    write_csv(out / "preference.csv", PREFERENCE_FIELDS, pref_rows)
    write_csv(out / "workers.csv", WORKER_FIELDS, worker_rows)
    if summary["ranking"] is not None:
        rk = summary["ranking"]
        write_csv(out / "strengths.csv", STRENGTH_FIELDS, rk["strengths"])
        write_csv(out / "win_rates.csv", ["run", *runs],
                  [{"run": r, **{o: "" if x is None else x for o, x in zip(runs, row)}}
                   for r, row in zip(runs, rk["win_rates"])])
    atomic_write_json(out / "analysis.json", _finite(summary))
    atomic_write_text(out / "analysis.html", render("analysis.html.j2", s=summary, workers=worker_rows))
    return {**summary, "out": str(out)}

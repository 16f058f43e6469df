"""`vton amt analyze` beyond two runs and beyond MTurk: Bradley-Terry (against a hand-worked example and choix called
directly), "can't tell" as half a win, repeated assignments, rows without a WorkerId, attention-check exclusions."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import choix
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from tests._reports_fixtures import one_line_error
from vton.cli import main

KEY_FIELDS = ["hit_id", "trial", "kind", "person", "cloth", "subset", "left", "right", "a_side", "correct", "a_run",
              "b_run"]


def write_study(folder: Path, hits: dict[str, list[tuple[str, str]]],
                answers: list[tuple[str, str, list[str]]], extra: dict[int, dict[str, str]] | None = None) -> None:
    """key.csv: per HIT, its trials as (run on the left = A, run on the right = B); results.csv: per row
    (worker, HIT, the answers in trial order); ``extra`` adds cells to a results row by its index."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "key.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, KEY_FIELDS)
        w.writeheader()
        for hit, trials in hits.items():
            for i, (a, b) in enumerate(trials):
                w.writerow({"hit_id": hit, "trial": i, "kind": "ab", "person": f"{hit}-{i}_0.jpg", "cloth": "c_1.jpg",
                            "subset": "", "left": a, "right": b, "a_side": "left", "correct": "", "a_run": a,
                            "b_run": b})
    n = max(len(t) for t in hits.values())
    head = ["AssignmentId", "WorkerId", "Input.hit_id", *(f"Answer.choice_{i}" for i in range(n)),
            "AttentionChecks", "AttentionChecksFailed"]
    with open(folder / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, head)
        w.writeheader()
        for r, (worker, hit, sides) in enumerate(answers):
            w.writerow({"AssignmentId": f"A{r}", "WorkerId": worker, "Input.hit_id": hit,
                        **{f"Answer.choice_{i}": s for i, s in enumerate(sides)}, **(extra or {}).get(r, {})})


def analyze(folder: Path, *extra: str):
    return CliRunner().invoke(main, ["amt", "analyze", str(folder / "results.csv"), "--key", str(folder / "key.csv"),
                                     "--out", str(folder / "an"), "--bootstrap", "200", *extra])


def summary(folder: Path) -> dict:
    return json.loads((folder / "an" / "analysis.json").read_text())


# Hand-worked: strengths p = (4, 2, 1) give P(A>B) = 2/3, P(B>C) = 2/3, P(A>C) = 4/5. Votes in exactly those
# proportions (A-B 2:1, B-C 2:1, A-C 4:1) satisfy the likelihood equations wins_i = sum_j n_ij p_i / (p_i + p_j):
# A: 6 = 3 * 2/3 + 5 * 4/5, B: 3 = 3 * 1/3 + 3 * 2/3, C: 2 = 3 * 1/3 + 5 * 1/5. So the log-strengths, centred, are
# (ln 4, ln 2, ln 1) - ln 2 = (ln 2, 0, -ln 2).
HAND_TRIALS = [("A", "B")] * 3 + [("B", "C")] * 3 + [("A", "C")] * 5
HAND_SIDES = ["left", "left", "right"] + ["left", "left", "right"] + ["left"] * 4 + ["right"]


@pytest.mark.parametrize("ab_answers", [["left", "left", "right"], ["left", "cant_tell", "cant_tell"]])
def test_bradley_terry_matches_the_hand_worked_example(tmp_path: Path, ab_answers: list[str]) -> None:
    """A-B as 2 wins to 1, or as 1 win and 2 "can't tell" (half a win each way): the same 2 : 1."""
    write_study(tmp_path, {"h1": HAND_TRIALS}, [("W1", "h1", ab_answers + HAND_SIDES[3:])])
    result = analyze(tmp_path, "--min-catch-accuracy", "0")
    assert result.exit_code == 0, result.output
    ranking = summary(tmp_path)["ranking"]
    strengths = {r["run"]: r["log_strength"] for r in ranking["strengths"]}
    assert strengths == pytest.approx({"A": math.log(2), "B": 0.0, "C": -math.log(2)}, abs=1e-6)
    assert [r["run"] for r in ranking["strengths"]] == ["A", "B", "C"]
    rates = np.array(ranking["win_rates"], dtype=float)
    assert rates[0, 1] == pytest.approx(2 / 3) and rates[1, 2] == pytest.approx(2 / 3)
    assert rates[0, 2] == pytest.approx(4 / 5) and rates[2, 0] == pytest.approx(1 / 5)
    assert summary(tmp_path)["ties"] == ab_answers.count("cant_tell")
    with open(tmp_path / "an" / "win_rates.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["run", "A", "B", "C"]
    assert "#1 A: Bradley-Terry +0.693" in result.output


def test_bradley_terry_matches_choix_called_directly_and_recovers_planted_strengths(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    runs, planted = ["r0", "r1", "r2", "r3"], np.array([1.0, 0.4, 0.0, -0.9])
    pairs = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:]]
    hits = {f"h{h}": [p if rng.random() < 0.5 else p[::-1] for p in pairs] for h in range(12)}
    answers, duels = [], []
    for w in range(30):
        for hit in rng.choice(sorted(hits), 8, replace=False):
            sides = []
            for a, b in hits[hit]:
                i, j = runs.index(a), runs.index(b)
                a_wins = rng.random() < 1 / (1 + math.exp(planted[j] - planted[i]))
                sides.append("left" if a_wins else "right")
                duels.append((i, j) if a_wins else (j, i))
            answers.append((f"W{w:02d}", hit, sides))
    write_study(tmp_path, hits, answers)
    result = analyze(tmp_path)
    assert result.exit_code == 0, result.output
    ranking = summary(tmp_path)["ranking"]
    got = {r["run"]: r for r in ranking["strengths"]}
    reference = choix.opt_pairwise(4, duels, alpha=0.0, method="BFGS")  # another fit of the same likelihood
    reference -= reference.mean()
    assert [got[r]["log_strength"] for r in runs] == pytest.approx(list(reference), abs=1e-3)
    assert [r["run"] for r in ranking["strengths"]] == runs  # the planted order
    for i, r in enumerate(runs):
        assert got[r]["bootstrap_lo"] < got[r]["log_strength"] < got[r]["bootstrap_hi"]
        assert got[r]["bootstrap_lo"] < planted[i] - planted.mean() < got[r]["bootstrap_hi"]
        assert got[r]["comparisons"] == sum(r_i == i or r_j == i for r_i, r_j in duels)
    counts = np.zeros((4, 4))
    for i, j in duels:
        counts[i, j] += 1
    with np.errstate(invalid="ignore"):  # the diagonal: no run meets itself
        expected = counts / (counts + counts.T)
    assert np.allclose(np.array(ranking["win_rates"], dtype=float), expected, equal_nan=True)
    pref = {(r["a_run"], r["b_run"]): r for r in summary(tmp_path)["preference"] if r["subset"] == "all"}
    assert set(pref) == set(pairs) and pref[("r0", "r3")]["prefer_a"] == counts[0, 3]


def test_cant_tell_counts_as_half_a_win_in_the_preference_rate(tmp_path: Path) -> None:
    trials = [("A", "B")] * 10
    answers = [("W1", "h1", ["left"] * 5 + ["cant_tell"] * 3 + ["right"] * 2),
               ("W2", "h1", ["left"] * 4 + ["cant_tell"] * 4 + ["right"] * 2)]
    write_study(tmp_path, {"h1": trials}, answers)
    assert analyze(tmp_path).exit_code == 0
    row = summary(tmp_path)["preference"][0]
    assert row["subset"] == "all" and (row["votes"], row["prefer_a"], row["ties"]) == (20, 9, 7)
    assert row["share_a"] == pytest.approx((9 + 3.5) / 20)
    z = stats.norm.ppf(0.975)  # Wilson's interval of 12.5 / 20, worked out from its formula
    p, n = 12.5 / 20, 20
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (
        1 + z * z / n)
    assert (row["wilson_lo"], row["wilson_hi"]) == pytest.approx((centre - half, centre + half))
    assert row["p_binomial"] == pytest.approx(stats.binomtest(9, 13).pvalue)  # the decisive votes: 9 of 13
    assert summary(tmp_path)["ranking"] is None  # two runs: no Bradley-Terry


def test_repeated_assignments_are_counted_once_with_a_warning(tmp_path: Path) -> None:
    """Was: the same worker's second answer to a HIT counted as another vote."""
    trials = [("A", "B")] * 4
    once = [("W1", "h1", ["left"] * 4), ("W2", "h1", ["right"] * 4)]
    write_study(tmp_path / "once", {"h1": trials}, once)
    write_study(tmp_path / "twice", {"h1": trials}, once + [("W1", "h1", ["left"] * 4), ("W1", "h1", ["right"] * 4)])
    assert analyze(tmp_path / "once").exit_code == 0
    result = analyze(tmp_path / "twice")
    assert result.exit_code == 0 and "warning: 2 repeated assignments" in result.output
    s = summary(tmp_path / "twice")
    assert s["duplicates_dropped"] == 2
    assert s["preference"] == summary(tmp_path / "once")["preference"]  # the first answer kept, nothing else


@pytest.mark.parametrize("worker", ["", "  "])
def test_a_row_without_a_worker_id_is_refused(tmp_path: Path, worker: str) -> None:
    write_study(tmp_path, {"h1": [("A", "B")]}, [("W1", "h1", ["left"]), (worker, "h1", ["left"])])
    message = one_line_error(analyze(tmp_path))
    assert message == f"Error: {tmp_path / 'results.csv'} row 2 (assignment 'A1'): no WorkerId"
    assert not (tmp_path / "an").exists()


def test_failed_attention_checks_exclude_by_the_recorded_rule(tmp_path: Path) -> None:
    trials = [("A", "B")] * 4
    answers = [("W1", "h1", ["left"] * 4), ("W2", "h1", ["right"] * 4)]
    write_study(tmp_path, {"h1": trials}, answers, extra={1: {"AttentionChecks": "1", "AttentionChecksFailed": "1"}})
    assert analyze(tmp_path).exit_code == 0
    s = summary(tmp_path)
    assert s["preference"][0]["votes"] == 4 and s["workers_dropped"] == 1
    assert "failed more than 0 attention checks" in s["exclusion_rule"]
    with open(tmp_path / "an" / "workers.csv", newline="") as fh:
        workers = {r["worker"]: r for r in csv.DictReader(fh)}
    assert workers["W2"]["excluded_by"] == "1 failed attention checks > 0" and workers["W1"]["kept"] == "True"
    assert analyze(tmp_path, "--max-attention-failures", "1").exit_code == 0
    assert summary(tmp_path)["workers_dropped"] == 0
    write_study(tmp_path, {"h1": trials}, answers, extra={1: {"AttentionChecksFailed": "x"}})
    assert "AttentionChecksFailed must be a non-negative integer, not 'x'" in one_line_error(analyze(tmp_path))

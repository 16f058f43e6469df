"""`vton amt export` / `vton amt analyze`: a study exported from fixture runs, answered by simulated workers."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import stats

from tests._reports_fixtures import EVIL, FORMULA, one_line_error, person_ids, write_data, write_eval_run
from tests.file_formats import png_chunks
from vton.cli import main

N = 24
K = 6
BASE = "https://cdn.example.org/study1"
MTURK_HEAD = ["HITId", "HITTypeId", "Title", "Description", "Keywords", "Reward", "CreationTime", "MaxAssignments",
              "RequesterAnnotation", "AssignmentDurationInSeconds", "AutoApprovalDelayInSeconds", "Expiration",
              "NumberOfSimilarHITs", "LifetimeInSeconds", "AssignmentId", "WorkerId", "AssignmentStatus",
              "AcceptTime", "SubmitTime", "AutoApprovalTime", "ApprovalTime", "RejectionTime", "RequesterFeedback",
              "WorkTimeInSeconds", "LifetimeApprovalRate", "Last30DaysApprovalRate", "Last7DaysApprovalRate"]


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture()
def runs(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    ids = person_ids(N)
    data = write_data(tmp_path, ids)
    clothes = [f"{p}_1.jpg" for p in ids]
    large, small = set(clothes[:8]), set(clothes[-8:])
    ssim = np.linspace(0.5, 0.9, N)
    a = write_eval_run(tmp_path, "runA", "cpvton", data, ssim, 2, large, small)
    b = write_eval_run(tmp_path, "runB", "baseline", data, ssim, 3, large, small)
    return a, b, clothes


def export(a: Path, b: Path, out: Path, *extra: str) -> None:
    args = ["amt", "export", "--a", str(a), "--b", str(b), "--base-url", BASE + "/", "--out", str(out),
            "--trials-per-hit", str(K), "--catch-rate", "0.2", "--seed", "5", *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


def test_export_formats_blinding_and_key(runs, tmp_path: Path) -> None:
    a, b, _ = runs
    out = tmp_path / "study"
    export(a, b, out)
    hits, key = read(out / "hits.csv"), read(out / "key.csv")
    template = (out / "hit_template.html").read_text()
    header = list(hits[0])
    assert set(re.findall(r"\$\{(\w+)\}", template)) == set(header)  # CSV header = template variables
    assert sorted(set(re.findall(r'name="(choice_\d+)"', template))) == sorted(f"choice_{i}" for i in range(K))
    assert len(hits) == 5 and len(key) == 5 * K  # 24 pairs, 5 A/B + 1 catch per HIT, last HIT padded with catches
    assert sum(k["kind"] == "ab" for k in key) == N
    assert all(sum(k["kind"] == "catch" for k in key if k["hit_id"] == h["hit_id"]) >= 1 for h in hits)
    # blinding: only key.csv names runs or people; image names are opaque hashes under the base URL
    for name in ("hits.csv", "hit_template.html", "study.json"):
        text = (out / name).read_text()
        for word in ("cpvton", "baseline", "runA", "runB", "000001", "alert(1)", "SUM("):
            assert word not in text
    urls = [v for h in hits for k, v in h.items() if k != "hit_id"]
    assert all(re.fullmatch(re.escape(BASE) + r"/[0-9a-f]{24}\.png", u) for u in urls)
    assert {u.rsplit("/", 1)[1] for u in urls} == {p.name for p in (out / "images").iterdir()}
    # the key is truthful: the side it names shows that run's try-on, the catch side is the real photo
    sides = {"left": 0, "right": 0}
    for k in key:
        row = next(h for h in hits if h["hit_id"] == k["hit_id"])
        i = k["trial"]
        shown = {s: pixels(out / "images" / row[f"{s}_{i}"].rsplit("/", 1)[1]) for s in ("left", "right")}
        name = k["person"][1:] if k["person"].startswith("'=") else k["person"]  # undo the formula guard
        person = pixels(a.parent / "data" / "test" / "image" / name)
        assert np.array_equal(pixels(out / "images" / row[f"person_{i}"].rsplit("/", 1)[1]), person)
        if k["kind"] == "ab":
            sides[k["a_side"]] += 1
            other = "right" if k["a_side"] == "left" else "left"
            stem = Path(name).stem
            assert np.array_equal(shown[k["a_side"]], pixels(a.parent / "runA_results/unpaired/try-on" / f"{stem}.png"))
            assert np.array_equal(shown[other], pixels(b.parent / "runB_results/unpaired/try-on" / f"{stem}.png"))
            assert {k["left"], k["right"]} == {"cpvton", "baseline"}
        else:  # the real side is the photo mirrored, the other a tile-shuffled copy of it, both of its size
            fake = "right" if k["correct"] == "left" else "left"
            assert np.array_equal(shown[k["correct"]], person[:, ::-1])
            assert not np.array_equal(shown[fake], person[:, ::-1]) and shown[fake].shape == person.shape
            assert np.array_equal(np.sort(shown[fake], axis=None), np.sort(person, axis=None))
            # the scrambled copy compresses worse: both files padded to one length by an ancillary chunk of zeros,
            # valid PNGs (every CRC checked), so a script cannot pick the real one by its size
            files = [(out / "images" / row[f"{side}_{i}"].rsplit("/", 1)[1]).read_bytes() for side in ("left", "right")]
            assert len(files[0]) == len(files[1])
            for data in files:
                chunks = png_chunks(data)
                assert [kind for kind, _ in chunks[-2:]] == [b"vtPd", b"IEND"] and not any(chunks[-2][1])
    assert abs(sides["left"] - sides["right"]) <= 1  # balanced, not a coin flip per trial
    # a catch trial's answer is not in its URLs: neither option is an image shown as a person or cloth anywhere
    references = {h[f"{f}_{i}"] for h in hits for i in range(K) for f in ("person", "cloth")}
    for k in (k for k in key if k["kind"] == "catch"):
        row = next(h for h in hits if h["hit_id"] == k["hit_id"])
        assert not {row[f"left_{k['trial']}"], row[f"right_{k['trial']}"]} & references
    # formula guard and names kept in the key
    persons = [k["person"] for k in key]
    assert "'" + FORMULA + "_0.jpg" in persons and EVIL + "_0.jpg" in persons


def test_catch_options_are_files_of_one_length(tmp_path: Path) -> None:
    """A smooth photo compresses far better than its tile-scrambled copy; padded, the two files are one length and
    still decode to their own pixels."""
    import random

    from vton.studies.export import ImageStore, catch_images

    y, x = np.mgrid[0:256, 0:192]
    photo = Image.fromarray(np.stack([y, x, (x + y) // 2], axis=-1).astype(np.uint8))
    options = catch_images(photo, random.Random(0))
    (tmp_path / "images").mkdir()
    plain = {k: ImageStore(tmp_path / "images", "u", 0).add(v) for k, v in options.items()}
    sizes = {k: (tmp_path / "images" / url.rsplit("/", 1)[1]).stat().st_size for k, url in plain.items()}
    assert sizes["scrambled"] > sizes["real"] * 1.2  # what an unpadded export gave away
    padded = ImageStore(tmp_path / "images", "u", 0).add_same_size(options)
    files = {k: (tmp_path / "images" / url.rsplit("/", 1)[1]) for k, url in padded.items()}
    assert len({f.stat().st_size for f in files.values()}) == 1
    assert files["real"].stat().st_size == sizes["scrambled"] + 12  # the larger one gets an empty chunk
    for k, f in files.items():
        assert [kind for kind, _ in png_chunks(f.read_bytes())][-2:] == [b"vtPd", b"IEND"]
        assert np.array_equal(np.asarray(Image.open(f)), np.asarray(options[k]))


def test_export_is_deterministic_and_subsets(runs, tmp_path: Path) -> None:
    a, b, clothes = runs
    export(a, b, tmp_path / "s1")
    export(a, b, tmp_path / "s2")
    for name in ("hits.csv", "key.csv", "hit_template.html", "study.json"):
        assert (tmp_path / "s1" / name).read_bytes() == (tmp_path / "s2" / name).read_bytes()
    export(a, b, tmp_path / "large", "--subset", "large")
    ab = [k for k in read(tmp_path / "large" / "key.csv") if k["kind"] == "ab"]
    expected = {c for c in clothes[:8]}
    assert {k["cloth"].lstrip("'") for k in ab} == expected and {k["subset"] for k in ab} == {"large"}
    bad = CliRunner().invoke(main, ["amt", "export", "--a", str(a), "--b", str(b), "--base-url", BASE,
                                    "--out", str(tmp_path / "x"), "--trials-per-hit", "1", "--catch-rate", "0.5"])
    assert bad.exit_code != 0 and "no room" in bad.output


def simulate(
    study: Path, workers: dict[str, tuple[float, bool]], rng: np.random.Generator, json_form: set[str]
) -> Path:
    """MTurk results: each worker answers every HIT; (P(prefer A), passes catches). Returns the CSV path."""
    hits, key = read(study / "hits.csv"), read(study / "key.csv")
    inputs = list(hits[0])
    head = (
        MTURK_HEAD
        + [f"Input.{c}" for c in inputs]
        + ["Answer.taskAnswers"]
        + [f"Answer.choice_{i}" for i in range(K)]
        + ["Approve", "Reject"]
    )
    rows = []
    for w, (p_a, attentive) in workers.items():
        for h in hits:
            answers = {}
            for k in (k for k in key if k["hit_id"] == h["hit_id"]):
                wrong = {"left": "right", "right": "left"}
                if k["kind"] == "catch":
                    side = k["correct"] if attentive else wrong[k["correct"]]
                else:
                    side = k["a_side"] if rng.random() < p_a else wrong[k["a_side"]]
                answers[f"choice_{k['trial']}"] = side
            row = {c: "" for c in head}
            row.update({"HITId": "X" + h["hit_id"], "WorkerId": w, "AssignmentStatus": "Submitted"})
            row.update({f"Input.{c}": v for c, v in h.items()})
            if w in json_form:  # the Crowd-HTML single-column form, HTML-escaped quotes, radio-group values
                obj = {
                    n: ({"left": s == "left", "right": s == "right"} if n.endswith(("0", "2")) else s)
                    for n, s in answers.items()
                }
                row["Answer.taskAnswers"] = json.dumps([obj]).replace('"', "&#34;")
            else:
                row.update({f"Answer.{n}": s for n, s in answers.items()})
            rows.append(row)
    path = study / "mturk_results.csv"
    with open(path, "w", newline="") as fh:
        wr = csv.DictWriter(fh, head)
        wr.writeheader()
        wr.writerows(rows)
    return path


def test_analyze_recovers_planted_preference(runs, tmp_path: Path) -> None:
    a, b, _ = runs
    study = tmp_path / "study"
    export(a, b, study)
    workers = {f"W{i:02d}": (0.7, True) for i in range(20)} | {"BAD1": (0.0, False), "BAD2": (0.0, False)}
    results = simulate(study, workers, np.random.default_rng(11), json_form={f"W{i:02d}" for i in range(0, 20, 2)})
    res = CliRunner().invoke(main, ["amt", "analyze", str(results), "--key", str(study / "key.csv"),
                                    "--out", str(tmp_path / "an"), "--bootstrap", "500"])
    assert res.exit_code == 0, res.output
    pref = {r["subset"]: r for r in read(tmp_path / "an" / "preference.csv")}
    allr = pref["all"]
    n = 20 * N
    assert int(allr["votes"]) == n  # BAD workers dropped, every answer (both forms) counted
    k = int(allr["prefer_a"])
    assert float(allr["p_binomial"]) == pytest.approx(stats.binomtest(k, n).pvalue)
    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    assert (float(allr["wilson_lo"]), float(allr["wilson_hi"])) == pytest.approx((ci.low, ci.high))
    assert float(allr["wilson_lo"]) < 0.7 < float(allr["wilson_hi"])
    assert float(allr["bootstrap_lo"]) < 0.7 < float(allr["bootstrap_hi"])
    assert float(allr["p_binomial"]) < 1e-6
    assert set(pref) == {"all", "large", "small", "other"} and int(pref["large"]["votes"]) == 20 * 8
    workers_csv = {r["worker"]: r for r in read(tmp_path / "an" / "workers.csv")}
    assert workers_csv["BAD1"]["kept"] == "False" and workers_csv["W00"]["kept"] == "True"
    assert workers_csv["W00"]["catch_total"] == str(sum(1 for k in read(study / "key.csv") if k["kind"] == "catch"))
    assert "A = cpvton" in (tmp_path / "an" / "analysis.html").read_text()


def test_analyze_keeps_everyone_at_zero_threshold(runs, tmp_path: Path) -> None:
    a, b, _ = runs
    study = tmp_path / "study"
    export(a, b, study)
    results = simulate(study, {"G": (1.0, True), "BAD": (0.0, False)}, np.random.default_rng(0), set())
    from vton.studies.analyze import analyze_results

    s = analyze_results(results, study / "key.csv", tmp_path / "an", min_catch_accuracy=0.0, n_boot=50)
    assert s["workers_dropped"] == 0 and s["preference"][0]["share_a"] == 0.5


def test_analyze_rejects_broken_task_answers(runs, tmp_path: Path) -> None:
    a, b, _ = runs
    study = tmp_path / "study"
    export(a, b, study)
    hit = read(study / "hits.csv")[0]["hit_id"]
    results = tmp_path / "r.csv"
    results.write_text(f"AssignmentId,WorkerId,Input.hit_id,Answer.taskAnswers\nA1,W1,{hit},[{{not json\n")
    res = CliRunner().invoke(main, ["amt", "analyze", str(results), "--key", str(study / "key.csv")])
    assert res.exit_code != 0 and "is not JSON" in res.output
    results.write_text("AssignmentId,WorkerId,Input.hit_id\nA1,W1,nohit\n")
    res = CliRunner().invoke(main, ["amt", "analyze", str(results), "--key", str(study / "key.csv")])
    assert res.exit_code != 0 and "no trials" in res.output


@pytest.fixture(scope="module")
def small_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study of 8 pairs, 4 trials per HIT (1 catch), shared by the tests that only read its key."""
    root = tmp_path_factory.mktemp("small_study")
    data = write_data(root, person_ids(8))
    a = write_eval_run(root, "runA", "cpvton", data, np.linspace(0.5, 0.9, 8), 2, set(), set())
    b = write_eval_run(root, "runB", "baseline", data, np.linspace(0.5, 0.9, 8), 3, set(), set())
    export(a, b, root / "study", "--trials-per-hit", "4", "--catch-rate", "0.25")
    return root / "study"


def write_results(path: Path, hit: str, task_answers: str) -> Path:
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["AssignmentId", "WorkerId", "Input.hit_id", "Answer.taskAnswers"],
                                  ["A1", "W1", hit, task_answers]])
    return path


def analyze(results: Path, key: Path, *extra: str):
    return CliRunner().invoke(main, ["amt", "analyze", str(results), "--key", str(key), "--bootstrap", "20", *extra])


ANSWER_FAULTS = {  # Answer.taskAnswers cell: the part of the message that names the fault
    "nested 100000 deep": ("[" * 100_000, "is not JSON: maximum recursion depth exceeded"),  # json's parser recurses
    "nested 100 deep": ('[{"choice_0": ' + "[" * 100 + "]" * 100 + "}]", "nests deeper than 64 levels"),
    "invalid JSON": ("[{not json", "is not JSON: Expecting property name"),
    "a string": ('"left"', "the top level must be an object or an array, not \"left\""),
    "a list of numbers": ("[1, 2]", "[0] must be an object, not 1"),
    "a choice as a number": ('[{"choice_0": 1}]', '["choice_0"] must be a string or an object, not 1'),
    "a choice as null": ('{"choice_0": null}', '["choice_0"] must be a string or an object, not null'),
    "a radio group of strings": ('[{"choice_0": {"left": "yes", "right": ""}}]',
                                 '["choice_0"]["left"] must be true or false, not "yes"'),
}


@pytest.mark.parametrize("fault", ANSWER_FAULTS)
def test_analyze_names_the_row_of_a_malformed_answer(small_study: Path, tmp_path: Path, fault: str) -> None:
    cell, names_fault = ANSWER_FAULTS[fault]
    hit = read(small_study / "hits.csv")[0]["hit_id"]
    results = write_results(tmp_path / "results.csv", hit, cell)
    message = one_line_error(analyze(results, small_study / "key.csv", "--out", str(tmp_path / "an")))
    assert message.startswith(f"Error: {results} row 1 (assignment 'A1') Answer.taskAnswers") and names_fault in message
    assert not (tmp_path / "an").exists()  # nothing half-written


def test_analyze_refuses_a_cell_over_the_csv_field_limit(small_study: Path, tmp_path: Path) -> None:
    hit = read(small_study / "hits.csv")[0]["hit_id"]
    results = write_results(tmp_path / "results.csv", hit, "[" * 100_000 + "]" * 100_000)
    message = one_line_error(analyze(results, small_study / "key.csv"))
    assert message == f"Error: {results} line 2: field larger than field limit (131072)"


@pytest.mark.parametrize("change, names_fault", [
    ({"trial": "x"}, "row 1: trial must be a non-negative integer, not 'x'"),
    ({"trial": "-1"}, "row 1: trial must be a non-negative integer, not '-1'"),
    ({"kind": "abc"}, "row 1: kind must be ab or catch, not 'abc'"),
    ({"kind": "ab", "a_side": "middle"}, "row 1: a_side must be left or right for kind ab, not 'middle'"),
    ({"kind": "catch", "correct": ""}, "row 1: correct must be left or right for kind catch, not ''"),
    (None, "row 1: trial must be a non-negative integer, not ''"),  # a row cut short after its hit_id
])
def test_analyze_names_the_row_of_a_malformed_key(small_study: Path, tmp_path: Path, change, names_fault) -> None:
    rows = read(small_study / "key.csv")
    key = tmp_path / "key.csv"
    with open(key, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(list(rows[0]))
        w.writerow(list((rows[0] | change).values()) if change else [rows[0]["hit_id"]])
        w.writerows(list(r.values()) for r in rows[1:])
    results = write_results(tmp_path / "results.csv", rows[0]["hit_id"], "[]")
    assert one_line_error(analyze(results, key)) == f"Error: {key} {names_fault}"


@pytest.mark.parametrize("text, names_fault", [
    ("", "holds no assignments"),
    ("AssignmentId,WorkerId,Input.hit_id,Answer.choice_0\n", "holds no assignments"),
    ("AssignmentId,Answer.choice_0\nA1,left\n", "is not an MTurk results file: no column WorkerId, Input.hit_id"),
    ("AssignmentId,WorkerId,Input.hit_id\nA1,W1,nohit\n", "row 1 (assignment 'A1'): HIT 'nohit' has no trials in"),
])
def test_analyze_refuses_results_without_assignments(small_study: Path, tmp_path: Path, text, names_fault) -> None:
    results = tmp_path / "results.csv"
    results.write_text(text)
    message = one_line_error(analyze(results, small_study / "key.csv", "--out", str(tmp_path / "an")))
    assert message.startswith(f"Error: {results} {names_fault}")
    assert not (tmp_path / "an").exists()


@pytest.mark.parametrize("args", [
    ["amt", "analyze", "{results}", "--key", "{key}", "--bootstrap", "0"],
    ["amt", "analyze", "{results}", "--key", "{key}", "--bootstrap", "-1"],
    ["amt", "analyze", "{results}", "--key", "{key}", "--min-catch-accuracy", "1.5"],
    ["amt", "analyze", "{results}", "--key", "{key}", "--min-catch-accuracy", "-0.1"],
    ["amt", "analyze", "{results}", "--key", "{key}", "--seed", "-1"],
    ["amt", "export", "--a", "{a}", "--b", "{a}", "--base-url", BASE, "--out", "{out}", "--trials-per-hit", "0"],
    ["amt", "export", "--a", "{a}", "--b", "{a}", "--base-url", BASE, "--out", "{out}", "--catch-rate", "1"],
    ["amt", "export", "--a", "{a}", "--b", "{a}", "--base-url", BASE, "--out", "{out}", "--catch-rate", "-0.1"],
])
def test_out_of_range_options_are_usage_errors(small_study: Path, tmp_path: Path, args: list[str]) -> None:
    paths = {"results": small_study / "key.csv", "key": small_study / "key.csv", "a": small_study.parent / "runA",
             "out": tmp_path / "out"}
    result = CliRunner().invoke(main, [a.format(**paths) for a in args])
    assert result.exit_code == 2 and f"Invalid value for '{args[-2]}'" in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--bootstrap", str(10**30)], "--bootstrap must be in [1, 100000], not 1" + "0" * 30),
    (["--min-catch-accuracy", "nan"], "--min-catch-accuracy must be in [0, 1], not nan"),
])
def test_analyze_options_beyond_the_cli_ranges(small_study: Path, tmp_path: Path, args, message: str) -> None:
    hit = read(small_study / "hits.csv")[0]["hit_id"]
    results = write_results(tmp_path / "results.csv", hit, "[]")
    assert one_line_error(analyze(results, small_study / "key.csv", *args)) == f"Error: {message}"


@pytest.mark.parametrize("options", [dict(n_boot=0), dict(n_boot=-5), dict(min_catch_accuracy=float("nan")),
                                     dict(min_catch_accuracy=2.0), dict(seed=-1)])
def test_analyze_results_checks_its_options_first(tmp_path: Path, options: dict) -> None:
    from vton.studies.analyze import ResultsError, analyze_results

    with pytest.raises(ResultsError, match="must be"):  # before any file is read: these do not exist
        analyze_results(tmp_path / "results.csv", tmp_path / "key.csv", tmp_path / "an", **options)


@pytest.mark.parametrize("args, message", [
    (["--trials-per-hit", "101"], "--trials-per-hit must be in [1, 100], not 101"),
    (["--trials-per-hit", str(10**30)], "--trials-per-hit must be in [1, 100], not 1" + "0" * 30),
    (["--catch-rate", "nan"], "--catch-rate must be in [0, 1)"),
])
def test_export_options_beyond_the_cli_ranges(small_study: Path, tmp_path: Path, args, message: str) -> None:
    a = small_study.parent / "runA"
    result = CliRunner().invoke(main, ["amt", "export", "--a", str(a), "--b", str(a), "--base-url", BASE,
                                       "--out", str(tmp_path / "out"), *args])
    assert one_line_error(result) == f"Error: {message}"
    assert not (tmp_path / "out").exists()


def test_export_names_an_unreadable_image(runs, tmp_path: Path) -> None:
    a, b, _ = runs
    person = a.parent / "data" / "test" / "image" / "000000_0.jpg"
    person.write_bytes(b"not an image")
    result = CliRunner().invoke(main, ["amt", "export", "--a", str(a), "--b", str(b), "--base-url", BASE,
                                       "--out", str(tmp_path / "out")])
    assert one_line_error(result).startswith(f"Error: {person}: cannot decode the image")


def test_export_refuses_a_decompression_bomb_in_one_line(runs, tmp_path: Path, monkeypatch) -> None:
    from PIL import Image

    a, b, _ = runs
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # every 32 x 24 fixture image is now a bomb to PIL
    result = CliRunner().invoke(main, ["amt", "export", "--a", str(a), "--b", str(b), "--base-url", BASE,
                                       "--out", str(tmp_path / "out")])
    assert "decompression bomb" in one_line_error(result)


def test_export_of_three_runs_is_a_balanced_pairwise_design(runs, tmp_path: Path) -> None:
    a, b, _ = runs
    c = write_eval_run(tmp_path, "runC", "third", a.parent / "data", np.linspace(0.5, 0.9, N), 4, set(), set())
    out = tmp_path / "study3"
    result = CliRunner().invoke(main, ["study", "export", "--run", str(a), "--run", str(b), "--run", str(c),
                                       "--base-url", BASE, "--out", str(out), "--trials-per-hit", str(K)])
    assert result.exit_code == 0, result.output
    ab = [k for k in read(out / "key.csv") if k["kind"] == "ab"]
    pairs = [("cpvton", "baseline"), ("cpvton", "third"), ("baseline", "third")]
    assert len(ab) == 3 * N
    for pair in pairs:  # every item once per pair of runs, each run on the left in half of them
        trials = [k for k in ab if (k["a_run"], k["b_run"]) == pair]
        assert sorted(k["person"] for k in trials) == sorted(k["person"] for k in ab if k["a_run"] == "cpvton"
                                                             and k["b_run"] == "baseline")
        assert len(trials) == N and abs(sum(k["left"] == pair[0] for k in trials) - N / 2) <= 0.5
        assert all({k["left"], k["right"]} == set(pair) for k in trials)
    assert all(word not in (out / "study.json").read_text() for word in ("cpvton", "baseline", "third"))
    same = CliRunner().invoke(main, ["amt", "export", "--run", str(a), "--run", str(a), "--base-url", BASE,
                                     "--out", str(tmp_path / "x")])
    assert one_line_error(same) == "Error: runs must have distinct names (summary.json 'run'); given twice: cpvton"

"""`vton report`: a self-contained HTML page, parsed back and checked against independent computations."""
from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from tests._reports_fixtures import EVIL, one_line_error, person_ids, write_data, write_eval_run, write_prepared
from vton.cli import main
from vton.eval.stats import binomial_test, cluster_bootstrap_preference, paired_wilcoxon, wilson_interval
from vton.reports.media import histogram_svg
from vton.reports.sheets import guard_cell

N = 12


class Page(HTMLParser):
    """Collects images, script tags, external references and the text of table rows by table class."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.scripts = 0
        self.external: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.text: list[str] = []
        self._table: list[str] = []
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if tag == "script":
            self.scripts += 1
        for k in ("src", "href"):
            if a.get(k) and not a[k].startswith("data:"):
                self.external.append(a[k])
        if tag == "table":
            self._table.append(a.get("class") or "")
        if tag == "tr":
            self._row = []
            self.rows.setdefault(self._table[-1], []).append(self._row)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table.pop()
        if tag in ("tr", "table"):
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._row is not None and data.strip():
            self._row.append(data.strip())


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture()
def two_runs(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    ids = person_ids(N)
    data = write_data(tmp_path, ids)
    clothes = [f"{p}_1.jpg" for p in ids]
    large, small = set(clothes[:4]), set(clothes[-4:])
    rng = np.random.default_rng(1)
    ssim_a = rng.uniform(0.6, 0.9, N)
    ssim_b = ssim_a - 0.05 + rng.normal(0, 0.01, N)  # B clearly worse on every image
    a = write_eval_run(tmp_path, "runA", "cpvton " + EVIL + "</script>", data, ssim_a, 2, large, small, 2.6)
    b = write_eval_run(tmp_path, "runB", "other", data, ssim_b, 3, large, small, 2.4)
    return a, b, ssim_a, ssim_b


def test_report_compares_runs_offline_and_escaped(two_runs, tmp_path: Path) -> None:
    a, b, ssim_a, ssim_b = two_runs
    out = tmp_path / "r" / "report.html"
    result = CliRunner().invoke(main, ["report", str(a), str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = parse(out)
    text = "".join(page.text)
    assert page.scripts == 0 and page.external == []  # offline, no JS: every image is a data URI
    assert "cpvton " + EVIL + "</script>" in text  # the malicious names come back as text, not markup
    assert "<script>" not in out.read_text().replace("&lt;script&gt;", "")
    # galleries: per run, best/worst/random of paired/ssim: 3 x 4 items x 5 pictures, + 4 LARGE + 4 SMALL cloths
    data_imgs = [s for s in page.imgs if s.startswith("data:image/jpeg;base64,")]
    assert len(data_imgs) == len(page.imgs) == 2 * (3 * 4 * 5 + 8)
    # per-run metric tables: paired/ssim all + large, unpaired/is all
    assert len(page.rows["metrics"]) == 2 * (1 + 3)
    comp = page.rows["comparison"][1:]
    assert [r[:3] for r in comp] == [["paired/ssim", "all", "higher"], ["paired/ssim", "large", "higher"],
                                     ["unpaired/is", "all", "higher"]]
    # run A is best on SSIM; B is significantly worse by an independent Wilcoxon test
    p = stats.wilcoxon(ssim_a, ssim_b).pvalue
    assert p < 0.05
    assert "★ best" in comp[0][3] and "★ best" not in " ".join(comp[0][4:])
    assert f"p={p:.4g} (Wilcoxon, n={N})" in comp[0]
    assert "not testable (set-level metric)" in comp[2]
    html_text = out.read_text()
    assert html_text.count('class="sig"') >= 2  # all and large subsets are significant
    assert html_text.count("<svg") == 2  # paired/ssim and cloth/tv histograms


def test_report_is_deterministic_and_defaults_next_to_run(two_runs) -> None:
    a, *_ = two_runs
    from vton.reports.html import write_report

    first = write_report([a]).read_bytes()
    assert (a / "report.html").read_bytes() == first
    assert write_report([a]).read_bytes() == first


def test_report_prepared_dataset(tmp_path: Path) -> None:
    rejected = [("000001_0.jpg 000001_1.jpg", "train", "parse", "labels out of range"),
                (EVIL + "_0.jpg x_1.jpg", "test", "pose", "18 keypoints expected"),
                ("000003_0.jpg 000003_1.jpg", "test", "pose", "18 keypoints expected")]
    prepared = write_prepared(tmp_path, rejected, samples=3)
    out = tmp_path / "p.html"
    assert CliRunner().invoke(main, ["report", str(prepared), "--out", str(out)]).exit_code == 0
    page = parse(out)
    assert page.rows["rejections"][1:] == [
        ["parse", "labels out of range", "1"],
        ["pose", "18 keypoints expected", "2"],
    ]
    assert len(page.imgs) == 3 and all(s.startswith("data:image/") for s in page.imgs)
    assert EVIL + "_0.jpg x_1.jpg" in "".join(page.text) and page.scripts == 0


def test_report_refuses_unknown_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "neither" in result.output


def _js(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _stat(**entry: object) -> dict:
    return {"metrics": {"paired/ssim": {"all": {"mean": 0.5, "std": 0.1, "ci95": [0.4, 0.6], "n": 3, **entry}}}}


def _nested(levels: int) -> object:
    value: object = 0
    for _ in range(levels):
        value = [value]
    return value


SUMMARY_FAULTS = {  # name: (summary.json's bytes from the good summary, the part of the message that names the key)
    "metrics is a list": (lambda s: _js({**s, "metrics": []}), '["metrics"] must be an object, not an array'),
    "top level is a list": (lambda s: _js([s]), "the top level must be an object"),
    "no metrics": (lambda s: _js({k: v for k, v in s.items() if k != "metrics"}), '["metrics"] is missing'),
    "metric entry is a list": (lambda s: _js({**s, "metrics": {"paired/ssim": [0.5]}}),
                               '["metrics"]["paired/ssim"] must be an object or null'),
    "subset entry is a number": (lambda s: _js({**s, "metrics": {"paired/ssim": {"all": 0.5}}}),
                                 '["metrics"]["paired/ssim"]["all"] must be an object or null, not 0.5'),
    "mean as a string": (lambda s: _js({**s, **_stat(mean="0.5")}),
                         '["metrics"]["paired/ssim"]["all"]["mean"] must be a number or null, not "0.5"'),
    "n as a string": (lambda s: _js({**s, **_stat(n="3")}), '["n"] must be a non-negative integer, not "3"'),
    "n negative": (lambda s: _js({**s, **_stat(n=-3)}), '["n"] must be a non-negative integer, not -3'),
    "ci95 of one bound": (lambda s: _js({**s, **_stat(ci95=[0.4])}), '["ci95"] must be an array of 2 entries or null'),
    "ci95 as text": (lambda s: _js({**s, **_stat(ci95="[0.4, 0.6]")}), '["ci95"] must be an array of 2 entries'),
    "results as a list": (lambda s: _js({**s, "results": ["x"]}), '["results"] must be an object or null'),
    "a results folder as a number": (lambda s: _js({**s, "results": {"paired": 3}}), '["results"]["paired"] must be'),
    "versions as a list": (lambda s: _js({**s, "protocol": {"versions": ["torch"]}}), '["protocol"]["versions"]'),
    "skipped as a string": (lambda s: _js({**s, "skipped": "lpips"}), '["skipped"] must be an object or null'),
    "run name as a number": (lambda s: _js({**s, "run": 7}), '["run"] must be a string or null, not 7'),
    "invalid JSON": (lambda s: b"{not json", "is not JSON"),
    "truncated": (lambda s: _js(s)[:40], "is not JSON"),
    "empty": (lambda s: b"", "is not JSON"),
    "not UTF-8": (lambda s: b'{"metrics": {"\xff": {}}}', "is not JSON"),
    "nested 100000 deep": (lambda s: b"[" * 100_000 + b"]" * 100_000, "is not JSON"),
    "a protocol nested 800 deep": (lambda s: _js({**s, "protocol": {"x": _nested(800)}}), "nests deeper than 64"),
}


@pytest.fixture()
def small_run(tmp_path: Path) -> Path:
    data = write_data(tmp_path, person_ids(6))
    return write_eval_run(tmp_path, "run", "run", data, np.linspace(0.5, 0.9, 6), 1, set(), set())


@pytest.mark.parametrize("fault", SUMMARY_FAULTS)
def test_report_refuses_malformed_summary_in_one_line(small_run: Path, fault: str) -> None:
    summary = small_run / "summary.json"
    make, names_key = SUMMARY_FAULTS[fault]
    summary.write_bytes(make(json.loads(summary.read_text())))
    message = one_line_error(CliRunner().invoke(main, ["report", str(small_run)]))
    assert message.startswith(f"Error: {summary}") and names_key in message
    assert not (small_run / "report.html").exists()


@pytest.mark.parametrize("column, values, kind", [
    ("value", lambda m: m["value"].astype(str), "numbers"),  # numbers as strings
    ("large", lambda m: m["large"].astype(str), "booleans"),  # "False" would count as true
    ("small", lambda m: m["small"].astype(int), "booleans"),
    ("person", lambda m: None, "strings"),
])
def test_report_refuses_metrics_columns_of_the_wrong_type(small_run: Path, column: str, values, kind: str) -> None:
    import pandas as pd

    path = small_run / "metrics.parquet"
    metrics = pd.read_parquet(path)
    metrics[column] = values(metrics)
    metrics.to_parquet(path)
    message = one_line_error(CliRunner().invoke(main, ["report", str(small_run)]))
    assert message.startswith(f"Error: {path}: column {column!r} must hold {kind}")


@pytest.mark.parametrize("info, names_key", [
    ([{"source": "x"}], "the top level must be an object"),
    ({"pairs": [10, 3]}, '["pairs"] must be an object or null'),
    ({"rejections": [{"stage": "pose", "reason": "no keypoints"}]}, '["rejections"][0]["count"] is missing'),
    ({"rejections": [{"stage": "pose", "reason": "no keypoints", "count": "2"}]}, '["rejections"][0]["count"] must'),
    ({"rejections": ["pose"]}, '["rejections"][0] must be an object, not "pose"'),
])
def test_report_refuses_malformed_prepare_json_in_one_line(tmp_path: Path, info: object, names_key: str) -> None:
    prepared = write_prepared(tmp_path, [], samples=0)
    (prepared / "prepare.json").write_text(json.dumps(info))
    message = one_line_error(CliRunner().invoke(main, ["report", str(prepared)]))
    assert message.startswith(f"Error: {prepared / 'prepare.json'}: ") and names_key in message


def test_report_reads_short_rejected_rows_as_blank(tmp_path: Path) -> None:
    prepared = write_prepared(tmp_path, [("a_0.jpg b_1.jpg", "test", "pose", "no keypoints")], samples=0)
    with open(prepared / "rejected.csv", "a") as fh:
        fh.write("c_0.jpg d_1.jpg,test\n")  # a row cut short: no stage, no reason
    out = tmp_path / "p.html"
    result = CliRunner().invoke(main, ["report", str(prepared), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert parse(out).rows["rejections"][1:] == [["1"], ["pose", "no keypoints", "1"]]


def test_report_refuses_rejected_csv_that_is_not_utf8(tmp_path: Path) -> None:
    prepared = write_prepared(tmp_path, [], samples=0)
    (prepared / "rejected.csv").write_bytes(b"pair,split,stage,reason\n\xff_0.jpg x_1.jpg,test,pose,bad\n")
    message = one_line_error(CliRunner().invoke(main, ["report", str(prepared)]))
    assert message == f"Error: {prepared / 'rejected.csv'} is not UTF-8 text (byte 24: invalid start byte)"


def _large_png(path: Path) -> None:
    from PIL import Image

    Image.new("L", (5000, 4000)).save(path, format="PNG")  # 20 M pixels, 20 kB: above MAX_PIXELS, below PIL's limit


BAD_IMAGES = {
    "not an image": lambda path: path.write_bytes(b"not an image"),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:200]),
    "more pixels than MAX_PIXELS": _large_png,
    "a decompression bomb to PIL": lambda path: None,  # PIL's own limit lowered below the fixture's size
}


@pytest.mark.parametrize("bad", BAD_IMAGES)
def test_report_shows_an_unreadable_image_as_a_placeholder(small_run: Path, monkeypatch, bad: str) -> None:
    from PIL import Image

    if bad == "a decompression bomb to PIL":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 32 x 24 = 768 > 2 x 300: DecompressionBombError
    person = small_run.parent / "data" / "test" / "image" / "000000_0.jpg"
    BAD_IMAGES[bad](person)
    result = CliRunner().invoke(main, ["report", str(small_run)])
    assert result.exit_code == 0, result.output
    page = (small_run / "report.html").read_text()
    assert 'class="missing">unreadable person</span>' in page and 'class="missing">no person' not in page


def test_histogram_bars_follow_numpy() -> None:
    v = np.array([0.0, 0.1, 0.1, 0.5, 1.0, 1.0, 1.0])
    svg = histogram_svg([("a<b", v)], "t&t", bins=4)
    counts = np.histogram(v, bins=4)[0]
    bars = re.findall(
        r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)" fill-opacity', svg.replace('fill="#1f77b4" ', "")
    )
    assert len(bars) == np.count_nonzero(counts)
    heights = np.array([float(h) for h in bars])
    assert np.allclose(heights / heights.max(), counts[counts > 0] / counts.max(), atol=0.01)
    assert "a&lt;b" in svg and "t&amp;t" in svg


@pytest.mark.parametrize("cell, expected", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-cmd", "'-cmd"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("ok=1", "ok=1"), (-3, "-3"), (0.5, "0.5"), (None, ""), (True, "True"),
])
def test_guard_cell(cell, expected) -> None:
    assert guard_cell(cell) == expected


def test_wilson_and_binomial_hand_values() -> None:
    lo, hi = wilson_interval(7, 10)
    z = 1.959963984540054  # hand formula
    c, h = (0.7 + z * z / 20) / (1 + z * z / 10), z * math.sqrt(0.21 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (lo, hi) == pytest.approx((c - h, c + h)) and (lo, hi) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert binomial_test(7, 10) == pytest.approx(2 * (120 + 45 + 10 + 1) / 1024)
    assert wilson_interval(0, 0)[0] != wilson_interval(0, 0)[0]  # nan


def test_cluster_bootstrap_and_wilcoxon_edges() -> None:
    w = np.array(["w1", "w1", "w2", "w2"])
    i = np.array(["a", "b", "a", "b"])
    assert cluster_bootstrap_preference(w, i, np.ones(4, bool), n_boot=50) == (1.0, 1.0)
    lo, hi = cluster_bootstrap_preference(w, i, np.array([1, 0, 1, 0], bool), n_boot=200, seed=3)
    assert 0 <= lo <= 0.5 <= hi <= 1
    x = np.arange(5.0)
    assert paired_wilcoxon(x, x) == 1.0
    assert paired_wilcoxon(x, x + np.array([1, 2, 3, 4, 5.5])) == pytest.approx(
        stats.wilcoxon(x, x + np.array([1, 2, 3, 4, 5.5])).pvalue
    )


def test_run_files_that_are_fifos_are_refused_not_read(tmp_path: Path) -> None:
    """A FIFO in place of a run file is refused from its stat: reading it would wait for a writer for ever."""
    import os

    from vton.reports.runs import SUMMARY_SHAPE
    from vton.reports.shapes import read_json
    from vton.reports.sheets import read_csv

    for name in ("rejected.csv", "summary.json"):
        os.mkfifo(tmp_path / name)
    with pytest.raises(OSError, match="rejected.csv is not a regular file"):
        read_csv(tmp_path / "rejected.csv")
    with pytest.raises(OSError, match="summary.json is not a regular file"):
        read_json(tmp_path / "summary.json", SUMMARY_SHAPE)

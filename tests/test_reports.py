"""`vton report`: a self-contained HTML page, parsed back and checked against independent computations."""
from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from _reports_fixtures import EVIL, person_ids, write_data, write_eval_run, write_prepared
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
    assert page.rows["rejections"][1:] == [["parse", "labels out of range", "1"], ["pose", "18 keypoints expected", "2"]]
    assert len(page.imgs) == 3 and all(s.startswith("data:image/") for s in page.imgs)
    assert EVIL + "_0.jpg x_1.jpg" in "".join(page.text) and page.scripts == 0


def test_report_refuses_unknown_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "neither" in result.output


def test_histogram_bars_follow_numpy() -> None:
    v = np.array([0.0, 0.1, 0.1, 0.5, 1.0, 1.0, 1.0])
    svg = histogram_svg([("a<b", v)], "t&t", bins=4)
    counts = np.histogram(v, bins=4)[0]
    bars = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)" fill-opacity', svg.replace('fill="#1f77b4" ', ""))
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
    assert paired_wilcoxon(x, x + np.array([1, 2, 3, 4, 5.5])) == pytest.approx(stats.wilcoxon(x, x + np.array([1, 2, 3, 4, 5.5])).pvalue)

"""A small `vton demo` end to end: every stage runs and the report has its sections."""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from vton.cli import main

pytestmark = pytest.mark.xdist_group("demo")


class Outline(HTMLParser):
    """Headings, table rows and inline images of a report."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.rows = self.data_images = 0
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_heading = tag in ("h1", "h2")
        self.rows += tag == "tr"
        self.data_images += tag == "img" and (dict(attrs).get("src") or "").startswith("data:image/")

    def handle_data(self, data: str) -> None:
        if self._in_heading and data.strip():
            self.headings.append(data.strip())
            self._in_heading = False


def outline(path: Path) -> Outline:
    parser = Outline()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_small_demo_runs_every_stage_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))  # no pretrained weights: those metrics are skipped
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--pairs", "40", "--steps", "4", "--width", "4"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"report: {(out / 'report.html').resolve()}" in result.output
    assert "note: lpips not computed: missing weights file alexnet-owt-7be5be79.pth" in result.output

    report = outline(out / "report.html")
    assert report.headings[:1] == ["vton report: run-trained, run-untrained"]
    for section in ("Comparison", "Distributions", "Evaluation run: run-trained", "Evaluation run: run-untrained"):
        assert section in report.headings
    assert report.data_images > 0 and report.rows > 10
    prepared = outline(out / "prepare-report.html")
    assert "Prepared dataset: data" in prepared.headings
    # the injected defects were rejected, not lost: 40 pairs in plus the planted near copies, every one accounted for
    rejected = (out / "data" / "rejected.csv").read_text().splitlines()[1:]
    kept = sum(len((out / "data" / name).read_text().splitlines()) for name in ("train_pairs.txt", "test_pairs.txt"))
    planted = [d for d in json.loads((out / "viton-synth" / "defects.json").read_text()) if "kind" in d]
    assert len([r for r in rejected if ",test_same," not in r]) + kept == 40 + len(planted)
    assert sum(",leak," in r and "near copy of test" in r for r in rejected) == len(planted) > 0
    for run in ("run-trained", "run-untrained"):
        assert (out / run / "metrics.parquet").is_file() and (out / run / "summary.json").is_file()

    again = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])  # never wipes a folder it did not make
    assert again.exit_code == 1 and "not a vton demo folder" in again.output and "Traceback" not in again.output

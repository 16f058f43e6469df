"""Reading finished runs (evaluation runs and prepared datasets) for reports and studies; files only, no upstream code."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vton.pipelines import formats
from vton.pipelines.io import find_image

from vton.eval.registry import METRIC_COLUMNS
from vton.eval.registry import METRICS_FILE as METRICS
from vton.eval.registry import SUMMARY_FILE as SUMMARY

PREPARE = "prepare.json"
REJECTED = "rejected.csv"
SAMPLES_DIR = "samples"


class RunError(ValueError):
    """A folder is not a readable evaluation run or prepared dataset."""


@dataclass
class EvalRun:
    """An evaluation run (CONTRACTS.md §5): its summary and per-image metrics."""

    path: Path
    summary: dict[str, Any]
    metrics: pd.DataFrame

    @property
    def name(self) -> str:
        return str(self.summary.get("run") or self.path.name)

    @property
    def data(self) -> Path | None:
        return Path(self.summary["data"]) if self.summary.get("data") else None

    def results_dir(self, setting: str) -> Path | None:
        value = (self.summary.get("results") or {}).get(setting)
        return Path(value) if value else None

    def result_image(self, setting: str, folder: str, person: str) -> Path | None:
        """``results[setting]/<folder>/<person stem>.{png,jpg}``, or None when absent."""
        return find_image(self.results_dir(setting), f"{folder}/{Path(person).stem}")

    def data_image(self, folder: str, name: str) -> Path | None:
        """``data/test/<folder>/<name>``, or None when absent or unsafe."""
        return find_image(self.data, f"test/{folder}/{Path(name).stem}")

    def real_wearer(self, cloth: str) -> Path | None:
        """The test photo of the model who wears ``cloth`` (``X_1.jpg`` -> ``X_0.jpg``), when there is one."""
        stem = Path(cloth).stem
        if not stem.endswith("_1"):
            return None
        return self.data_image(formats.IMAGE_DIR, formats.person_name(stem[:-2]))


@dataclass
class PreparedRun:
    """A prepared dataset (CONTRACTS.md §2): its prepare.json, rejections and sample visualisations."""

    path: Path
    info: dict[str, Any]
    rejected: list[dict[str, str]] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def load_eval_run(path: Path) -> EvalRun:
    summary = json.loads((path / SUMMARY).read_text(encoding="utf-8"))
    if not isinstance(summary, dict) or "metrics" not in summary:
        raise RunError(f"{path / SUMMARY} has no 'metrics' section")
    metrics_file = path / METRICS
    if metrics_file.is_file():
        metrics = pd.read_parquet(metrics_file)
        missing = set(METRIC_COLUMNS) - set(metrics.columns)
        if missing:
            raise RunError(f"{metrics_file} lacks columns {sorted(missing)}")
    else:
        metrics = pd.DataFrame({c: pd.Series(dtype=object) for c in METRIC_COLUMNS})
    return EvalRun(path=path, summary=summary, metrics=metrics)


def load_prepared_run(path: Path) -> PreparedRun:
    info = json.loads((path / PREPARE).read_text(encoding="utf-8"))
    rejected: list[dict[str, str]] = []
    if (path / REJECTED).is_file():
        with open(path / REJECTED, newline="", encoding="utf-8") as fh:
            rejected = list(csv.DictReader(fh))
    samples_dir = path / SAMPLES_DIR
    samples = sorted(p for p in samples_dir.iterdir() if p.suffix.lower() in formats.IMAGE_SUFFIXES) if samples_dir.is_dir() else []
    return PreparedRun(path=path, info=info, rejected=rejected, samples=samples)


def load_run(path: Path) -> EvalRun | PreparedRun:
    """An evaluation run when ``summary.json`` is there, a prepared dataset when ``prepare.json`` is."""
    path = Path(path)
    if (path / SUMMARY).is_file():
        return load_eval_run(path)
    if (path / PREPARE).is_file():
        return load_prepared_run(path)
    raise RunError(f"{path} holds neither {SUMMARY} (evaluation run) nor {PREPARE} (prepared dataset)")


def cloth_subsets(metrics: pd.DataFrame) -> dict[str, str]:
    """Cloth name -> "large" | "small" | "" from the per-row LARGE/SMALL flags (a property of the cloth)."""
    if metrics.empty:
        return {}
    flags = metrics.groupby("cloth")[["large", "small"]].max()
    return {
        str(c): ("large" if bool(r.large) else "small" if bool(r.small) else "") for c, r in flags.iterrows()
    }

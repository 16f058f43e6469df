"""Reading finished runs (evaluation runs, prepared datasets) for reports and studies: files only, no upstream code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype, is_string_dtype

from vton.core import formats as fm
from vton.core.formats import METRIC_COLUMNS
from vton.core.formats import METRICS_FILE as METRICS
from vton.core.formats import SUMMARY_FILE as SUMMARY
from vton.core.io import find_image
from vton.reports.shapes import ANY, COUNT, NUMBER, TEXT, ListOf, MapOf, Obj, read_json
from vton.reports.sheets import read_csv

# What the reports read of summary.json (vton.eval.run.evaluate) and prepare.json (vton.pipelines.prepare);
# null stands for "not recorded" where the writers may leave a value out.
STAT = Obj(optional={"mean": (NUMBER, None), "std": (NUMBER, None), "ci95": (ListOf(NUMBER, 2), None), "n": COUNT})
SUMMARY_SHAPE = Obj(
    required={"metrics": MapOf((MapOf((STAT, None)), None))},
    optional={"run": (TEXT, None), "data": (TEXT, None), "results": (MapOf((TEXT, None)), None),
              "protocol": (Obj(optional={"versions": (MapOf(ANY), None)}), None), "skipped": (MapOf(ANY), None)},
)
PREPARE_SHAPE = Obj(optional={
    "pairs": (MapOf(ANY), None), "splits": (MapOf(ANY), None), "versions": (MapOf(ANY), None),
    "rejections": (ListOf(Obj(required={"stage": TEXT, "reason": TEXT, "count": COUNT})), None),
})
# the types of metrics.parquet's columns
METRIC_KINDS = {"setting": "strings", "person": "strings", "cloth": "strings", "metric": "strings", "value": "numbers",
                "large": "booleans", "small": "booleans", "protocol": "strings", "category": "strings"}


class RunError(ValueError):
    """A folder is not a readable evaluation run or prepared dataset."""


@dataclass
class EvalRun:
    """An evaluation run as `vton evaluate` writes it: its summary.json and per-image metrics.parquet."""

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
        return self.data_image(fm.IMAGE_DIR, fm.person_name(stem[:-2]))


@dataclass
class PreparedRun:
    """A dataset as `vton prepare` writes it: its prepare.json, rejected.csv and sample visualisations."""

    path: Path
    info: dict[str, Any]
    rejected: list[dict[str, str]] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def load_eval_run(path: Path) -> EvalRun:
    summary = read_json(path / SUMMARY, SUMMARY_SHAPE)
    metrics_file = path / METRICS
    if metrics_file.is_file():
        metrics = read_metrics(metrics_file)
        # the galleries, distributions and tests read vton's per-image rows; the other protocols' numbers come from
        # summary.json's comparison
        metrics = metrics[metrics["protocol"] == "vton"].reset_index(drop=True)
    else:
        metrics = pd.DataFrame({c: pd.Series(dtype=object) for c in METRIC_COLUMNS})
    return EvalRun(path=path, summary=summary, metrics=metrics)


def _column_fits(column: pd.Series, kind: str) -> bool:
    if kind == "strings":
        return is_string_dtype(column) and not column.isna().any()
    if kind == "numbers":
        return is_numeric_dtype(column) and not is_bool_dtype(column)
    return is_bool_dtype(column)


def read_metrics(path: Path) -> pd.DataFrame:
    """metrics.parquet with the columns and types the reports compute on; RunError naming the file and column.

    Checked here because a wrong type would pass silently later: ``"False"`` read as a flag is true.
    """
    metrics = pd.read_parquet(path)
    if "protocol" not in metrics.columns:  # written before the protocol column, when vton was the only protocol
        metrics["protocol"] = "vton"
    if "category" not in metrics.columns:  # written before the category column (DressCode)
        metrics["category"] = ""
    missing = set(METRIC_COLUMNS) - set(metrics.columns)
    if missing:
        raise RunError(f"{path} lacks columns {sorted(missing)}")
    for column, kind in METRIC_KINDS.items():
        if not _column_fits(metrics[column], kind):
            raise RunError(f"{path}: column {column!r} must hold {kind}, not {metrics[column].dtype}")
    return metrics


def load_prepared_run(path: Path) -> PreparedRun:
    info = read_json(path / fm.PREPARE_FILE, PREPARE_SHAPE)
    rejected = read_csv(path / fm.REJECTED_FILE) if (path / fm.REJECTED_FILE).is_file() else []
    samples_dir = path / fm.SAMPLES_DIR
    samples = (
        sorted(p for p in samples_dir.iterdir() if p.suffix.lower() in fm.IMAGE_SUFFIXES)
        if samples_dir.is_dir()
        else []
    )
    return PreparedRun(path=path, info=info, rejected=rejected, samples=samples)


def load_run(path: Path) -> EvalRun | PreparedRun:
    """An evaluation run when ``summary.json`` is there, a prepared dataset when ``prepare.json`` is."""
    path = Path(path)
    if (path / SUMMARY).is_file():
        return load_eval_run(path)
    if (path / fm.PREPARE_FILE).is_file():
        return load_prepared_run(path)
    raise RunError(f"{path} holds neither {SUMMARY} (evaluation run) nor {fm.PREPARE_FILE} (prepared dataset)")


def cloth_subsets(metrics: pd.DataFrame) -> dict[str, str]:
    """Cloth name -> "large" | "small" | "" from the per-row LARGE/SMALL flags (a property of the cloth)."""
    if metrics.empty:
        return {}
    flags = metrics.groupby("cloth")[["large", "small"]].max()
    return {
        str(c): ("large" if bool(r.large) else "small" if bool(r.small) else "") for c, r in flags.iterrows()
    }

"""`vton audit DATA --out DIR`: the near-duplicate search of `vton.pipelines.audit`, then its HTML page."""
from __future__ import annotations

import os
from pathlib import Path

from vton.core.runner import RunnerConfig
from vton.pipelines.audit.dataset import audit_dataset
from vton.pipelines.audit.duplicates import NearSettings
from vton.reports.audit import write_audit_page


def run_audit(data: str | os.PathLike, out: str | os.PathLike, settings: NearSettings = NearSettings(),
              runner: RunnerConfig = RunnerConfig()) -> tuple[dict, Path]:
    """Audit ``data`` into ``out`` (duplicates.parquet, audit.json, audit.html); the record and the page's path."""
    record = audit_dataset(data, out, settings, runner)
    return record, write_audit_page(out)

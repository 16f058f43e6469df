"""CSV sheets that are safe to open in a spreadsheet: cells guarded against formula injection, atomic writes."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from vton.pipelines.io import atomic_write_text

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def guard_cell(value: Any) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula (OWASP CSV injection); numbers stay numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = "" if value is None else str(value)
        return "'" + text if text.startswith(FORMULA_PREFIXES) else text
    return str(value)


def csv_text(header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([guard_cell(h) for h in header])
    for row in rows:
        writer.writerow([guard_cell(row.get(h, "")) for h in header])
    return buf.getvalue()


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    atomic_write_text(path, csv_text(header, rows))
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))

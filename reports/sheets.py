"""CSV sheets that are safe to open in a spreadsheet: cells guarded against formula injection, atomic writes."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vton.core.io import atomic_write_text, read_data_file
from vton.reports.shapes import ShapeError

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
    """The rows of a UTF-8 CSV file by header; a short row's missing cells read as "" (not None).

    Text that is not UTF-8, or a cell over csv's field size limit, is a ShapeError naming the file and where.
    """
    try:
        text = read_data_file(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ShapeError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), restval="")
    try:
        return list(reader)
    except csv.Error as exc:
        raise ShapeError(f"{path} line {reader.line_num + 1}: {exc}") from None

"""`vton study results`: the server's SQLite state as MTurk's results.csv (old analyses run unchanged) and as a tidy
answers.parquet (one row per answer, joined with the key when the folder holds it)."""
from __future__ import annotations

import io
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from vton.core.io import atomic_write_bytes
from vton.reports.sheets import write_csv
from vton.studies.analyze import read_key
from vton.studies.db import DB_FILE, read_all
from vton.studies.export import KEY_CSV, RESULTS_CSV, StudyError
from vton.studies.folder import StudyFolder

ANSWERS_PARQUET = "answers.parquet"
ASSIGNMENT_COLUMNS = ("HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime", "SubmitTime",
                      "WorkTimeInSeconds")
CHECK_COLUMNS = ("AttentionChecks", "AttentionChecksFailed")  # after MTurk's columns; old analyses ignore them
KEY_COLUMNS = ("person", "cloth", "subset", "left", "right", "a_run", "b_run", "a_side")
ANSWER_COLUMNS = ("participant", "source", "session", "prolific_study", "prolific_session", "assignment", "hit_id",
                  "kind", "trial", "answer", "expected", "correct", "issued_at", "submitted_at", "work_time_s",
                  *KEY_COLUMNS)


def mturk_time(t: float) -> str:
    """A time as MTurk's results files write it."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(t))


def export_results(folder: Path, out: Path | None = None) -> dict[str, Any]:
    """Write ``out``/results.csv and ``out``/answers.parquet (``out`` defaults to the study folder) from the
    folder's study.sqlite; returns the counts."""
    folder = Path(folder)
    out = Path(out) if out is not None else folder
    db = folder / DB_FILE
    if not db.is_file():
        raise StudyError(f"{db} does not exist: nobody has taken part in this study yet")
    study = StudyFolder(folder)
    state = read_all(db, study.fingerprint)
    key = {(k["hit_id"], int(k["trial"])): k for k in read_key(folder / KEY_CSV)} if (folder / KEY_CSV).is_file() \
        else {}
    answers: dict[str, dict[int, str]] = defaultdict(dict)
    for r in state["answers"]:
        answers[r["assignment"]][r["trial"]] = r["value"]
    checks: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for r in state["checks"]:
        checks[r["assignment"]].append((r["expected"], r["answer"]))
    inputs = list(next(iter(study.hits.values())))
    csv_rows, tidy = [], []
    for a in state["assignments"]:
        hit, work = study.hits[a["hit_id"]], max(0, round(a["submitted_at"] - a["issued_at"]))
        failed = sum(answer != expected for expected, answer in checks[a["id"]])
        csv_rows.append({
            "HITId": a["hit_id"], "AssignmentId": a["id"], "WorkerId": a["participant"],
            "AssignmentStatus": "Submitted", "AcceptTime": mturk_time(a["issued_at"]),
            "SubmitTime": mturk_time(a["submitted_at"]), "WorkTimeInSeconds": work,
            **{f"Input.{c}": hit[c] for c in inputs},
            **{f"Answer.choice_{i}": v for i, v in answers[a["id"]].items()},
            "AttentionChecks": len(checks[a["id"]]), "AttentionChecksFailed": failed,
        })
        common = {"participant": a["participant"], "source": a["source"], "session": a["session"],
                  "prolific_study": a["prolific_study"], "prolific_session": a["prolific_session"],
                  "assignment": a["id"], "hit_id": a["hit_id"], "issued_at": a["issued_at"],
                  "submitted_at": a["submitted_at"], "work_time_s": a["submitted_at"] - a["issued_at"]}
        for i, value in sorted(answers[a["id"]].items()):
            k = key.get((a["hit_id"], i), {})
            expected = k.get("correct") or None
            tidy.append({**common, "kind": k.get("kind", "trial"), "trial": i, "answer": value, "expected": expected,
                         "correct": value == expected if expected else None, **{c: k.get(c) for c in KEY_COLUMNS}})
        for j, (expected, answer) in enumerate(checks[a["id"]]):
            tidy.append({**common, "kind": "attention", "trial": j, "answer": answer, "expected": expected,
                         "correct": answer == expected})
    header = (*ASSIGNMENT_COLUMNS, *(f"Input.{c}" for c in inputs),
              *(f"Answer.choice_{i}" for i in range(study.trials)), *CHECK_COLUMNS)
    write_csv(out / RESULTS_CSV, header, csv_rows)
    frame = pd.DataFrame(tidy, columns=list(ANSWER_COLUMNS))
    for col in ("issued_at", "submitted_at"):
        frame[col] = pd.to_datetime(frame[col], unit="s", utc=True)
    frame["correct"] = frame["correct"].astype("boolean")
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    atomic_write_bytes(out / ANSWERS_PARQUET, buf.getvalue())
    return {"assignments": len(csv_rows), "answers": len(tidy), "participants": len({r["WorkerId"] for r in csv_rows}),
            "results": str(out / RESULTS_CSV), "parquet": str(out / ANSWERS_PARQUET)}


"""``vton evaluate``: find or make the try-on results (inference), check what made them, then score them.

Composed here, above eval, so the evaluation protocol never depends on the models that made the images.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vton.core import formats as fm
from vton.eval.inputs import SETTINGS_PAIRS
from vton.eval.protocols import DEFAULT
from vton.eval.run import evaluate
from vton.eval.settings import Settings
from vton.models.infer import InferOptions, checkpoint_shas, run_inference


def inference_records(results: dict[str, Path | None]) -> dict[str, dict | None]:
    """Each results folder's infer.json (what made its images; None for another method's outputs without one).

    A folder made for another split or pairs list than its setting is refused: its scores would belong to other
    pairs.
    """
    records: dict[str, dict | None] = {}
    for setting, folder in results.items():
        if folder is None:
            continue
        path = Path(folder) / fm.INFER_RECORD_FILE
        try:
            rec = records[setting] = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: unreadable ({exc})") from exc
        if rec is None:
            continue
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: not an infer.json (expected a JSON object)")
        if rec.get("split") != "test" or rec.get("pairs") in SETTINGS_PAIRS and rec["pairs"] != setting:
            raise ValueError(f"{folder} was made for split {rec.get('split')!r}, pairs {rec.get('pairs')!r} "
                             f"(by {path}), not the {setting} test pairs")
    return records


def scored_checkpoints(records: dict[str, dict | None]) -> list[dict[str, str]] | None:
    """The checkpoints (path and sha256) that made the scored images, from infer.json; None when unknown.

    Paired and unpaired results made by different weights are refused: one run's scores belong to one model.
    """
    known = {s: r.get("checkpoints") or [] for s, r in records.items() if r is not None}
    if len({tuple(checkpoint_shas(c)) for c in known.values()}) > 1:
        raise ValueError("the results were made by different checkpoints: " + "; ".join(
            f"{s}: sha256 {' '.join(h[:12] for h in checkpoint_shas(c))}" for s, c in sorted(known.items())))
    return next(iter(known.values()), None)


def resolve_results(data: Path, out: Path, results: Path | None = None, checkpoints: Sequence[Path] = (),
                    device: str | None = None, allow_nonfinite: bool = False,
                    folders: dict[str, Path | None] | None = None) -> dict[str, Path | None]:
    """The results folder per setting: taken from ``results`` (DIR/<setting>/try-on/), from ``folders`` (a folder
    per setting, as other methods write them), or produced by inference into RUN/results/<setting>.

    Inference always runs: it reuses a finished folder (writing nothing), resumes an interrupted one, and refuses
    one made by other checkpoints (by SHA-256) or settings, whose images must never be scored for these weights.
    """
    given = {s: Path(f) for s, f in (folders or {}).items() if f is not None}
    if sum((results is not None, bool(checkpoints), bool(given))) != 1:
        raise ValueError("give one of: a results folder, per-setting folders, or checkpoints to run inference with")
    if given:
        return {s: given.get(s) for s in SETTINGS_PAIRS}
    if results is not None:
        return {s: (Path(results) / s if (Path(results) / s / fm.TRYON_DIR).is_dir() else None)
                for s in SETTINGS_PAIRS}
    found = {}
    for setting in SETTINGS_PAIRS:
        target = Path(out) / "results" / setting
        run_inference(Path(data), [Path(c) for c in checkpoints], target,
                      InferOptions(split="test", pairs=setting, device=device or "auto",
                                   allow_nonfinite=allow_nonfinite))
        found[setting] = target
    return found


def evaluate_run(data: Path, out: Path, results: Path | None = None, checkpoints: Sequence[Path] = (),
                 settings: Settings = Settings(), allow_nonfinite: bool = False,
                 folders: dict[str, Path | None] | None = None, protocols: Sequence[str] = (DEFAULT,)) -> dict:
    """The ``vton evaluate`` entry point: find or make the results (inference loads non-finite weights only with
    ``allow_nonfinite``), check that one model made them, then score them under each of ``protocols``."""
    found = resolve_results(data, out, results, checkpoints, settings.device, allow_nonfinite, folders)
    records = inference_records(found)
    made_by = {"checkpoints": scored_checkpoints(records), "inference": records}
    return evaluate(data, found, out, settings, made_by, protocols)

"""``vton amt export``: an A/B study of two evaluation runs as an MTurk-style batch (CSV + HIT template + images).

The study folder holds what workers see (``hits.csv``, ``hit_template.html``, ``images/``, ``study.json``) and the
key that unblinds it (``key.csv``: never upload it). Image names are seeded hashes of their content, so neither file
names nor URLs reveal the method; left/right is a seeded coin flip per trial; catch trials pit a real photo against a
tile-scrambled copy of it.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, encode_image
from vton.reports.media import open_rgb
from vton.reports.render import render
from vton.reports.runs import EvalRun, cloth_subsets, load_eval_run
from vton.reports.sheets import write_csv
from vton.studies.options import ExportOptions

BATCH_CSV = "hits.csv"
TEMPLATE = "hit_template.html"
KEY_CSV = "key.csv"
STUDY_JSON = "study.json"
IMAGES_DIR = "images"
RESULTS_CSV = "results.csv"
SIDES = ("left", "right")
TRIAL_FIELDS = ("person", "cloth", "left", "right")
KEY_FIELDS = ("hit_id", "trial", "kind", "person", "cloth", "subset", "left", "right", "a_side", "correct",
              "a_run", "b_run")
SCRAMBLE_GRID = 8
MAX_TRIALS_PER_HIT = 100  # a HIT is one page one worker answers; more would not be answered with care
SETTING = "unpaired"


class StudyError(ValueError):
    """The two runs give nothing to compare, an option is out of range, or a study folder does not hold together."""


@dataclass(frozen=True)
class Pair:
    person: str
    cloth: str
    subset: str  # "large" | "small" | ""
    person_img: Path
    cloth_img: Path
    a_img: Path
    b_img: Path


def batch_header(trials_per_hit: int) -> list[str]:
    """The batch CSV header = the template's variables."""
    return ["hit_id"] + [f"{f}_{i}" for i in range(trials_per_hit) for f in TRIAL_FIELDS]


def study_pairs(a: EvalRun, b: EvalRun, subset: str) -> list[Pair]:
    """Unpaired test pairs (data/test_pairs.txt) that both runs have a try-on for, restricted to ``subset``."""
    pairs_lists = []
    for run in (a, b):
        if run.data is None or not (run.data / fm.TEST_PAIRS).is_file():
            raise StudyError(f"run {run.name}: no {fm.TEST_PAIRS} under its data folder {run.data}")
        pairs_lists.append(fm.read_pairs(run.data / fm.TEST_PAIRS))
    shared = set(pairs_lists[1])
    subsets = {**cloth_subsets(b.metrics), **cloth_subsets(a.metrics)}
    pairs = []
    for person, cloth in pairs_lists[0]:
        if (person, cloth) not in shared:
            continue
        sub = subsets.get(cloth, "")
        if subset != "all" and sub != subset:
            continue
        files = (
            a.data_image(fm.IMAGE_DIR, person), a.data_image(fm.CLOTH_DIR, cloth),
            a.result_image(SETTING, fm.TRYON_DIR, person), b.result_image(SETTING, fm.TRYON_DIR, person),
        )
        if all(f is not None for f in files):
            pairs.append(Pair(person, cloth, sub, *files))  # type: ignore[arg-type]
    if not pairs:
        raise StudyError(f"runs {a.name} and {b.name} share no unpaired try-on images in subset {subset!r}")
    return pairs


def scramble(img: Image.Image, rng: random.Random, grid: int = SCRAMBLE_GRID) -> Image.Image:
    """An obvious failure for catch trials: the image cut into grid x grid tiles in shuffled order."""
    arr = np.asarray(img.convert("RGB"))
    th, tw = arr.shape[0] // grid, arr.shape[1] // grid
    arr = arr[: th * grid, : tw * grid]
    tiles = [arr[r * th:(r + 1) * th, c * tw:(c + 1) * tw] for r in range(grid) for c in range(grid)]
    order = list(range(len(tiles)))
    while order == sorted(order):
        rng.shuffle(order)
    rows = [np.concatenate([tiles[order[r * grid + c]] for c in range(grid)], axis=1) for r in range(grid)]
    return Image.fromarray(np.concatenate(rows, axis=0))


class ImageStore:
    """Writes images under anonymous, seeded, content-derived names (PNG re-encoded, metadata dropped)."""

    def __init__(self, folder: Path, base_url: str, seed: int) -> None:
        self.folder, self.base_url, self.salt = folder, base_url.rstrip("/"), f"vton-study:{seed}:".encode()

    def add(self, img: Image.Image) -> str:
        data = encode_image(img.convert("RGB"), "PNG")
        name = hashlib.sha256(self.salt + data).hexdigest()[:24] + ".png"
        path = self.folder / name
        if not path.exists():
            atomic_write_bytes(path, data)
        return f"{self.base_url}/{name}"

    def add_file(self, path: Path) -> str:
        return self.add(open_rgb(path))


def catch_counts(trials_per_hit: int, catch_rate: float) -> int:
    """Catch trials per HIT; StudyError when the options leave no valid HIT (NaN is out of every range)."""
    if not 1 <= trials_per_hit <= MAX_TRIALS_PER_HIT:
        raise StudyError(f"--trials-per-hit must be in [1, {MAX_TRIALS_PER_HIT}], not {trials_per_hit}")
    if not 0 <= catch_rate < 1:
        raise StudyError("--catch-rate must be in [0, 1)")
    n = round(trials_per_hit * catch_rate)
    if catch_rate > 0:
        n = max(1, n)
    if trials_per_hit - n < 1:
        raise StudyError(f"{trials_per_hit} trials per HIT leave no room for A/B trials at catch rate {catch_rate}")
    return n


def export_study(
    run_a: Path, run_b: Path, out: Path, base_url: str, subset: str = ExportOptions.subset,
    trials_per_hit: int = ExportOptions.trials_per_hit, catch_rate: float = ExportOptions.catch_rate,
    seed: int = ExportOptions.seed,
) -> dict[str, Any]:
    """Write the study folder ``out``; returns the summary also stored as ``study.json`` (plus the run names)."""
    if subset not in ("all", "large", "small"):
        raise StudyError(f"unknown subset {subset!r}")
    n_catch = catch_counts(trials_per_hit, catch_rate)
    a, b = load_eval_run(Path(run_a)), load_eval_run(Path(run_b))
    pairs = study_pairs(a, b, subset)
    rng = random.Random(seed)
    rng.shuffle(pairs)
    per_hit = trials_per_hit - n_catch
    store = ImageStore(out / IMAGES_DIR, base_url, seed)
    batch, key = [], []
    for h, start in enumerate(range(0, len(pairs), per_hit)):
        hit_id = f"hit{h + 1:05d}"
        chunk = pairs[start:start + per_hit]
        kinds = ["ab"] * len(chunk) + ["catch"] * (trials_per_hit - len(chunk))
        rng.shuffle(kinds)
        ab = iter(chunk)
        row: dict[str, Any] = {"hit_id": hit_id}
        for i, kind in enumerate(kinds):
            pair = next(ab) if kind == "ab" else rng.choice(pairs)
            first = rng.choice(SIDES)
            if kind == "ab":
                imgs = {"A": store.add_file(pair.a_img), "B": store.add_file(pair.b_img)}
                labels = {"A": a.name, "B": b.name}
                left, right = ("A", "B") if first == "left" else ("B", "A")
            else:
                real = open_rgb(pair.person_img)
                imgs = {"real": store.add(real), "scrambled": store.add(scramble(real, rng))}
                labels = {"real": "real", "scrambled": "scrambled"}
                left, right = ("real", "scrambled") if first == "left" else ("scrambled", "real")
            row.update({f"person_{i}": store.add_file(pair.person_img), f"cloth_{i}": store.add_file(pair.cloth_img),
                        f"left_{i}": imgs[left], f"right_{i}": imgs[right]})
            key.append({
                "hit_id": hit_id, "trial": i, "kind": kind, "person": pair.person, "cloth": pair.cloth,
                "subset": pair.subset, "left": labels[left], "right": labels[right],
                "a_side": first if kind == "ab" else "", "correct": first if kind == "catch" else "",
                "a_run": a.name, "b_run": b.name,
            })
        batch.append(row)
    write_csv(out / BATCH_CSV, batch_header(trials_per_hit), batch)
    write_csv(out / KEY_CSV, KEY_FIELDS, key)
    atomic_write_text(out / TEMPLATE, render("amt_hit.html.j2", trials=range(trials_per_hit)))
    info = {
        "base_url": store.base_url, "subset": subset, "seed": seed, "trials_per_hit": trials_per_hit,
        "catch_per_hit": n_catch, "hits": len(batch), "ab_trials": len(pairs),
        "catch_trials": sum(1 for k in key if k["kind"] == "catch"),
        "files": {"batch": BATCH_CSV, "template": TEMPLATE, "images": IMAGES_DIR, "key": KEY_CSV},
    }
    atomic_write_json(out / STUDY_JSON, info)
    return {**info, "a_run": a.name, "b_run": b.name, "out": str(out)}

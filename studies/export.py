"""``vton amt export``: a pairwise study of two or more evaluation runs as an MTurk-style batch (CSV + HIT template +
images), which `vton study serve` also serves.

The study folder holds what workers see (``hits.csv``, ``hit_template.html``, ``images/``, ``study.json``) and the
key that unblinds it (``key.csv``: never upload it). Image names are seeded hashes of their content, so neither file
names nor URLs reveal the method; every pair of runs is compared on every shared item, sides balanced
(`studies.design`); catch trials pit a mirrored real photo against a tile-scrambled copy of it, so no option of a
catch trial is the reference image itself.
"""
from __future__ import annotations

import hashlib
import random
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from vton.core import formats as fm
from vton.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, encode_image
from vton.reports.media import open_rgb
from vton.reports.render import render
from vton.reports.runs import EvalRun, cloth_subsets, load_eval_run
from vton.reports.sheets import write_csv
from vton.studies.db import DB_FILE
from vton.studies.design import SIDES, Comparison, pairwise_design
from vton.studies.options import ExportOptions

BATCH_CSV = "hits.csv"
TEMPLATE = "hit_template.html"
KEY_CSV = "key.csv"
STUDY_JSON = "study.json"
IMAGES_DIR = "images"
RESULTS_CSV = "results.csv"
ANSWERS = (*SIDES, "cant_tell")  # "can't tell" only where the study offers it (relaxed 2AFC)
TRIAL_FIELDS = ("person", "cloth", "left", "right")
KEY_FIELDS = ("hit_id", "trial", "kind", "person", "cloth", "subset", "left", "right", "a_side", "correct",
              "a_run", "b_run")
SCRAMBLE_GRID = 8
PAD_CHUNK = b"vtPd"  # a private, ancillary PNG chunk type (PNG 1.2 section 3.3: decoders skip it)
PNG_CHUNK_OVERHEAD = 12  # length, type and CRC of a chunk
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
MAX_TRIALS_PER_HIT = 100  # a HIT is one page one worker answers; more would not be answered with care
SETTING = "unpaired"


class StudyError(ValueError):
    """The two runs give nothing to compare, an option is out of range, or a study folder does not hold together."""


@dataclass(frozen=True)
class Pair:
    """One unpaired test pair and every run's try-on of it (in the order the runs were given)."""

    person: str
    cloth: str
    subset: str  # "large" | "small" | ""
    person_img: Path
    cloth_img: Path
    tryons: tuple[Path, ...]


def batch_header(trials_per_hit: int) -> list[str]:
    """The batch CSV header = the template's variables."""
    return ["hit_id"] + [f"{f}_{i}" for i in range(trials_per_hit) for f in TRIAL_FIELDS]


def run_names(runs: Sequence[EvalRun]) -> list[str]:
    """The runs' names, which the key uses to tell them apart: at least two, no name twice."""
    names = [r.name for r in runs]
    if len(names) < 2:
        raise StudyError(f"a study compares at least two runs, not {len(names)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise StudyError(f"runs must have distinct names (summary.json 'run'); given twice: {', '.join(twice)}")
    return names


def study_pairs(runs: Sequence[EvalRun], subset: str) -> list[Pair]:
    """Unpaired test pairs (data/test_pairs.txt) that every run has a try-on for, restricted to ``subset``."""
    pairs_lists = []
    for run in runs:
        if run.data is None or not (run.data / fm.TEST_PAIRS).is_file():
            raise StudyError(f"run {run.name}: no {fm.TEST_PAIRS} under its data folder {run.data}")
        pairs_lists.append(fm.read_pairs(run.data / fm.TEST_PAIRS))
    shared = set.intersection(*(set(p) for p in pairs_lists[1:]))
    subsets = {k: v for run in reversed(runs) for k, v in cloth_subsets(run.metrics).items()}
    first = runs[0]
    pairs = []
    for person, cloth in pairs_lists[0]:
        if (person, cloth) not in shared:
            continue
        sub = subsets.get(cloth, "")
        if subset != "all" and sub != subset:
            continue
        inputs = (first.data_image(fm.IMAGE_DIR, person), first.data_image(fm.CLOTH_DIR, cloth))
        tryons = tuple(run.result_image(SETTING, fm.TRYON_DIR, person) for run in runs)
        if all(f is not None for f in (*inputs, *tryons)):
            pairs.append(Pair(person, cloth, sub, *inputs, tryons))  # type: ignore[arg-type]
    if not pairs:
        names = ", ".join(r.name for r in runs)
        raise StudyError(f"runs {names} share no unpaired try-on images in subset {subset!r}")
    return pairs


def scramble(img: Image.Image, rng: random.Random, grid: int = SCRAMBLE_GRID) -> Image.Image:
    """An obvious failure for catch trials: the image cut into grid x grid tiles in shuffled order, same size (a
    cropped copy would tell itself apart by its dimensions alone)."""
    arr = np.array(img.convert("RGB"))
    th, tw = arr.shape[0] // grid, arr.shape[1] // grid
    tiles = [arr[r * th:(r + 1) * th, c * tw:(c + 1) * tw] for r in range(grid) for c in range(grid)]
    order = list(range(len(tiles)))
    while order == sorted(order):
        rng.shuffle(order)
    rows = [np.concatenate([tiles[order[r * grid + c]] for c in range(grid)], axis=1) for r in range(grid)]
    arr[: th * grid, : tw * grid] = np.concatenate(rows, axis=0)
    return Image.fromarray(arr)


def catch_images(person: Image.Image, rng: random.Random) -> dict[str, Image.Image]:
    """The two options of a catch trial: the person's photo mirrored (real, but not the reference image itself, so
    its URL and bytes differ from the reference's and do not give the answer away) and a scrambled copy of it."""
    real = ImageOps.mirror(person.convert("RGB"))
    return {"real": real, "scrambled": scramble(real, rng)}


def padded_png(data: bytes, size: int) -> bytes:
    """The PNG ``data`` grown to ``size`` bytes by one `PAD_CHUNK` of zeros before its IEND chunk (decoders skip an
    unknown ancillary chunk, so the pixels are unchanged)."""
    fill = size - len(data) - PNG_CHUNK_OVERHEAD
    if fill < 0 or data[-12:] != PNG_IEND:
        raise ValueError(f"cannot pad a {len(data)}-byte PNG to {size} bytes")
    body = PAD_CHUNK + bytes(fill)
    return data[:-12] + struct.pack(">I", fill) + body + struct.pack(">I", zlib.crc32(body)) + data[-12:]


class ImageStore:
    """Writes images under anonymous, seeded, content-derived names (PNG re-encoded, metadata dropped)."""

    def __init__(self, folder: Path, base_url: str, seed: int) -> None:
        self.folder, self.base_url, self.salt = folder, base_url.rstrip("/"), f"vton-study:{seed}:".encode()

    def add(self, img: Image.Image) -> str:
        return self._place(encode_image(img.convert("RGB"), "PNG"))

    def add_same_size(self, images: dict[str, Image.Image]) -> dict[str, str]:
        """The options of a catch trial, each file padded (`padded_png`) to one length: a scrambled copy compresses
        worse than the photo, and its larger file would tell a script which option is the real one."""
        encoded = {k: encode_image(img.convert("RGB"), "PNG") for k, img in images.items()}
        size = max(len(data) for data in encoded.values()) + PNG_CHUNK_OVERHEAD
        return {k: self._place(padded_png(data, size)) for k, data in encoded.items()}

    def _place(self, data: bytes) -> str:
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


def hit_trials(design: list[Comparison], per_hit: int, trials_per_hit: int,
               rng: random.Random) -> list[list[Comparison | None]]:
    """The design cut into HITs of ``per_hit`` comparisons, each padded with catch trials (None) to
    ``trials_per_hit`` at seeded random positions."""
    hits = []
    for start in range(0, len(design), per_hit):
        chunk: list[Comparison | None] = list(design[start:start + per_hit])
        chunk += [None] * (trials_per_hit - len(chunk))
        rng.shuffle(chunk)
        hits.append(chunk)
    return hits


def export_study(
    runs: Sequence[Path], out: Path, base_url: str, subset: str = ExportOptions.subset,
    trials_per_hit: int = ExportOptions.trials_per_hit, catch_rate: float = ExportOptions.catch_rate,
    seed: int = ExportOptions.seed, cant_tell: bool = ExportOptions.cant_tell,
) -> dict[str, Any]:
    """Write the study folder ``out`` for two or more runs (every pair of them compared on every shared item);
    returns the summary also stored as ``study.json`` (plus the run names, which study.json leaves out)."""
    if subset not in ("all", "large", "small"):
        raise StudyError(f"unknown subset {subset!r}")
    if (Path(out) / DB_FILE).exists():
        raise StudyError(f"{out} holds a study's collected answers ({DB_FILE}); a new export there would replace the "
                         "key that unblinds them: export to another folder")
    n_catch = catch_counts(trials_per_hit, catch_rate)
    loaded = [load_eval_run(Path(r)) for r in runs]
    names = run_names(loaded)
    pairs = study_pairs(loaded, subset)
    rng = random.Random(seed)
    rng.shuffle(pairs)
    design = pairwise_design(len(loaded), len(pairs), rng)
    store = ImageStore(out / IMAGES_DIR, base_url, seed)
    batch, key = [], []
    for h, trials in enumerate(hit_trials(design, trials_per_hit - n_catch, trials_per_hit, rng)):
        hit_id = f"hit{h + 1:05d}"
        row: dict[str, Any] = {"hit_id": hit_id}
        for i, c in enumerate(trials):
            pair = pairs[c.item] if c is not None else rng.choice(pairs)
            if c is not None:
                a, b = names[c.a], names[c.b]
                imgs = {a: store.add_file(pair.tryons[c.a]), b: store.add_file(pair.tryons[c.b])}
                first, (left, right) = c.a_side, ((a, b) if c.a_side == "left" else (b, a))
            else:
                imgs = store.add_same_size(catch_images(open_rgb(pair.person_img), rng))
                first = rng.choice(SIDES)
                left, right = ("real", "scrambled") if first == "left" else ("scrambled", "real")
            row.update({f"person_{i}": store.add_file(pair.person_img), f"cloth_{i}": store.add_file(pair.cloth_img),
                        f"left_{i}": imgs[left], f"right_{i}": imgs[right]})
            key.append({
                "hit_id": hit_id, "trial": i, "kind": "ab" if c is not None else "catch", "person": pair.person,
                "cloth": pair.cloth, "subset": pair.subset, "left": left, "right": right,
                "a_side": first if c is not None else "", "correct": first if c is None else "",
                "a_run": names[c.a] if c is not None else "", "b_run": names[c.b] if c is not None else "",
            })
        batch.append(row)
    write_csv(out / BATCH_CSV, batch_header(trials_per_hit), batch)
    write_csv(out / KEY_CSV, KEY_FIELDS, key)
    atomic_write_text(out / TEMPLATE, render("amt_hit.html.j2", trials=range(trials_per_hit), cant_tell=cant_tell))
    info = {
        "base_url": store.base_url, "subset": subset, "seed": seed, "trials_per_hit": trials_per_hit,
        "catch_per_hit": n_catch, "hits": len(batch), "methods": len(names), "items": len(pairs),
        "ab_trials": len(design), "catch_trials": sum(1 for k in key if k["kind"] == "catch"), "cant_tell": cant_tell,
        "files": {"batch": BATCH_CSV, "template": TEMPLATE, "images": IMAGES_DIR, "key": KEY_CSV},
    }
    atomic_write_json(out / STUDY_JSON, info)
    return {**info, "runs": names, "out": str(out)}

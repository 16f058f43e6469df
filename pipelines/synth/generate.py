"""``vton synth``: a procedural dataset in the real VITON / CP-VTON file formats, so every stage is tested on them.

Two layouts (cpvton.md §1.2 and §6):

- ``cpvton``: what CP-VTON's ``convert_data.m`` produced (``train/`` and ``test/`` with ``image``, ``cloth``,
  ``cloth-mask``, ``image-parse``, ``pose``; ``train_pairs.txt``, ``test_pairs.txt``, ``test_pairs_same.txt``).
- ``viton``: the original raw VITON files (``women_top`` at 762x1100, ``segment/*.mat`` holding a transposed and
  padded 641x641 LIP_SSL label map, ``pose/*.mat`` with the pose estimator's ``subset``/``candidate``,
  ``viton_{train,test}_pairs.txt``). Running the CP-VTON conversion over them gives approximately the ``cpvton`` data
  of the same seed (the same people, drawn at the other size).

Everything is seeded: the same arguments give byte-identical files.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from tqdm import tqdm

from vton.core import formats as F
from vton.core.io import atomic_save_image, atomic_write_bytes, atomic_write_text, encode_image
from vton.pipelines.sources import cloth_mask_from_rgb
from vton.pipelines.synth.defects import DEFECT_TRAIN_PAIRS, inject_defects
from vton.pipelines.synth.draw import Person, draw_cloth, draw_labels, make_person, paint_person

TEST_SHARE = F.OFFICIAL_TEST_PAIRS / (F.OFFICIAL_TRAIN_PAIRS + F.OFFICIAL_TEST_PAIRS)  # 2032 / 16253
_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, written by vton synth".ljust(116, b" ")


def split_sizes(pairs: int) -> tuple[int, int]:
    """(train, test) counts: the official test share, at least one test pair once there are two."""
    test = round(pairs * TEST_SHARE)
    if pairs >= 2:
        test = min(max(test, 1), pairs - 1)
    return pairs - test, test


def min_defect_pairs() -> int:
    """The fewest pairs whose split leaves a train pair per fault (plus a duplicate source) and a test pair."""
    pairs = 2
    while split_sizes(pairs)[0] < DEFECT_TRAIN_PAIRS:
        pairs += 1
    return pairs


def make_ids(rng: np.random.Generator, count: int) -> list[str]:
    """Six-digit ids from 000001 upwards with seeded gaps, like VITON's (16,253 ids up to 019595)."""
    steps = 1 + np.where(rng.random(count) < 0.2, rng.integers(1, 4, count), 0)
    numbers = np.cumsum(steps)
    if count and numbers[-1] > 999_999:
        raise ValueError(f"{count} pairs do not fit in six-digit ids")
    return [f"{n:06d}" for n in numbers]


def keypoints(person: Person, labels: np.ndarray) -> np.ndarray:
    """(18, 3) x, y, confidence at 192x256, as convert_data.m derives them from integer raw-image positions.

    A joint outside the frame (ankles below the picture), hidden (a turned ear) or off the figure is ``0, 0, 0``.
    """
    sx, sy = F.RAW_WIDTH / F.FINE_WIDTH, F.RAW_HEIGHT / F.FINE_HEIGHT
    out = np.zeros((F.NUM_JOINTS, 3))
    for j, ((x, y), shown, conf) in enumerate(zip(person.joints, person.visible, person.confidence)):
        x, y = round(x * sx) / sx, round(y * sy) / sy
        inside = 1 < x < F.FINE_WIDTH - 1 and 1 < y < F.FINE_HEIGHT - 1
        if shown and inside and labels[int(y), int(x)] > 0:
            out[j] = (x, y, conf)
    return out


def keypoints_json(kp: np.ndarray) -> str:
    """The OpenPose-1.0-style file convert_data.m writes (missing joints as integer zeros, like mat2str)."""
    flat = [float(v) if row[2] > 0 else 0 for row in kp for v in row]
    doc = {"version": 1.0, "people": [{"face_keypoints": [], "pose_keypoints": flat,
                                        "hand_right_keypoints": [], "hand_left_keypoints": []}]}
    return json.dumps(doc)


def savemat_bytes(variables: dict[str, np.ndarray]) -> bytes:
    """``scipy.io.savemat`` output with a fixed header text (scipy stamps the time there), so files are reproducible."""
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables, do_compression=True)
    return _MAT_HEADER + buf.getvalue()[len(_MAT_HEADER):]


def raw_segment(labels_raw: np.ndarray) -> np.ndarray:
    """The 641x641 LIP_SSL layout: the map shrunk (nearest) to height 641, padded right with 0, then transposed.

    convert_data.m undoes it: transpose, keep columns ``1:int32(641*w/h)``, nearest-resize to h x w.
    """
    h, w = labels_raw.shape
    width = int(round(F.RAW_PARSE_SIZE * w / h))
    small = np.asarray(Image.fromarray(labels_raw).resize((width, F.RAW_PARSE_SIZE), Image.Resampling.NEAREST))
    square = np.zeros((F.RAW_PARSE_SIZE, F.RAW_PARSE_SIZE), np.uint8)
    square[:, :width] = small
    return np.ascontiguousarray(square.T)


def raw_pose(kp: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``subset``/``candidate`` as the Realtime Multi-Person Pose estimator saves them, at raw-image pixels.

    candidate rows are (x, y, score, id) grouped by part, with a few spurious peaks; subset is one person's row of 20:
    18 zero-based candidate indices (-1 missing; convert_data.m adds 1), the total score and the part count.
    """
    sx, sy = F.RAW_WIDTH / F.FINE_WIDTH, F.RAW_HEIGHT / F.FINE_HEIGHT
    candidates: list[list[float]] = []
    subset = np.full((1, 20), -1.0)
    for j, (x, y, conf) in enumerate(kp):
        peaks = [] if conf == 0 else [("true", round(x * sx), round(y * sy), conf)]
        if rng.random() < 0.15:
            peaks.append(("spurious", float(rng.integers(0, F.RAW_WIDTH)), float(rng.integers(0, F.RAW_HEIGHT)),
                          round(float(rng.uniform(0.05, 0.3)), 6)))
        for k in rng.permutation(len(peaks)):
            kind, px, py, score = peaks[k]
            if kind == "true":
                subset[0, j] = len(candidates)
            candidates.append([px, py, score, len(candidates)])
    present = kp[:, 2] > 0
    subset[0, 18] = kp[present, 2].sum() + 0.5 * max(int(present.sum()) - 1, 0)  # parts plus limb scores
    subset[0, 19] = present.sum()
    return {"subset": subset, "candidate": np.array(candidates, dtype=np.float64).reshape(-1, 4)}


def _write_cpvton(root: Path, split: str, pid: str, person: Person) -> None:
    base = root / split
    labels = draw_labels(person)
    atomic_save_image(Image.fromarray(paint_person(person, labels)), base / F.IMAGE_DIR / F.person_name(pid))
    atomic_save_image(F.palette_image(labels), base / F.PARSE_DIR / F.parse_name(F.person_name(pid)))
    atomic_write_text(base / F.POSE_DIR / F.pose_name(F.person_name(pid)), keypoints_json(keypoints(person, labels)))
    cloth_jpeg = encode_image(Image.fromarray(draw_cloth(person)), "JPEG")
    atomic_write_bytes(base / F.CLOTH_DIR / F.cloth_name(pid), cloth_jpeg)
    decoded = np.asarray(Image.open(io.BytesIO(cloth_jpeg)).convert("RGB"))  # VITON masked the decoded JPEG
    atomic_save_image(Image.fromarray(cloth_mask_from_rgb(decoded)), base / F.CLOTH_MASK_DIR / F.cloth_name(pid))


def _write_viton(root: Path, pid: str, person: Person, rng: np.random.Generator) -> None:
    labels_raw = draw_labels(person, F.RAW_WIDTH, F.RAW_HEIGHT)
    images = root / F.RAW_IMAGE_DIR
    atomic_save_image(Image.fromarray(paint_person(person, labels_raw)), images / F.person_name(pid))
    cloth = draw_cloth(person, F.RAW_WIDTH, F.RAW_HEIGHT)
    atomic_save_image(Image.fromarray(cloth), images / F.cloth_name(pid))
    mat = f"{pid}_0.mat"
    atomic_write_bytes(root / F.RAW_SEGMENT_DIR / mat, savemat_bytes({"segment": raw_segment(labels_raw)}))
    kp = keypoints(person, draw_labels(person))
    atomic_write_bytes(root / F.RAW_POSE_DIR / mat, savemat_bytes(raw_pose(kp, rng)))


def synthesize(out: Path, pairs: int, seed: int, layout: str = "cpvton", defects: bool = False,
               progress: bool = False) -> dict:
    """Write ``pairs`` synthetic person/cloth pairs under ``out`` and return a summary.

    The summary holds ``root``, ``layout``, ``seed``, ``pairs``, ``splits`` (counts), ``ids`` (person ids per split
    whose files exist) and ``defects`` (the records also written to ``defects.json``, see ``synth_defects``).
    """
    if layout not in F.LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(F.LAYOUTS)}")
    if pairs < 1 or seed < 0:
        raise ValueError("pairs must be >= 1 and seed >= 0")
    if defects:
        if layout != "cpvton":
            raise ValueError("--defects applies to the cpvton layout only; the raw viton layout is written clean")
        if pairs < min_defect_pairs():
            raise ValueError(f"--defects needs at least {min_defect_pairs()} pairs, got {pairs}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; synth writes into a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = make_ids(rng, pairs)
    n_train, n_test = split_sizes(pairs)
    test_ids = sorted(str(i) for i in rng.choice(ids, n_test, replace=False))
    test_set = set(test_ids)
    split_of = {pid: ("test" if pid in test_set else "train") for pid in ids}
    train_ids = [pid for pid in ids if split_of[pid] == "train"]
    test_cloths = [str(c) for c in rng.permutation(test_ids)]
    unpaired = [(F.person_name(p), F.cloth_name(c)) for p, c in zip(test_ids, test_cloths)]
    for index, pid in enumerate(tqdm(ids, desc="synth", unit="pair", disable=not progress)):
        person_rng = np.random.default_rng([seed, index])  # one stream per person: independent of the others
        person = make_person(person_rng)
        if layout == "cpvton":
            _write_cpvton(out, split_of[pid], pid, person)
        else:
            _write_viton(out, pid, person, person_rng)
    same = {split: [(F.person_name(p), F.cloth_name(p)) for p in group]
            for split, group in (("train", train_ids), ("test", test_ids))}
    if layout == "cpvton":
        atomic_write_text(out / F.TRAIN_PAIRS, F.pairs_text(same["train"]))
        atomic_write_text(out / F.TEST_PAIRS, F.pairs_text(unpaired))
        atomic_write_text(out / F.TEST_PAIRS_SAME, F.pairs_text(same["test"]))
    else:
        atomic_write_text(out / F.RAW_TRAIN_PAIRS, F.pairs_text(same["train"]))
        atomic_write_text(out / F.RAW_TEST_PAIRS, F.pairs_text(unpaired))
    records = inject_defects(out, train_ids, test_ids, np.random.default_rng([seed, pairs, 1])) if defects else []
    present = {split: sorted(p.name[:6] for p in (out / split / F.IMAGE_DIR).glob("*_0.jpg"))
               for split in F.SPLITS} if layout == "cpvton" else {"train": train_ids, "test": test_ids}
    return {"root": str(out), "layout": layout, "seed": seed, "pairs": pairs,
            "splits": {"train": n_train, "test": n_test}, "ids": present, "defects": records}

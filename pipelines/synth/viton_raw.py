"""Synthetic data in the raw VITON layout (`vton.pipelines.layouts.viton_raw`): ``women_top`` at 762x1100,
``segment/*.mat`` holding a transposed and padded 641x641 LIP_SSL label map, ``pose/*.mat`` with the pose estimator's
``subset``/``candidate``. Running the CP-VTON conversion over them gives approximately the CP-VTON-layout data of the
same seed (the same people, drawn at the other size)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from vton.core import formats as fm
from vton.core.io import atomic_save_image, atomic_write_bytes
from vton.pipelines.layouts.viton_raw import VITON_RAW
from vton.pipelines.synth.cpvton import VitonNames
from vton.pipelines.synth.draw import Person, draw_cloth, draw_labels, keypoints, paint_person

_MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, written by vton synth".ljust(116, b" ")


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
    width = int(round(fm.RAW_PARSE_SIZE * w / h))
    small = np.asarray(Image.fromarray(labels_raw).resize((width, fm.RAW_PARSE_SIZE), Image.Resampling.NEAREST))
    square = np.zeros((fm.RAW_PARSE_SIZE, fm.RAW_PARSE_SIZE), np.uint8)
    square[:, :width] = small
    return np.ascontiguousarray(square.T)


def raw_pose(kp: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``subset``/``candidate`` as the Realtime Multi-Person Pose estimator saves them, at raw-image pixels.

    candidate rows are (x, y, score, id) grouped by part, with a few spurious peaks; subset is one person's row of 20:
    18 zero-based candidate indices (-1 missing; convert_data.m adds 1), the total score and the part count.
    """
    sx, sy = fm.RAW_WIDTH / fm.FINE_WIDTH, fm.RAW_HEIGHT / fm.FINE_HEIGHT
    candidates: list[list[float]] = []
    subset = np.full((1, 20), -1.0)
    for j, (x, y, conf) in enumerate(kp):
        peaks = [] if conf == 0 else [("true", round(x * sx), round(y * sy), conf)]
        if rng.random() < 0.15:
            peaks.append(("spurious", float(rng.integers(0, fm.RAW_WIDTH)), float(rng.integers(0, fm.RAW_HEIGHT)),
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


class VitonRawSynth(VitonNames):
    """Writes one person (image, segment .mat, pose .mat) and their cloth where the adapter reads them."""
    layout = VITON_RAW
    faults: tuple[str, ...] = ()  # written clean: synth.defects targets the CP-VTON and VITON-HD layouts

    def pair_files(self, split: str, pid: str) -> list[str]:
        cloth = self.layout.cloth_files(split, fm.cloth_name(pid))
        return [*self.layout.person_files(split, fm.person_name(pid))[:3], cloth.cloth]

    def write_person(self, root: Path, split: str, pid: str, person: Person, rng: np.random.Generator) -> None:
        files = self.layout.person_files(split, fm.person_name(pid))
        labels_raw = draw_labels(person, fm.RAW_WIDTH, fm.RAW_HEIGHT)
        atomic_save_image(Image.fromarray(paint_person(person, labels_raw)), root / files.image)
        cloth = draw_cloth(person, fm.RAW_WIDTH, fm.RAW_HEIGHT)
        atomic_save_image(Image.fromarray(cloth), root / self.layout.cloth_files(split, fm.cloth_name(pid)).cloth)
        atomic_write_bytes(root / files.parse, savemat_bytes({"segment": raw_segment(labels_raw)}))
        kp = keypoints(person, draw_labels(person))
        atomic_write_bytes(root / files.pose, savemat_bytes(raw_pose(kp, rng)))

    def present(self, root: Path, ids: dict[str, list[str]]) -> dict[str, list[str]]:
        """Every id written (this layout gets no defects)."""
        return ids


VITON_RAW_SYNTH = VitonRawSynth()

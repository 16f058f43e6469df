"""Synthetic data in CP-VTON's converted layout (`vton.pipelines.layouts.cpvton`): 192x256 files per split, the mask
computed from the decoded cloth JPEG as convert_data.m did."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.io import atomic_save_image, atomic_write_bytes, atomic_write_text, encode_image
from vton.pipelines.layouts.cpvton import CPVTON
from vton.pipelines.layouts.viton_raw import cloth_mask_from_rgb
from vton.pipelines.synth.defects import FAULTS
from vton.pipelines.synth.draw import Person, draw_cloth, draw_labels, keypoints, paint_person


def keypoints_json(kp: np.ndarray) -> str:
    """The OpenPose-1.0-style file convert_data.m writes (missing joints as integer zeros, like mat2str)."""
    flat = [float(v) if row[2] > 0 else 0 for row in kp for v in row]
    doc = {"version": 1.0, "people": [{"face_keypoints": [], "pose_keypoints": flat,
                                        "hand_right_keypoints": [], "hand_left_keypoints": []}]}
    return json.dumps(doc)


class VitonNames:
    """VITON's naming, shared by its two layouts: six-digit ids, ``<ID>_0.jpg`` persons and ``<ID>_1.jpg`` cloths."""
    id_digits = 6
    distinct_unpaired = False  # VITON's test list may give a person their own cloth by chance
    person_name = staticmethod(fm.person_name)
    cloth_name = staticmethod(fm.cloth_name)


class CpvtonSynth(VitonNames):
    """Writes one person (image, parse, pose) and their cloth (cloth, mask) where the adapter reads them."""
    layout = CPVTON
    faults: tuple[str, ...] = FAULTS  # synth.defects injects its faults into this layout

    def pair_files(self, split: str, pid: str) -> list[str]:
        cloth = self.layout.cloth_files(split, fm.cloth_name(pid))
        return [*self.layout.person_files(split, fm.person_name(pid))[:3], cloth.cloth, cloth.mask]

    def write_person(self, root: Path, split: str, pid: str, person: Person, rng: np.random.Generator) -> None:
        files = self.layout.person_files(split, fm.person_name(pid))
        cloth_files = self.layout.cloth_files(split, fm.cloth_name(pid))
        labels = draw_labels(person)
        atomic_save_image(Image.fromarray(paint_person(person, labels)), root / files.image)
        atomic_save_image(fm.palette_image(labels), root / files.parse)
        atomic_write_text(root / files.pose, keypoints_json(keypoints(person, labels)))
        cloth_jpeg = encode_image(Image.fromarray(draw_cloth(person)), "JPEG")
        atomic_write_bytes(root / cloth_files.cloth, cloth_jpeg)
        decoded = np.asarray(Image.open(io.BytesIO(cloth_jpeg)).convert("RGB"))  # VITON masked the decoded JPEG
        atomic_save_image(Image.fromarray(cloth_mask_from_rgb(decoded)), root / cloth_files.mask)

    def present(self, root: Path, ids: dict[str, list[str]]) -> dict[str, list[str]]:
        """Person ids per split whose image exists (defects move and remove files)."""
        return {split: sorted(p.name[:6] for p in (root / split / fm.IMAGE_DIR).glob("*_0.jpg")) for split in ids}


CPVTON_SYNTH = CpvtonSynth()

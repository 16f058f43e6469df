"""Synthetic data in DressCode's tree (`vton.pipelines.layouts.dresscode`), in the release's file formats: each model is
ONE drawing at 768x1024 (`draw`, LIP labels mapped to ATR-18), so image, label map, keypoints, skeleton and dense agree.

- ``images/{id}_0.jpg`` model, ``{id}_1.jpg`` garment: RGB JPEG, quality 95, 4:2:0. The upper_body garment is `draw`'s
  flat cloth; a lower_body or dresses garment is the model's garment pixels on white (`draw` has no flat trousers).
- ``label_maps/{id}_4.png``: P PNG, ATR-18 indices, the 256-entry palette (`formats.ATR_PALETTE`, then (i, i, i)).
  The category decides the garment labels: upper_body upper clothes 4 (trousers 6 or skirt 5 below), lower_body
  trousers 6 or skirt 5, dresses upper and lower garment both 7.
- ``keypoints/{id}_2.json``: ``json.dumps`` default formatting, 18 OpenPose-18 entries ``[x, y, score, n]`` in the
  384x512 frame, x and y integer-valued floats, the score a float32's value, n a running candidate id; a missing
  joint ``[-1.0, -1.0, 0.0, -1.0]``.
- ``skeletons/{id}_5.jpg``: pytorch-openpose's COCO-18 limbs and joints on black (RGB JPEG).
- ``dense/{id}_5.png`` (L, DensePose part index from the label map) and ``{id}_5_uv.npz`` (one member ``uv.npy``,
  (2, 1024, 768) float32, the pixel's position in the frame, 0 where the part is 0). Written as
  ``np.savez_compressed`` lays the archive out, but with a fixed member date so reruns are byte-identical.
- Pairs files: per category ``{model}\\t{garment}``, at the root ``{model}\\t{garment}\\t{code}``; ids are six digits,
  train ids first (upper_body, lower_body, dresses, each a contiguous range), then the test ids likewise.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from vton.core import formats as fm
from vton.core.io import atomic_write_bytes, atomic_write_text, encode_image
from vton.pipelines.layouts.dresscode import DRESSCODE_LAYOUT
from vton.pipelines.synth import defects
from vton.pipelines.synth.draw import Person, draw_cloth, draw_labels, make_person, paint_person

W, H = fm.HD_SIZE_WH
PW, PH = fm.DC_POSE_SIZE_WH
JPEG = {"quality": 95, "subsampling": "4:2:0"}
MISSING = [-1.0, -1.0, 0.0, -1.0]
# LIP (draw) -> ATR-18; the garments (LIP 5 upper, 6 dress, 7 coat, 9 pants, 10 jumpsuit, 12 skirt) by category
_LIP_TO_ATR = {1: 1, 2: 2, 4: 3, 5: 4, 6: 7, 7: 4, 9: 6, 10: 7, 11: 17, 12: 5, 13: 11, 14: 14, 15: 15, 16: 12,
               17: 13, 18: 9, 19: 10}
_DRESS_FROM = (5, 6, 7, 9, 10, 12)  # dresses: the upper and lower garment are one dress (7)
# ATR label -> DensePose part (2 torso, 5/6 feet, 7/8 legs, 15/16 upper arms, 23 head)
_DENSE_PARTS = {4: 2, 5: 2, 6: 8, 7: 2, 8: 2, 9: 5, 10: 6, 11: 23, 12: 8, 13: 7, 14: 15, 15: 16, 17: 2}
# pytorch-openpose (Hzzone/pytorch-openpose src/util.py draw_bodypose): limbs as 1-based joint pairs, joint colours
_LIMBS = ((2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13), (13, 14),
          (2, 1), (1, 15), (15, 17), (1, 16), (16, 18))
_COLORS = ((255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
           (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
           (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85))

LABEL_MAP_PALETTE: Final = fm.grey_padded_palette(fm.ATR_PALETTE)  # as DressCode stores its label maps

def _jpeg(image: Image.Image) -> bytes:
    return encode_image(image, "JPEG", **JPEG)


def atr_labels(lip: np.ndarray, category: str) -> np.ndarray:
    """`draw`'s LIP map as ATR-18 for a model of ``category`` (dresses: every garment label becomes the dress, 7)."""
    lut = np.zeros(256, np.uint8)
    for lip_label, atr in _LIP_TO_ATR.items():
        lut[lip_label] = atr
    if category == "dresses":
        lut[list(_DRESS_FROM)] = 7
    return lut[lip]


def keypoint_entries(person: Person, lip: np.ndarray) -> list[list[float]]:
    """18 ``[x, y, score, n]`` in the 384x512 frame: integer positions; a joint hidden, off the frame or off the figure
    is missing; n counts the joints found so far."""
    entries, found = [], 0
    for (x, y), shown, conf in zip(person.joints, person.visible, person.confidence):
        px, py = round(x * PW / fm.FINE_WIDTH), round(y * PH / fm.FINE_HEIGHT)
        inside = 0 <= px < PW and 0 <= py < PH
        if shown and inside and lip[min(int(py * H / PH), H - 1), min(int(px * W / PW), W - 1)] > 0:
            entries.append([float(px), float(py), float(np.float32(conf)), float(found)])
            found += 1
        else:
            entries.append(list(MISSING))
    return entries


def skeleton_image(entries: list[list[float]]) -> Image.Image:
    """The keypoints drawn at 768x1024 on black: limbs 4 px wide, joints as discs of radius 4."""
    image = Image.new("RGB", (W, H))
    draw = ImageDraw.Draw(image)
    xy = [(x * W / PW, y * H / PH) if x >= 0 else None for x, y, _, _ in entries]
    for k, (a, b) in enumerate(_LIMBS):
        if xy[a - 1] and xy[b - 1]:
            draw.line([xy[a - 1], xy[b - 1]], _COLORS[k], width=4)
    for j, point in enumerate(xy):
        if point:
            draw.ellipse((point[0] - 4, point[1] - 4, point[0] + 4, point[1] + 4), _COLORS[j])
    return image


def dense_parts(labels: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for label, part in _DENSE_PARTS.items():
        lut[label] = part
    return lut[labels]


def uv_npz(parts: np.ndarray) -> bytes:
    """``{id}_5_uv.npz``: a deflated zip holding ``uv.npy``, (2, H, W) float32 = the pixel's (x / W, y / H), 0 where
    the part is 0; the member dated 1980-01-01 (np.savez_compressed dates it now)."""
    height, width = parts.shape
    grid = np.stack([np.broadcast_to(np.arange(width, dtype=np.float32) / width, parts.shape),
                     np.broadcast_to(np.arange(height, dtype=np.float32)[:, None] / height, parts.shape)])
    uv = np.where(parts > 0, grid, np.float32(0)).astype(np.float32)
    member = io.BytesIO()
    np.lib.format.write_array(member, uv, allow_pickle=False)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("uv.npy", (1980, 1, 1, 0, 0, 0)), member.getvalue(), zipfile.ZIP_DEFLATED)
    return out.getvalue()


def garment_rgb(person: Person, image: np.ndarray, labels: np.ndarray, category: str) -> np.ndarray:
    """The garment photo: `draw`'s flat cloth for upper_body, else the model's garment pixels on white."""
    if category == "upper_body":
        return draw_cloth(person, W, H)
    worn = fm.ATR.for_category(category).cloth
    return np.where(np.isin(labels, worn)[..., None], image, np.uint8(255)).astype(np.uint8)


def plan(pairs: int) -> dict[str, dict[str, list[str]]]:
    """Ids per category and split: ``pairs`` shared out over the categories in order, each category split at the
    official share (`generate.split_counts`); train ids first, category after category, then the test ids."""
    from vton.pipelines.synth.generate import split_counts  # generate registers this module's generator

    counts = [pairs // 3 + (k < pairs % 3) for k in range(3)]
    splits = [split_counts(n) if n else (0, 0) for n in counts]
    ids: dict[str, dict[str, list[str]]] = {c: {} for c in fm.DC_CATEGORIES}
    start = 0
    for s, split in enumerate(fm.SPLITS):
        for category, sizes in zip(fm.DC_CATEGORIES, splits):
            ids[category][split] = [f"{n:0{fm.DC_ID_DIGITS}d}" for n in range(start, start + sizes[s])]
            start += sizes[s]
    return ids


class DressCodeSynth:
    """Writes a model's files and their garment's (same id) in their category's folder."""
    layout = DRESSCODE_LAYOUT
    faults = defects.DC_FAULTS
    id_digits = fm.DC_ID_DIGITS
    distinct_unpaired = True  # within a category; a category of one test model keeps their own garment

    @staticmethod
    def person_name(pid: str) -> str:
        return fm.dc_name(pid, 0, "jpg")

    @staticmethod
    def cloth_name(pid: str) -> str:
        return fm.dc_name(pid, 1, "jpg")

    def pair_files(self, category: str, pid: str) -> list[str]:
        """Every file of the pair, relative to the root."""
        folder = f"{category}/"
        return [f"{folder}{fm.DC_IMAGE_DIR}/{fm.dc_name(pid, 0, 'jpg')}",
                f"{folder}{fm.DC_IMAGE_DIR}/{fm.dc_name(pid, 1, 'jpg')}",
                f"{folder}{fm.DC_KEYPOINT_DIR}/{fm.dc_name(pid, 2, 'json')}",
                f"{folder}{fm.DC_LABEL_DIR}/{fm.dc_name(pid, 4, 'png')}",
                f"{folder}{fm.DC_SKELETON_DIR}/{fm.dc_name(pid, 5, 'jpg')}",
                f"{folder}{fm.DC_DENSE_DIR}/{fm.dc_name(pid, 5, 'png')}",
                f"{folder}{fm.DC_DENSE_DIR}/{pid}_5_uv.npz"]

    def write_person(self, root: Path, category: str, pid: str, person: Person, rng: np.random.Generator) -> None:
        lip = draw_labels(person, W, H)
        image = paint_person(person, lip)
        labels = atr_labels(lip, category)
        entries = keypoint_entries(person, lip)
        parts = dense_parts(labels)
        label_map = encode_image(fm.palette_image(labels, LABEL_MAP_PALETTE), "PNG")
        blobs = (_jpeg(Image.fromarray(image)), _jpeg(Image.fromarray(garment_rgb(person, image, labels, category))),
                 json.dumps({"keypoints": entries}).encode(), label_map,
                 _jpeg(skeleton_image(entries)), encode_image(Image.fromarray(parts, "L"), "PNG"), uv_npz(parts))
        for path, data in zip(self.pair_files(category, pid), blobs):
            atomic_write_bytes(root / path, data)

    def synthesize(self, out: Path, pairs: int, seed: int, with_defects: bool, progress: bool) -> dict:
        """The whole tree (see `generate.synthesize`, which checks the arguments and OUT): the ids of `plan`, each
        category's unpaired test list giving each model another model's garment of the category."""
        from vton.pipelines.synth.generate import other_cloths

        ids = plan(pairs)
        rng = np.random.default_rng(seed)
        lists: dict[str, dict[str, list[tuple[str, str]]]] = {}
        for category in fm.DC_CATEGORIES:
            train, test = ids[category]["train"], ids[category]["test"]
            other = other_cloths([str(c) for c in rng.permutation(test)]) if test else {}
            lists[category] = {"train": [(p, p) for p in train], "paired": [(p, p) for p in test],
                               "unpaired": [(p, other[p]) for p in test]}
        order = [(c, pid) for split in fm.SPLITS for c in fm.DC_CATEGORIES for pid in ids[c][split]]
        for index, (category, pid) in enumerate(tqdm(order, desc="synth", unit="pair", disable=not progress)):
            person_rng = np.random.default_rng([seed, index])
            self.write_person(out, category, pid, make_person(person_rng), person_rng)
        for which in ("train", "paired", "unpaired"):
            root_lines = []
            for code, category in enumerate(fm.DC_CATEGORIES):
                rows = [(self.person_name(p), self.cloth_name(c)) for p, c in lists[category][which]]
                atomic_write_text(self.layout.category_pairs_file(out, category, which),
                                  "".join(f"{p}\t{c}\n" for p, c in rows))
                root_lines += [f"{p}\t{c}\t{code}\n" for p, c in rows]
            atomic_write_text(self.layout.pairs_file(out, which), "".join(root_lines))
        train_ids = [pid for c in fm.DC_CATEGORIES for pid in ids[c]["train"]]
        test_ids = [pid for c in fm.DC_CATEGORIES for pid in ids[c]["test"]]
        folders = {pid: c for c in fm.DC_CATEGORIES for split in fm.SPLITS for pid in ids[c][split]}
        records = (defects.inject_defects(out, train_ids, test_ids, np.random.default_rng([seed, pairs, 1]), self,
                                          folders) if with_defects else [])
        return {"root": str(out), "layout": self.layout.name, "seed": seed, "pairs": pairs,
                "splits": {s: sum(len(ids[c][s]) for c in fm.DC_CATEGORIES) for s in fm.SPLITS},
                "ids": self.present(out, {"train": train_ids, "test": test_ids}),
                "categories": {c: ids[c] for c in fm.DC_CATEGORIES}, "defects": records}

    def present(self, root: Path, ids: dict[str, list[str]]) -> dict[str, list[str]]:
        """Model ids per split whose image exists."""
        found = {p.name.split("_")[0] for c in fm.DC_CATEGORIES for p in (root / c / fm.DC_IMAGE_DIR).glob("*_0.jpg")}
        return {split: sorted(found.intersection(listed)) for split, listed in ids.items()}


DRESSCODE_SYNTH = DressCodeSynth()

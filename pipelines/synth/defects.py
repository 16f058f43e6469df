"""Realistic faults injected into a synthetic dataset (the CP-VTON layout's `FAULTS`, VITON-HD's `HD_FAULTS`), with
their ground truth in ``defects.json``.

Each fault hits its own train pair (same-ID pairs, so a pair names its files without ambiguity), except
``id_in_both_splits``, which re-labels a train pair with the id of a test person. ``defects.json`` is a list of
``{"pair": "<person> <cloth>" as in the pairs file, "split", "file": path relative to the root, "fault", "detail"}``.
The prepare stage's tests compare its rejections with it, so the fault names below are stable. After the faults,
`near.plant_near_duplicates` adds train pairs that copy test pairs with small edits (records with a ``kind``).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.io import atomic_save_image, atomic_write_bytes, atomic_write_json, atomic_write_text
from vton.pipelines.synth.near import plant_near_duplicates

if TYPE_CHECKING:
    from vton.pipelines.synth.generate import Generator

FAULTS: Final = (
    "truncated_jpeg",  # person JPEG cut short (an interrupted download)
    "wrong_size",  # person image not resized to 192x256
    "duplicate_image",  # person image byte-identical to another id's
    "missing_parse",  # image-parse/<ID>_0.png absent
    "label_out_of_range",  # parse holds label 20 (CP-VTON+'s neck label) outside LIP's 0..19
    "missing_keypoints",  # pose/<ID>_0_keypoints.json absent
    "malformed_keypoints",  # keypoint JSON cut in the middle
    "nan_keypoints",  # keypoint JSON with NaN coordinates (the JSON token NaN)
    "empty_cloth_mask",  # cloth-mask all black
    "id_in_both_splits",  # a train pair carries the id of a test person
    "path_outside_root",  # pairs line whose person path leaves the dataset root
)
HD_FAULTS: Final = (  # VITON-HD's tree
    "truncated_jpeg",
    "wrong_size",  # person image not 768x1024
    "label_out_of_range",  # parse holds label 20, outside CIHP's 0..19
    "parse_not_palette",  # parse saved as RGB (its colours) instead of P (its label indices)
    "body25_wrong_length",  # pose_keypoints_2d of 24 joints (72 values), not BODY_25's 25
    "empty_people",  # OpenPose found nobody: "people":[]
    "missing_joint",  # one of BODY_25 joints 2, 5, 9, 12 (shoulders, hips) written 0,0,0
    "id_in_both_splits",
    "path_outside_root",
)
DC_FAULTS: Final = (  # DressCode's tree
    "truncated_jpeg",
    "label_out_of_range",  # label map holds label 18, outside ATR's 0..17
    "parse_not_palette",  # label map saved as RGB
    "keypoints_17",  # keypoints list of 17 entries, not 18
    "test_id_in_train",  # a train line (root train_pairs.txt) names a test model and their garment
)
AGNOSTIC_JOINTS: Final = (2, 5, 9, 12)  # missing_joint picks one (the neck, 1, is never off the figure anyway)
DEFECTS_FILE: Final = "defects.json"
DEFECT_TRAIN_PAIRS: Final = max(len(FAULTS), len(HD_FAULTS)) + 1  # one victim per fault plus a duplicate's source
ESCAPING_PATH: Final = "../../../../../etc/passwd"  # leaves the root from ROOT, ROOT/train or ROOT/train/image


class _Target:
    """The files of one train pair (named by the generator's layout) and the edits the injectors share."""

    def __init__(self, root: Path, pid: str, generator: Generator, folder: str = "train") -> None:
        self.root, self.pid, self.generator, self.folder = root, pid, generator, folder
        self.layout = generator.layout
        self.person, self.cloth = generator.person_name(pid), generator.cloth_name(pid)
        self.line = f"{self.person} {self.cloth}"
        self.image, self.parse, self.pose = self.layout.person_files(folder, self.person)[:3]
        self.mask = self.layout.cloth_files(folder, self.cloth).mask

    def replace_pairs_line(self, new_line: str) -> None:
        """Replace the train line naming this pair (its first two columns: DressCode's root files add a third)."""
        pairs = self.layout.pairs_file(self.root, "train")
        lines = pairs.read_text().splitlines()
        lines[[line.split()[:2] for line in lines].index([self.person, self.cloth])] = new_line
        atomic_write_text(pairs, "".join(f"{line}\n" for line in lines))

    def pose_doc(self) -> dict:
        return json.loads((self.root / self.pose).read_text())

    def write_pose_doc(self, doc: dict) -> None:
        atomic_write_text(self.root / self.pose, json.dumps(doc, separators=(",", ":")))


Injected = tuple[str, str, str]  # pairs line, file, detail


def _truncated_jpeg(t: _Target, _: dict) -> Injected:
    data = (t.root / t.image).read_bytes()
    atomic_write_bytes(t.root / t.image, data[: len(data) * 6 // 10])
    return t.line, t.image, f"kept the first {len(data) * 6 // 10} of {len(data)} bytes"


def _wrong_size(t: _Target, _: dict) -> Injected:
    height, width = t.layout.native_size_hw
    small = Image.open(t.root / t.image).convert("RGB").resize((width // 2, height // 2))
    atomic_save_image(small, t.root / t.image)
    return t.line, t.image, f"{small.width}x{small.height} instead of {width}x{height}"


def _duplicate_image(t: _Target, ctx: dict) -> Injected:
    source = _Target(t.root, ctx["source"], t.generator)
    atomic_write_bytes(t.root / t.image, (t.root / source.image).read_bytes())
    return t.line, t.image, f"byte copy of {source.image}"


def _missing_parse(t: _Target, _: dict) -> Injected:
    (t.root / t.parse).unlink()
    return t.line, t.parse, "file removed"


def _label_out_of_range(t: _Target, _: dict) -> Injected:
    """The lowest rows of the face (LIP and CIHP 13, ATR 11: the head group's last label) get the first label past the
    layout's (LIP, CIHP: 20, CP-VTON+'s neck label of image-parse-new; ATR: 18)."""
    parse = Image.open(t.root / t.parse)
    labels = np.array(parse)
    face, outside = t.layout.labels.head[-1], len(t.layout.labels.labels)
    rows = np.nonzero((labels == face).any(axis=1))[0]
    neck = (labels == face) & (np.arange(labels.shape[0])[:, None] >= rows.max() - 8)
    labels[neck] = outside
    fixed = Image.fromarray(labels)
    fixed.putpalette(parse.getpalette())
    atomic_save_image(fixed, t.root / t.parse)
    return t.line, t.parse, f"{int(neck.sum())} neck pixels labelled {outside}"


def _missing_keypoints(t: _Target, _: dict) -> Injected:
    (t.root / t.pose).unlink()
    return t.line, t.pose, "file removed"


def _malformed_keypoints(t: _Target, _: dict) -> Injected:
    text = (t.root / t.pose).read_text()
    atomic_write_text(t.root / t.pose, text[: len(text) // 2])
    return t.line, t.pose, "JSON cut at half its length"


def _nan_keypoints(t: _Target, _: dict) -> Injected:
    doc = json.loads((t.root / t.pose).read_text())
    flat = doc["people"][0]["pose_keypoints"]
    joints = [j for j in range(fm.NUM_JOINTS) if flat[3 * j + 2] > 0][:3]
    for j in joints:
        flat[3 * j] = flat[3 * j + 1] = float("nan")
    atomic_write_text(t.root / t.pose, json.dumps(doc))
    return t.line, t.pose, f"x, y of joints {joints} are NaN"


def _empty_cloth_mask(t: _Target, _: dict) -> Injected:
    height, width = t.layout.native_size_hw
    atomic_save_image(Image.new("L", (width, height), 0), t.root / t.mask)
    return t.line, t.mask, "mask all zero"


def _id_in_both_splits(t: _Target, ctx: dict) -> Injected:
    twin = _Target(t.root, ctx["twin"], t.generator)
    for old, new in zip(t.generator.pair_files("train", t.pid), t.generator.pair_files("train", twin.pid)):
        (t.root / old).rename(t.root / new)
    t.replace_pairs_line(twin.line)
    return twin.line, twin.image, f"train pair {t.pid} renamed to test id {twin.pid}"


def _path_outside_root(t: _Target, _: dict) -> Injected:
    line = f"{ESCAPING_PATH} {t.cloth}"
    t.replace_pairs_line(line)
    return line, t.layout.pairs_names["train"], f"person path of {t.line!r} replaced"


def _parse_not_palette(t: _Target, _: dict) -> Injected:
    atomic_save_image(Image.open(t.root / t.parse).convert("RGB"), t.root / t.parse)
    return t.line, t.parse, "parse saved as RGB colours"


def _body25_wrong_length(t: _Target, _: dict) -> Injected:
    doc = t.pose_doc()
    doc["people"][0]["pose_keypoints_2d"] = doc["people"][0]["pose_keypoints_2d"][:72]
    t.write_pose_doc(doc)
    return t.line, t.pose, "pose_keypoints_2d cut to 24 joints (72 values)"


def _empty_people(t: _Target, _: dict) -> Injected:
    doc = t.pose_doc()
    doc["people"] = []
    t.write_pose_doc(doc)
    return t.line, t.pose, "people list emptied"


def _missing_joint(t: _Target, ctx: dict) -> Injected:
    doc, joint = t.pose_doc(), ctx["joint"]
    doc["people"][0]["pose_keypoints_2d"][3 * joint: 3 * joint + 3] = [0, 0, 0]
    t.write_pose_doc(doc)
    return t.line, t.pose, f"BODY_25 joint {joint} written 0,0,0"


def _keypoints_17(t: _Target, _: dict) -> Injected:
    doc = t.pose_doc()
    doc["keypoints"] = doc["keypoints"][:17]
    atomic_write_text(t.root / t.pose, json.dumps(doc))  # DressCode's json.dumps default formatting
    return t.line, t.pose, "keypoints cut to 17 entries"


def _test_id_in_train(t: _Target, ctx: dict) -> Injected:
    """DressCode: the train line of this pair is replaced by a test model's line (their files exist, in their
    category); the victim's own files stay, unlisted."""
    twin = _Target(t.root, ctx["twin"], t.generator, ctx["folders"][ctx["twin"]])
    code = t.layout.categories.index(twin.folder)
    t.replace_pairs_line(f"{twin.person}\t{twin.cloth}\t{code}")
    return twin.line, twin.image, f"train line of {t.pid} replaced by test id {twin.pid}"


_INJECTORS: dict[str, Callable[[_Target, dict], Injected]] = {
    "truncated_jpeg": _truncated_jpeg, "wrong_size": _wrong_size, "duplicate_image": _duplicate_image,
    "missing_parse": _missing_parse, "label_out_of_range": _label_out_of_range,
    "missing_keypoints": _missing_keypoints, "malformed_keypoints": _malformed_keypoints,
    "nan_keypoints": _nan_keypoints, "empty_cloth_mask": _empty_cloth_mask,
    "id_in_both_splits": _id_in_both_splits, "path_outside_root": _path_outside_root,
    "parse_not_palette": _parse_not_palette, "body25_wrong_length": _body25_wrong_length,
    "empty_people": _empty_people, "missing_joint": _missing_joint, "keypoints_17": _keypoints_17,
    "test_id_in_train": _test_id_in_train,
}


def inject_defects(root: Path, train_ids: list[str], test_ids: list[str], rng: np.random.Generator,
                   generator: Generator, folders: dict[str, str] | None = None) -> list[dict]:
    """Apply every fault of ``generator.faults`` to its own seeded train pair, then plant the near-duplicates
    (`near.plant_near_duplicates`, drawn from ``rng`` after the faults, so these stay as they were); write and return
    the ground truth. ``folders``: each id's source folder where it is not ``train`` (DressCode: its category)."""
    if len(train_ids) < DEFECT_TRAIN_PAIRS or not test_ids:
        raise ValueError(f"defects need {DEFECT_TRAIN_PAIRS} train pairs and a test pair")
    chosen = [str(pid) for pid in rng.permutation(train_ids)[:DEFECT_TRAIN_PAIRS]]
    ctx = {"source": chosen[-1], "twin": str(rng.choice(test_ids)), "joint": int(rng.choice(AGNOSTIC_JOINTS)),
           "folders": folders or {}}
    records = []
    for fault, pid in zip(generator.faults, chosen):
        target = _Target(root, pid, generator, (folders or {}).get(pid, "train"))
        pair, file, detail = _INJECTORS[fault](target, ctx)
        records.append({"pair": pair, "split": "train", "file": file, "fault": fault, "detail": detail})
    records += plant_near_duplicates(root, train_ids + test_ids, test_ids, np.random.default_rng(rng.integers(2**63)),
                                     generator, folders)
    atomic_write_json(root / DEFECTS_FILE, records)
    return records

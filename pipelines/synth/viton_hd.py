"""Synthetic data in VITON-HD's ``zalando-hd-resized`` tree (`vton.pipelines.layouts.viton_hd`), in the release's file
formats: every folder of a person is made from ONE drawing at 768x1024 (`draw`), so image, parse, keypoints and the
derived folders agree.

- ``image/``, ``cloth/``, ``agnostic-v3.2/``, ``image-densepose/``: RGB JPEG, quality 95, 4:2:0 chroma (what PIL's
  ``quality=95`` gives, forced here so a Pillow default cannot change it).
- ``cloth-mask/``: L JPEG, white garment on black.
- ``image-parse-v3/``, ``image-parse-agnostic-v3.2/``: P PNG, CIHP-20 indices, the full 256-entry palette, no tRNS.
  `draw` labels LIP; the two differ at 10 only: LIP-style drawings label the neck as face (13), CIHP as torso skin
  (10), so face pixels outside the head ellipse become 10.
- ``openpose_json/``: one BODY_25 person with 70 face and 2 x 21 hand points, compact JSON in OpenPose's key order,
  6 significant digits, a missing joint ``0,0,0`` (CMU-Perceptual-Computing-Lab/openpose doc/02_output.md).
- ``openpose_img/``: the BODY_25 skeleton and hand points on black (RGB PNG), OpenPose's BODY_25 colours.
- ``image-densepose/``: a synthetic DensePose part map (from the parse) in the PARULA colours on black.
- ``image-parse-agnostic-v3.2/`` and ``agnostic-v3.2/``: `agnostic` applied to the written parse, the pose as the
  JSON file holds it and the decoded person JPEG, as HR-VITON's scripts read them.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageDraw

from vton.core import formats as fm
from vton.core.io import atomic_write_bytes, atomic_write_text, encode_image
from vton.pipelines.keypoints.schema import BODY_25, parse_body25_json
from vton.pipelines.layouts.viton_hd import VITON_HD
from vton.pipelines.synth import defects
from vton.pipelines.synth.agnostic import parse_agnostic, person_agnostic
from vton.pipelines.synth.draw import Person, draw_cloth, draw_labels, paint_person

W, H = fm.HD_SIZE_WH
SX, SY = W / fm.FINE_WIDTH, H / fm.FINE_HEIGHT  # design pixels -> 768x1024
JPEG = {"quality": 95, "subsampling": "4:2:0"}
FACE_POINTS, HAND_POINTS = 70, 21
NECK, FACE = 10, 13
# OpenPose's BODY_25 rendering: limbs (joint pairs) and one colour per joint; a limb takes its second joint's colour
BODY_25_LIMBS = ((1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12), (12, 13),
                 (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21), (11, 22),
                 (22, 23), (11, 24))
BODY_25_COLORS = ((255, 0, 85), (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
                  (0, 255, 0), (255, 0, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
                  (0, 0, 255), (255, 0, 170), (170, 0, 255), (255, 0, 255), (85, 0, 255), (0, 0, 255), (0, 0, 255),
                  (0, 0, 255), (0, 255, 255), (0, 255, 255), (0, 255, 255))
# CIHP label -> DensePose part (IDM-VTON's numbering: 2 torso, 5/6 feet, 7/8 upper legs, 15/16 upper arms, 23/24 head);
# pants and skirt are split between the legs at the body's centre line
_DENSE_PARTS = {5: 2, 6: 2, 7: 2, 10: 24, 13: 23, 14: 15, 15: 16, 16: 8, 17: 7, 18: 5, 19: 6}
_DENSE_SPLIT = (9, 12)

PARSE_PALETTE: Final = fm.grey_padded_palette(fm.HD_PALETTE)  # as VITON-HD stores its parse maps

def _jpeg(image: Image.Image) -> bytes:
    return encode_image(image, "JPEG", **JPEG)


def cihp_labels(person: Person, lip: np.ndarray) -> np.ndarray:
    """`draw`'s LIP map as CIHP: the face label outside the head ellipse (the neck) becomes torso skin (10)."""
    head = Image.new("L", (lip.shape[1], lip.shape[0]), 0)
    (hx, hy), (hw, hh) = person.head_center, person.head_size
    sx, sy = lip.shape[1] / fm.FINE_WIDTH, lip.shape[0] / fm.FINE_HEIGHT
    ImageDraw.Draw(head).ellipse(((hx - hw / 2) * sx, (hy - hh / 2) * sy, (hx + hw / 2) * sx, (hy + hh / 2) * sy), 1)
    out = lip.copy()
    out[(lip == FACE) & (np.asarray(head) == 0)] = NECK
    return out


def _points(xy: np.ndarray, conf: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """(n, 3) x, y, confidence at 768x1024 from design coordinates; a point off the frame (or, given ``labels``, off
    the figure) is ``0, 0, 0``."""
    px = np.column_stack([xy[:, 0] * SX, xy[:, 1] * SY, conf])
    inside = (px[:, 0] > 1) & (px[:, 0] < W - 1) & (px[:, 1] > 1) & (px[:, 1] < H - 1)
    if labels is not None:
        rows, cols = np.clip(px[:, 1].astype(int), 0, H - 1), np.clip(px[:, 0].astype(int), 0, W - 1)
        inside &= labels[rows, cols] > 0
    px[~inside] = 0.0
    return px


def body25_points(person: Person, lip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(25, 3) BODY_25 keypoints at 768x1024: the drawn OpenPose-18 joints in BODY_25 order, MidHip between the hips,
    toes and heels on the shoes."""
    xy, conf = np.zeros((25, 2)), rng.uniform(0.3, 0.99, 25).round(6)
    shown = np.ones(25, bool)
    for j18, j25 in enumerate(BODY_25.openpose18):
        xy[j25], conf[j25], shown[j25] = person.joints[j18], person.confidence[j18], person.visible[j18]
    xy[8] = (xy[9] + xy[12]) / 2
    s = person.scale
    for ankle, side, (big, small, heel) in ((14, 1, (19, 20, 21)), (11, -1, (22, 23, 24))):  # left foot: image right
        xy[big] = xy[ankle] + (side * 9.0 * s, 6.0 * s)
        xy[small] = xy[ankle] + (side * 6.0 * s, 8.0 * s)
        xy[heel] = xy[ankle] + (-side * 3.0 * s, 5.0 * s)
    points = _points(xy, conf, lip)
    points[~shown] = 0.0
    return points


def face_points(person: Person, rng: np.random.Generator) -> np.ndarray:
    """(70, 3) face points: the contour, brows, eyes, nose and mouth reduced to ellipses inside the face."""
    (hx, hy), (hw, hh) = person.head_center, person.head_size
    t = np.linspace(0, 2 * np.pi, FACE_POINTS, endpoint=False)
    ring = np.where(np.arange(FACE_POINTS) < 27, 0.42, 0.22)
    xy = np.column_stack([hx + ring * hw * np.cos(t), hy + 0.1 * hh + ring * hh * np.sin(t)])
    return _points(xy, rng.uniform(0.3, 0.95, FACE_POINTS).round(6))


def hand_points(person: Person, elbow: int, wrist: int, rng: np.random.Generator) -> np.ndarray:
    """(21, 3) hand points in a small fan beyond the wrist (OpenPose-18 ``elbow``/``wrist`` indices)."""
    el, wr = np.asarray(person.joints[elbow]), np.asarray(person.joints[wrist])
    direction = (wr - el) / (np.linalg.norm(wr - el) or 1.0)
    angles = np.linspace(-0.9, 0.9, HAND_POINTS)
    reach = 2.0 + 6.0 * (np.arange(HAND_POINTS) % 5) / 4
    rot = np.column_stack([np.cos(angles), np.sin(angles)])
    dirs = np.column_stack([direction[0] * rot[:, 0] - direction[1] * rot[:, 1],
                            direction[0] * rot[:, 1] + direction[1] * rot[:, 0]])
    xy = wr + person.scale * reach[:, None] * dirs
    return _points(xy, rng.uniform(0.2, 0.9, HAND_POINTS).round(6))


def _numbers(points: np.ndarray) -> str:
    return ",".join(format(float(v), ".6g") for v in points.reshape(-1))


def openpose_json(body: np.ndarray, face: np.ndarray, left: np.ndarray, right: np.ndarray) -> str:
    """An OpenPose 1.3 ``--write_json`` file of one person, as VITON-HD's: no spaces, no trailing newline, the keys in
    OpenPose's order, 6 significant digits, empty 3-D arrays."""
    person = (f'"person_id":[-1],"pose_keypoints_2d":[{_numbers(body)}],"face_keypoints_2d":[{_numbers(face)}],'
              f'"hand_left_keypoints_2d":[{_numbers(left)}],"hand_right_keypoints_2d":[{_numbers(right)}],'
              '"pose_keypoints_3d":[],"face_keypoints_3d":[],"hand_left_keypoints_3d":[],"hand_right_keypoints_3d":[]')
    return '{"version":1.3,"people":[{' + person + "}]}"


def render_pose(body: np.ndarray, hands: tuple[np.ndarray, ...]) -> Image.Image:
    """The skeleton on black: limbs 8 px wide in their second joint's colour, joints as discs of radius 5, hand points
    as white dots."""
    image = Image.new("RGB", (W, H))
    draw = ImageDraw.Draw(image)
    present = (body[:, 0] != 0) | (body[:, 1] != 0)
    for a, b in BODY_25_LIMBS:
        if present[a] and present[b]:
            draw.line([tuple(body[a, :2]), tuple(body[b, :2])], BODY_25_COLORS[b], width=8)
    for j in np.flatnonzero(present):
        x, y = body[j, :2]
        draw.ellipse((x - 5, y - 5, x + 5, y + 5), BODY_25_COLORS[j])
    for hand in hands:
        for x, y, _ in hand[(hand[:, 0] != 0) | (hand[:, 1] != 0)]:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), (255, 255, 255))
    return image


def densepose_image(labels: np.ndarray, center_x: float) -> Image.Image:
    """A DensePose-like part map of the CIHP ``labels`` coloured as ``image-densepose`` is (PARULA, black background);
    ``center_x`` (pixels) splits pants and skirt between the right (image left) and left leg."""
    lut = np.zeros(256, np.uint8)
    for label, part in _DENSE_PARTS.items():
        lut[label] = part
    left_half = np.broadcast_to(np.arange(labels.shape[1])[None, :] >= center_x, labels.shape)
    parts = np.where(np.isin(labels, _DENSE_SPLIT), np.where(left_half, 8, 7), lut[labels])
    colors = np.zeros((256, 3), np.uint8)
    colors[1:len(fm.HD_DENSEPOSE_COLORS) + 1] = fm.HD_DENSEPOSE_COLORS
    return Image.fromarray(colors[parts], "RGB")


class VitonHdSynth:
    """Writes a person's folders and their cloth's (same name) where the adapter and the VITON-HD loaders read them."""
    layout = VITON_HD
    faults = defects.HD_FAULTS
    id_digits = fm.HD_ID_DIGITS
    distinct_unpaired = True  # the release's test_pairs.txt gives each test person another person's cloth

    @staticmethod
    def person_name(pid: str) -> str:
        return fm.hd_name(pid)

    cloth_name = person_name

    def files(self, split: str, pid: str) -> dict[str, str]:
        """Every file of the pair, relative to the root, by folder."""
        name = fm.hd_name(pid)
        image, parse, pose = self.layout.person_files(split, name)[:3]
        cloth, mask = self.layout.cloth_files(split, name)
        folder = f"{split}/"
        return {fm.HD_IMAGE_DIR: image, fm.HD_PARSE_DIR: parse, fm.HD_POSE_DIR: pose, fm.HD_CLOTH_DIR: cloth,
                fm.HD_CLOTH_MASK_DIR: mask,
                fm.HD_POSE_IMG_DIR: f"{folder}{fm.HD_POSE_IMG_DIR}/{fm.hd_pose_img_name(name)}",
                fm.HD_DENSEPOSE_DIR: f"{folder}{fm.HD_DENSEPOSE_DIR}/{name}",
                fm.HD_PARSE_AGNOSTIC_DIR: f"{folder}{fm.HD_PARSE_AGNOSTIC_DIR}/{fm.parse_name(name)}",
                fm.HD_AGNOSTIC_DIR: f"{folder}{fm.HD_AGNOSTIC_DIR}/{name}"}

    def pair_files(self, split: str, pid: str) -> list[str]:
        return list(self.files(split, pid).values())

    def write_person(self, root: Path, split: str, pid: str, person: Person, rng: np.random.Generator) -> None:
        files = self.files(split, pid)
        out: dict[str, bytes] = {}
        lip = draw_labels(person, W, H)
        image_jpeg = _jpeg(Image.fromarray(paint_person(person, lip)))
        labels = cihp_labels(person, lip)
        parse = fm.palette_image(labels, PARSE_PALETTE)
        body = body25_points(person, lip, rng)
        hands = (hand_points(person, 6, 7, rng), hand_points(person, 3, 4, rng))  # left (BODY_25 7), right
        text = openpose_json(body, face_points(person, rng), *hands)
        pose = parse_body25_json(text.encode())  # the numbers as the file holds them
        out[fm.HD_IMAGE_DIR] = image_jpeg
        out[fm.HD_PARSE_DIR] = encode_image(parse, "PNG")
        out[fm.HD_POSE_IMG_DIR] = encode_image(render_pose(pose, hands), "PNG")
        out[fm.HD_DENSEPOSE_DIR] = _jpeg(densepose_image(labels, person.neck_base[0] * SX))
        out[fm.HD_PARSE_AGNOSTIC_DIR] = encode_image(parse_agnostic(parse, pose), "PNG")
        decoded = Image.open(io.BytesIO(image_jpeg)).convert("RGB")  # the scripts read the JPEG
        out[fm.HD_AGNOSTIC_DIR] = _jpeg(person_agnostic(decoded, parse, pose))
        cloth = draw_cloth(person, W, H)
        out[fm.HD_CLOTH_DIR] = _jpeg(Image.fromarray(cloth))
        mask = np.where((cloth != 255).any(axis=2), 255, 0).astype(np.uint8)
        out[fm.HD_CLOTH_MASK_DIR] = _jpeg(Image.fromarray(mask, "L"))
        for folder, data in out.items():
            atomic_write_bytes(root / files[folder], data)
        atomic_write_text(root / files[fm.HD_POSE_DIR], text)

    def present(self, root: Path, ids: dict[str, list[str]]) -> dict[str, list[str]]:
        """Person ids per split whose image exists (defects move files)."""
        return {split: sorted(p.name.split("_")[0] for p in (root / split / fm.HD_IMAGE_DIR).glob("*_00.jpg"))
                for split in ids}


VITON_HD_SYNTH = VitonHdSynth()

"""VITON-HD's two clothing-agnostic inputs, made from a CIHP parse and BODY_25 keypoints (x, y in the parse's pixels):
``image-parse-agnostic-v3.2`` (HR-VITON ``get_parse_agnostic.py``, the same procedure as VITON-HD's ``datasets.py``)
and ``agnostic-v3.2`` (HR-VITON ``cp_dataset.py`` ``get_agnostic``). The generator writes them so the synthetic tree
holds what the release holds; drawing goes through PIL's ``ImageDraw`` with the arguments those scripts pass, so the
rasterisation is theirs.

A joint is missing when x and y are both exactly 0 (OpenPose writes ``0,0,0``), the test the scripts make.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

UPPER_LABELS = (5, 6, 7)  # upper clothes, dress, coat: removed from the parse
NECK_LABEL = 10  # CIHP torso skin
LEFT_ARM, RIGHT_ARM = 14, 15  # the person's left arm goes with BODY_25 joints 5, 6, 7
KEEP_LABELS = (4, 13, 9, 12, 16, 17, 18, 19)  # sunglasses, face, pants, skirt, legs, shoes: pasted back
GRAY = (128, 128, 128)  # PIL's colour name 'gray'
PARSE_R = 10  # get_parse_agnostic's fixed radius unit


Box = tuple[float, float, float, float]


def _missing(point: np.ndarray) -> bool:
    return bool(point[0] == 0.0 and point[1] == 0.0)


def _box(point: np.ndarray, rx: float, ry: float) -> Box:
    x, y = float(point[0]), float(point[1])
    return x - rx, y - ry, x + rx, y + ry


def _segment(pose: np.ndarray, a: int, b: int) -> list[tuple[float, float]]:
    return [(float(pose[a][0]), float(pose[a][1])), (float(pose[b][0]), float(pose[b][1]))]


def parse_agnostic(parse: Image.Image, pose: np.ndarray) -> Image.Image:
    """The parse without the upper clothes, the neck and the arm pixels near the arm's skeleton (a P image with the
    parse's palette). For each arm (label, chain): white strokes of width 10r along the chain and discs (radius 15r,
    4r at the hand) on a black canvas, skipping a link with a missing end (the link's start then stays put); the arm's
    pixels under the white become background."""
    labels = np.asarray(parse)
    out = labels.copy()
    r = PARSE_R
    for label, chain in ((LEFT_ARM, (2, 5, 6, 7)), (RIGHT_ARM, (5, 2, 3, 4))):
        canvas = Image.new("L", parse.size, 0)
        draw = ImageDraw.Draw(canvas)
        start = chain[0]
        for joint in chain[1:]:
            if _missing(pose[start]) or _missing(pose[joint]):
                continue
            draw.line(_segment(pose, start, joint), 255, width=r * 10)
            radius = r * 4 if joint == chain[-1] else r * 15
            draw.ellipse(_box(pose[joint], radius, radius), 255, 255)
            start = joint
        out[(np.asarray(canvas) == 255) & (labels == label)] = 0
    out[np.isin(labels, (*UPPER_LABELS, NECK_LABEL))] = 0
    result = Image.fromarray(out, "P")
    result.putpalette(parse.getpalette())
    return result


def person_agnostic(image: Image.Image, parse: Image.Image, pose: np.ndarray) -> Image.Image:
    """The person image with torso, neck and arms greyed out (RGB), then head, lower body and the arm pixels far from
    the skeleton pasted back. The hips are first moved about their midpoint to the shoulder width; r = shoulder
    width / 16 + 1 (integer part). Requires joints 1, 2, 5, 9 and 12 (the hip width is a divisor)."""
    labels = np.asarray(parse)
    p = np.asarray(pose, np.float64)[:, :2].copy()
    shoulders = float(np.linalg.norm(p[5] - p[2]))
    hips = float(np.linalg.norm(p[12] - p[9]))
    middle = (p[9] + p[12]) / 2
    p[9] = middle + (p[9] - middle) / hips * shoulders
    p[12] = middle + (p[12] - middle) / hips * shoulders
    r = int(shoulders / 16) + 1

    out = image.copy()
    draw = ImageDraw.Draw(out)
    for hip in (9, 12):  # torso
        draw.ellipse(_box(p[hip], r * 3, r * 6), GRAY, GRAY)
    draw.line(_segment(p, 2, 9), GRAY, width=r * 6)
    draw.line(_segment(p, 5, 12), GRAY, width=r * 6)
    draw.line(_segment(p, 9, 12), GRAY, width=r * 12)
    draw.polygon([(float(p[j][0]), float(p[j][1])) for j in (2, 5, 12, 9)], GRAY, GRAY)
    x, y = float(p[1][0]), float(p[1][1])  # neck
    draw.rectangle((x - r * 5, y - r * 9, x + r * 5, y), GRAY, GRAY)
    draw.line(_segment(p, 2, 5), GRAY, width=r * 12)  # arms
    for shoulder in (2, 5):
        draw.ellipse(_box(p[shoulder], r * 5, r * 6), GRAY, GRAY)
    for joint in (3, 4, 6, 7):
        if _missing(p[joint - 1]) or _missing(p[joint]):
            continue
        draw.line(_segment(p, joint - 1, joint), GRAY, width=r * 10)
        draw.ellipse(_box(p[joint], r * 5, r * 5), GRAY, GRAY)

    original, result = np.asarray(image), np.array(out)
    for label, chain in ((LEFT_ARM, (5, 6, 7)), (RIGHT_ARM, (2, 3, 4))):
        keep = _arm_far_from_skeleton(image.size, p, chain, r)
        restore = keep & (labels == label)
        result[restore] = original[restore]
    restore = np.isin(labels, KEEP_LABELS)
    result[restore] = original[restore]
    return Image.fromarray(result, "RGB")


def _arm_far_from_skeleton(size: tuple[int, int], p: np.ndarray, chain: tuple[int, int, int], r: int) -> np.ndarray:
    """True where an arm pixel lies outside the strokes around its skeleton: a black ellipse at the shoulder, black
    strokes of width 10r and discs of radius 5r at the inner joints, and a disc of radius 4r at the last joint drawn
    (the shoulder when every link is skipped)."""
    canvas = Image.new("L", size, 255)
    draw = ImageDraw.Draw(canvas)
    last = p[chain[0]]
    draw.ellipse(_box(last, r * 5, r * 6), 0, 0)
    for joint in chain[1:]:
        if _missing(p[joint - 1]) or _missing(p[joint]):
            continue
        draw.line(_segment(p, joint - 1, joint), 0, width=r * 10)
        last = p[joint]
        if joint != chain[-1]:
            draw.ellipse(_box(last, r * 5, r * 5), 0, 0)
    draw.ellipse(_box(last, r * 4, r * 4), 0, 0)
    return np.asarray(canvas) == 255

"""COCO-17 person keypoints (openpifpaf's output) to CP-VTON's OpenPose-18 keypoints. Pure numpy, no model here.

CP-VTON reads ``people[0]['pose_keypoints']`` as 18 x (x, y, confidence) in pixels of the 192x256 image, in the order
of ``formats.OPENPOSE18``; a missing joint is exactly ``0, 0, 0``. COCO has no neck, so the neck is the midpoint of
the two shoulders when both are found (its confidence the smaller of theirs, as it is only as sure as its weaker
shoulder). The pose JSON itself is written by ``vton.pipelines.keypoints.schema.pose_json``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from vton.core.formats import FINE_HEIGHT, FINE_WIDTH, NUM_JOINTS, OPENPOSE18

COCO17: Final = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)
NECK: Final = OPENPOSE18.index("neck")
# For each OpenPose-18 joint, the COCO-17 index it comes from (-1 for the neck, which COCO lacks).
OPENPOSE_FROM_COCO: Final = tuple(COCO17.index(name) if name in COCO17 else -1 for name in OPENPOSE18)
DEFAULT_THRESHOLD: Final = 0.15  # openpifpaf's own keypoint threshold: its decoder already zeroes weaker joints


def confident(keypoints: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of the joints that were found: confidence above zero and at least ``threshold``."""
    c = np.asarray(keypoints, dtype=np.float64)[:, 2]
    return (c > 0) & (c >= threshold)


def main_person(people: Sequence[np.ndarray], scores: Sequence[float], threshold: float) -> int | None:
    """Index of the person the image is about, or None when no one has a confident joint.

    The main person is the one whose confident joints span the largest bounding box (the model in a try-on photo is
    the biggest figure); ties go to the higher detection score, then to the earlier detection.
    """
    best: tuple[float, float, int] | None = None
    for i, (kps, score) in enumerate(zip(people, scores, strict=True)):
        xy = np.asarray(kps, dtype=np.float64)[confident(kps, threshold), :2]
        if len(xy) == 0:
            continue
        w, h = xy.max(axis=0) - xy.min(axis=0)
        key = (float(w * h), float(score), -i)
        if best is None or key > best:
            best = key
    return None if best is None else -best[2]


def coco_to_openpose(keypoints: np.ndarray, image_size: tuple[int, int], threshold: float) -> np.ndarray:
    """One person's COCO-17 (x, y, c) in the pixels of an image of ``image_size`` = (width, height) to OpenPose-18
    (x, y, c) in 192x256 pixels, the unconfident and missing joints set to exactly 0, 0, 0."""
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.shape != (len(COCO17), 3):
        raise ValueError(f"expected COCO-17 keypoints of shape (17, 3), got {kps.shape}")
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    found = confident(kps, threshold)
    scaled = kps * np.array([FINE_WIDTH / width, FINE_HEIGHT / height, 1.0])
    out = np.zeros((NUM_JOINTS, 3))
    for j, c in enumerate(OPENPOSE_FROM_COCO):
        if c >= 0 and found[c]:
            out[j] = scaled[c]
    left, right = COCO17.index("left_shoulder"), COCO17.index("right_shoulder")
    if found[left] and found[right]:
        out[NECK, :2] = (scaled[left, :2] + scaled[right, :2]) / 2
        out[NECK, 2] = min(scaled[left, 2], scaled[right, 2])
    return out


def main_pose(people: Sequence[np.ndarray], scores: Sequence[float], image_size: tuple[int, int],
              threshold: float = DEFAULT_THRESHOLD) -> np.ndarray | None:
    """OpenPose-18 keypoints (192x256 pixels) of the main person among all detected people (COCO-17 each, in pixels of
    an image of ``image_size``), or None when nobody has a confident joint."""
    i = main_person(people, scores, threshold)
    return None if i is None else coco_to_openpose(people[i], image_size, threshold)


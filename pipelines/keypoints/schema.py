"""Keypoints: the CP-VTON pose JSON (read, validate, write) and the raw VITON pose .mat conversion.

`prepare` gets a person's keypoints through ONE function chosen by name from `KEYPOINT_LOADERS`, so another source
(e.g. an OpenPifPaf estimator run on the image) can be added by registering a loader with the same signature.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vton.core.formats import NUM_JOINTS, OPENPOSE18

if TYPE_CHECKING:
    from PIL import Image


class KeypointError(ValueError):
    """The keypoints of a person are missing or malformed."""


@dataclass(frozen=True)
class KeypointSchema:
    """A dataset's joint order mapped to OpenPose-18 (`formats.OPENPOSE18`), the order CP-VTON's pose maps use.

    ``openpose18[j]`` is the index of OpenPose-18 joint j in this schema, -1 where the schema lacks it (then the joint
    is missing: 0, 0, 0). Another schema (OpenPose BODY_25 of VITON-HD, say) is one more instance, data only.
    """
    name: str
    joints: tuple[str, ...]
    openpose18: tuple[int, ...]

    def to_openpose18(self, keypoints: np.ndarray) -> np.ndarray:
        """(len(joints), 3) keypoints in this schema -> (18, 3) in OpenPose-18 order."""
        keypoints = np.asarray(keypoints, np.float64)
        if keypoints.shape != (len(self.joints), 3):
            raise KeypointError(f"{self.name} keypoints have shape {keypoints.shape}, expected ({len(self.joints)}, 3)")
        index = np.asarray(self.openpose18)
        return np.where((index >= 0)[:, None], keypoints[np.maximum(index, 0)], 0.0)


OPENPOSE_18 = KeypointSchema("OpenPose-18", OPENPOSE18, tuple(range(NUM_JOINTS)))
# OpenPose BODY_25 (CMU openpose doc/02_output.md), VITON-HD's openpose_json: MidHip (8) and the feet (19-24) have no
# OpenPose-18 joint; the hips, knees and ankles shift by one.
BODY_25_JOINTS = ("nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "mid_hip",
                  "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
                  "l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")
BODY_25 = KeypointSchema("BODY_25", BODY_25_JOINTS, (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18))
# The joints VITON-HD's agnostics cannot do without (neck, shoulders, hips): HR-VITON's get_agnostic divides by the hip
# width and draws the torso between them (sangyun884/HR-VITON cp_dataset.py).
BODY_25_AGNOSTIC_JOINTS = (1, 2, 5, 9, 12)


def _pose_values(data: bytes, key: str, joints: int) -> np.ndarray:
    """``people[0][key]`` of an OpenPose-style JSON file as a (joints, 3) float64 array of (x, y, confidence): exactly
    ``3 * joints`` finite numbers, else a `KeypointError` saying what is wrong."""
    try:
        people = json.loads(data)["people"]
        empty = people == []  # OpenPose found nobody
        values = None if empty else people[0][key]
    except RecursionError:  # e.g. 200,000 nested brackets: a small file that Python's parser cannot descend
        raise KeypointError("pose JSON nests too deeply to parse") from None
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise KeypointError(f"no people[0].{key} ({type(exc).__name__})") from None
    if empty:
        raise KeypointError("the pose JSON lists no people")
    if not isinstance(values, list) or len(values) != 3 * joints:
        n = len(values) if isinstance(values, list) else type(values).__name__
        raise KeypointError(f"{key} holds {n} values, expected {3 * joints}")
    if not all(type(v) in (int, float) for v in values):  # type(), not isinstance: true and false are no numbers
        raise KeypointError(f"{key} holds a non-numeric value")
    try:
        keypoints = np.asarray(values, np.float64)
        finite = bool(np.isfinite(keypoints).all())
    except OverflowError:  # an integer beyond float64
        finite = False
    if not finite:
        raise KeypointError(f"{key} holds a non-finite value")
    return keypoints.reshape(joints, 3)


def parse_pose_json(data: bytes) -> np.ndarray:
    """``people[0].pose_keypoints`` of a CP-VTON pose file as an (18, 3) float64 array of (x, y, confidence)."""
    return _pose_values(data, "pose_keypoints", NUM_JOINTS)


def parse_body25_json(data: bytes) -> np.ndarray:
    """``people[0].pose_keypoints_2d`` of an OpenPose BODY_25 file (VITON-HD's ``openpose_json``) as a (25, 3) float64
    array, in the file's pixels (768x1024 for VITON-HD); checked as `parse_pose_json` checks, and an empty ``people``
    list (OpenPose found nobody) is an error, as it breaks HR-VITON's ``get_parse_agnostic``."""
    return _pose_values(data, "pose_keypoints_2d", len(BODY_25_JOINTS))


# DressCode's keypoints/{id}_2.json: {"keypoints": [[x, y, score, candidate id] x 18]} in OpenPose-18 order, so the
# schema maps identity; a missing joint is [-1, -1, 0, -1] (aimagelab/dress-code data/dataset.py reads it this way).
DRESSCODE = KeypointSchema("DressCode", OPENPOSE18, tuple(range(NUM_JOINTS)))


def parse_dresscode_json(data: bytes) -> np.ndarray:
    """The (18, 3) x, y, score of a DressCode keypoints file, in its own 384x512 frame: 18 entries of 4 finite numbers
    each (the 4th, a candidate id, dropped); a missing joint (x and y both -1) becomes 0, 0, 0, CP-VTON's missing joint
    (never drawn: its squares need x > 1 and y > 1, as dress-code's own x > 1, y > 1 test never draws -1)."""
    try:
        entries = json.loads(data)["keypoints"]
    except RecursionError:
        raise KeypointError("keypoints JSON nests too deeply to parse") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise KeypointError(f"no keypoints list ({type(exc).__name__})") from None
    if not isinstance(entries, list) or len(entries) != NUM_JOINTS:
        n = len(entries) if isinstance(entries, list) else type(entries).__name__
        raise KeypointError(f"keypoints holds {n} entries, expected {NUM_JOINTS}")
    if not all(isinstance(e, list) and len(e) == 4 and all(type(v) in (int, float) for v in e) for e in entries):
        raise KeypointError("a keypoints entry is not 4 numbers [x, y, score, id]")
    try:
        values = np.asarray(entries, np.float64)[:, :3]
        finite = bool(np.isfinite(values).all())
    except OverflowError:
        finite = False
    if not finite:
        raise KeypointError("keypoints holds a non-finite value")
    values[(values[:, 0] == -1) & (values[:, 1] == -1)] = 0.0
    return DRESSCODE.to_openpose18(values)


def pose_json(keypoints: np.ndarray) -> bytes:
    """The OpenPose-1.0-style file convert_data.m writes (same keys; numbers with 15 significant digits)."""
    numbers = ", ".join(format(float(v), ".15g") for v in np.asarray(keypoints, np.float64).reshape(-1))
    return ('{"version": 1.0, "people": [{"face_keypoints": [], "pose_keypoints": [' + numbers
            + '], "hand_right_keypoints": [], "hand_left_keypoints": []}]}\n').encode()


def keypoints_from_mat(subset: np.ndarray, candidate: np.ndarray, raw_width: int, raw_height: int,
                       width: int, height: int) -> np.ndarray:
    """convert_data.m: joint j takes ``candidate[subset[j]]`` (x, y, score) unless subset[j] is -1, then x and y are
    scaled from the raw image size to (width, height)."""
    subset = np.asarray(subset, np.float64).reshape(-1)
    candidate = np.atleast_2d(np.asarray(candidate, np.float64))
    if subset.size < NUM_JOINTS:
        raise KeypointError(f"pose subset holds {subset.size} joints, expected {NUM_JOINTS}")
    if not np.isfinite(subset[:NUM_JOINTS]).all():
        raise KeypointError("pose subset holds a non-finite joint index")
    if candidate.ndim != 2:
        raise KeypointError(f"pose candidate has {candidate.ndim} dimensions, expected 2")
    keypoints = np.zeros((NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        index = int(np.floor(subset[j] + 0.5))  # MATLAB int32() rounds half away from zero (-1 stays -1)
        if index >= 0:
            if index >= len(candidate) or candidate.shape[1] < 3:
                raise KeypointError(f"joint {j} points at candidate {index} of {len(candidate)}")
            keypoints[j] = candidate[index, :3]
    keypoints[:, 0] *= width / raw_width
    keypoints[:, 1] *= height / raw_height
    if not np.isfinite(keypoints).all():
        raise KeypointError("pose .mat holds a non-finite keypoint")
    return keypoints


# A loader gets the person's pose file bytes as the dataset holds them (JSON, already converted for raw VITON)
# and the decoded person image (PIL RGB, 192 x 256), and returns (18, 3) keypoints at 192 x 256. A loader whose
# attribute ``needs_pose_file`` is False (e.g. `vton.pipelines.keypoints.pifpaf.PifpafKeypoints`) is also called for a
# CP-VTON-layout person whose pose file is missing, with None instead of the bytes; one whose ``needs_image`` is False
# gets the image only checked to decode (reduced, see `cleaning.decode_image`).
KeypointLoader = Callable[[bytes | None, "Image.Image"], np.ndarray]


def dataset_keypoints(pose_file: bytes, image: Image.Image) -> np.ndarray:
    """Use the keypoints the dataset ships with."""
    return parse_pose_json(pose_file)


dataset_keypoints.needs_image = False  # type: ignore[attr-defined]  # prepare then only checks the image decodes

KEYPOINT_LOADERS: Mapping[str, KeypointLoader] = {"dataset": dataset_keypoints}


def keypoint_loader(name: str | KeypointLoader) -> KeypointLoader:
    """The loader registered under ``name``, or ``name`` itself when it is a loader (one that carries options)."""
    if callable(name):
        return name
    try:
        return KEYPOINT_LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown keypoint source {name!r}; known: {', '.join(KEYPOINT_LOADERS)}") from None

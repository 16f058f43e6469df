"""COCO-17 -> OpenPose-18 conversion and CP-VTON pose JSON, on hand-made annotations with hand-worked values."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vton.core.formats import pose_name
from vton.pipelines.keypoints.coco import coco_to_openpose, main_person, main_pose
from vton.pipelines.keypoints.schema import KeypointError, pose_json

# Written out by hand from OpenPose's COCO-18 output format (CMU-Perceptual-Computing-Lab/openpose, doc/02_output.md)
# and COCO's keypoint order: OpenPose-18 index -> COCO-17 index (None: the neck, COCO has none).
# COCO-17: 0 nose, 1 l-eye, 2 r-eye, 3 l-ear, 4 r-ear, 5 l-sho, 6 r-sho, 7 l-elb, 8 r-elb, 9 l-wri, 10 r-wri,
#          11 l-hip, 12 r-hip, 13 l-knee, 14 r-knee, 15 l-ank, 16 r-ank.
EXPECTED_SOURCE = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]


def person(xy: dict[int, tuple[float, float, float]]) -> np.ndarray:
    """A COCO-17 annotation with the given joints (index -> (x, y, c)), every other joint missing (0, 0, 0)."""
    kps = np.zeros((17, 3))
    for i, v in xy.items():
        kps[i] = v
    return kps


def full_person(offset: float = 0.0, conf: float = 0.9) -> np.ndarray:
    return person({i: (10.0 + 5 * i + offset, 20.0 + 7 * i + offset, conf) for i in range(17)})


def test_order_and_neck_at_native_size() -> None:
    coco = full_person()
    out = coco_to_openpose(coco, (192, 256), threshold=0.15)
    assert out.shape == (18, 3)
    for j, src in enumerate(EXPECTED_SOURCE):
        if src is None:
            continue
        assert out[j].tolist() == pytest.approx([10.0 + 5 * src, 20.0 + 7 * src, 0.9])
    # neck: midpoint of COCO 5 (35, 55) and 6 (40, 62) = (37.5, 58.5)
    assert out[1].tolist() == pytest.approx([37.5, 58.5, 0.9])


def test_coordinates_scale_from_the_image_size() -> None:
    # The VITON data CP-VTON distributes: joint 0 of 000001_0 is
    # (441, 131) in the raw 762x1100 image and (111.118, 30.487) in the JSON.
    coco = person({0: (441.0, 131.0, 0.8)})
    out = coco_to_openpose(coco, (762, 1100), threshold=0.15)
    assert out[0].tolist() == pytest.approx([441 * 192 / 762, 131 * 256 / 1100, 0.8])
    assert [round(v, 3) for v in out[0, :2]] == [111.118, 30.487]
    # a 2x image: everything halves, the neck too
    big = coco_to_openpose(full_person(), (384, 512), threshold=0.15)
    assert big[1].tolist() == pytest.approx([37.5 / 2, 58.5 / 2, 0.9])
    assert big[0].tolist() == pytest.approx([5.0, 10.0, 0.9])


def test_missing_and_unconfident_joints_are_zero_and_neck_needs_both_shoulders() -> None:
    coco = full_person()
    coco[0] = 0.0  # nose missing (openpifpaf reports 0, 0, 0)
    coco[10, 2] = 0.1  # right wrist below the threshold
    coco[5, 2] = 0.05  # left shoulder below the threshold: no neck
    out = coco_to_openpose(coco, (192, 256), threshold=0.15)
    assert out[0].tolist() == [0, 0, 0]
    assert out[4].tolist() == [0, 0, 0]  # R-wrist
    assert out[5].tolist() == [0, 0, 0]  # L-shoulder
    assert out[1].tolist() == [0, 0, 0]  # neck
    assert out[2].tolist() == pytest.approx([40.0, 62.0, 0.9])  # R-shoulder kept
    # the neck confidence is the smaller shoulder confidence; threshold 0 keeps every non-zero joint
    coco[6, 2] = 0.3
    out = coco_to_openpose(coco, (192, 256), threshold=0.0)
    assert out[1].tolist() == pytest.approx([37.5, 58.5, 0.05])
    assert out[0].tolist() == [0, 0, 0]  # confidence 0 is never a joint


def test_main_person_is_the_largest_confident_box_then_the_best_score() -> None:
    small = person({0: (10, 10, 0.99), 5: (20, 30, 0.99)})  # box 10 x 20 = 200
    large = person({0: (50, 50, 0.5), 5: (80, 90, 0.5)})  # box 30 x 40 = 1200
    # a huge box, but only through joints below the threshold: it counts as its one confident joint (area 0)
    ghost = person({0: (0, 0, 0.9), 16: (190, 250, 0.1)})
    assert main_person([small, large, ghost], [0.9, 0.3, 0.95], threshold=0.15) == 1
    assert main_person([small, ghost], [0.1, 0.95], threshold=0.15) == 0
    same = person({0: (60, 10, 0.6), 5: (90, 50, 0.6)})  # 30 x 40 = 1200, as `large`
    assert main_person([large, same], [0.3, 0.4], threshold=0.15) == 1  # tie on area: higher score
    assert main_person([large, same], [0.4, 0.4], threshold=0.15) == 0  # full tie: first detection
    nobody = person({3: (5, 5, 0.1)})
    assert main_person([nobody], [0.9], threshold=0.15) is None
    assert main_person([], [], threshold=0.15) is None


def test_main_pose_in_cpvton_json() -> None:
    small = person({0: (10, 10, 0.99), 5: (20, 30, 0.99)})
    large = person({5: (40, 100, 0.7), 6: (100, 104, 0.5)})  # shoulders only, at 2x size
    doc = json.loads(pose_json(main_pose([small, large], [0.9, 0.2], (384, 512), threshold=0.15)))
    assert set(doc) == {"version", "people"} and doc["version"] == 1.0
    assert len(doc["people"]) == 1
    p = doc["people"][0]
    assert set(p) == {"face_keypoints", "pose_keypoints", "hand_right_keypoints", "hand_left_keypoints"}
    assert p["face_keypoints"] == p["hand_right_keypoints"] == p["hand_left_keypoints"] == []
    assert len(p["pose_keypoints"]) == 54
    joints = np.array(p["pose_keypoints"]).reshape(18, 3)  # as CP-VTON's loader reads it
    expected = np.zeros((18, 3))
    expected[5] = [20, 50, 0.7]  # L-shoulder
    expected[2] = [50, 52, 0.5]  # R-shoulder
    expected[1] = [35, 51, 0.5]  # neck
    np.testing.assert_allclose(joints, expected)


def test_nobody_found() -> None:
    assert main_pose([], [], (192, 256)) is None
    assert main_pose([person({3: (5, 5, 0.1)})], [0.9], (192, 256), threshold=0.15) is None


def test_bad_shapes_and_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="17, 3"):
        coco_to_openpose(np.zeros((18, 3)), (192, 256), 0.15)
    with pytest.raises(ValueError, match="positive"):
        coco_to_openpose(np.zeros((17, 3)), (0, 256), 0.15)


def test_pose_name_for_any_image_suffix() -> None:
    assert pose_name("000001_0.jpg") == "000001_0_keypoints.json"
    assert pose_name("a.b_0.png") == "a.b_0_keypoints.json"


def test_body_25_maps_to_openpose_18_as_documented():
    """CMU openpose's BODY_25 order: MidHip (8) and the feet (19-24) dropped, hips, knees, ankles, eyes, ears one on."""
    from vton.pipelines.keypoints.schema import BODY_25

    body25 = np.stack([np.arange(25.0), np.arange(25.0) + 100, np.ones(25)], axis=1)
    op18 = BODY_25.to_openpose18(body25)
    assert op18[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]
    assert (op18[:, 1] == op18[:, 0] + 100).all() and BODY_25.joints[8] == "mid_hip"
    with pytest.raises(KeypointError, match="expected \\(25, 3\\)"):
        BODY_25.to_openpose18(body25[:18])

"""Pure rules of prepare: split sizes and groups, keypoint parsing, the raw VITON cloth mask and segment crop."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from vton.pipelines.cleaning import Rejection, decode_image
from vton.pipelines.keypoints.schema import KeypointError, keypoints_from_mat, parse_pose_json, pose_json
from vton.pipelines.layouts.viton_raw import cloth_mask_from_rgb
from vton.pipelines.split import groups, seeded_split, split_sizes, unpaired_cloths


def test_split_sizes() -> None:
    assert split_sizes(20_000, None, None) == (14_221, 2_032)
    assert split_sizes(16_253, None, None) == (14_221, 2_032)
    assert split_sizes(1_000, None, None) == (875, 125)  # round(1000 * 2032 / 16253) = 125
    assert split_sizes(100, None, 30) == (70, 30) and split_sizes(100, 60, 10) == (60, 10)
    with pytest.raises(ValueError):
        split_sizes(10, 8, 5)


def test_linked_ids_never_cross_and_sizes_are_exact() -> None:
    # pairs 0-1 share ID a, pairs 2-3-4 are chained by b and c; the rest are alone
    links = [("a", "a"), ("a", "x"), ("b", "c"), ("c", "c"), ("b", "d")] + [(f"s{i}", f"s{i}") for i in range(15)]
    assert groups(links)[:5] == ["a", "a", "b", "b", "b"]
    for seed in range(20):
        split = seeded_split(links, seed, 12, 6)
        assert split.count("train") == 12 and split.count("test") == 6 and split.count("") == 2
        assert len(set(split[0:2])) == 1 and len(set(split[2:5])) == 1
    assert seeded_split(links, 4, 12, 6) == seeded_split(links, 4, 12, 6)
    assert len({tuple(seeded_split(links, s, 12, 6)) for s in range(10)}) > 1
    with pytest.raises(ValueError, match="do not fill"):
        seeded_split([("a", "a"), ("a", "b"), ("a", "c")], 0, 2, 1)


def test_unpaired_cloths_is_a_seeded_permutation() -> None:
    cloths = [f"{i:06d}_1.jpg" for i in range(50)]
    perm = unpaired_cloths(cloths, 7)
    assert sorted(perm) == cloths and perm == unpaired_cloths(cloths, 7) and perm != cloths


@pytest.mark.parametrize("values, message", [
    ([1.0] * 53, "53 values"), ([1.0] * 53 + [True], "non-numeric"), ([1.0] * 53 + ["1"], "non-numeric"),
    ([1.0] * 53 + [None], "non-numeric"), ([1.0] * 53 + [float("inf")], "non-finite"),
    ([1.0] * 53 + [10**400], "non-finite"),
])
def test_pose_json_rejects_bad_keypoints(values: list, message: str) -> None:
    doc = {"people": [{"pose_keypoints": values}]}
    with pytest.raises(KeypointError, match=message):
        parse_pose_json(json.dumps(doc).encode())
    with pytest.raises(KeypointError, match="people"):
        parse_pose_json(b'{"people": []}')


def test_pose_json_round_trip_and_mat_conversion() -> None:
    kps = np.arange(54, dtype=np.float64).reshape(18, 3) / 7
    back = parse_pose_json(pose_json(kps))  # 15 significant digits, as MATLAB mat2str wrote them
    assert np.allclose(back, kps, rtol=1e-14, atol=0) and np.array_equal(parse_pose_json(pose_json(back)), back)
    subset = np.full((1, 20), -1.0)
    subset[0, 0], subset[0, 5] = 1, 0
    candidate = np.array([[381.0, 550.0, 0.9, 0], [762.0, 1100.0, 0.5, 1]])
    out = keypoints_from_mat(subset, candidate, 762, 1100, 192, 256)
    assert out[0].tolist() == [192.0, 256.0, 0.5] and out[5].tolist() == [96.0, 128.0, 0.9]
    assert not out[[1, 2, 3, 4, 6]].any()


@pytest.mark.parametrize("subset, candidate, message", [
    (np.full((1, 20), np.nan), np.zeros((2, 4)), "non-finite joint index"),
    (np.full((1, 20), np.inf), np.zeros((2, 4)), "non-finite joint index"),
    (np.zeros((1, 20)), np.zeros((2, 4, 2)), "3 dimensions"),
])
def test_pose_mat_conversion_rejects_malformed_arrays(subset: np.ndarray, candidate: np.ndarray, message: str) -> None:
    with pytest.raises(KeypointError, match=message):
        keypoints_from_mat(subset, candidate, 762, 1100, 192, 256)


def test_raw_cloth_mask_fills_holes_and_drops_specks() -> None:
    cloth = np.full((40, 30, 3), 255, np.uint8)
    cloth[5:35, 5:25] = 90  # the garment
    cloth[15:20, 10:15] = 255  # a white logo inside it: a hole, filled
    cloth[2, 2] = 0  # an isolated dark pixel: removed by the 3x3 median
    want = np.zeros((40, 30), np.uint8)
    want[5:35, 5:25] = 255
    for y, x in ((5, 5), (5, 24), (34, 5), (34, 24)):  # the median also rounds the garment's corners
        want[y, x] = 0
    assert np.array_equal(cloth_mask_from_rgb(cloth), want)


def _full_decode_fails(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_check_only_decode_rejects_exactly_what_a_full_decode_rejects(mode: str) -> None:
    """The 1/8-scale check of copied JPEGs: every truncation and a broken stream fail as a full PIL decode fails."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (256, 192, 3) if mode == "RGB" else (256, 192), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    broken = bytearray(data)
    broken[len(data) // 2: len(data) // 2 + 64] = b"\xff" * 64
    variants = [data[:cut] for cut in range(200, len(data), max(1, len(data) // 60))] + [data, bytes(broken)]
    assert any(_full_decode_fails(v) for v in variants) and not _full_decode_fails(data)
    for variant in variants:
        try:
            img = decode_image(variant, "cloth", (mode,), (192, 256), check_only=True)
        except Rejection as rej:
            assert rej.stage == "decode" and _full_decode_fails(variant)
        else:
            assert not _full_decode_fails(variant) and img.size == (24, 32)

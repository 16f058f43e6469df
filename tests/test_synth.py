"""``vton synth`` writes files that read back exactly as CP-VTON's loader and convert_data.m read the real ones."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image
from scipy import ndimage

from vton.cli import main
from vton.pipelines.synth.defects import FAULTS
from vton.pipelines.synth.generate import synthesize
from vton.pipelines.synth.near import KINDS, NEAR_DUPLICATE
from vton.pipelines.synth.viton_raw import raw_segment

VITON_SEED = 0  # the seed of conftest's synth_viton_raw
LIP = (  # the LIP colours, written out independently of formats.py
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85), (0, 119, 221),
    (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255), (51, 170, 221), (0, 255, 255),
    (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
)


def read_pairs(path: Path) -> list[tuple[str, str]]:
    text = path.read_text()
    assert text.endswith("\n") and "\r" not in text
    return [tuple(line.split(" ")) for line in text.splitlines()]  # type: ignore[misc]


def load_keypoints(path: Path) -> np.ndarray:
    doc = json.loads(path.read_text())
    return np.array(doc["people"][0]["pose_keypoints"], dtype=float).reshape(-1, 3)


def persons(root: Path) -> list[tuple[str, str]]:
    """(split, person id) for every pair of a clean dataset, as the same-cloth lists name them."""
    out = [("train", p[:6]) for p, _ in read_pairs(root / "train_pairs.txt")]
    return out + [("test", p[:6]) for p, _ in read_pairs(root / "test_pairs_same.txt")]


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- the CP-VTON layout -------------------------------------------------------------------------------------------

def test_pairs_files_and_splits(synth_cpvton: Path) -> None:
    train = read_pairs(synth_cpvton / "train_pairs.txt")
    unpaired = read_pairs(synth_cpvton / "test_pairs.txt")
    same = read_pairs(synth_cpvton / "test_pairs_same.txt")
    assert len(same) == round((len(train) + len(same)) * 2032 / 16253) == 3
    assert all(p == f"{p[:6]}_0.jpg" and c == f"{p[:6]}_1.jpg" and p[:6].isdigit() for p, c in train + same)
    assert [p for p, _ in unpaired] == [p for p, _ in same]
    assert sorted(c for _, c in unpaired) == sorted(c for _, c in same)  # each test cloth used exactly once
    train_ids, test_ids = {p[:6] for p, _ in train}, {p[:6] for p, _ in same}
    assert not train_ids & test_ids
    for split, ids in (("train", train_ids), ("test", test_ids)):
        for folder, suffix in (("image", "_0.jpg"), ("cloth", "_1.jpg"), ("cloth-mask", "_1.jpg"),
                               ("image-parse", "_0.png"), ("pose", "_0_keypoints.json")):
            assert {f.name[:6] for f in (synth_cpvton / split / folder).iterdir()} == ids
            assert all((synth_cpvton / split / folder / f"{i}{suffix}").is_file() for i in ids)


def test_images_parse_and_masks_read_like_cpvton(synth_cpvton: Path) -> None:
    for split, pid in persons(synth_cpvton):
        base = synth_cpvton / split
        image = Image.open(base / "image" / f"{pid}_0.jpg")
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (192, 256))
        parse = Image.open(base / "image-parse" / f"{pid}_0.png")
        assert (parse.format, parse.mode, parse.size) == ("PNG", "P", (192, 256))
        assert [tuple(parse.getpalette()[3 * k: 3 * k + 3]) for k in range(20)] == list(LIP)
        labels = np.array(parse)
        assert labels.dtype == np.uint8 and labels.max() <= 19
        present = set(np.unique(labels).tolist())
        assert {0, 5, 13, 14, 15} <= present and present & {1, 2} and present & {9, 12}
        cols = np.arange(192)[None, :].repeat(256, 0)
        assert cols[labels == 14].mean() > cols[labels == 15].mean()  # Left-arm is on the image's right
        cloth = Image.open(base / "cloth" / f"{pid}_1.jpg")
        assert (cloth.format, cloth.mode, cloth.size) == ("JPEG", "RGB", (192, 256))
        mask = Image.open(base / "cloth-mask" / f"{pid}_1.jpg")
        assert (mask.format, mask.mode, mask.size) == ("JPEG", "L", (192, 256))
        m = np.array(mask)
        assert ((m > 40) & (m < 215)).mean() < 0.03  # about 0/255, JPEG ringing aside
        non_white = (np.array(cloth) <= 250).all(axis=-1)
        edge = ndimage.binary_dilation(non_white, iterations=2) & ~ndimage.binary_erosion(non_white, iterations=2)
        assert not (((m >= 128) != non_white) & ~edge).any()  # they differ only at the garment's edge
        assert 0.2 < non_white.mean() < 0.9


def test_image_is_painted_from_the_parse(synth_cpvton: Path) -> None:
    misses = []
    for split, pid in persons(synth_cpvton):
        rgb = np.array(Image.open(synth_cpvton / split / "image" / f"{pid}_0.jpg")).astype(int)
        labels = np.array(Image.open(synth_cpvton / split / "image-parse" / f"{pid}_0.png"))
        background = np.median(rgb[labels == 0], axis=0)
        assert background.min() > 200  # a light background
        figure = np.abs(rgb - background).sum(axis=-1) > 60
        body = labels > 0
        edge = ndimage.binary_dilation(body, iterations=2) & ~ndimage.binary_erosion(body, iterations=2)
        misses.append(((figure != body) & ~edge).mean())  # away from edges (JPEG), figure pixels = parse > 0
        for label in (14, 15):  # bare arms are one colour away from their edges
            inner = ndimage.binary_erosion(labels == label, iterations=2)
            if inner.sum() > 30:
                assert np.percentile(rgb[inner].std(axis=0), 50) < 12
    assert max(misses) < 0.01 and np.mean(misses) < 0.002


def test_keypoints_are_cpvton_json_and_on_the_figure(synth_cpvton: Path) -> None:
    missing = 0
    for split, pid in persons(synth_cpvton):
        path = synth_cpvton / split / "pose" / f"{pid}_0_keypoints.json"
        doc = json.loads(path.read_text())
        assert list(doc) == ["version", "people"] and doc["version"] == 1.0 and len(doc["people"]) == 1
        person = doc["people"][0]
        assert list(person) == ["face_keypoints", "pose_keypoints", "hand_right_keypoints", "hand_left_keypoints"]
        assert person["face_keypoints"] == person["hand_right_keypoints"] == person["hand_left_keypoints"] == []
        assert len(person["pose_keypoints"]) == 54
        kp = load_keypoints(path)
        labels = np.array(Image.open(synth_cpvton / split / "image-parse" / f"{pid}_0.png"))
        shown = kp[:, 2] > 0
        assert np.all(kp[~shown] == 0)
        missing += int((~shown).sum())
        assert np.all(kp[shown, 2] <= 1)
        x, y = kp[shown, 0], kp[shown, 1]
        assert np.all((x > 1) & (x < 191) & (y > 1) & (y < 255))
        assert np.all(labels[y.astype(int), x.astype(int)] > 0)
        assert kp[1, 2] > 0 and kp[2, 0] < kp[5, 0]  # person's right shoulder on the image's left
        # CP-VTON's convert_data.m scaled integer raw-image positions: x*762/192 and y*1100/256 are whole numbers
        np.testing.assert_allclose(x * 762 / 192, np.round(x * 762 / 192), atol=1e-9)
        np.testing.assert_allclose(y * 1100 / 256, np.round(y * 1100 / 256), atol=1e-9)
    assert missing > 0


def test_pose_varies_between_people(synth_cpvton: Path) -> None:
    arms = [load_keypoints(synth_cpvton / s / "pose" / f"{p}_0_keypoints.json") for s, p in persons(synth_cpvton)]
    reach = [k[4, 0] - k[2, 0] for k in arms if k[4, 2] > 0 and k[2, 2] > 0]
    necks = [k[1, 0] for k in arms]
    assert np.std(reach) > 5 and np.std(necks) > 3


def test_cloth_texture_matches_the_worn_upper_clothes(synth_cpvton: Path) -> None:
    def colours(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
        return rgb[ndimage.binary_erosion(region, iterations=2)].astype(float)

    worn, flat = {}, {}
    for split, pid in persons(synth_cpvton):
        labels = np.array(Image.open(synth_cpvton / split / "image-parse" / f"{pid}_0.png"))
        worn[pid] = colours(np.array(Image.open(synth_cpvton / split / "image" / f"{pid}_0.jpg")), labels == 5)
        cloth = np.array(Image.open(synth_cpvton / split / "cloth" / f"{pid}_1.jpg"))
        flat[pid] = colours(cloth, np.array(Image.open(synth_cpvton / split / "cloth-mask" / f"{pid}_1.jpg")) >= 128)

    def nearest(a: np.ndarray, b: np.ndarray) -> float:
        """Median over colours in ``a`` of the distance to the closest colour present in ``b``."""
        palette = np.unique(np.round(b / 4) * 4, axis=0)
        sample = a[:: max(1, len(a) // 400)]
        return float(np.median(np.sqrt(((sample[:, None] - palette[None]) ** 2).sum(-1)).min(axis=1)))

    ids = sorted(worn)
    for pid in ids:
        assert nearest(worn[pid], flat[pid]) < 12
        assert np.abs(worn[pid].mean(0) - flat[pid].mean(0)).max() < 30
    far = [(a, b) for a in ids for b in ids if np.abs(flat[a].mean(0) - flat[b].mean(0)).max() > 80]
    assert far and all(nearest(worn[a], flat[b]) > 20 for a, b in far[:10])


def test_cloth_detail_differs_a_lot(synth_cpvton: Path) -> None:
    """Plain and busy garments, short and long sleeves: the TV norms used for LARGE/SMALL spread widely."""
    tv = []
    for split, pid in persons(synth_cpvton):
        c = np.array(Image.open(synth_cpvton / split / "cloth" / f"{pid}_1.jpg")).astype(float) / 255
        tv.append(np.abs(np.diff(c, axis=0)).mean() + np.abs(np.diff(c, axis=1)).mean())
    assert max(tv) / min(tv) > 3


# --- the raw VITON layout -----------------------------------------------------------------------------------------

def _matlab_round(v: float) -> int:
    return int(math.floor(v + 0.5))


def convert_segment(segment: np.ndarray, h: int, w: int) -> np.ndarray:
    """convert_data.m: transpose, keep columns 1:int32(641*w/h), nearest-resize to h x w."""
    seg = segment.T[:, : _matlab_round(641.0 * w / h)]
    return np.array(Image.fromarray(seg).resize((w, h), Image.Resampling.NEAREST))


def test_segment_recipe_recovers_a_label_map() -> None:
    rng = np.random.default_rng(3)
    blocks = rng.integers(0, 20, (11, 8), dtype=np.uint8)
    labels = np.kron(blocks, np.ones((100, 96), np.uint8))[:1100, :762]
    stored = raw_segment(labels)
    assert stored.shape == (641, 641) and stored.dtype == np.uint8
    assert not stored[444:, :].any()  # the padding, transposed: rows beyond the image width
    recovered = convert_segment(stored, 1100, 762)
    assert (recovered == labels).mean() > 0.98


def test_raw_layout_converts_to_the_cpvton_data(synth_viton_raw: Path, tmp_path: Path) -> None:
    train = read_pairs(synth_viton_raw / "viton_train_pairs.txt")
    test = read_pairs(synth_viton_raw / "viton_test_pairs.txt")
    assert all(p[:6] == c[:6] for p, c in train)
    assert sorted(c[:6] for _, c in test) == sorted(p[:6] for p, _ in test)
    cp = tmp_path / "cp"
    synthesize(cp, len(train) + len(test), VITON_SEED)  # the same people, drawn for the CP-VTON layout
    assert read_pairs(cp / "train_pairs.txt") == train and read_pairs(cp / "test_pairs.txt") == test
    for split, pairs in (("train", train), ("test", test)):
        for person, _ in pairs:
            pid = person[:6]
            raw = Image.open(synth_viton_raw / "women_top" / person)
            raw_cloth = Image.open(synth_viton_raw / "women_top" / f"{pid}_1.jpg")
            assert raw.size == raw_cloth.size == (762, 1100)
            seg_mat = scipy.io.loadmat(synth_viton_raw / "segment" / f"{pid}_0.mat")
            segment = seg_mat["segment"]
            assert segment.shape == (641, 641) and segment.dtype == np.uint8
            parse = np.array(Image.fromarray(convert_segment(segment, 1100, 762)).resize(
                (192, 256), Image.Resampling.NEAREST))
            expected = np.array(Image.open(cp / split / "image-parse" / f"{pid}_0.png"))
            assert (parse == expected).mean() > 0.97
            small = np.array(raw.resize((192, 256), Image.Resampling.BILINEAR)).astype(float)
            assert np.abs(small - np.array(Image.open(cp / split / "image" / person))).mean() < 8
            small_cloth = np.array(raw_cloth.resize((192, 256), Image.Resampling.BILINEAR)).astype(float)
            assert np.abs(small_cloth - np.array(Image.open(cp / split / "cloth" / f"{pid}_1.jpg"))).mean() < 8
            pose = scipy.io.loadmat(synth_viton_raw / "pose" / f"{pid}_0.mat")
            subset, candidate = pose["subset"], pose["candidate"]
            assert subset.shape == (1, 20) and candidate.shape[1] == 4
            np.testing.assert_array_equal(candidate[:, 3], np.arange(len(candidate)))
            kp = np.zeros((18, 3))
            for j in range(18):  # convert_data.m: index = int32(subset(j)) + 1; 0 means missing
                index = int(subset.flat[j]) + 1
                if index != 0:
                    kp[j] = candidate[index - 1, :3]
            assert subset[0, 19] == (kp[:, 2] > 0).sum()
            kp[:, 0] *= 192 / 762
            kp[:, 1] *= 256 / 1100
            np.testing.assert_allclose(kp, load_keypoints(cp / split / "pose" / f"{pid}_0_keypoints.json"),
                                       atol=1e-9)


# --- determinism, defects, CLI ------------------------------------------------------------------------------------

def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    for name, kwargs in (("cp", {"pairs": 15, "seed": 4, "defects": True}),
                         ("raw", {"pairs": 2, "seed": 4, "layout": "viton"})):
        first, second = tmp_path / f"{name}1", tmp_path / f"{name}2"
        synthesize(first, **kwargs)
        synthesize(second, **kwargs)
        assert tree_hashes(first) == tree_hashes(second) and len(tree_hashes(first)) >= 10
    other = tmp_path / "other"
    synthesize(other, pairs=15, seed=5, defects=True)
    assert tree_hashes(other) != tree_hashes(tmp_path / "cp1")


def test_every_recorded_defect_is_in_the_files(synth_defects: Path) -> None:
    records = json.loads((synth_defects / "defects.json").read_text())
    plants = [r for r in records if r["fault"] == NEAR_DUPLICATE]
    records = [r for r in records if r["fault"] != NEAR_DUPLICATE]
    assert sorted(r["fault"] for r in records) == sorted(FAULTS) and len(FAULTS) == len(set(FAULTS))
    assert [r["kind"] for r in plants] == list(KINDS)
    for r in plants:  # a copy of a test pair with one edit: same size, other bytes
        for planted, source in ((r["file"], r["source"]), (r["cloth_file"], r["source_cloth"])):
            assert source.startswith("test/") and planted.startswith("train/")
            with Image.open(synth_defects / planted) as a, Image.open(synth_defects / source) as b:
                assert a.size == b.size and a.mode == b.mode == "RGB"
            assert (synth_defects / planted).read_bytes() != (synth_defects / source).read_bytes()
    assert len({r["pair"] for r in records}) == len(records)
    train_lines = [" ".join(p) for p in read_pairs(synth_defects / "train_pairs.txt")]
    test_persons = {p for p, _ in read_pairs(synth_defects / "test_pairs_same.txt")}
    for r in records:
        assert r["pair"] in train_lines and r["split"] == "train"
        path = synth_defects / r["file"]
        fault = r["fault"]
        if fault == "truncated_jpeg":
            with pytest.raises(OSError):
                Image.open(path).load()
        elif fault == "wrong_size":
            assert Image.open(path).size != (192, 256)
        elif fault == "duplicate_image":
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            twins = [p for p in synth_defects.glob("*/image/*.jpg")
                     if p != path and hashlib.sha256(p.read_bytes()).hexdigest() == digest]
            assert twins and all(t.name != path.name for t in twins)
        elif fault in ("missing_parse", "missing_keypoints"):
            assert not path.exists()
        elif fault == "label_out_of_range":
            assert np.array(Image.open(path)).max() > 19
        elif fault == "malformed_keypoints":
            with pytest.raises(json.JSONDecodeError):
                json.loads(path.read_text())
        elif fault == "nan_keypoints":
            assert "NaN" in path.read_text() and np.isnan(load_keypoints(path)).any()
        elif fault == "empty_cloth_mask":
            assert np.array(Image.open(path)).max() < 128
        elif fault == "id_in_both_splits":
            person = r["pair"].split()[0]
            assert person in test_persons and (synth_defects / "test" / "image" / person).is_file()
            assert path.is_file() and r["file"].startswith("train/")
        elif fault == "path_outside_root":
            person = r["pair"].split()[0]
            resolved = (synth_defects / "train" / "image" / person).resolve()
            assert synth_defects.resolve() not in resolved.parents
        else:
            pytest.fail(f"unchecked fault {fault}")
    faulty = {r["pair"] for r in records}
    for line in train_lines:  # every other pair is clean
        if line in faulty:
            continue
        pid = line[:6]
        Image.open(synth_defects / "train" / "image" / f"{pid}_0.jpg").load()
        assert np.array(Image.open(synth_defects / "train" / "image-parse" / f"{pid}_0.png")).max() <= 19
        assert not np.isnan(load_keypoints(synth_defects / "train" / "pose" / f"{pid}_0_keypoints.json")).any()


def test_planting_near_duplicates_changes_no_file_synth_wrote_before(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    planted = synthesize(tmp_path / "planted", pairs=15, seed=4, defects=True)["defects"]
    monkeypatch.setattr("vton.pipelines.synth.defects.plant_near_duplicates", lambda *args: [])
    synthesize(tmp_path / "before", pairs=15, seed=4, defects=True)
    before, after = tree_hashes(tmp_path / "before"), tree_hashes(tmp_path / "planted")
    lists = {"train_pairs.txt", "defects.json"}
    assert {k: v for k, v in after.items() if k in before and k not in lists} == {
        k: v for k, v in before.items() if k not in lists}
    old = (tmp_path / "before" / "train_pairs.txt").read_text()
    lines = [r["pair"] for r in planted if r["fault"] == NEAR_DUPLICATE]
    assert (tmp_path / "planted" / "train_pairs.txt").read_text() == old + "".join(f"{line}\n" for line in lines)
    added = sorted(set(after) - set(before))
    assert added and all(k.startswith("train/") for k in added)


def test_bad_requests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        synthesize(tmp_path / "few", pairs=10, seed=0, defects=True)
    with pytest.raises(ValueError, match="applies to the cpvton, viton-hd and dresscode layouts only"):
        synthesize(tmp_path / "raw", pairs=30, seed=0, layout="viton", defects=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        synthesize(tmp_path / "full", pairs=2, seed=0)


def test_cli_writes_the_dataset(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["synth", str(tmp_path / "d"), "--pairs", "3", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "3 pairs (2 train, 1 test" in result.output
    assert len(read_pairs(tmp_path / "d" / "train_pairs.txt")) == 2
    assert len(list((tmp_path / "d" / "test" / "image").glob("*_0.jpg"))) == 1
    result = runner.invoke(main, ["synth", str(tmp_path / "d"), "--pairs", "3"])
    assert result.exit_code == 1 and "not empty" in result.output
    result = runner.invoke(main, ["synth", str(tmp_path / "e"), "--pairs", "3", "--defects"])
    assert result.exit_code == 1 and "at least" in result.output

"""VITON-HD (``zalando-hd-resized``): the synthetic tree byte by byte against the release's formats
(shadow2496/VITON-HD, sangyun884/HR-VITON, OpenPose doc/02_output.md), its agnostics against an implementation written
here from HR-VITON's procedures, detection of the release and the repository's sample tree, and `vton prepare` on it."""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw, JpegImagePlugin

from tests.file_formats import png_chunks
from vton.cli import main
from vton.core.runner import RunnerConfig
from vton.pipelines.cleaning import Rejection
from vton.pipelines.layouts import LAYOUTS, detect
from vton.pipelines.layouts.base import CLOTH, PERSON, Item
from vton.pipelines.prepare import PrepareOptions, prepare
from vton.pipelines.synth.generate import make_ids, synthesize
from vton.pipelines.synth.near import NEAR_DUPLICATE

W, H = 768, 1024
SPLITS = ("train", "test")
FOLDERS = ("image", "cloth", "cloth-mask", "image-parse-v3", "image-parse-agnostic-v3.2", "agnostic-v3.2",
           "image-densepose", "openpose_img", "openpose_json")
# CIHP palette entries 0-19 of VITON-HD's image-parse-v3 (entries 20-255 are (i, i, i))
PALETTE = ((0, 0, 0), (128, 0, 0), (254, 0, 0), (0, 85, 0), (169, 0, 51), (254, 85, 0), (0, 0, 85), (0, 119, 220),
           (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 254), (51, 169, 220),
           (0, 254, 254), (85, 254, 169), (169, 254, 85), (254, 254, 0), (254, 169, 0))
# JPEG Annex K tables (natural order) scaled as libjpeg does for quality 95: (q * 10 + 50) // 100, at least 1
LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29,
        51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121,
        120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
CHROMA = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99,
          99, 99, 99, 99, 99) + (99,) * 32
# PARULA colours of DensePose parts 1-24 as image-densepose holds them (IDM-VTON's apply_net.py)
PARULA = ((37, 60, 163), (20, 80, 194), (4, 97, 223), (8, 110, 221), (14, 122, 216), (20, 132, 212), (15, 144, 208),
          (11, 156, 203), (6, 166, 198), (22, 173, 185), (38, 179, 172), (55, 185, 159), (86, 187, 144),
          (114, 189, 130), (145, 191, 116), (170, 189, 105), (192, 188, 96), (216, 186, 86), (228, 192, 74),
          (240, 199, 60), (252, 206, 46), (251, 220, 36), (250, 235, 25), (249, 251, 14))
BODY25_TO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)  # MidHip 8 and the feet dropped
QUIET = RunnerConfig(progress=False)


def q95(table: tuple[int, ...]) -> list[int]:
    return [max(1, (q * 10 + 50) // 100) for q in table]


def persons(root: Path, split: str) -> list[str]:
    return sorted(p.name for p in (root / split / "image").iterdir())


def pose_of(root: Path, split: str, name: str) -> np.ndarray:
    doc = json.loads((root / split / "openpose_json" / name.replace(".jpg", "_keypoints.json")).read_text())
    return np.asarray(doc["people"][0]["pose_keypoints_2d"], np.float64).reshape(25, 3)


@pytest.fixture(scope="module")
def hd_defects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hd_defects") / "data"
    synthesize(root, 20, 3, layout="viton-hd", defects=True)
    return root


# --- the tree and its formats ------------------------------------------------------------------------------------

def test_tree_names_ids_and_pairs(synth_viton_hd: Path) -> None:
    root = synth_viton_hd
    assert sorted(p.name for p in root.iterdir()) == ["test", "test_pairs.txt", "train", "train_pairs.txt"]
    for split in SPLITS:
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(FOLDERS)
        names = persons(root, split)
        assert names and all(re.fullmatch(r"\d{5}_00\.jpg", n) for n in names)
        stems = [n[:-4] for n in names]
        expect = {"image": ".jpg", "cloth": ".jpg", "cloth-mask": ".jpg", "image-parse-v3": ".png",
                  "image-parse-agnostic-v3.2": ".png", "agnostic-v3.2": ".jpg", "image-densepose": ".jpg",
                  "openpose_img": "_rendered.png", "openpose_json": "_keypoints.json"}
        for folder, suffix in expect.items():
            assert sorted(p.name for p in (root / split / folder).iterdir()) == [s + suffix for s in stems], folder
    train = [line.split(" ") for line in (root / "train_pairs.txt").read_text().splitlines()]
    test = [line.split(" ") for line in (root / "test_pairs.txt").read_text().splitlines()]
    assert [p for p, _ in train] == persons(root, "train") and all(p == c for p, c in train)
    assert [p for p, _ in test] == persons(root, "test")
    assert sorted(c for _, c in test) == persons(root, "test") and all(p != c for p, c in test)  # unpaired
    ids = [int(n[:5]) for s in SPLITS for n in persons(root, s)]
    assert not set(persons(root, "train")) & set(persons(root, "test"))
    assert make_ids(np.random.default_rng(0), 400, 5)[-1] != f"{400:05d}"  # gaps, as the release's ids
    assert len(make_ids(np.random.default_rng(0), 3, 5)[0]) == 5 and len(set(ids)) == len(ids)


def test_jpegs_are_quality_95_420_jfif_like_the_release(synth_viton_hd: Path) -> None:
    for split in SPLITS:
        for folder, mode in (("image", "RGB"), ("cloth", "RGB"), ("agnostic-v3.2", "RGB"),
                             ("image-densepose", "RGB"), ("cloth-mask", "L")):
            for path in (synth_viton_hd / split / folder).iterdir():
                with Image.open(path) as im:
                    assert (im.format, im.mode, im.size) == ("JPEG", mode, (W, H)), path
                    assert im.quantization[0] == q95(LUMA)
                    if mode == "RGB":
                        assert im.quantization[1] == q95(CHROMA) and JpegImagePlugin.get_sampling(im) == 2  # 4:2:0
                        assert im.layers == 3
                    assert im.info["jfif_version"] == (1, 1) and im.info["jfif_density"] == (1, 1)
                    assert im.info["jfif_unit"] == 0 and "exif" not in im.info


def test_parses_are_palette_pngs_with_cihp_labels(synth_viton_hd: Path) -> None:
    palette = b"".join(bytes(c) for c in PALETTE) + b"".join(bytes((i, i, i)) for i in range(20, 256))
    for split in SPLITS:
        for folder in ("image-parse-v3", "image-parse-agnostic-v3.2"):
            for path in (synth_viton_hd / split / folder).iterdir():
                chunks = png_chunks(path.read_bytes())
                kinds = [k for k, _ in chunks]
                assert kinds[:2] == [b"IHDR", b"PLTE"] and kinds[-1] == b"IEND" and set(kinds[2:-1]) == {b"IDAT"}
                width, height, depth, color = struct.unpack(">IIBB", chunks[0][1][:10])
                assert (width, height, depth, color) == (W, H, 8, 3)  # 8-bit palette
                assert chunks[1][1] == palette
                labels = np.asarray(Image.open(path))
                assert labels.max() <= 19
        for name in persons(synth_viton_hd, split):
            labels = np.asarray(Image.open(synth_viton_hd / split / "image-parse-v3" / name.replace(".jpg", ".png")))
            assert {0, 2, 5, 10, 13, 14, 15} <= set(np.unique(labels).tolist())
            neck_rows = np.nonzero((labels == 10).any(axis=1))[0]
            face_rows = np.nonzero((labels == 13).any(axis=1))[0]
            assert face_rows.min() < neck_rows.min() and neck_rows.max() > face_rows.max()  # the neck under the face
            pose = pose_of(synth_viton_hd, split, name)
            for joints, own, other in (((5, 6, 7), 14, 15), ((2, 3, 4), 15, 14)):  # 14 = the person's left arm
                on = [labels[int(pose[j, 1]), int(pose[j, 0])] for j in joints if pose[j, :2].any()]
                assert other not in on and (own in on or 5 in on), (name, joints, on)
            assert np.nonzero(labels == 14)[1].mean() > np.nonzero(labels == 15)[1].mean()  # left arm on the right


def _number(token: str) -> bool:
    return token == format(float(token), ".6g")


def test_openpose_json_is_the_compact_body25_text(synth_viton_hd: Path) -> None:
    keys = ["person_id", "pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
            "hand_right_keypoints_2d", "pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d",
            "hand_right_keypoints_3d"]
    for split in SPLITS:
        for path in (synth_viton_hd / split / "openpose_json").iterdir():
            text = path.read_text()
            assert text.startswith('{"version":1.3,"people":[{"person_id":[-1],"pose_keypoints_2d":[')
            assert text.endswith('"hand_right_keypoints_3d":[]}]}') and " " not in text and "\n" not in text
            doc = json.loads(text)
            person = doc["people"][0]
            assert list(doc) == ["version", "people"] and len(doc["people"]) == 1 and list(person) == keys
            lengths = [len(person[k]) for k in keys]
            assert lengths == [1, 75, 210, 63, 63, 0, 0, 0, 0]
            for key in keys[1:5]:
                body = text.split(f'"{key}":[', 1)[1].split("]", 1)[0]
                assert all(_number(t) for t in body.split(",")), key
            body = np.asarray(person["pose_keypoints_2d"]).reshape(25, 3)
            missing = (body[:, 0] == 0) & (body[:, 1] == 0)
            assert (body[missing] == 0).all() and not missing[[1, 2, 5, 9, 12]].any()
            assert (body[~missing, 0] < W).all() and (body[~missing, 1] < H).all()
            assert (body[~missing, 2] > 0).all()


def test_rendered_pose_and_densepose(synth_viton_hd: Path) -> None:
    parula = np.asarray(PARULA, np.int32)
    for name in persons(synth_viton_hd, "test"):
        rendered = Image.open(synth_viton_hd / "test" / "openpose_img" / name.replace(".jpg", "_rendered.png"))
        assert (rendered.format, rendered.mode, rendered.size) == ("PNG", "RGB", (W, H))
        pose = pose_of(synth_viton_hd, "test", name)
        assert np.asarray(rendered)[int(pose[1, 1]), int(pose[1, 0])].any()  # something drawn at the neck
        dense = np.asarray(Image.open(synth_viton_hd / "test" / "image-densepose" / name), np.int32)
        parse = np.asarray(Image.open(synth_viton_hd / "test" / "image-parse-v3" / name.replace(".jpg", ".png")))
        inner = (parse == 5) & np.roll(parse == 5, 8, 0) & np.roll(parse == 5, -8, 0)  # away from JPEG edges
        distance = np.abs(dense[inner][:, None, :] - parula[None]).sum(axis=2)
        assert (distance.argmin(axis=1) == 1).mean() > 0.99  # torso = part 2
        assert dense[parse == 0].max(axis=1).mean() < 8  # black background


# --- the agnostics, against HR-VITON's procedures written again here ---------------------------------------------

def _ellipse(draw: ImageDraw.ImageDraw, x: float, y: float, rx: float, ry: float, fill: object) -> None:
    draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill, fill)


def oracle_parse_agnostic(parse: Image.Image, p: np.ndarray) -> np.ndarray:
    """get_parse_agnostic.py: r = 10; per arm a white canvas of strokes 100 wide and discs (150, 40 at the hand)."""
    labels = np.asarray(parse)
    out = labels.copy()
    for arm, chain in ((14, [2, 5, 6, 7]), (15, [5, 2, 3, 4])):
        canvas = Image.new("L", (W, H), "black")
        draw = ImageDraw.Draw(canvas)
        prev = chain[0]
        for j in chain[1:]:
            if (p[prev] == 0).all() or (p[j] == 0).all():
                continue
            draw.line([tuple(p[prev]), tuple(p[j])], "white", width=100)
            radius = 40 if j == chain[-1] else 150
            _ellipse(draw, p[j][0], p[j][1], radius, radius, "white")
            prev = j
        out[(np.asarray(canvas) > 0) & (labels == arm)] = 0
    for label in (5, 6, 7, 10):
        out[labels == label] = 0
    return out


def oracle_agnostic(image: Image.Image, parse: Image.Image, pose: np.ndarray) -> Image.Image:
    """HR-VITON's get_agnostic, step by step."""
    labels = np.asarray(parse)
    p = pose.copy()
    a, b = np.hypot(*(p[5] - p[2])), np.hypot(*(p[12] - p[9]))
    mid = (p[9] + p[12]) / 2
    p[9], p[12] = mid + (p[9] - mid) * a / b, mid + (p[12] - mid) * a / b
    r = int(a / 16) + 1
    grey = image.copy()
    draw = ImageDraw.Draw(grey)
    _ellipse(draw, *p[9], 3 * r, 6 * r, "gray")
    _ellipse(draw, *p[12], 3 * r, 6 * r, "gray")
    draw.line([tuple(p[2]), tuple(p[9])], "gray", width=6 * r)
    draw.line([tuple(p[5]), tuple(p[12])], "gray", width=6 * r)
    draw.line([tuple(p[9]), tuple(p[12])], "gray", width=12 * r)
    draw.polygon([tuple(p[2]), tuple(p[5]), tuple(p[12]), tuple(p[9])], "gray", "gray")
    draw.rectangle((p[1][0] - 5 * r, p[1][1] - 9 * r, p[1][0] + 5 * r, p[1][1]), "gray", "gray")
    draw.line([tuple(p[2]), tuple(p[5])], "gray", width=12 * r)
    _ellipse(draw, *p[2], 5 * r, 6 * r, "gray")
    _ellipse(draw, *p[5], 5 * r, 6 * r, "gray")
    for i in (3, 4, 6, 7):
        if not ((p[i - 1] == 0).all() or (p[i] == 0).all()):
            draw.line([tuple(p[i - 1]), tuple(p[i])], "gray", width=10 * r)
            _ellipse(draw, *p[i], 5 * r, 5 * r, "gray")
    out, original = np.array(grey), np.asarray(image)
    for arm, chain in ((14, [5, 6, 7]), (15, [2, 3, 4])):
        canvas = Image.new("L", (W, H), "white")
        cd = ImageDraw.Draw(canvas)
        x, y = p[chain[0]]
        _ellipse(cd, x, y, 5 * r, 6 * r, "black")
        for i in chain[1:]:
            if (p[i - 1] == 0).all() or (p[i] == 0).all():
                continue
            cd.line([tuple(p[i - 1]), tuple(p[i])], "black", width=10 * r)
            x, y = p[i]
            if i != chain[-1]:
                _ellipse(cd, x, y, 5 * r, 5 * r, "black")
        _ellipse(cd, x, y, 4 * r, 4 * r, "black")
        keep = (np.asarray(canvas) == 255) & (labels == arm)
        out[keep] = original[keep]
    keep = np.isin(labels, [4, 13, 9, 12, 16, 17, 18, 19])
    out[keep] = original[keep]
    return Image.fromarray(out)


def test_agnostic_folders_follow_hr_vitons_procedures(synth_viton_hd: Path) -> None:
    for split in SPLITS:
        for name in persons(synth_viton_hd, split)[:4]:
            png = name.replace(".jpg", ".png")
            parse = Image.open(synth_viton_hd / split / "image-parse-v3" / png)
            pose = pose_of(synth_viton_hd, split, name)[:, :2]
            written = Image.open(synth_viton_hd / split / "image-parse-agnostic-v3.2" / png)
            assert written.mode == "P" and written.getpalette() == parse.getpalette()
            expected = oracle_parse_agnostic(parse, pose)
            assert np.array_equal(np.asarray(written), expected), name
            assert (expected != np.asarray(parse)).any()  # the procedure removed something
            image = Image.open(synth_viton_hd / split / "image" / name).convert("RGB")
            grey = oracle_agnostic(image, parse, pose)
            buf = io.BytesIO()
            grey.save(buf, "JPEG", quality=95, subsampling=2)
            assert (synth_viton_hd / split / "agnostic-v3.2" / name).read_bytes() == buf.getvalue(), name


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    for run in ("a", "b"):
        synthesize(tmp_path / run, 3, 9, layout="viton-hd")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 2 + 3 * len(FOLDERS)
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


# --- detection and prepare --------------------------------------------------------------------------------------

def sample_tree(release: Path, root: Path) -> Path:
    """The VITON-HD repository's datasets/ folder: test/ only, hyphenated folders, image-parse without -v3."""
    root.mkdir()
    shutil.copy(release / "test_pairs.txt", root / "test_pairs.txt")
    for src, dst in (("image", "image"), ("cloth", "cloth"), ("cloth-mask", "cloth-mask"),
                     ("image-parse-v3", "image-parse"), ("openpose_img", "openpose-img"),
                     ("openpose_json", "openpose-json")):
        shutil.copytree(release / "test" / src, root / "test" / dst)
    return root


def test_detects_the_release_and_the_repository_sample_tree(synth_viton_hd: Path, tmp_path: Path) -> None:
    assert detect(synth_viton_hd) is LAYOUTS["viton-hd"]
    sample = sample_tree(synth_viton_hd, tmp_path / "datasets")
    assert detect(sample) is LAYOUTS["viton-hd"]
    summary = prepare(sample, tmp_path / "out", PrepareOptions(samples=0), QUIET)
    n = len(persons(synth_viton_hd, "test"))
    assert summary.splits == {"train": 0, "test": n} and summary.kept == n
    same = (tmp_path / "out" / "test_pairs_same.txt").read_text().splitlines()
    assert same == [f"{p} {p}" for p in persons(synth_viton_hd, "test")]
    release = prepare(synth_viton_hd, tmp_path / "out2", PrepareOptions(samples=0), QUIET)
    for name in persons(synth_viton_hd, "test"):  # the same bytes from either tree
        for folder in ("image", "image-parse", "pose", "shape"):
            stem = {"image": name, "pose": name.replace(".jpg", "_keypoints.json")}.get(folder,
                                                                                        name.replace(".jpg", ".png"))
            assert (tmp_path / "out" / "test" / folder / stem).read_bytes() == \
                (tmp_path / "out2" / "test" / folder / stem).read_bytes()
    assert release.rejected == 0


EXPECTED = {  # fault -> (stage, a piece of the reason)
    "truncated_jpeg": ("decode", "person image does not decode"),
    "wrong_size": ("decode", "person image is 384x512, expected 768x1024"),
    "label_out_of_range": ("labels", "labels outside 0..19"),
    "parse_not_palette": ("labels", "parse is not a palette (P) image"),
    "body25_wrong_length": ("keypoints", "pose_keypoints_2d holds 72 values, expected 75"),
    "empty_people": ("keypoints", "lists no people"),
    "missing_joint": ("keypoints", "missing; VITON-HD's agnostic needs joints 1, 2, 5, 9, 12"),
    "id_in_both_splits": ("leak", "ID also used in test"),
    "path_outside_root": ("path", "leaves its folder"),
}


def test_prepare_rejects_every_planted_fault_and_keeps_every_clean_pair(hd_defects: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["prepare", str(hd_defects), str(out), "--workers", "1"])
    assert result.exit_code == 3, result.output
    truth = [d for d in json.loads((hd_defects / "defects.json").read_text()) if d["fault"] != NEAR_DUPLICATE]
    assert {d["fault"] for d in truth} == set(EXPECTED)
    with open(out / "rejected.csv") as fh:
        rows = {row["pair"]: row for row in csv.DictReader(fh)}
    assert set(rows) == {d["pair"] for d in truth}
    for d in truth:
        stage, reason = EXPECTED[d["fault"]]
        row = rows[d["pair"]]
        assert (row["split"], row["stage"]) == ("train", stage) and reason in row["reason"], (d, row)
        if d["fault"] == "missing_joint":
            assert f"joint {d['detail'].split()[2]} (" in row["reason"]
    lines = {s: (hd_defects / f"{s}_pairs.txt").read_text().splitlines() for s in SPLITS}
    kept = {s: (out / f"{s}_pairs.txt").read_text().splitlines() for s in SPLITS}
    assert kept == {s: [line for line in lines[s] if line not in rows] for s in SPLITS}
    assert (out / "test_pairs_same.txt").read_text().splitlines() == [f"{p} {p}" for p in persons(hd_defects, "test")]
    assert json.loads((out / "prepare.json").read_text())["layout"] == "viton-hd"


def test_prepared_person_is_the_source_resized_as_hr_vitons_loader(synth_viton_hd: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare(synth_viton_hd, out, PrepareOptions(samples=0), QUIET)
    for split in SPLITS:
        for name in persons(synth_viton_hd, split)[:3]:
            body = pose_of(synth_viton_hd, split, name)
            expected = body[list(BODY25_TO_18)] * np.array([192 / 768, 256 / 1024, 1.0])
            doc = json.loads((out / split / "pose" / name.replace(".jpg", "_keypoints.json")).read_text())
            got = np.asarray(doc["people"][0]["pose_keypoints"]).reshape(18, 3)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
            png = name.replace(".jpg", ".png")
            parse = Image.open(synth_viton_hd / split / "image-parse-v3" / png)
            prepared = Image.open(out / split / "image-parse" / png)
            assert prepared.mode == "P" and prepared.size == (192, 256)
            assert np.array_equal(np.asarray(prepared), np.asarray(parse.resize((192, 256), Image.NEAREST)))
            for folder in ("image", "cloth"):  # torchvision Resize(192) on a PIL image = PIL BILINEAR (antialiased)
                small = Image.open(synth_viton_hd / split / folder / name).convert("RGB").resize((192, 256),
                                                                                                  Image.BILINEAR)
                buf = io.BytesIO()
                small.save(buf, "JPEG")  # the prepared dataset's JPEGs: PIL's defaults
                assert (out / split / folder / name).read_bytes() == buf.getvalue(), (folder, name)
            mask = np.asarray(Image.open(synth_viton_hd / split / "cloth-mask" / name).resize((192, 256),
                                                                                                Image.NEAREST))
            prepared_mask = np.asarray(Image.open(out / split / "cloth-mask" / name)) >= 128
            assert (prepared_mask == (mask >= 128)).mean() > 0.995


def test_hand_made_faults_name_their_reason(synth_viton_hd: Path, tmp_path: Path) -> None:
    root = tmp_path / "hd"
    shutil.copytree(synth_viton_hd, root)
    adapter = LAYOUTS["viton-hd"]
    name = persons(root, "train")[0]
    person, cloth = Item(PERSON, name, "train"), Item(CLOTH, name, "train")
    parse_path = root / "train" / "image-parse-v3" / name.replace(".jpg", ".png")
    Image.open(parse_path).convert("L").save(parse_path)
    with pytest.raises(Rejection, match=r"parse is not a palette \(P\) image") as info:
        adapter.ingest_person(root, person)
    assert info.value.stage == "labels"
    shutil.copy(synth_viton_hd / "train" / "image-parse-v3" / parse_path.name, parse_path)
    pose_path = root / "train" / "openpose_json" / name.replace(".jpg", "_keypoints.json")
    doc = json.loads(pose_path.read_text())
    values = doc["people"][0]["pose_keypoints_2d"]
    for bad, message in ((values + [1.0], "76 values, expected 75"), ([float("nan")] + values[1:], "non-finite")):
        doc["people"][0]["pose_keypoints_2d"] = bad
        pose_path.write_text(json.dumps(doc))  # NaN written as the token NaN
        with pytest.raises(Rejection, match=message) as info:
            adapter.ingest_person(root, person)
        assert info.value.stage == "keypoints"
    mask_path = root / "train" / "cloth-mask" / name
    Image.new("L", (W, H), 100).save(mask_path)  # grey below the 128 threshold everywhere
    with pytest.raises(Rejection, match="cloth mask is empty"):
        adapter.ingest_cloth(root, cloth)


def test_person_parse_reads_either_tree_as_ingest_checks_it(synth_viton_hd: Path, tmp_path: Path) -> None:
    """Evaluation reads a person's CIHP labels at 1024x768 from the release or the repository's sample tree."""
    from vton.pipelines.cleaning import Rejection

    sample = sample_tree(synth_viton_hd, tmp_path / "datasets")
    adapter = LAYOUTS["viton-hd"]
    name = persons(synth_viton_hd, "test")[0]
    labels = np.asarray(Image.open(synth_viton_hd / "test" / "image-parse-v3" / name.replace(".jpg", ".png")))
    for root in (synth_viton_hd, sample):
        assert np.array_equal(adapter.person_parse(root, "test", name), labels)
    Image.open(sample / "test" / "image-parse" / name.replace(".jpg", ".png")).convert("RGB").save(
        sample / "test" / "image-parse" / name.replace(".jpg", ".png"))
    with pytest.raises(Rejection, match="not a palette"):
        adapter.person_parse(sample, "test", name)

"""DressCode: the synthetic tree byte by byte against the release's formats (aimagelab/dress-code data/dataset.py and
readme.txt, real files of aimagelab/multimodal-garment-designer assets/data), detection, the TAB pairs files, and
`vton prepare` on it: keypoints, label maps and the per-category cloth region checked against computations here."""
from __future__ import annotations

import csv
import json
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image, JpegImagePlugin

from tests.file_formats import png_chunks
from vton.cli import main
from vton.core import formats as fm
from vton.core.runner import RunnerConfig
from vton.pipelines import representation as rep
from vton.pipelines.keypoints.schema import KeypointError, parse_dresscode_json
from vton.pipelines.layouts import LAYOUTS, detect
from vton.pipelines.prepare import PrepareOptions, prepare
from vton.pipelines.synth.generate import synthesize
from vton.pipelines.synth.near import NEAR_DUPLICATE

W, H = 768, 1024
CATEGORIES = ("upper_body", "lower_body", "dresses")
# label_maps palette 0-17 (SCHP get_palette(18)); 18-255 are (i, i, i)
PALETTE = ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
           (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128), (192, 0, 128),
           (64, 128, 128), (192, 128, 128), (0, 64, 0), (128, 64, 0))
# the garment labels of each category (ATR: 4 upper clothes, 5 skirt, 6 pants, 7 dress); head = hat, hair, sunglasses,
# head
CLOTH = {"upper_body": {4}, "lower_body": {5, 6}, "dresses": {7}}
HEAD = {1, 2, 3, 11}
LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29,
        51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121,
        120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
CHROMA = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99,
          99, 99, 99, 99, 99) + (99,) * 32
QUIET = RunnerConfig(progress=False)


def q95(table: tuple[int, ...]) -> list[int]:
    return [max(1, (q * 10 + 50) // 100) for q in table]


@pytest.fixture(scope="module")
def dc(synth_dresscode: Path) -> Path:
    """12 pairs, 4 per category (3 train, 1 test each), seed 0."""
    return synth_dresscode


@pytest.fixture(scope="module")
def prepared(dc: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dc_prep") / "out"
    prepare(dc, out, PrepareOptions(), QUIET)
    return out


def _root_lines(root: Path, name: str) -> list[list[str]]:
    return [line.split("\t") for line in (root / name).read_text().splitlines()]


# --- the tree and its formats ------------------------------------------------------------------------------------

def test_tree_pairs_files_are_tab_separated(dc: Path) -> None:
    assert sorted(p.name for p in dc.iterdir()) == sorted(
        [*CATEGORIES, "train_pairs.txt", "test_pairs_paired.txt", "test_pairs_unpaired.txt"])
    for name in ("train_pairs.txt", "test_pairs_paired.txt", "test_pairs_unpaired.txt"):
        text = (dc / name).read_text()
        assert re.fullmatch(r"(\d{6}_0\.jpg\t\d{6}_1\.jpg\t[012]\n)+", text)
        per_category = "".join((dc / c / name).read_text() for c in CATEGORIES)
        assert re.fullmatch(r"(\d{6}_0\.jpg\t\d{6}_1\.jpg\n)+", per_category)
        assert per_category == re.sub(r"\t[012]\n", "\n", text)  # the root file = the categories' with their codes
        for person, cloth, code in _root_lines(dc, name):
            category = CATEGORIES[int(code)]
            assert (dc / category / "images" / person).is_file() and (dc / category / "images" / cloth).is_file()
    train = {p[:6] for p, _, _ in _root_lines(dc, "train_pairs.txt")}
    test = {p[:6] for p, _, _ in _root_lines(dc, "test_pairs_unpaired.txt")}
    assert train and test and not train & test
    assert all(p[:6] == c[:6] for p, c, _ in _root_lines(dc, "test_pairs_paired.txt"))
    for category in CATEGORIES:
        assert sorted(p.name for p in (dc / category).iterdir()) == sorted(
            ["images", "keypoints", "label_maps", "skeletons", "dense", "train_pairs.txt", "test_pairs_paired.txt",
             "test_pairs_unpaired.txt"])


def test_images_and_skeletons_are_q95_420_jpegs(dc: Path) -> None:
    paths = [p for c in CATEGORIES for folder in ("images", "skeletons") for p in (dc / c / folder).iterdir()]
    assert {p.name[-6:] for p in paths} == {"_0.jpg", "_1.jpg", "_5.jpg"}
    for path in paths:
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (W, H)), path
            assert im.quantization[0] == q95(LUMA) and im.quantization[1] == q95(CHROMA)
            assert JpegImagePlugin.get_sampling(im) == 2 and im.layers == 3  # 4:2:0


def test_label_maps_are_atr_palette_pngs_with_the_category_garment(dc: Path) -> None:
    palette = b"".join(bytes(c) for c in PALETTE) + b"".join(bytes((i, i, i)) for i in range(18, 256))
    for category in CATEGORIES:
        for path in (dc / category / "label_maps").iterdir():
            assert re.fullmatch(r"\d{6}_4\.png", path.name)
            chunks = png_chunks(path.read_bytes())
            assert [k for k, _ in chunks][:2] == [b"IHDR", b"PLTE"] and b"tRNS" not in [k for k, _ in chunks]
            assert struct.unpack(">IIBB", chunks[0][1][:10]) == (W, H, 8, 3)
            assert chunks[1][1] == palette
            labels = set(np.unique(np.asarray(Image.open(path))).tolist())
            assert labels <= set(range(18)) and HEAD & labels
            garments = labels & {4, 5, 6, 7}
            if category == "dresses":
                assert garments == {7}
            elif category == "upper_body":
                assert 4 in garments and 7 not in garments
            else:
                assert garments & {5, 6} and 7 not in garments


def test_keypoints_json_text(dc: Path) -> None:
    for category in CATEGORIES:
        for path in (dc / category / "keypoints").iterdir():
            text = path.read_text()
            doc = json.loads(text)
            assert json.dumps(doc) == text and list(doc) == ["keypoints"]  # default formatting, no newline
            entries = doc["keypoints"]
            assert len(entries) == 18 and all(len(e) == 4 and all(type(v) is float for v in e) for e in entries)
            found = 0
            for x, y, score, n in entries:
                if [x, y, score, n] == [-1.0, -1.0, 0.0, -1.0]:
                    continue
                assert x == int(x) and y == int(y) and 0 <= x < 384 and 0 <= y < 512
                assert score == float(np.float32(score)) and n == found  # float32-derived; running id
                found += 1
            assert found >= 14


def test_dense_png_and_uv_npz(dc: Path) -> None:
    for category in CATEGORIES:
        for path in (dc / category / "dense").glob("*_5.png"):
            with Image.open(path) as im:
                assert (im.format, im.mode, im.size) == ("PNG", "L", (W, H))
                parts = np.asarray(im)
            assert parts.max() <= 24 and parts.max() > 0
            npz = path.with_name(path.name.replace(".png", "_uv.npz"))
            with zipfile.ZipFile(npz) as archive:
                assert archive.namelist() == ["uv.npy"]
                assert archive.getinfo("uv.npy").compress_type == zipfile.ZIP_DEFLATED
            with np.load(npz) as data:
                assert list(data.keys()) == ["uv"]
                uv = data["uv"]
            assert uv.shape == (2, H, W) and uv.dtype == np.float32
            assert not uv[:, parts == 0].any() and uv[:, parts > 0].any()


def test_reruns_are_byte_identical(tmp_path: Path) -> None:
    for name in ("a", "b"):
        synthesize(tmp_path / name, 4, 7, layout="dresscode")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


# --- reading ----------------------------------------------------------------------------------------------------

def test_detected_and_pairs_read_with_tabs_and_codes(dc: Path, tmp_path: Path) -> None:
    adapter = detect(dc)
    assert adapter is LAYOUTS["dresscode"] and adapter.native_size_hw == (H, W)
    assert adapter.read_pairs(dc, "train") == [(p, c) for p, c, _ in _root_lines(dc, "train_pairs.txt")]
    assert adapter.read_test_pairs(dc, "paired") == [(p, c) for p, c, _ in _root_lines(dc, "test_pairs_paired.txt")]
    bad = tmp_path / "pairs.txt"
    bad.write_text("000000_0.jpg\t000000_1.jpg\t3\n")  # no such category code
    with pytest.raises(ValueError, match="expected"):
        fm.read_pairs(bad)
    assert not LAYOUTS["viton-hd"].detect(dc) and not LAYOUTS["viton"].detect(dc)


def test_keypoint_reader() -> None:
    entries = [[float(2 * j), float(3 * j), 0.5, float(j)] for j in range(18)]
    entries[4] = [-1.0, -1.0, 0.0, -1.0]
    kps = parse_dresscode_json(json.dumps({"keypoints": entries}).encode())
    expected = np.array([[2 * j, 3 * j, 0.5] for j in range(18)], float)
    expected[4] = 0
    np.testing.assert_array_equal(kps, expected)
    with pytest.raises(KeypointError, match="17 entries"):
        parse_dresscode_json(json.dumps({"keypoints": entries[:17]}).encode())


# --- prepare ----------------------------------------------------------------------------------------------------

def test_prepare_keeps_the_official_split_and_records_categories(dc: Path, prepared: Path) -> None:
    report = json.loads((prepared / "prepare.json").read_text())
    assert report["layout"] == "dresscode" and report["label_space"] == "ATR"
    assert fm.LABEL_SPACES[report["label_space"]].head == tuple(sorted(HEAD))  # what a reader of OUT looks up
    assert report["categories"] == list(CATEGORIES) and "skirt" in report["skirt_rule"]
    train = [f"{p} {c}\n" for p, c, _ in _root_lines(dc, "train_pairs.txt")]
    assert (prepared / "train_pairs.txt").read_text() == "".join(train)
    unpaired = [f"{p} {c}\n" for p, c, _ in _root_lines(dc, "test_pairs_unpaired.txt")]
    assert (prepared / "test_pairs.txt").read_text() == "".join(unpaired)
    paired = [f"{p} {c}\n" for p, c, _ in _root_lines(dc, "test_pairs_paired.txt")]
    assert (prepared / "test_pairs_same.txt").read_text() == "".join(paired)
    rows = pq.read_table(prepared / "manifest.parquet").to_pylist()
    codes = {p: CATEGORIES[int(k)] for n in ("train_pairs.txt", "test_pairs_unpaired.txt")
             for p, _, k in _root_lines(dc, n)}
    assert rows and all(r["status"] == "kept" and r["category"] == codes[r["person"]] for r in rows)


def test_prepared_keypoints_and_parse(dc: Path, prepared: Path) -> None:
    for person, _, code in _root_lines(dc, "train_pairs.txt"):
        category, pid = CATEGORIES[int(code)], person[:6]
        entries = json.loads((dc / category / "keypoints" / f"{pid}_2.json").read_text())["keypoints"]
        expected = [[0.0, 0.0, 0.0] if e[:2] == [-1.0, -1.0] else [e[0] * 192 / 384, e[1] * 256 / 512, e[2]]
                    for e in entries]
        pose = json.loads((prepared / "train" / "pose" / f"{pid}_0_keypoints.json").read_text())
        np.testing.assert_allclose(np.reshape(pose["people"][0]["pose_keypoints"], (18, 3)), expected, rtol=1e-14)
        with Image.open(dc / category / "label_maps" / f"{pid}_4.png") as im:
            nearest = np.asarray(im.resize((192, 256), Image.Resampling.NEAREST))
        with Image.open(prepared / "train" / "image-parse" / f"{pid}_0.png") as im:
            assert im.mode == "P"
            np.testing.assert_array_equal(np.asarray(im), nearest)


def test_cloth_region_follows_the_category(dc: Path, prepared: Path) -> None:
    atr = LAYOUTS["dresscode"].labels
    for person, _, code in _root_lines(dc, "train_pairs.txt"):
        category = CATEGORIES[int(code)]
        image = np.asarray(Image.open(prepared / "train" / "image" / person).convert("RGB"))
        parse = np.asarray(Image.open(prepared / "train" / "image-parse" / person.replace(".jpg", ".png")))
        cloth = np.isin(parse, sorted(CLOTH[category]))
        assert cloth.any()
        expected = np.where(cloth[..., None], image, 255)
        np.testing.assert_array_equal(rep.cloth_target(image, parse, atr.for_category(category)), expected)
        head = np.where(np.isin(parse, sorted(HEAD))[..., None], image, 0)
        np.testing.assert_array_equal(rep.head_image(image, parse, atr), head)
    with pytest.raises(ValueError, match="no category"):
        atr.for_category("shoes")


def test_prepare_one_category_from_the_cli(dc: Path, tmp_path: Path) -> None:
    out = tmp_path / "lower"
    result = CliRunner().invoke(main, ["prepare", str(dc), str(out), "--category", "lower_body"])
    assert result.exit_code == 0, result.output
    lower = [(p, c) for n in ("train_pairs.txt", "test_pairs_unpaired.txt")
             for p, c, k in _root_lines(dc, n) if k == "1"]
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert sorted((r["person"], r["cloth"]) for r in rows) == sorted(lower)
    assert {r["category"] for r in rows} == {"lower_body"}
    assert json.loads((out / "prepare.json").read_text())["categories"] == ["lower_body"]


def test_category_refused_for_another_layout(synth_viton_hd: Path, tmp_path: Path) -> None:
    assert not LAYOUTS["dresscode"].detect(synth_viton_hd)
    with pytest.raises(ValueError, match="no category"):
        prepare(synth_viton_hd, tmp_path / "out", PrepareOptions(categories=("dresses",)), QUIET)


def test_faults_rejected_with_their_reason_and_no_clean_pair_lost(tmp_path: Path) -> None:
    root = tmp_path / "data"
    synthesize(root, 24, 1, layout="dresscode", defects=True)
    truth = [d for d in json.loads((root / "defects.json").read_text()) if d["fault"] != NEAR_DUPLICATE]
    assert {d["fault"] for d in truth} == {"truncated_jpeg", "label_out_of_range", "parse_not_palette",
                                           "keypoints_17", "test_id_in_train"}
    summary = prepare(root, tmp_path / "out", PrepareOptions(), QUIET)
    with open(tmp_path / "out" / "rejected.csv", newline="") as f:
        rejected = {r["pair"]: (r["stage"], r["reason"]) for r in csv.DictReader(f)}
    stage = {"truncated_jpeg": "decode", "label_out_of_range": "labels", "parse_not_palette": "labels",
             "keypoints_17": "keypoints", "test_id_in_train": "leak"}
    reason = {"label_out_of_range": "outside 0..17", "parse_not_palette": "palette", "keypoints_17": "17 entries",
              "test_id_in_train": "test"}
    assert set(rejected) == {d["pair"] for d in truth}
    for d in truth:
        assert rejected[d["pair"]][0] == stage[d["fault"]] and reason.get(d["fault"], "") in rejected[d["pair"]][1]
    assert summary.kept == summary.total - len(truth)
    with pytest.raises(ValueError, match="at least 15 pairs"):  # 14 leave 11 train pairs over the three categories
        synthesize(tmp_path / "few", 14, 1, layout="dresscode", defects=True)
    assert not (tmp_path / "few").exists()


def test_person_parse_and_resplit(dc: Path, tmp_path: Path) -> None:
    adapter = LAYOUTS["dresscode"]
    for person, _, code in _root_lines(dc, "test_pairs_unpaired.txt"):
        category = CATEGORIES[int(code)]
        with Image.open(dc / category / "label_maps" / person.replace("_0.jpg", "_4.png")) as im:
            np.testing.assert_array_equal(adapter.person_parse(dc, category, person), np.asarray(im))
    pairs, official = adapter.discover(dc, resplit=True)
    models = [p for n in ("train_pairs.txt", "test_pairs_unpaired.txt") for p, _, _ in _root_lines(dc, n)]
    assert not official and [(p.person.name, p.cloth.name) for p in pairs] == [
        (m, m.replace("_0.jpg", "_1.jpg")) for m in models]
    assert [p.person.src_split for p in pairs] == [
        CATEGORIES[int(k)] for n in ("train_pairs.txt", "test_pairs_unpaired.txt") for _, _, k in _root_lines(dc, n)]
    summary = prepare(dc, tmp_path / "out", PrepareOptions(resplit=True, categories=("dresses", "upper_body")), QUIET)
    assert summary.kept == summary.total == 8
    rows = pq.read_table(tmp_path / "out" / "manifest.parquet").to_pylist()
    assert {r["category"] for r in rows} == {"dresses", "upper_body"}
    assert json.loads((tmp_path / "out" / "prepare.json").read_text())["categories"] == ["upper_body", "dresses"]


def test_dataset_reads_a_prepared_dresscode_folder_with_atr_by_category(dc: Path, prepared: Path) -> None:
    """The Dataset takes the ATR label space prepare.json records and each pair's category from the manifest: the
    cloth target mask and the head are the category's ATR labels (tested against the source's category folders)."""
    import torch

    from vton.pipelines.dataset import TryOnDataset

    for split, pairs, root_file in (("train", "train", "train_pairs.txt"), ("test", "paired", "test_pairs_paired.txt")):
        codes = {person: CATEGORIES[int(code)] for person, _, code in _root_lines(dc, root_file)}
        ds = TryOnDataset(prepared, split=split, pairs=pairs)
        assert len(ds) == len(codes)
        for index in range(len(ds)):
            item = ds[index]
            parse = np.asarray(Image.open(prepared / split / "image-parse" / item["im_name"].replace(".jpg", ".png")))
            want = np.isin(parse, sorted(CLOTH[codes[item["im_name"]]]))
            assert want.any()
            assert torch.equal(item["parse_cloth_mask"][0], torch.from_numpy(want.astype(np.float32)))
            head = torch.from_numpy(np.isin(parse, sorted(HEAD)))
            assert torch.equal(item["head"][:, ~head], torch.full_like(item["head"][:, ~head], -1.0))


def test_dataset_refuses_a_person_without_a_category(prepared: Path, tmp_path: Path) -> None:
    import shutil

    import pandas as pd

    from vton.pipelines.dataset import TryOnDataset

    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    manifest = pd.read_parquet(copy / fm.MANIFEST_FILE)
    first = fm.read_pairs(copy / fm.TRAIN_PAIRS)[0][0]
    manifest.loc[manifest.person == first, "category"] = None
    manifest.to_parquet(copy / fm.MANIFEST_FILE, index=False)
    ds = TryOnDataset(copy, split="train", pairs="train")
    with pytest.raises(ValueError, match=f"no category for {first}"):
        ds[[p for p, _ in ds.pairs].index(first)]


def test_evaluate_reads_the_released_tree_by_category(dc: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Raw DressCode: each test model found in their category folder, the cloth region from their category's ATR
    labels (upper 4, lower 5 and 6, dresses 7), ground truth shrunk to the results' size. The test lists' categories
    are read once per evaluation (folders, labels, per-category scores: it was five times)."""
    import pandas as pd
    from skimage.metrics import structural_similarity

    adapter = LAYOUTS["dresscode"]
    folder = adapter.test_folders(dc)
    persons = [p for p, _ in adapter.read_test_pairs(dc, "paired")]
    out = tmp_path / "paired"
    for i, person in enumerate(persons):  # nested category folders, as DressCode methods write them
        fake = Image.open(dc / folder(person) / "images" / person).convert("RGB").resize((96, 128))
        noisy = np.clip(np.asarray(fake, np.float64) + np.random.default_rng(i).normal(0, 6, (128, 96, 3)), 0, 255)
        (out / folder(person)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy.astype(np.uint8)).save(out / folder(person) / f"{person[:-4]}.png")
    run = tmp_path / "run"
    reads = []
    read_categories = type(adapter).person_categories
    monkeypatch.setattr(type(adapter), "person_categories", lambda self, root: reads.append(root) or
                        read_categories(self, root))
    result = CliRunner().invoke(main, ["evaluate", str(dc), "--paired", str(out), "--out", str(run), "--metrics",
                                       "ssim,ssim_cloth", "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert len(reads) == 1
    frame = pd.read_parquet(run / fm.METRICS_FILE)
    summary = json.loads((run / fm.SUMMARY_FILE).read_text())
    assert summary["protocol"]["dataset"]["labels"] == "ATR"
    for person in persons:
        category = folder(person)
        real = np.asarray(Image.open(dc / category / "images" / person).convert("RGB").resize(
            (96, 128), Image.Resampling.BICUBIC), np.float64) / 255
        fake = np.asarray(Image.open(out / category / f"{person[:-4]}.png"), np.float64) / 255
        labels = np.asarray(Image.open(dc / category / "label_maps" / person.replace("_0.jpg", "_4.png")).resize(
            (96, 128), Image.Resampling.NEAREST))
        region = np.isin(labels, sorted(CLOTH[category]))[5:-5, 5:-5]
        _, smap = structural_similarity(fake, real, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=1.0, channel_axis=-1, full=True)
        row = frame[(frame.person == person) & (frame.setting == "paired")].set_index("metric")["value"]
        assert region.any()
        assert row["ssim_cloth"] == pytest.approx(smap.mean(axis=-1)[5:-5, 5:-5][region].mean(), abs=1e-4)

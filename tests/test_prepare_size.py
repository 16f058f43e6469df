"""`vton prepare --size HxW`: VITON-HD prepared at 512x384 against Pillow's own resize of the source (BILINEAR images,
NEAREST parse and mask, keypoints scaled by hand), the shape's 1/16 blur and the pose squares at that size, what
prepare.json and the manifest record, the refusals (unsupported, larger than the source, a rerun with another size, a
prepared tree of mixed sizes) and the CP-VTON networks' refusal of any size but 256x192."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from vton.cli import main
from vton.core.runner import RunnerConfig
from vton.pipelines.dataset import TryOnDataset
from vton.pipelines.prepare import PrepareOptions, prepare
from vton.pipelines.synth.generate import synthesize

QUIET = RunnerConfig(progress=False)
SIZE = (512, 384)
BODY25_TO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)  # MidHip 8 and the feet dropped
NETWORK_REFUSAL = "the GMM's regression layer is built for 256x192 inputs; prepare with --size 256x192"


@pytest.fixture(scope="module")
def hd_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hd") / "data"
    synthesize(root, 4, 5, layout="viton-hd")
    return root


@pytest.fixture(scope="module")
def hd_512(hd_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hd512") / "out"
    prepare(hd_source, out, PrepareOptions(samples=1, size=SIZE), QUIET)
    return out


def jpeg_decoded(image: Image.Image) -> np.ndarray:
    """What a reader decodes of ``image`` saved with PIL's JPEG defaults (the prepared dataset's JPEGs)."""
    buf = io.BytesIO()
    image.save(buf, "JPEG")
    return np.asarray(Image.open(buf))


def prepared_persons(out: Path) -> list[tuple[str, str]]:
    return [(split, p.name) for split in ("train", "test") for p in sorted((out / split / "image").iterdir())]


def test_viton_hd_at_512x384_is_pillows_resize_of_the_source(hd_source: Path, hd_512: Path) -> None:
    persons = prepared_persons(hd_512)
    assert persons
    for split, name in persons:
        png = name.replace(".jpg", ".png")
        for folder in ("image", "cloth"):
            source = Image.open(hd_source / split / folder / name).convert("RGB")
            prepared = Image.open(hd_512 / split / folder / name)
            assert prepared.size == (384, 512)
            assert np.array_equal(np.asarray(prepared), jpeg_decoded(source.resize((384, 512), Image.BILINEAR)))
        source_mask = np.asarray(Image.open(hd_source / split / "cloth-mask" / name).resize((384, 512), Image.NEAREST))
        expected_mask = jpeg_decoded(Image.fromarray(np.where(source_mask >= 128, 255, 0).astype(np.uint8), "L"))
        assert np.array_equal(np.asarray(Image.open(hd_512 / split / "cloth-mask" / name)), expected_mask)
        parse = Image.open(hd_512 / split / "image-parse" / png)
        source_parse = Image.open(hd_source / split / "image-parse-v3" / png).resize((384, 512), Image.NEAREST)
        assert parse.mode == "P" and parse.size == (384, 512)
        assert np.array_equal(np.asarray(parse), np.asarray(source_parse))
        # the shape: body (label > 0) x255 down to (384 / 16, 512 / 16) = (24, 32) and back, both BILINEAR
        body = Image.fromarray(((np.asarray(parse) > 0) * 255).astype(np.uint8), "L")
        blurred = body.resize((24, 32), Image.BILINEAR).resize((384, 512), Image.BILINEAR)
        assert np.array_equal(np.asarray(Image.open(hd_512 / split / "shape" / png)), np.asarray(blurred))
        doc = json.loads((hd_source / split / "openpose_json" / name.replace(".jpg", "_keypoints.json")).read_text())
        body25 = np.asarray(doc["people"][0]["pose_keypoints_2d"], np.float64).reshape(25, 3)
        expected = body25[list(BODY25_TO_18)] * np.array([0.5, 0.5, 1.0])  # 384 / 768 = 512 / 1024 = 1/2
        pose = json.loads((hd_512 / split / "pose" / name.replace(".jpg", "_keypoints.json")).read_text())
        got = np.asarray(pose["people"][0]["pose_keypoints"]).reshape(18, 3)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_prepare_json_and_manifest_record_the_size(hd_512: Path) -> None:
    report = json.loads((hd_512 / "prepare.json").read_text())
    assert report["size_hw"] == [512, 384] and report["options"]["size"] == [512, 384]
    assert report["pose_radius"] == 10
    assert (report["layout"], report["label_space"], report["keypoint_schema"]) == ("viton-hd", "CIHP", "BODY_25")
    assert pq.read_schema(hd_512 / "manifest.parquet").metadata[b"size_hw"] == b"512x384"
    sample = next((hd_512 / "samples").iterdir())
    assert Image.open(sample).size == (7 * 384, 512)  # seven panels of the prepared size


def test_dataset_yields_tensors_of_the_prepared_size(hd_512: Path) -> None:
    dataset = TryOnDataset(hd_512, split="test", pairs="unpaired")
    item = dataset[0]
    assert dataset.size_hw == SIZE
    for key, channels in (("image", 3), ("cloth", 3), ("cloth_mask", 1), ("shape", 1), ("head", 3),
                          ("parse_cloth", 3), ("agnostic", 22), ("grid_image", 3), ("pose_image", 1)):
        assert tuple(item[key].shape) == (channels, *SIZE), key
    # the pose squares: half-side 5 at 256 rows, 10 at 512 (21 x 21 pixels for a joint away from the borders)
    im_name = dataset.pairs[0][0]
    pose = json.loads((hd_512 / "test" / "pose" / im_name.replace(".jpg", "_keypoints.json")).read_text())
    kps = np.asarray(pose["people"][0]["pose_keypoints"]).reshape(18, 3)
    maps = item["agnostic"][4:].numpy() > 0
    inner = [j for j, (x, y, _) in enumerate(kps) if 11 < x < 384 - 11 and 11 < y < 512 - 11]
    assert inner
    for j in inner:
        x, y = int(kps[j, 0]), int(kps[j, 1])
        expected = np.zeros(SIZE, bool)
        expected[y - 10:y + 11, x - 10:x + 11] = True
        assert np.array_equal(maps[j], expected), j


def test_default_size_is_unchanged_by_the_option(hd_source: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(main, ["prepare", str(hd_source), str(tmp_path / "plain"), "--workers", "1"])
    sized = runner.invoke(main, ["prepare", str(hd_source), str(tmp_path / "sized"), "--workers", "1",
                                 "--size", "256x192"])
    assert plain.exit_code == sized.exit_code == 0, (plain.output, sized.output)
    files = sorted(p.relative_to(tmp_path / "plain") for p in (tmp_path / "plain").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "sized") for p in (tmp_path / "sized").rglob("*") if p.is_file())
    for rel in files:  # prepare.json too: it names SRC, never OUT
        assert (tmp_path / "plain" / rel).read_bytes() == (tmp_path / "sized" / rel).read_bytes(), rel
    report = json.loads((tmp_path / "plain" / "prepare.json").read_text())
    assert report["size_hw"] == [256, 192] and report["pose_radius"] == 5
    assert Image.open(next((tmp_path / "plain" / "test" / "image").iterdir())).size == (192, 256)


@pytest.mark.parametrize("size", ["300x200", "256x192x3", "big", "384x512"])
def test_an_unsupported_size_is_one_line_exit_1(hd_source: Path, tmp_path: Path, size: str) -> None:
    result = CliRunner().invoke(main, ["prepare", str(hd_source), str(tmp_path / "out"), "--size", size])
    assert result.exit_code == 1
    assert result.output == (f"Error: size {size!r} is not supported; allowed (HxW): 256x192, 512x384, 1024x768\n")
    assert not (tmp_path / "out").exists()


def test_a_size_larger_than_the_source_is_refused(synth_cpvton: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "women_top").mkdir(parents=True)  # raw VITON is detected by its folder; the size is refused before reading
    result = CliRunner().invoke(main, ["prepare", str(raw), str(tmp_path / "out"), "--size", "1024x768"])
    assert result.exit_code == 1
    assert result.output == ("Error: size 1024x768 is larger than the viton layout's 1100x762 images (nothing is "
                             "upsampled); allowed here: 256x192, 512x384\n")
    result = CliRunner().invoke(main, ["prepare", str(synth_cpvton), str(tmp_path / "out"), "--size", "512x384"])
    assert result.exit_code == 1
    assert result.output == (f"Error: {synth_cpvton} is a cpvton tree of 256x192 images, which prepare copies "
                             "unchanged: prepare it with --size 256x192\n")


def test_a_rerun_with_another_size_is_refused(hd_source: Path, hd_512: Path) -> None:
    with pytest.raises(FileExistsError, match=r"other options \(size \[512, 384\], now \[256, 192\]\)"):
        prepare(hd_source, hd_512, PrepareOptions(samples=1), QUIET)


def test_a_prepared_tree_is_prepared_again_at_its_own_size(hd_512: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cpvton tree of 512x384 images"):
        prepare(hd_512, tmp_path / "refused", PrepareOptions(samples=0), QUIET)
    out = tmp_path / "again"
    summary = prepare(hd_512, out, PrepareOptions(samples=0, size=SIZE), QUIET)
    assert summary.rejected == 0
    for split, name in prepared_persons(hd_512):
        assert (out / split / "image" / name).read_bytes() == (hd_512 / split / "image" / name).read_bytes()
    assert json.loads((out / "prepare.json").read_text())["size_hw"] == [512, 384]


def test_an_image_of_another_size_is_rejected_by_name(hd_512: Path, tmp_path: Path) -> None:
    tree = tmp_path / "mixed"
    shutil.copytree(hd_512, tree)
    split, name = prepared_persons(tree)[-1]
    image = tree / split / "image" / name
    Image.open(image).resize((192, 256)).save(image)
    with pytest.raises(ValueError, match=rf"{name} is 192x256 \(WxH\), but this dataset's images are 384x512"):
        dataset = TryOnDataset(tree, split=split, pairs="unpaired" if split == "test" else "train")
        for index, (person, _) in enumerate(dataset.pairs):
            if person == name:
                dataset.load(index)
    summary = prepare(tree, tmp_path / "out", PrepareOptions(samples=0, size=SIZE), QUIET)
    rejected = (tmp_path / "out" / "rejected.csv").read_text()
    assert summary.faults >= 1 and "person image is 192x256, expected 384x512" in rejected


def test_cpvton_networks_refuse_another_size(hd_512: Path, tmp_path: Path) -> None:
    checkpoint = tmp_path / "gmm_final.pth"
    checkpoint.write_bytes(b"never read: the size is refused first")
    runner = CliRunner()
    for args in (["train", "gmm", str(hd_512), "--out", str(tmp_path / "train")],
                 ["infer", str(hd_512), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "infer")],
                 ["evaluate", str(hd_512), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "eval")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output == f"Error: {hd_512} holds 512x384 images: {NETWORK_REFUSAL}\n", args

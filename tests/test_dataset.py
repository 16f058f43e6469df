"""TryOnDataset and the person representation against an independent reimplementation of CP-VTON's loader.

The reference below follows cp_dataset.py step by step (PIL draws, torchvision transforms, float masks); the code
under test works on uint8 arrays with numpy slicing. They must agree bit for bit.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as transforms
from PIL import Image, ImageDraw

from vton.core.runner import RunnerConfig
from vton.pipelines.dataset import TryOnDataset, collate_raw
from vton.pipelines.prepare import PrepareOptions, prepare
from vton.pipelines.representation import grid_image, pose_squares

T3 = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
T1 = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
KEYS = {"c_name", "im_name", "cloth", "cloth_mask", "image", "agnostic", "parse_cloth", "parse_cloth_mask", "shape",
        "head", "pose_image", "grid_image"}

# grid.png of sergeywong/cp-vton, read once by hand: red lines on these rows and columns, black elsewhere
GRID_ROWS = [0, 1] + [r for k in range(1, 15) for r in (17 * k - 1, 17 * k, 17 * k + 1)] + [254, 255]
GRID_COLS = (
    [0, 1, 2, 3] + [c for k in range(1, 11) for c in (17 * k + 1, 17 * k + 2, 17 * k + 3)] + [188, 189, 190, 191]
)


def reference_item(data: Path, im_name: str, c_name: str, radius: int = 5) -> dict[str, torch.Tensor]:
    """cp_dataset.py CPDataset.__getitem__ (GMM stage), with per-channel Normalize for 1-channel maps."""
    c = T3(Image.open(data / "cloth" / c_name))
    cm = torch.from_numpy((np.array(Image.open(data / "cloth-mask" / c_name)) >= 128).astype(np.float32))[None]
    im = T3(Image.open(data / "image" / im_name))
    parse_array = np.array(Image.open(data / "image-parse" / im_name.replace(".jpg", ".png")))
    parse_shape = (parse_array > 0).astype(np.float32)
    parse_head = sum((parse_array == k).astype(np.float32) for k in (1, 2, 4, 13))
    parse_cloth = sum((parse_array == k).astype(np.float32) for k in (5, 6, 7))
    shape_img = Image.fromarray((parse_shape * 255).astype(np.uint8))
    shape_img = shape_img.resize((192 // 16, 256 // 16), Image.BILINEAR).resize((192, 256), Image.BILINEAR)
    shape = T1(shape_img)
    phead, pcm = torch.from_numpy(parse_head), torch.from_numpy(parse_cloth)
    im_c = im * pcm + (1 - pcm)
    im_h = im * phead - (1 - phead)
    with open(data / "pose" / im_name.replace(".jpg", "_keypoints.json")) as fh:
        pose_data = np.array(json.load(fh)["people"][0]["pose_keypoints"]).reshape((-1, 3))
    pose_map = torch.zeros(len(pose_data), 256, 192)
    im_pose = Image.new("L", (192, 256))
    pose_draw = ImageDraw.Draw(im_pose)
    for i in range(len(pose_data)):
        one_map = Image.new("L", (192, 256))
        draw = ImageDraw.Draw(one_map)
        x, y = pose_data[i, 0], pose_data[i, 1]
        if x > 1 and y > 1:
            draw.rectangle((x - radius, y - radius, x + radius, y + radius), "white", "white")
            pose_draw.rectangle((x - radius, y - radius, x + radius, y + radius), "white", "white")
        pose_map[i] = T1(one_map)[0]
    grid = np.zeros((256, 192, 3), np.uint8)
    grid[GRID_ROWS, :, 0] = 255
    grid[:, GRID_COLS, 0] = 255
    return {"cloth": c, "cloth_mask": cm, "image": im, "agnostic": torch.cat([shape, im_h, pose_map], 0),
            "parse_cloth": im_c, "parse_cloth_mask": pcm[None], "shape": shape, "head": im_h,
            "pose_image": T1(im_pose), "grid_image": T3(Image.fromarray(grid))}


@pytest.fixture(scope="module")
def prepared(synth_cpvton: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "out"
    prepare(synth_cpvton, out, PrepareOptions(), RunnerConfig(progress=False))
    return out


@pytest.mark.parametrize("which", ["prepared", "source"])
@pytest.mark.parametrize("split,pairs", [("test", "unpaired"), ("test", "paired"), ("train", "train")])
def test_items_equal_the_reference_loader(which: str, split: str, pairs: str, prepared: Path,
                                          synth_cpvton: Path) -> None:
    root = prepared if which == "prepared" else synth_cpvton  # the source has no shape/ folder: computed on load
    ds = TryOnDataset(root, split=split, pairs=pairs)
    lines = (root / {"unpaired": "test_pairs.txt", "paired": "test_pairs_same.txt", "train": "train_pairs.txt"}[pairs]
             ).read_text().split()
    assert len(ds) == len(lines) // 2
    for index in range(min(len(ds), 3)):
        item = ds[index]
        assert set(item) == KEYS
        assert (item["im_name"], item["c_name"]) == (lines[2 * index], lines[2 * index + 1])
        ref = reference_item(root / split, item["im_name"], item["c_name"])
        for key, want in ref.items():
            got = item[key]
            assert got.dtype == torch.float32 and got.shape == want.shape, key
            assert torch.equal(got, want), key
        assert item["agnostic"].shape == (22, 256, 192)


def test_jpegs_kept_encoded_decode_to_the_reference_items(synth_cpvton: Path, tmp_path: Path) -> None:
    """``load(keep_jpeg=True)`` leaves the person, cloth and cloth mask as their JPEG bytes and ``assemble`` decodes
    them (torchvision's decode_jpeg, here on the CPU): the items are the reference loader's bit for bit, in a batch
    mixing encoded and decoded items too. A JPEG not stored in the mode it is read in (a grey cloth read as RGB) is
    decoded by PIL in ``load`` as before."""
    root = tmp_path / "data"
    shutil.copytree(synth_cpvton, root)
    ds = TryOnDataset(root, "test", "unpaired")
    grey = root / "test" / "cloth" / ds.pairs[1][1]
    Image.open(grey).convert("L").save(grey, quality=95)  # the same JPEG format, one channel
    kept = [ds.load(i, keep_jpeg=True) for i in range(len(ds))]
    assert [k["image"].ndim for k in kept] == [1] * len(ds) and kept[0]["cloth_mask"].ndim == 1
    assert kept[0]["image"].tobytes() == (root / "test" / "image" / ds.pairs[0][0]).read_bytes()
    assert [k["cloth"].ndim for k in kept] == [3 if c == grey.name else 1 for _, c in ds.pairs]
    mixed = [kept[0], ds.load(1), *kept[2:]]
    for batch in (collate_raw(kept), collate_raw(mixed)):
        assert isinstance(batch["image"], list)
        assembled = ds.assemble(batch)
        for index, (im_name, c_name) in enumerate(ds.pairs):
            ref = reference_item(synth_cpvton / "test", im_name, c_name)
            if c_name == grey.name:  # the reference reads the cloth as stored; the dataset converts it to RGB
                ref["cloth"] = T3(Image.open(grey).convert("RGB"))
            for key, want in ref.items():
                assert torch.equal(assembled[key][index], want), (index, key)


def test_cpvton_plus_variant_adds_the_unblurred_shape(prepared: Path) -> None:
    item = TryOnDataset(prepared, variant="cpvton+")[0]
    parse = np.array(Image.open(prepared / "test" / "image-parse" / item["im_name"].replace(".jpg", ".png")))
    assert set(item) == KEYS | {"shape_ori"}
    assert torch.equal(item["shape_ori"][0], torch.from_numpy((parse > 0).astype(np.float32)))


def test_grid_matches_the_reference_png() -> None:
    grid = grid_image()
    want = np.zeros((256, 192), np.uint8)
    want[GRID_ROWS] = 255
    want[:, GRID_COLS] = 255
    assert np.array_equal(grid[..., 0], want) and not grid[..., 1:].any()


def test_pose_squares_follow_pillow_rectangles_at_edges() -> None:
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(-4, 200, 300), rng.uniform(-4, 264, 300), np.ones(300)])
    points[:20, :2] = [[1.0, 50.0], [1.01, 1.01], [0.0, 0.0], [191.9, 255.3], [5.5, 5.5]] * 4
    maps = pose_squares(points)
    for (x, y, _), got in zip(points, maps):
        canvas = Image.new("L", (192, 256))
        if x > 1 and y > 1:
            ImageDraw.Draw(canvas).rectangle((x - 5, y - 5, x + 5, y + 5), "white", "white")
        assert np.array_equal(got, np.array(canvas))
    assert maps[2].sum() == 0 and (maps[3] > 0).sum() == 6 * 6  # clipped at the corner: columns 186..191, rows 250..255


def test_bad_pairs_argument_and_variant(prepared: Path) -> None:
    with pytest.raises(ValueError):
        TryOnDataset(prepared, variant="viton")
    with pytest.raises(FileNotFoundError):
        TryOnDataset(prepared, pairs=str(prepared / "nope.txt"))


@pytest.fixture(scope="module")
def prepared_hd(synth_viton_hd: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prepared-hd") / "out"
    prepare(synth_viton_hd, out, PrepareOptions(), RunnerConfig(progress=False))
    return out


@pytest.mark.parametrize("split,pairs", [("test", "unpaired"), ("test", "paired"), ("train", "train")])
def test_viton_hd_items_equal_the_reference_loader(split: str, pairs: str, prepared_hd: Path) -> None:
    """VITON-HD prepared at 256x192 (CIHP labels, BODY_25 mapped to OpenPose-18): CP-VTON's representation as
    cp_dataset.py builds it, the CIHP head (1, 2, 4, 13) and cloth (5, 6, 7) having LIP's numbers."""
    ds = TryOnDataset(prepared_hd, split=split, pairs=pairs)
    assert len(ds) > 0
    for index in range(min(len(ds), 3)):
        item = ds[index]
        ref = reference_item(prepared_hd / split, item["im_name"], item["c_name"])
        for key, want in ref.items():
            assert torch.equal(item[key], want), key
        assert item["im_name"].endswith("_00.jpg") and item["agnostic"].shape == (22, 256, 192)
        parse = np.array(Image.open(prepared_hd / split / "image-parse" / item["im_name"].replace(".jpg", ".png")))
        assert (parse == 10).any()  # CIHP's neck skin is kept: body in the shape, neither head nor cloth

"""`vton prepare` on small hand-made datasets: cleaning rules, split, layout, manifest, resume, Dask workers."""
from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from vton.cli import main
from vton.core.formats import palette_bytes, read_pairs
from vton.core.io import DATA_FILE_LIMIT
from vton.core.runner import RunnerConfig
from vton.pipelines.keypoints.schema import parse_pose_json
from vton.pipelines.layouts.base import PERSON, Item
from vton.pipelines.prepare import PrepareOptions, move_folders, prepare
from vton.pipelines.synth.near import NEAR_DUPLICATE

W, H = 192, 256
QUIET = RunnerConfig(progress=False)


def person_parse() -> np.ndarray:
    parse = np.zeros((H, W), np.uint8)
    parse[10:30, 80:112] = 2  # hair
    parse[30:55, 84:108] = 13  # face
    parse[60:150, 60:132] = 5  # upper clothes
    parse[150:240, 70:122] = 9  # pants
    parse[60:140, 40:60] = 14  # left arm
    return parse


def keypoints(rng: np.random.Generator) -> list[float]:
    kps = np.column_stack([rng.uniform(2, W - 2, 18), rng.uniform(2, H - 2, 18), rng.uniform(0.1, 1, 18)])
    kps[3] = 0  # a missing joint
    return [round(float(v), 3) for v in kps.reshape(-1)]


def pose_doc(values: list[float]) -> dict:
    return {"version": 1.0, "people": [{"face_keypoints": [], "pose_keypoints": values,
                                        "hand_right_keypoints": [], "hand_left_keypoints": []}]}


def write_person(root: Path, split: str, pid: str, rng: np.random.Generator) -> None:
    d = root / split
    for sub in ("image", "image-parse", "pose", "cloth", "cloth-mask"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    blocks = rng.integers(0, 256, (H // 16, W // 16, 3), dtype=np.uint8)
    Image.fromarray(blocks).resize((W, H), Image.Resampling.NEAREST).save(d / "image" / f"{pid}_0.jpg")
    parse = Image.fromarray(person_parse(), "P")
    parse.putpalette(palette_bytes())
    parse.save(d / "image-parse" / f"{pid}_0.png")
    (d / "pose" / f"{pid}_0_keypoints.json").write_text(json.dumps(pose_doc(keypoints(rng))))
    cloth = np.full((H, W, 3), 255, np.uint8)
    cloth[40:220, 30:160] = rng.integers(0, 200, 3, dtype=np.uint8)
    Image.fromarray(cloth).save(d / "cloth" / f"{pid}_1.jpg")
    Image.fromarray(np.where(cloth[..., 0] < 250, 255, 0).astype(np.uint8), "L").save(d / "cloth-mask" / f"{pid}_1.jpg")


def make_cpvton(root: Path, n_train: int, n_test: int, seed: int = 0, pairs: bool = True) -> dict[str, list[str]]:
    """``n_train`` + ``n_test`` clean persons with their own cloths; the test list is a rotation (unpaired)."""
    rng = np.random.default_rng(seed)
    ids = {
        "train": [f"{i:06d}" for i in range(n_train)],
        "test": [f"{i:06d}" for i in range(n_train, n_train + n_test)],
    }
    for split, pids in ids.items():
        for pid in pids:
            write_person(root, split, pid, rng)
    if pairs:
        (root / "train_pairs.txt").write_text("".join(f"{p}_0.jpg {p}_1.jpg\n" for p in ids["train"]))
        test = ids["test"]
        (root / "test_pairs.txt").write_text(
            "".join(f"{p}_0.jpg {c}_1.jpg\n" for p, c in zip(test, test[1:] + test[:1]))
        )
    return ids


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file's sha256 and every folder ("/"), by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
            for p in sorted(root.rglob("*"))}


def rejected(out: Path) -> dict[str, tuple[str, str]]:
    with open(out / "rejected.csv") as fh:
        return {row["pair"]: (row["split"], row["stage"]) for row in csv.DictReader(fh)}


# --- cleaning: every seeded fault is rejected exactly, nothing else ------------------------------------------

EXPECTED_STAGE = {
    "truncated_jpeg": "decode", "wrong_size": "decode", "duplicate_image": "duplicate", "missing_parse": "missing",
    "label_out_of_range": "labels", "missing_keypoints": "missing", "malformed_keypoints": "keypoints",
    "nan_keypoints": "keypoints", "empty_cloth_mask": "mask", "id_in_both_splits": "leak",
    "path_outside_root": "path",
}


def test_every_seeded_fault_is_rejected_and_nothing_else(synth_defects: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["prepare", str(synth_defects), str(out), "--workers", "2"])
    assert result.exit_code == 3, result.output
    truth = json.loads((synth_defects / "defects.json").read_text())
    truth = [d for d in truth if d["fault"] != NEAR_DUPLICATE]  # kept without --dedupe near (test_audit.py)
    assert {d["fault"] for d in truth} == set(EXPECTED_STAGE)  # synth's fault list is the one this test knows
    assert rejected(out) == {d["pair"]: (d["split"], EXPECTED_STAGE[d["fault"]]) for d in truth}
    lines = {s: (synth_defects / f"{s}_pairs.txt").read_text().splitlines() for s in ("train", "test")}
    kept = {s: (out / f"{s}_pairs.txt").read_text().splitlines() for s in ("train", "test")}
    bad = {(d["split"], d["pair"]) for d in truth}
    assert kept == {s: [line for line in lines[s] if (s, line) not in bad] for s in lines}
    same = [line.split() for line in (out / "test_pairs_same.txt").read_text().splitlines()]
    for split in ("train", "test"):  # the placed files are exactly those of kept pairs: rejected items' are gone
        used = [line.split() for line in kept[split]] + (same if split == "test" else [])
        assert sorted(p.name for p in (out / split / "image").iterdir()) == sorted({p for p, _ in used})
        assert sorted(p.name for p in (out / split / "cloth").iterdir()) == sorted({c for _, c in used})
    report = json.loads((out / "prepare.json").read_text())
    total = len(lines["train"]) + len(lines["test"])
    assert report["pairs"] == {"total": total, "kept": total - len(truth), "rejected": len(truth)}
    assert sum(r["count"] for r in report["rejections"]) == len(truth)
    assert f"rejected {len(truth)}" in result.output
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert len(manifest) == total and (manifest.status == "rejected").sum() == len(truth)
    assert manifest.loc[manifest.status == "kept", "image_path"].notna().all()


def test_hand_made_faults_content_mode_and_keypoint_count(tmp_path: Path) -> None:
    src = tmp_path / "src"
    ids = make_cpvton(src, 6, 2)
    t = src / "train"
    no_cloth = person_parse()
    no_cloth[no_cloth == 5] = 0
    no_head = person_parse()
    no_head[np.isin(no_head, (2, 13))] = 0
    for pid, parse in (("000000", no_cloth), ("000001", no_head)):
        img = Image.fromarray(parse, "P")
        img.putpalette(palette_bytes())
        img.save(t / "image-parse" / f"{pid}_0.png")
    Image.fromarray(np.stack([person_parse()] * 3, axis=2)).save(t / "image-parse" / "000002_0.png")  # RGB parse
    doc = pose_doc(keypoints(np.random.default_rng(1))[:51])  # 17 joints
    (t / "pose" / "000003_0_keypoints.json").write_text(json.dumps(doc))
    with open(src / "train_pairs.txt", "a") as fh:
        fh.write("000004_0.jpg\n")  # malformed
    summary = prepare(src, tmp_path / "out", PrepareOptions(), QUIET)
    assert rejected(tmp_path / "out") == {
        "000000_0.jpg 000000_1.jpg": ("train", "content"), "000001_0.jpg 000001_1.jpg": ("train", "content"),
        "000002_0.jpg 000002_1.jpg": ("train", "labels"), "000003_0.jpg 000003_1.jpg": ("train", "keypoints"),
        "000004_0.jpg": ("train", "discover")}
    assert summary.splits == {"train": 2, "test": len(ids["test"])}


# --- hostile files: each is one recorded rejection, never an aborted or hung run ---------------------------------


def _first_pid(root: Path, pairs_file: str) -> str:
    return (root / pairs_file).read_text().split()[0][: -len("_0.jpg")]


def _append_line(root: Path, pairs_file: str, line: bytes) -> None:
    with open(root / pairs_file, "ab") as fh:
        fh.write(line + b"\n")


def _nul_in_pairs_line(root: Path) -> tuple[str, str, str]:
    _append_line(root, "train_pairs.txt", b"9999\x0099_0.jpg 999999_1.jpg")
    return "9999\\x0099_0.jpg 999999_1.jpg", "discover", "holds a NUL byte"


def _invalid_utf8_in_pairs_line(root: Path) -> tuple[str, str, str]:
    _append_line(root, "train_pairs.txt", b"99\xff9999_0.jpg 999999_1.jpg")
    return "99\\xff9999_0.jpg 999999_1.jpg", "discover", "not valid UTF-8"


def _invalid_utf8_file_name(root: Path) -> tuple[str, str, str]:
    pid = _first_pid(root, "train_pairs.txt")
    for name in ("train_pairs.txt", "test_pairs.txt", "test_pairs_same.txt"):  # persons then come from the folders
        (root / name).unlink()
    for folder, suffix in (("image", "_0.jpg"), ("cloth", "_1.jpg")):
        name = os.fsdecode(b"99\xff9999" + suffix.encode())  # as os.listdir gives it back
        shutil.copy(root / "train" / folder / f"{pid}{suffix}", root / "train" / folder / name)
    return "99\\xff9999_0.jpg 99\\xff9999_1.jpg", "discover", "not valid UTF-8"


def _pose(root: Path) -> tuple[Path, str]:
    pid = _first_pid(root, "train_pairs.txt")
    pose = root / "train" / "pose" / f"{pid}_0_keypoints.json"
    pose.unlink()
    return pose, f"{pid}_0.jpg {pid}_1.jpg"


def _pose_nested_200000_deep(root: Path) -> tuple[str, str, str]:
    pose, line = _pose(root)
    pose.write_text("[" * 200_000 + "]" * 200_000)
    return line, "keypoints", "nests too deeply"


def _pose_links_to_dev_zero(root: Path) -> tuple[str, str, str]:
    pose, line = _pose(root)
    pose.symlink_to("/dev/zero")
    return line, "file", "is not a regular file (a character device)"


def _pose_is_a_fifo(root: Path) -> tuple[str, str, str]:
    pose, line = _pose(root)
    os.mkfifo(pose)
    return line, "file", "is not a regular file (a FIFO)"


def _pose_over_the_size_limit(root: Path) -> tuple[str, str, str]:
    pose, line = _pose(root)
    with open(pose, "wb") as fh:
        fh.truncate(DATA_FILE_LIMIT + 1)  # sparse: no disk used
    return line, "file", f"holds {DATA_FILE_LIMIT + 1} bytes, more than the {DATA_FILE_LIMIT} allowed"


def mat_bomb(name: str, rows: int, cols: int) -> bytes:
    """A MAT v5 file of one zlib-compressed uint8 array of zeros, rows x cols: about 4 kB per inflated MB."""
    def element(kind: int, payload: bytes) -> bytes:
        return struct.pack("<II", kind, len(payload)) + payload + bytes(-len(payload) % 8)

    size = rows * cols + (-rows * cols % 8)
    head = (element(6, struct.pack("<II", 9, 0)) + element(5, struct.pack("<ii", rows, cols))  # uint8 class, dims
            + element(1, name.encode()) + struct.pack("<II", 2, rows * cols))  # name, then the data's tag
    deflate = zlib.compressobj(1)
    stream = deflate.compress(struct.pack("<II", 14, len(head) + size) + head)
    for start in range(0, size, 1 << 20):
        stream += deflate.compress(bytes(min(1 << 20, size - start)))
    stream += deflate.flush()
    header = b"MATLAB 5.0 MAT-file".ljust(116) + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
    return header + struct.pack("<II", 15, len(stream)) + stream


def _segment_mat_declares_a_huge_array(root: Path) -> tuple[str, str, str]:
    pid = _first_pid(root, "viton_train_pairs.txt")
    (root / "segment" / f"{pid}_0.mat").write_bytes(mat_bomb("segment", 9000, 9000))  # 81 MB inflated
    return f"{pid}_0.jpg {pid}_1.jpg", "decode", "segment .mat declares a 9000x9000 uint8 array"


def _pose_mat_with_a_nan_joint_index(root: Path) -> tuple[str, str, str]:
    from vton.pipelines.synth.viton_raw import savemat_bytes

    pid = _first_pid(root, "viton_train_pairs.txt")
    (root / "pose" / f"{pid}_0.mat").write_bytes(savemat_bytes({"subset": np.full((1, 20), np.nan),
                                                                 "candidate": np.zeros((2, 4))}))
    return f"{pid}_0.jpg {pid}_1.jpg", "keypoints", "pose subset holds a non-finite joint index"


@pytest.mark.parametrize("dataset, hostile", [
    ("synth_cpvton", _nul_in_pairs_line), ("synth_cpvton", _invalid_utf8_in_pairs_line),
    ("synth_cpvton", _invalid_utf8_file_name), ("synth_cpvton", _pose_nested_200000_deep),
    ("synth_cpvton", _pose_links_to_dev_zero), ("synth_cpvton", _pose_is_a_fifo),
    ("synth_cpvton", _pose_over_the_size_limit), ("synth_viton_raw", _segment_mat_declares_a_huge_array),
    ("synth_viton_raw", _pose_mat_with_a_nan_joint_index),
], ids=lambda v: v.__name__.strip("_") if callable(v) else None)
def test_a_hostile_file_is_one_recorded_rejection(dataset: str, hostile, request: pytest.FixtureRequest,
                                                  tmp_path: Path) -> None:
    root = tmp_path / "src"
    shutil.copytree(request.getfixturevalue(dataset), root)
    clean_persons = {line.split()[0] for path in root.glob("*pairs*.txt") for line in path.read_text().splitlines()}
    line, stage, reason = hostile(root)
    out = tmp_path / "out"
    summary = prepare(root, out, PrepareOptions(), QUIET)  # returns: no exception, no hang
    with open(out / "rejected.csv", newline="") as fh:
        rows = [(r["pair"], r["split"], r["stage"], r["reason"]) for r in csv.DictReader(fh)]
    assert [row[:3] for row in rows] == [(line, "train", stage)] and reason in rows[0][3], rows
    kept = {r.person for r in pd.read_parquet(out / "manifest.parquet").itertuples() if r.status == "kept"}
    assert kept == clean_persons - {line.split()[0]} and summary.kept == len(kept)  # every clean pair is kept


def test_a_person_listed_twice_keeps_its_first_listing(synth_cpvton: Path, tmp_path: Path) -> None:
    """Infer and evaluate refuse a person listed twice (outputs are named by person): prepare decides, once."""
    src = tmp_path / "src"
    shutil.copytree(synth_cpvton, src)
    lines = {s: (src / f"{s}_pairs.txt").read_text().splitlines() for s in ("train", "test")}
    again = {"train": lines["train"][0], "test": f"{lines['test'][0].split()[0]} {lines['test'][1].split()[1]}"}
    for split, line in again.items():
        _append_line(src, f"{split}_pairs.txt", line.encode())
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["prepare", str(src), str(out)])
    assert result.exit_code == 3, result.output
    with open(out / "rejected.csv", newline="") as fh:
        rows = [(r["pair"], r["split"], r["stage"], r["reason"]) for r in csv.DictReader(fh)]
    assert sorted(rows) == sorted((line, split, "duplicate", "person listed twice; the first listing is kept")
                                  for split, line in again.items())
    for split in ("train", "test"):
        assert (out / f"{split}_pairs.txt").read_text().splitlines() == lines[split]
    for name in ("train_pairs.txt", "test_pairs.txt", "test_pairs_same.txt"):
        read_pairs(out / name, unique_persons=True)  # what infer and evaluate accept


def test_a_missing_pairs_file_warns_and_strict_refuses(synth_cpvton: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(synth_cpvton, src)
    (src / "train_pairs.txt").unlink()
    warning = f"{src / 'train_pairs.txt'} does not exist: no train pairs are read"
    strict = CliRunner().invoke(main, ["prepare", str(src), str(tmp_path / "strict"), "--strict"])
    assert strict.exit_code == 1 and strict.output == f"Error: strict: {warning}; nothing written\n"
    assert not (tmp_path / "strict").exists()
    result = CliRunner().invoke(main, ["prepare", str(src), str(tmp_path / "out")])
    assert result.exit_code == 0 and result.stderr == f"warning: {warning}\n"
    report = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert report["warnings"] == [warning] and report["splits"] == {"train": 0, "test": 3}


# --- layouts and outputs ----------------------------------------------------------------------------------------


def test_cpvton_layout_keeps_the_official_split_and_copies_files(synth_cpvton: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = RunnerConfig(workers=2, local="processes", progress=False, partition_size=4)
    summary = prepare(synth_cpvton, out, PrepareOptions(), config)
    for name in ("train_pairs.txt", "test_pairs.txt", "test_pairs_same.txt"):
        assert (out / name).read_bytes() == (synth_cpvton / name).read_bytes()
    assert summary.rejected == 0 and (out / "rejected.csv").read_text() == "pair,split,stage,reason\n"
    for split in ("train", "test"):
        for folder in ("image", "cloth", "cloth-mask", "image-parse", "pose"):
            names = sorted(p.name for p in (synth_cpvton / split / folder).iterdir())
            assert sorted(p.name for p in (out / split / folder).iterdir()) == names
            for name in names:
                assert (out / split / folder / name).read_bytes() == (synth_cpvton / split / folder / name).read_bytes()
        for parse_path in (synth_cpvton / split / "image-parse").iterdir():  # the precomputed shape, via PIL directly
            body = Image.fromarray(((np.array(Image.open(parse_path)) > 0) * 255).astype(np.uint8))
            blurred = body.resize((12, 16), Image.BILINEAR).resize((192, 256), Image.BILINEAR)
            assert np.array_equal(np.array(Image.open(out / split / "shape" / parse_path.name)), np.array(blurred))
    report = json.loads((out / "prepare.json").read_text())
    assert set(report) >= {"source", "layout", "seed", "pairs", "splits", "rejections", "versions"}
    assert report["layout"] == "cpvton" and report["splits"] == summary.splits
    manifest = pd.read_parquet(out / "manifest.parquet")
    row = manifest.iloc[0]
    assert row.image_sha256 == hashlib.sha256((out / row.image_path).read_bytes()).hexdigest()
    pose = json.loads((out / row.pose_path).read_text())["people"][0]["pose_keypoints"]
    assert list(row.keypoints) == pose
    samples = sorted((out / "samples").iterdir())
    assert samples and Image.open(samples[0]).size == (7 * 192, 256)
    assert not (out / ".prepare").exists()


def test_raw_viton_layout_is_converted_like_convert_data_m(synth_viton_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = prepare(synth_viton_raw, out, PrepareOptions(), QUIET)
    assert summary.rejected == 0 and json.loads((out / "prepare.json").read_text())["layout"] == "viton"
    from scipy.io import loadmat

    pid = (out / "train_pairs.txt").read_text().split()[0][:6]
    raw = Image.open(synth_viton_raw / "women_top" / f"{pid}_0.jpg")
    w, h = raw.size
    image = Image.open(out / "train" / "image" / f"{pid}_0.jpg")
    assert image.size == (192, 256) and image.mode == "RGB"
    expected = np.asarray(raw.resize((192, 256), Image.BILINEAR), np.int16)
    assert np.abs(np.asarray(image, np.int16) - expected).mean() < 3  # JPEG round trip only
    # parse: transpose, crop columns to round(641 w / h), nearest to h x w, nearest to 256 x 192 (index arithmetic)
    seg = loadmat(synth_viton_raw / "segment" / f"{pid}_0.mat")["segment"].T[:, : int(641 * w / h + 0.5)]
    rows = ((np.arange(h) + 0.5) * seg.shape[0] / h).astype(int)
    cols = ((np.arange(w) + 0.5) * seg.shape[1] / w).astype(int)
    full = seg[rows][:, cols]
    small = full[((np.arange(256) + 0.5) * h / 256).astype(int)][:, ((np.arange(192) + 0.5) * w / 192).astype(int)]
    parse = Image.open(out / "train" / "image-parse" / f"{pid}_0.png")
    assert parse.mode == "P" and np.array_equal(np.asarray(parse), small)
    pose = loadmat(synth_viton_raw / "pose" / f"{pid}_0.mat")
    kps = json.loads((out / "train" / "pose" / f"{pid}_0_keypoints.json").read_text())["people"][0]["pose_keypoints"]
    for j in range(18):
        k = int(pose["subset"][0, j])
        want = [0.0, 0.0, 0.0] if k < 0 else [pose["candidate"][k, 0] * 192 / w, pose["candidate"][k, 1] * 256 / h,
                                               pose["candidate"][k, 2]]
        assert kps[3 * j: 3 * j + 3] == pytest.approx(want, abs=1e-9)
    cloth = np.asarray(Image.open(synth_viton_raw / "women_top" / f"{pid}_1.jpg").resize((192, 256), Image.BILINEAR))
    mask = np.asarray(Image.open(out / "train" / "cloth-mask" / f"{pid}_1.jpg")) >= 128
    assert (mask == (cloth <= 250).all(axis=2)).mean() > 0.98  # holes filled and median-filtered: nearly the same


# --- split -------------------------------------------------------------------------------------------------------


def test_resplit_is_seeded_exact_and_leak_free(synth_cpvton: Path, tmp_path: Path) -> None:
    opts = PrepareOptions(seed=3, resplit=True, train_size=15, test_size=5)
    summary = prepare(synth_cpvton, tmp_path / "a", opts, QUIET)
    assert summary.splits == {"train": 15, "test": 5} and summary.faults == 0
    out = tmp_path / "a"
    train = [line.split() for line in (out / "train_pairs.txt").read_text().splitlines()]
    same = [line.split() for line in (out / "test_pairs_same.txt").read_text().splitlines()]
    unpaired = [line.split() for line in (out / "test_pairs.txt").read_text().splitlines()]
    assert len(train) == 15 and len(same) == 5 and all(p[:6] == c[:6] for p, c in train + same)
    assert not {p[:6] for p, _ in train} & {p[:6] for p, _ in same}
    assert [p for p, _ in unpaired] == [p for p, _ in same] and sorted(c for _, c in unpaired) == sorted(
        c for _, c in same
    )
    assert sorted(stage for _, stage in rejected(out).values()) == ["split"] * 4
    for split, pairs in (("train", train), ("test", same)):
        assert sorted(p.name for p in (out / split / "image").iterdir()) == sorted(p for p, _ in pairs)
    prepare(synth_cpvton, tmp_path / "b", opts, QUIET)
    assert (tmp_path / "b" / "test_pairs.txt").read_text() == (out / "test_pairs.txt").read_text()


def test_no_pairs_files_gives_the_official_proportion(tmp_path: Path) -> None:
    make_cpvton(tmp_path / "src", 9, 2, pairs=False)
    summary = prepare(tmp_path / "src", tmp_path / "out", PrepareOptions(seed=1), QUIET)
    assert summary.splits == {"train": 10, "test": 1} and summary.rejected == 0  # round(11 * 2032 / 16253) = 1


def test_out_with_other_content_and_unknown_keypoints_are_refused(synth_cpvton: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stray.txt").write_text("x")
    with pytest.raises(FileExistsError):
        prepare(synth_cpvton, tmp_path / "out", PrepareOptions(), QUIET)
    with pytest.raises(ValueError, match="unknown keypoint source"):
        prepare(synth_cpvton, tmp_path / "new", PrepareOptions(keypoints="openpifpaf"), QUIET)
    assert not (tmp_path / "new").exists()


# --- resume and lost workers -------------------------------------------------------------------------------------


def _staged(out: Path) -> int:
    return sum(1 for _ in (out / ".prepare" / "stage").rglob("*.jpg")) if (out / ".prepare").exists() else 0


def test_sigkilled_prepare_resumes_to_identical_outputs(synth_cpvton: Path, tmp_path: Path) -> None:
    import vton

    clean = tmp_path / "clean"
    prepare(synth_cpvton, clean, PrepareOptions(), QUIET)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(vton.__file__).parents[1])}  # the checkout imported here
    command = [sys.executable, "-m", "vton.cli", "prepare", str(synth_cpvton), str(out)]
    for kill_at in (3, 60):  # early, then later in the resumed run (staged JPEGs: 3 per pair)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and _staged(out) < kill_at:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "prepare finished before it could be killed"
    assert (out / ".prepare").exists() and not (out / "prepare.json").exists()
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    assert tree_hashes(out) == tree_hashes(clean)


def test_rerun_on_a_finished_out_changes_nothing_and_other_options_are_refused(synth_cpvton: Path,
                                                                                 tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = ["prepare", str(synth_cpvton), str(out)]
    first = CliRunner().invoke(main, command)
    assert first.exit_code == 0, first.output
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*")}
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0 and again.output == first.output.splitlines(keepends=True)[-1]  # no progress bar
    other = CliRunner().invoke(main, [*command, "--seed", "1"])
    assert other.exit_code == 1
    assert (
        other.output == f"Error: {out} holds a preparation with other options (seed 0, now 1); use a new OUT folder\n"
    )
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*")} == before  # nothing touched


class Killed(BaseException):
    """A simulated SIGKILL (not an Exception: no handler of the code under test catches it)."""


def _steps(monkeypatch: pytest.MonkeyPatch, kill_at: int | None) -> list[int]:
    """Count the file-system steps from here on (renames, removals, new folders); from step ``kill_at`` on, each
    raises `Killed` instead of acting, as a killed process does nothing more, not even its clean-up."""
    count = [0]

    def counted(call: Callable) -> Callable:
        def step(*args, **kwargs):
            count[0] += 1
            if kill_at is not None and count[0] >= kill_at:
                raise Killed
            return call(*args, **kwargs)
        return step

    for name in ("replace", "rename", "unlink", "rmdir", "mkdir"):
        monkeypatch.setattr(os, name, counted(getattr(os, name)))
    return count


@pytest.mark.parametrize("resplit, stride", [(False, 1), (True, 3)], ids=["official", "resplit"])
def test_killed_at_any_step_a_rerun_ends_identical(resplit: bool, stride: int, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each step (every one for the official split, every third for a drawn one, whose placing moves file by file):
    ingest records, placement, pairs files, manifest, samples, prepare.json, clean-up."""
    src = tmp_path / "src"
    make_cpvton(src, 3, 2)
    options = PrepareOptions(resplit=resplit, train_size=3 if resplit else None, test_size=1 if resplit else None)
    with monkeypatch.context() as patch:
        steps = _steps(patch, None)
        prepare(src, tmp_path / "clean", options, QUIET)
    clean = tree_hashes(tmp_path / "clean")
    for kill_at in range(1, steps[0] + 1, stride):
        out = tmp_path / f"out{kill_at}"
        with monkeypatch.context() as patch:
            _steps(patch, kill_at)
            with pytest.raises(Killed):
                prepare(src, out, options, QUIET)
        prepare(src, out, options, QUIET)
        assert tree_hashes(out) == clean, f"killed at step {kill_at} of {steps[0]}"


def test_a_second_prepare_on_an_out_in_use_is_refused(synth_cpvton: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / ".prepare.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running prepare holds it
    try:
        second = CliRunner().invoke(main, ["prepare", str(synth_cpvton), str(out)])
        assert second.exit_code == 1 and second.output.startswith("Error: another process is using")
        assert second.output.count("\n") == 1 and os.listdir(out) == [".prepare.lock"]
    finally:
        os.close(fd)
    rerun = CliRunner().invoke(main, ["prepare", str(synth_cpvton), str(out)])  # the lock file of a killed run
    assert rerun.exit_code == 0 and not (out / ".prepare.lock").exists()


def test_a_staged_folder_is_placed_onto_a_filled_target_by_merging(tmp_path: Path) -> None:
    item = Item(PERSON, "000001_0.jpg", "train")
    staged, final = tmp_path / ".prepare" / "stage" / "train" / "image", tmp_path / "train" / "image"
    for folder, files in ((staged, {"000001_0.jpg": b"new"}), (final, {"000000_0.jpg": b"a", "000001_0.jpg": b"old"})):
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    assert move_folders(tmp_path, [(item, "train")], [item]) == {"train"}
    assert not staged.exists() and {p.name: p.read_bytes() for p in final.iterdir()} == {
        "000000_0.jpg": b"a", "000001_0.jpg": b"new"}


@dataclass(frozen=True)
class KillOnce:
    """A keypoint loader (the dataset's keypoints) that SIGKILLs the worker process running it, the first time only."""

    flag: str
    needs_pose_file: ClassVar[bool] = True
    needs_image: ClassVar[bool] = False

    def __call__(self, pose_file: bytes, image: Image.Image) -> np.ndarray:
        if not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return parse_pose_json(pose_file)


def test_killed_local_worker_process_loses_no_pair(synth_cpvton: Path, tmp_path: Path) -> None:
    flag = tmp_path / "killed"
    config = RunnerConfig(workers=2, local="processes", partition_size=4, progress=False)
    out = tmp_path / "out"
    summary = prepare(synth_cpvton, out, PrepareOptions(keypoints=KillOnce(str(flag))), config)
    assert flag.exists() and summary.rejected == 0  # a worker died, the pool was replaced, its work redone
    clean = tmp_path / "clean"
    prepare(synth_cpvton, clean, PrepareOptions(keypoints=KillOnce(str(flag))), QUIET)  # the flag is set: no kill
    assert tree_hashes(out) == tree_hashes(clean)


def test_killed_dask_worker_loses_no_pair(synth_cpvton: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster, WorkerPlugin

    flag = str(tmp_path / "killed")

    class KillOnce(WorkerPlugin):  # local class: pickled by value to the workers
        def __init__(self) -> None:
            self.finished = 0

        def transition(self, key, start, finish, **kwargs) -> None:  # noqa: ANN001
            if finish == "memory" and "ingest_items" in str(key):
                self.finished += 1
                if self.finished == 2 and not os.path.exists(flag):
                    open(flag, "w").close()
                    os.kill(os.getpid(), signal.SIGKILL)  # the worker dies holding finished results

    clean = tmp_path / "clean"
    prepare(synth_cpvton, clean, PrepareOptions(), QUIET)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        client.register_plugin(KillOnce())
        config = RunnerConfig(scheduler=cluster.scheduler_address, partition_size=2, progress=False)
        summary = prepare(synth_cpvton, tmp_path / "out", PrepareOptions(), config)
    assert os.path.exists(flag) and summary.rejected == 0
    assert tree_hashes(tmp_path / "out") == tree_hashes(clean)

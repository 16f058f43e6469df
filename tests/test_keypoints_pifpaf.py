"""The real openpifpaf path, end to end, with a randomly initialised shufflenetv2k16 the test saves itself under a
temporary TORCH_HOME (no pretrained weights can be downloaded here)."""
from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

openpifpaf = pytest.importorskip(
    "openpifpaf", reason="openpifpaf is not installed (scripts/install_openpifpaf.sh builds it; `make venv` runs it)")
torch = pytest.importorskip("torch")

import vton.cli  # noqa: E402
from vton.core.runner import RunnerConfig  # noqa: E402
from vton.pipelines.keypoints.pifpaf import save_random_checkpoint  # noqa: E402

CHECKPOINT_FILE = "shufflenetv2k16-210820-232500-cocokp-slurm726069-edge513-o10s-7189450a.pkl"  # openpifpaf's URL

pytestmark = pytest.mark.xdist_group("openpifpaf")


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def write_images(folder: Path, sizes: dict[str, tuple[int, int]]) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)


def invoke(*args: str):
    return CliRunner().invoke(vton.cli.main, ["keypoints", *args])


def test_missing_weights_name_the_file_and_where_to_put_it(tmp_path: Path, torch_home: Path) -> None:
    write_images(tmp_path / "img", {"000001_0.jpg": (192, 256)})
    result = invoke(str(tmp_path / "img"), str(tmp_path / "out"), "--trust-checkpoint")
    assert result.exit_code == 1
    assert CHECKPOINT_FILE in result.output
    assert str(torch_home / "hub" / "checkpoints") in result.output
    result = invoke(str(tmp_path / "img"), str(tmp_path / "out"), "--pose-checkpoint", str(tmp_path / "nope.pkl"),
                    "--trust-checkpoint")
    assert result.exit_code == 1 and "nope.pkl" in result.output
    assert not (tmp_path / "out").exists()


def test_untrusted_checkpoint_is_refused_with_a_reason(tmp_path: Path, torch_home: Path) -> None:
    ckpt = tmp_path / "mine.pkl"
    save_random_checkpoint(ckpt)
    with pytest.raises(pickle.UnpicklingError):  # the premise: torch's safe loader refuses openpifpaf checkpoints
        torch.load(ckpt, weights_only=True)
    write_images(tmp_path / "img", {"000001_0.jpg": (192, 256)})
    result = invoke(str(tmp_path / "img"), str(tmp_path / "out"), "--pose-checkpoint", str(ckpt))
    assert result.exit_code == 1
    assert "--trust-checkpoint" in result.output and "weights_only=True" in result.output
    assert not (tmp_path / "out").exists()


def test_random_network_end_to_end_writes_empty_cpvton_poses(tmp_path: Path, torch_home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = torch_home / "hub" / "checkpoints" / CHECKPOINT_FILE
    save_random_checkpoint(ckpt)
    sizes = {"000001_0.jpg": (192, 256), "000002_0.jpg": (192, 256), "000003_0.jpg": (192, 256),
             "big_0.png": (384, 512)}
    expected_files = ["000001_0_keypoints.json", "000002_0_keypoints.json", "000003_0_keypoints.json",
                      "big_0_keypoints.json"]
    write_images(tmp_path / "img", sizes)
    (tmp_path / "img" / "broken_0.jpg").write_bytes(b"not an image")

    batches: list[tuple[int, ...]] = []
    multi = openpifpaf.decoder.multi.Multi
    real_batch = multi.batch

    def spy(self, model, image_batch, **kwargs):
        batches.append(tuple(image_batch.shape))
        return real_batch(self, model, image_batch, **kwargs)

    monkeypatch.setattr(multi, "batch", spy)
    result = invoke(str(tmp_path / "img"), str(tmp_path / "out"), "--trust-checkpoint", "--device", "cpu",
                    "--batch-size", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["images"] == 5 and summary["no_person"] == 4 and summary["with_person"] == 0
    assert list(summary["failed"]) == ["broken_0.jpg"]
    assert summary["checkpoint"] == str(ckpt.resolve())
    # the real network and decoder ran, batched per padded size (openpifpaf pads to 16k+1)
    assert sorted(batches) == sorted([(2, 3, 257, 193), (1, 3, 257, 193), (1, 3, 513, 385)])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == expected_files
    for name in expected_files:
        doc = json.loads((tmp_path / "out" / name).read_text())
        assert doc == {"version": 1.0, "people": [{"face_keypoints": [], "pose_keypoints": [0.0] * 54,
                                                   "hand_right_keypoints": [], "hand_left_keypoints": []}]}
    # trust was given for that one load: torch's global guard is untouched
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt)


def test_dask_workers_write_the_same_files_as_one_process(tmp_path: Path, torch_home: Path) -> None:
    from vton.pipelines.keypoints.pifpaf import PifpafOptions, list_images, run_keypoints

    ckpt = tmp_path / "random.pkl"
    save_random_checkpoint(ckpt)
    write_images(tmp_path / "img", {f"00000{i}_0.jpg": (192, 256) for i in range(3)})
    options = PifpafOptions(checkpoint=str(ckpt), trust_checkpoint=True, device="cpu", batch_size=1)
    images = list_images(tmp_path / "img")
    for workers, out in ((1, "one"), (2, "two")):  # one image per task: the 2 workers share 3 tasks
        runner = RunnerConfig(workers=workers, partition_size=1, progress=False)
        summary = run_keypoints(images, tmp_path / out, options, runner)
        assert summary["no_person"] == 3 and not summary["failed"]
    one = sorted((tmp_path / "one").iterdir())
    assert [p.name for p in one] == [f"00000{i}_0_keypoints.json" for i in range(3)]
    for p in one:
        assert (tmp_path / "two" / p.name).read_bytes() == p.read_bytes()


# --- prepare ----------------------------------------------------------------------------------------------------


def rejected(out: Path) -> dict[str, tuple[str, str]]:
    with open(out / "rejected.csv") as fh:
        return {row["pair"]: (row["stage"], row["reason"]) for row in csv.DictReader(fh)}


@pytest.fixture
def dataset(synth_cpvton: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic CP-VTON dataset (21 train, 3 test pairs), which the tests change."""
    return Path(shutil.copytree(synth_cpvton, tmp_path / "data"))


def test_prepare_consumes_the_files_vton_keypoints_writes(dataset: Path, tmp_path: Path, torch_home: Path) -> None:
    save_random_checkpoint(torch_home / "hub" / "checkpoints" / CHECKPOINT_FILE)
    pose = dataset / "test" / "pose"
    shutil.rmtree(pose)
    result = invoke(str(dataset / "test" / "image"), str(pose), "--trust-checkpoint", "--device", "cpu")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    result = CliRunner().invoke(vton.cli.main, ["prepare", str(dataset), str(out)])
    assert result.exit_code == 0, result.output
    assert rejected(out) == {}
    persons = sorted(p.name for p in (dataset / "test" / "image").iterdir())
    assert sorted(p.name for p in (out / "test" / "pose").iterdir()) == [
        name.replace(".jpg", "_keypoints.json") for name in persons]
    manifest = pd.read_parquet(out / "manifest.parquet")
    test_rows = manifest[manifest.split == "test"]
    assert len(test_rows) == 3
    for row in test_rows.itertuples():
        assert list(row.keypoints) == [0.0] * 54  # the random network finds nobody: every joint missing


def test_prepare_openpifpaf_fills_missing_pose_files_only(dataset: Path, tmp_path: Path, torch_home: Path) -> None:
    save_random_checkpoint(torch_home / "hub" / "checkpoints" / CHECKPOINT_FILE)
    persons = sorted(p.name for p in (dataset / "test" / "image").iterdir())[:2]
    for name in persons:
        (dataset / "test" / "pose" / name.replace(".jpg", "_keypoints.json")).unlink()
    out = tmp_path / "out"
    result = CliRunner().invoke(vton.cli.main, ["prepare", str(dataset), str(out), "--keypoints", "openpifpaf",
                                                "--trust-checkpoint", "--pose-device", "cpu", "--allow-rejects"])
    assert result.exit_code == 0, result.output
    # openpifpaf ran (real network and decoder) on the two persons without a pose file and, with random weights,
    # found nobody: those pairs are rejected; every other person kept the dataset's keypoints.
    reason = ("keypoints", "openpifpaf found no person in the image")
    pairs = [line for line in (dataset / "test_pairs.txt").read_text().splitlines() if line.split()[0] in persons]
    assert len(pairs) == 2 and rejected(out) == {line: reason for line in pairs}
    kept = pd.read_parquet(out / "manifest.parquet").query("status == 'kept'")
    assert len(kept) == 22 and not set(kept.person) & set(persons)
    for row in kept.itertuples():
        original = json.loads((dataset / row.split / "pose" / row.person.replace(".jpg", "_keypoints.json"))
                              .read_text())["people"][0]["pose_keypoints"]
        assert list(row.keypoints) == pytest.approx(original)


def test_prepare_overwrite_keypoints_uses_the_main_person_everywhere(
        dataset: Path, tmp_path: Path, torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in detector (the real one finds nobody with random weights) shows what reaches the prepared files."""
    import vton.pipelines.keypoints.pifpaf as pifpaf

    save_random_checkpoint(torch_home / "hub" / "checkpoints" / CHECKPOINT_FILE)
    coco = np.zeros((17, 3))
    coco[0] = (96, 40, 0.9)  # nose
    coco[5], coco[6] = (120, 80, 0.8), (70, 84, 0.6)  # left, right shoulder (image pixels, 192x256)
    coco[9] = (150, 170, 0.1)  # left wrist, below the threshold
    small = np.zeros((17, 3))
    small[0], small[5] = (10, 10, 0.99), (12, 14, 0.99)

    def detect(images, options):
        assert all(im.size == (192, 256) for im in images)
        return [[(small, 0.99), (coco, 0.5)] for _ in images]

    monkeypatch.setattr(pifpaf, "detect_people", detect)
    out = tmp_path / "out"
    result = CliRunner().invoke(vton.cli.main, ["prepare", str(dataset), str(out), "--keypoints", "openpifpaf",
                                                "--overwrite-keypoints", "--trust-checkpoint"])
    assert result.exit_code == 0, result.output
    expected = np.zeros((18, 3))
    expected[0] = (96, 40, 0.9)
    expected[1] = (95, 82, 0.6)  # neck: shoulders' midpoint, the weaker confidence
    expected[2] = (70, 84, 0.6)  # R-shoulder
    expected[5] = (120, 80, 0.8)  # L-shoulder
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert (manifest.status == "kept").all() and len(manifest) == 24
    for row in manifest.itertuples():
        np.testing.assert_allclose(np.reshape(row.keypoints, (18, 3)), expected)
        written = json.loads((out / row.pose_path).read_text())["people"][0]["pose_keypoints"]
        np.testing.assert_allclose(np.reshape(written, (18, 3)), expected)


def test_prepare_openpifpaf_fails_before_any_work(dataset: Path, tmp_path: Path, torch_home: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(vton.cli.main, ["prepare", str(dataset), str(out), "--keypoints", "openpifpaf"])
    assert result.exit_code == 1 and CHECKPOINT_FILE in result.output
    save_random_checkpoint(torch_home / "hub" / "checkpoints" / CHECKPOINT_FILE)
    result = CliRunner().invoke(vton.cli.main, ["prepare", str(dataset), str(out), "--keypoints", "openpifpaf"])
    assert result.exit_code == 1 and "--trust-checkpoint" in result.output
    result = CliRunner().invoke(vton.cli.main, ["prepare", str(dataset), str(out), "--overwrite-keypoints"])
    assert result.exit_code == 1 and "--keypoints openpifpaf" in result.output
    assert not out.exists()

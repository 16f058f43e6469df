"""The real openpifpaf path, end to end, with a randomly initialised shufflenetv2k16 the test saves itself under a
temporary TORCH_HOME (no pretrained weights can be downloaded here)."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

openpifpaf = pytest.importorskip(
    "openpifpaf", reason="openpifpaf is not installed (scripts/install_openpifpaf.sh builds it; `make venv` runs it)")
torch = pytest.importorskip("torch")

import vton.cli  # noqa: E402

CHECKPOINT_FILE = "shufflenetv2k16-210820-232500-cocokp-slurm726069-edge513-o10s-7189450a.pkl"  # openpifpaf's URL

pytestmark = pytest.mark.xdist_group("openpifpaf")


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def save_random_shufflenetv2k16(path: Path) -> None:
    """Build the network as openpifpaf's factory does for training from scratch, save it as its trainer does."""
    from openpifpaf.plugins.coco import CocoKp

    torch.manual_seed(0)
    net, _ = openpifpaf.network.Factory(base_name="shufflenetv2k16").factory(head_metas=CocoKp().head_metas)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net, "epoch": 0, "meta": None}, path)


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
    save_random_shufflenetv2k16(ckpt)
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
    save_random_shufflenetv2k16(ckpt)
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
    from vton.pipelines.pifpaf import PifpafOptions, list_images, run_keypoints

    ckpt = tmp_path / "random.pkl"
    save_random_shufflenetv2k16(ckpt)
    write_images(tmp_path / "img", {f"00000{i}_0.jpg": (192, 256) for i in range(3)})
    options = PifpafOptions(checkpoint=ckpt, trust_checkpoint=True, device="cpu", batch_size=1)
    images = list_images(tmp_path / "img")
    for workers, out in ((1, "one"), (2, "two")):  # one image per task: the 2 workers share 3 tasks
        summary = run_keypoints(images, tmp_path / out, options, workers=workers, chunk_size=1)
        assert summary["no_person"] == 3 and not summary["failed"]
    one = sorted((tmp_path / "one").iterdir())
    assert [p.name for p in one] == [f"00000{i}_0_keypoints.json" for i in range(3)]
    for p in one:
        assert (tmp_path / "two" / p.name).read_bytes() == p.read_bytes()

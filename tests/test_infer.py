"""`vton infer` against a straightforward eager loop written like the original test.py."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from click.testing import CliRunner
from PIL import Image

from tests.reference_loop import reference_batches
from vton.cli import main
from vton.core.io import sha256_file
from vton.models.gmm import GMM
from vton.models.infer import InferOptions, run_inference
from vton.models.tom import TOM
from vton.pipelines.dataset import TryOnDataset

pytestmark = pytest.mark.xdist_group("infer")


@pytest.fixture(scope="module")
def original_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding gmm_final.pth / tom_final.pth in the original plain state-dict format, random weights."""
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("ckpt")
    gmm, tom = GMM(), TOM()
    with torch.no_grad():  # push the random GMM off the identity so warping really moves pixels
        gmm.regression.linear.bias.normal_(0, 0.3)
    torch.save(gmm.state_dict(), folder / "gmm_final.pth")
    torch.save(tom.state_dict(), folder / "tom_final.pth")
    return folder


def eager_loop(data: Path, ckpt: Path, pairs: str) -> dict[str, dict[str, np.ndarray]]:
    results: dict[str, dict[str, np.ndarray]] = {"warp-cloth": {}, "warp-mask": {}, "try-on": {}}
    for names, images in reference_batches(data, [ckpt], pairs):
        for folder, arrays in images.items():
            results[folder].update(zip(names, arrays))
    return results


def read_results(out: Path, suffix: str = ".png") -> dict[str, dict[str, np.ndarray]]:
    return {folder: {p.stem: np.asarray(Image.open(p)) for p in sorted((out / folder).glob(f"*{suffix}"))}
            for folder in ("warp-cloth", "warp-mask", "try-on")}


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("pairs", "batch_size"), [("unpaired", 1), ("paired", 3)])
def test_outputs_equal_the_eager_loop(synth_cpvton: Path, original_checkpoints: Path, tmp_path: Path, pairs: str,
                                      batch_size: int) -> None:
    """Byte-equal to the batch-4 loop whatever our batch size: a pair's pixels never depend on its batch."""
    summary = run_inference(synth_cpvton, [original_checkpoints], tmp_path / "res",
                            InferOptions(pairs=pairs, batch_size=batch_size, progress=False))
    expected = eager_loop(synth_cpvton, original_checkpoints, pairs)
    got = read_results(tmp_path / "res")
    n = len(TryOnDataset(synth_cpvton, "test", pairs))
    assert summary.pairs == summary.written == n
    for folder in expected:
        assert sorted(got[folder]) == sorted(expected[folder]) and len(got[folder]) == n
        for name, array in expected[folder].items():
            np.testing.assert_array_equal(got[folder][name], array, err_msg=f"{folder}/{name}")
    assert any(
        not np.array_equal(
            expected["warp-cloth"][k], np.asarray(Image.open(synth_cpvton / "test" / "cloth" / f"{k[:-2]}_1.jpg"))
        )
        for k in expected["warp-cloth"]
    )
    manifest = (tmp_path / "res" / "manifest.csv").read_text().splitlines()
    assert manifest[0] == "index,person,cloth,warp_cloth,warp_mask,try_on" and len(manifest) == n + 1


def test_float_outputs_within_1e5_of_eager(synth_cpvton: Path, original_checkpoints: Path) -> None:
    from vton.models.checkpoint import load_models
    from vton.models.infer import forward_batch

    gmm, tom, _ = load_models([original_checkpoints])
    ds = TryOnDataset(synth_cpvton, "test", "unpaired")
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    ours = forward_batch(gmm, tom, batch, torch.device("cpu"), "fp32")
    with torch.no_grad():
        grid, _ = gmm(batch["agnostic"], batch["cloth"])
        warped = nnf.grid_sample(batch["cloth"], grid, padding_mode="border", align_corners=True)
        out = tom(torch.cat([batch["agnostic"], warped], 1))
        m = torch.sigmoid(out[:, 3:])
        tryon = warped * m + torch.tanh(out[:, :3]) * (1 - m)
    assert (ours["warp-cloth"] - warped).abs().max() <= 1e-5
    assert (ours["try-on"] - tryon).abs().max() <= 1e-5


def test_resume_skips_finished_pairs_and_refuses_other_weights(synth_cpvton: Path, original_checkpoints: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "res"
    opts = InferOptions(batch_size=2, progress=False)
    run_inference(synth_cpvton, [original_checkpoints], out, opts)
    before = hashes(out)
    again = run_inference(synth_cpvton, [original_checkpoints], out, opts)
    assert again.written == 0 and again.skipped == again.pairs
    assert hashes(out) == before
    victim = next((out / "try-on").glob("*.png"))
    victim.unlink()
    third = run_inference(synth_cpvton, [original_checkpoints], out, opts)
    assert third.written == 1 and hashes(out) == before
    other = tmp_path / "other"
    other.mkdir()
    torch.manual_seed(9)
    torch.save(GMM().state_dict(), other / "gmm_final.pth")
    torch.save(torch.load(original_checkpoints / "tom_final.pth", weights_only=True), other / "tom_final.pth")
    with pytest.raises(ValueError, match="another run"):
        run_inference(synth_cpvton, [other], out, opts)


def test_resume_goes_by_content_and_refuses_unknown_or_changed_folders(synth_cpvton: Path, tmp_path: Path) -> None:
    """The same weights under other names resume; a changed pairs list, or result files without infer.json (what
    made them is unknown), are refused rather than mixed in."""
    torch.manual_seed(4)
    folder = tmp_path / "ckpt"  # width 4: quick, in the original state-dict format
    folder.mkdir()
    torch.save(GMM("cpvton", 4).state_dict(), folder / "gmm_final.pth")
    torch.save(TOM("cpvton", 4).state_dict(), folder / "tom_final.pth")
    pairs = tmp_path / "pairs.txt"
    shutil.copy(synth_cpvton / "test_pairs.txt", pairs)
    out, opts = tmp_path / "res", InferOptions(pairs=str(pairs), progress=False)
    run_inference(synth_cpvton, [folder], out, opts)
    files = [folder / "gmm_final.pth", folder / "tom_final.pth"]
    recorded = json.loads((out / "infer.json").read_text())["checkpoints"]
    assert recorded == [{"path": str(f.resolve()), "sha256": sha256_file(f)} for f in files]
    before = hashes(out)
    (out / "try-on" / sorted(p.name for p in (out / "try-on").iterdir())[0]).unlink()
    renamed = [shutil.copy(files[1], tmp_path / "t.pth"), shutil.copy(files[0], tmp_path / "g.pth")]
    assert run_inference(synth_cpvton, renamed, out, opts).written == 1 and hashes(out) == before
    pairs.write_text("".join(pairs.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(ValueError, match=r"holds results of another run \(pairs_sha256: recorded [0-9a-f]{12}, "
                                         r"requested [0-9a-f]{12}\); use a new --out folder"):
        run_inference(synth_cpvton, [folder], out, opts)
    unknown = tmp_path / "unknown"
    (unknown / "try-on").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"holds results \(try-on\) but no infer.json"):
        run_inference(synth_cpvton, [folder], unknown, opts)
    assert not (unknown / "infer.json").exists()


def test_cli_jpeg_and_two_files_told_apart(synth_cpvton: Path, original_checkpoints: Path, tmp_path: Path) -> None:
    out = tmp_path / "jpg"
    result = CliRunner().invoke(
        main,
        [
            "infer",
            str(synth_cpvton),
            "--checkpoint",
            str(original_checkpoints / "tom_final.pth"),
            "--checkpoint",
            str(original_checkpoints / "gmm_final.pth"),
            "--out",
            str(out),
            "--jpeg-quality",
            "75",
            "--batch-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    expected = eager_loop(synth_cpvton, original_checkpoints, "unpaired")
    for name, array in expected["try-on"].items():
        path = out / "try-on" / f"{name}.jpg"
        with Image.open(path) as img:
            assert img.format == "JPEG"
        # the file is what PIL writes at quality 75 from the exact uint8 array
        import io
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="JPEG", quality=75)
        assert path.read_bytes() == buf.getvalue()


def test_dask_workers_give_the_same_files(synth_cpvton: Path, original_checkpoints: Path, tmp_path: Path) -> None:
    single = run_inference(synth_cpvton, [original_checkpoints], tmp_path / "one", InferOptions(progress=False))
    multi = run_inference(synth_cpvton, [original_checkpoints], tmp_path / "two",
                          InferOptions(workers=2, batch_size=1, progress=False))
    assert single.written == multi.written
    one, two = hashes(tmp_path / "one"), hashes(tmp_path / "two")
    assert one == two


def test_cli_refuses_clearly(synth_cpvton: Path, original_checkpoints: Path, tmp_path: Path) -> None:
    """A person listed twice (outputs are named by person), or fp16 on the CPU: one line, no traceback, no
    infer.json left behind that would block the corrected run."""
    pairs = tmp_path / "pairs.txt"
    person, cloth = (synth_cpvton / "test_pairs.txt").read_text().split("\n")[0].split()
    pairs.write_text(f"{person} {cloth}\n{person} {cloth}\n")
    args = ["infer", str(synth_cpvton), "--checkpoint", str(original_checkpoints), "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(main, [*args, "--pairs", str(pairs)])
    assert result.exit_code == 1 and "listed twice" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, [*args, "--precision", "fp16", "--device", "cpu"])
    assert result.exit_code == 1 and "CUDA only" in result.output
    assert not (tmp_path / "r" / "infer.json").exists()

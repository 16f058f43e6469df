"""`vton infer --fast`: its settings, its padded fixed-shape batches and the deviation record it writes, checked
against the exact path's files with the evaluation's own SSIM and IoU (independent of the record's skimage code)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from tests.file_formats import png_chunks
from vton.cli import main
from vton.eval.metrics import iou, ssim_map
from vton.models import deviation
from vton.models.deviation import deviation_record
from vton.models.fast import FastSettings, cpu_flags, fast_networks, fast_settings, native_bf16, pad_batch
from vton.models.gmm import GMM
from vton.models.infer import InferOptions, run_inference
from vton.models.tom import TOM
from vton.pipelines.dataset import TryOnDataset

pytestmark = pytest.mark.xdist_group("infer")
FOLDERS = ("warp-cloth", "warp-mask", "try-on")
INTEL_AMX = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n"
AMD_ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"
OLD_X86 = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 sve\n"  # Arm's bf16 is not oneDNN's x86 path: not counted


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random width-16 GMM and TOM in the original format, the GMM pushed off the identity warp."""
    torch.manual_seed(5)
    folder = tmp_path_factory.mktemp("fast-ckpt")
    gmm = GMM(width=16)
    with torch.no_grad():
        gmm.regression.linear.bias.normal_(0, 0.3)
    torch.save(gmm.state_dict(), folder / "gmm_final.pth")
    torch.save(TOM(width=16).state_dict(), folder / "tom_final.pth")
    return folder


def zlib_level(path: Path) -> int:
    """The FLEVEL bits of the first IDAT chunk's zlib header."""
    idat = next(body for kind, body in png_chunks(path.read_bytes()) if kind == b"IDAT")
    return idat[1] >> 6


def read(out: Path, folder: str) -> dict[str, np.ndarray]:
    return {p.stem: np.asarray(Image.open(p)) for p in sorted((out / folder).glob("*.png"))}


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


def scores(tryon: dict[str, np.ndarray], mask: dict[str, np.ndarray], persons: np.ndarray, regions: torch.Tensor
           ) -> tuple[float, float]:
    """Mean paired SSIM and mean warped-mask IoU with `vton evaluate`'s own functions."""
    fake = torch.from_numpy(np.stack(list(tryon.values()))).permute(0, 3, 1, 2).double() / 255
    real = torch.from_numpy(persons).permute(0, 3, 1, 2).double() / 255
    warp = torch.from_numpy(np.stack(list(mask.values()))) >= 128
    return float(ssim_map(fake, real, 1.0).mean()), float(iou(warp, regions).mean())


def test_fast_run_records_its_deviation_from_the_exact_files(synth_cpvton: Path, checkpoints: Path,
                                                              tmp_path: Path) -> None:
    """bf16 (forced, so the test means the same on any CPU), batch 2 over 3 pairs (the last batch padded): the
    record in infer.json is what the two runs' files show, and the scores moved less than the tolerance."""
    exact, fast = tmp_path / "exact", tmp_path / "fast"
    run_inference(synth_cpvton, [checkpoints], exact, InferOptions(batch_size=2, progress=False))
    result = CliRunner().invoke(main, ["infer", str(synth_cpvton), "--checkpoint", str(checkpoints), "--out",
                                       str(fast), "--batch-size", "2", "--fast", "--no-compile", "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert "fast path deviation on the first 3 pairs: equal pixels" in result.output
    meta = json.loads((fast / "infer.json").read_text())
    assert meta["fast"] == {"precision": "bf16", "channels_last": False, "compile": None, "batch_size": 2,
                            "png_compress_level": 1, "decode": "host"}
    # zlib's header says which level wrote a stream (FLEVEL, RFC 1950): 0 "fastest" here, 2 "default" on the exact path
    levels = {out: {zlib_level(p) for p in out.rglob("*.png")} for out in (exact, fast)}
    assert levels == {exact: {2}, fast: {0}}
    record = meta["fast_deviation"]
    want, got = ({f: read(out, f) for f in FOLDERS} for out in (exact, fast))
    assert all(sorted(want[f]) == sorted(got[f]) and len(got[f]) == 3 for f in FOLDERS)
    # pixels, counted here over the files
    equal = [np.stack([a == b for a, b in zip(want[f].values(), got[f].values())]) for f in FOLDERS]
    equal = [e.all(axis=-1) if e.ndim == 4 else e for e in equal]
    assert record["pairs"] == 3 and record["sample"].startswith("the first 3 pairs")
    assert record["equal_pixels"] == pytest.approx(np.concatenate([e.ravel() for e in equal]).mean(), abs=1e-12)
    assert record["equal_pixels"] < 1.0  # bf16 really ran: not the exact bytes
    diffs = [max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(want[f].values(), got[f].values()))
             for f in FOLDERS]
    assert record["max_abs_diff"] == max(diffs) > 0
    assert [record["folders"][f]["max_abs_diff"] for f in FOLDERS] == diffs
    # scores, with the evaluation's SSIM and IoU on the dataset's persons and cloth regions
    ds = TryOnDataset(synth_cpvton, "test", "unpaired")
    items = {Path(ds.pairs[i][0]).stem: ds.load(i) for i in range(len(ds))}
    persons = np.stack([items[k]["image"].transpose(1, 2, 0) for k in want["try-on"]])
    regions = torch.from_numpy(np.stack([items[k]["parse_cloth_mask"][0] for k in want["try-on"]])).bool()
    ssim_exact, iou_exact = scores(want["try-on"], want["warp-mask"], persons, regions)
    ssim_fast, iou_fast = scores(got["try-on"], got["warp-mask"], persons, regions)
    assert record["ssim_change"] == pytest.approx(ssim_fast - ssim_exact, abs=1e-7)
    assert record["iou_change"] == pytest.approx(iou_fast - iou_exact, abs=1e-12)
    assert record["ssim_change"] != 0 and abs(record["ssim_change"]) < 1e-3 and record["within_tolerance"]


def test_fast_runs_resume_byte_equal_and_never_mix_with_exact_results(synth_cpvton: Path, checkpoints: Path,
                                                                      tmp_path: Path) -> None:
    fast_opts = InferOptions(batch_size=2, progress=False, fast=True, compile=False, precision="bf16")
    out = tmp_path / "fast"
    first = run_inference(synth_cpvton, [checkpoints], out, fast_opts)
    assert first.written == 3 and first.first_fast_batch_s is not None
    before = hashes(out)
    victim = sorted((out / "try-on").glob("*.png"))[-1]  # the padded last batch
    victim.unlink()
    again = run_inference(synth_cpvton, [checkpoints], out, fast_opts)
    assert again.written == 1 and hashes(out) == before
    assert again.first_fast_batch_s is None  # the recorded deviation is reused, not measured again
    assert again.fast_deviation == first.fast_deviation
    with pytest.raises(ValueError, match=r"another run \(fast: recorded \{.*\}, requested None;"):
        run_inference(synth_cpvton, [checkpoints], out, InferOptions(batch_size=2, progress=False))
    with pytest.raises(ValueError, match=r"another run \(fast: recorded .*'batch_size': 2.*'batch_size': 3"):
        run_inference(synth_cpvton, [checkpoints], out, replace(fast_opts, batch_size=3))


def test_decoding_on_the_device_writes_the_host_decode_bytes_on_the_cpu(synth_cpvton: Path, checkpoints: Path,
                                                                      tmp_path: Path) -> None:
    """``--decode device`` on the CPU: decode_jpeg decodes as PIL does, so every file and the calibration record equal
    the host-decoding run's; the setting is recorded and belongs to the results' identity."""
    opts = InferOptions(batch_size=2, progress=False, fast=True, compile=False, precision="bf16")
    host, device = tmp_path / "host", tmp_path / "device"
    run_inference(synth_cpvton, [checkpoints], host, opts)
    result = CliRunner().invoke(main, ["infer", str(synth_cpvton), "--checkpoint", str(checkpoints), "--out",
                                       str(device), "--batch-size", "2", "--fast", "--no-compile", "--precision",
                                       "bf16", "--decode", "device"])
    assert result.exit_code == 0, result.output
    assert hashes(device) == hashes(host) and len(hashes(host)) == 3 * 3
    records = {out: json.loads((out / "infer.json").read_text()) for out in (host, device)}
    assert records[device]["fast"]["decode"] == "device" and records[host]["fast"]["decode"] == "host"
    assert records[device]["fast_deviation"] == records[host]["fast_deviation"]
    with pytest.raises(ValueError, match=r"another run \(fast: recorded .*'decode': 'device'"):
        run_inference(synth_cpvton, [checkpoints], device, opts)
    refused = CliRunner().invoke(main, ["infer", str(synth_cpvton), "--checkpoint", str(checkpoints), "--out",
                                        str(tmp_path / "exact"), "--decode", "device"])
    assert refused.exit_code == 1 and "--decode device is part of the fast path: add --fast" in refused.output
    assert not (tmp_path / "exact").exists()


def test_fast_run_beyond_tolerance_is_refused_before_any_file(synth_cpvton: Path, checkpoints: Path,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deviation, "TOLERANCE", 0.0)  # any change of SSIM is now too much
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["infer", str(synth_cpvton), "--checkpoint", str(checkpoints), "--out",
                                       str(out), "--fast", "--no-compile", "--precision", "bf16"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "moves a score beyond tolerance on the first 3 pairs" in result.output
    assert "run without --fast" in result.output
    assert not out.exists()


def test_fast_settings_follow_the_hardware(tmp_path: Path) -> None:
    assert {"amx_bf16", "avx512f"} <= cpu_flags(INTEL_AMX) and "bf16" in cpu_flags(ARM) and not cpu_flags("")
    files = {}
    for name, text in {"amx": INTEL_AMX, "zen4": AMD_ZEN4, "old": OLD_X86, "arm": ARM}.items():
        files[name] = tmp_path / name
        files[name].write_text(text)
    assert [native_bf16(files[n]) for n in ("amx", "zen4", "old", "arm")] == [True, True, False, False]
    assert not native_bf16(tmp_path / "absent")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert fast_settings(cpu, 8, cpuinfo_path=files["zen4"]) == FastSettings("bf16", False, "default", 8)
    assert fast_settings(cpu, 8, cpuinfo_path=files["old"]) == FastSettings("fp32", False, "default", 8)
    assert fast_settings(cpu, 4, "bf16", compile=False, cpuinfo_path=files["old"]) == FastSettings("bf16", False,
                                                                                                     None, 4)
    assert fast_settings(cuda, 64, cpuinfo_path=files["old"]) == FastSettings("bf16", True, "reduce-overhead", 64)
    assert fast_settings(cuda, 64, "fp16").precision == "fp16"
    with pytest.raises(ValueError, match="precision must be one of"):
        fast_settings(cpu, 8, "int8")
    assert fast_settings(cuda, 64, decode="device").decode == "device"
    with pytest.raises(ValueError, match="decode must be one of host, device"):
        fast_settings(cuda, 64, decode="gpu")


def test_device_decode_needs_batched_decode_jpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision

    monkeypatch.setattr(torchvision, "__version__", "0.18.1+cu121")
    with pytest.raises(ValueError, match=r"--decode device needs torchvision 0.19 or newer .*this is 0.18.1\+cu121"):
        fast_settings(torch.device("cuda"), 64, decode="device")
    assert fast_settings(torch.device("cuda"), 64).decode == "host"


def test_pad_batch_repeats_the_last_item_and_fast_networks_leave_the_originals() -> None:
    raw = {"im_name": ["a", "b"], "image": torch.arange(2 * 3).reshape(2, 3, 1, 1).to(torch.uint8)}
    padded = pad_batch(raw, 4)
    assert padded["im_name"] == ["a", "b", "b", "b"]
    assert padded["image"].shape == (4, 3, 1, 1) and padded["image"][:, :, 0, 0].tolist() == [[0, 1, 2], [3, 4, 5],
                                                                                             [3, 4, 5], [3, 4, 5]]
    assert pad_batch(raw, 2) == raw
    gmm, tom = GMM(width=2).set_batch_invariant(), TOM(width=2)
    fast_gmm, fast_tom = fast_networks(gmm, tom, FastSettings("bf16", True, "default", 8))
    assert gmm.batch_invariant and not fast_gmm.batch_invariant  # the exact path's GMM is left as it was
    assert fast_gmm.variant == "cpvton" and fast_tom.variant == "cpvton"  # run_gmm / run_tom read it through compile
    assert fast_gmm is not gmm and fast_tom is not tom
    weight = dict(fast_tom.named_parameters())["_orig_mod.model.model.0.weight"]
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert dict(tom.named_parameters())["model.model.0.weight"].is_contiguous()


def test_deviation_record_by_hand() -> None:
    """Two pairs of 1 x 2 images: worked out on paper."""
    exact = {"warp-cloth": np.array([[[[0, 0, 0], [9, 9, 9]]], [[[5, 5, 5], [5, 5, 5]]]], np.uint8),
             "warp-mask": np.array([[[[255], [0]]], [[[255], [255]]]], np.uint8)}
    fast = {"warp-cloth": np.array([[[[0, 0, 1], [9, 9, 9]]], [[[5, 5, 5], [5, 5, 5]]]], np.uint8),
            "warp-mask": np.array([[[[255], [127]]], [[[128], [0]]]], np.uint8)}
    regions = np.array([[[True, True]], [[True, False]]])
    record = deviation_record(exact, fast, np.zeros((2, 1, 2, 3), np.uint8), regions)
    assert record["folders"]["warp-cloth"] == {"equal_pixels": 0.75, "max_abs_diff": 1, "pixels": 4}
    assert record["folders"]["warp-mask"] == {"equal_pixels": 0.25, "max_abs_diff": 255, "pixels": 4}
    assert record["equal_pixels"] == 0.5 and record["max_abs_diff"] == 255
    # exact IoUs 1/2 and 1/2, fast 1/2 and 1/1: the mean moves by +0.25
    assert record["iou_change"] == pytest.approx(0.25) and record["ssim_change"] is None
    assert not record["within_tolerance"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("decode", ["host", "device"])
def test_fast_path_on_cuda_stays_within_tolerance(synth_cpvton: Path, checkpoints: Path, tmp_path: Path,
                                                  decode: str) -> None:
    """CUDA graphs over the padded fixed shape and bf16, the JPEGs decoded by PIL or by nvjpeg: the run finishes and
    its scores move less than 1e-3."""
    summary = run_inference(synth_cpvton, [checkpoints], tmp_path / "r",
                            InferOptions(batch_size=2, device="cuda", progress=False, fast=True, decode=decode))
    assert summary.written == 3 and summary.fast_deviation["within_tolerance"]
    fast = json.loads((tmp_path / "r" / "infer.json").read_text())["fast"]
    assert fast["compile"] == "reduce-overhead" and fast["decode"] == decode


def test_fast_run_on_an_empty_list_writes_nothing_like_the_exact_path(synth_cpvton: Path, checkpoints: Path,
                                                                       tmp_path: Path) -> None:
    """An empty pairs file: nothing to measure, so no calibration (it used to crash concatenating no images)."""
    empty = tmp_path / "empty_pairs.txt"
    empty.write_text("")
    opts = InferOptions(pairs=str(empty), progress=False, fast=True, compile=False, precision="bf16")
    summary = run_inference(synth_cpvton, [checkpoints], tmp_path / "out", opts)
    assert (summary.pairs, summary.written, summary.fast_deviation) == (0, 0, None)
    record = json.loads((tmp_path / "out" / "infer.json").read_text())
    assert record["fast"]["precision"] == "bf16" and "fast_deviation" not in record

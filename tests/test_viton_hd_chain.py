"""VITON-HD through every command, as a user runs them: synth -> prepare -> train a few steps -> evaluate (inference
included; on the prepared data and on the released tree) -> report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage.metrics import structural_similarity

from vton.cli import main
from vton.core import formats as fm

pytestmark = pytest.mark.xdist_group("viton_hd_chain")


def _ok(*args: str) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_viton_hd_synth_prepare_train_evaluate_report(tmp_path: Path) -> None:
    src, data = tmp_path / "zalando-hd-resized", tmp_path / "data"
    _ok("synth", src, "--layout", "viton-hd", "--pairs", 14, "--seed", 3)
    _ok("prepare", src, data, "--workers", 1)
    info = json.loads((data / fm.PREPARE_FILE).read_text())
    assert info["layout"] == "viton-hd"
    test_persons = [p for p, _ in fm.read_pairs(src / fm.HD_TEST_PAIRS)]
    # the paired test list: each test person with its own cloth (VITON-HD: the same file name)
    assert sorted(fm.read_pairs(data / fm.TEST_PAIRS_SAME)) == sorted((p, p) for p in test_persons)
    common = ("--width", 4, "--steps", 2, "--batch-size", 2, "--workers", 0, "--device", "cpu")
    _ok("train", "gmm", data, "--out", tmp_path / "gmm", *common)
    _ok("train", "tom", data, "--out", tmp_path / "tom", "--gmm", tmp_path / "gmm" / "gmm_final.pth",
        "--lambda-vgg", 0, *common)
    run = tmp_path / "run"
    _ok("evaluate", data, "--checkpoint", tmp_path / "tom" / "tom_final.pth", "--out", run, "--metrics",
        "ssim,psnr,iou,ssim_cloth", "--device", "cpu", "--workers", 0)
    summary = json.loads((run / fm.SUMMARY_FILE).read_text())
    assert summary["metrics"]["paired/ssim"]["all"]["n"] == len(test_persons)
    # one try-on against the prepared ground truth, by skimage
    person = sorted(test_persons)[0]
    fake = np.asarray(Image.open(run / "results" / "paired" / fm.TRYON_DIR / f"{Path(person).stem}.png"))
    real = np.asarray(Image.open(data / "test" / fm.IMAGE_DIR / person).convert("RGB"))
    frame = pd.read_parquet(run / fm.METRICS_FILE)
    frame_value = frame[(frame.metric == "ssim") & (frame.person == person)]["value"].item()
    assert frame_value == pytest.approx(structural_similarity(
        fake / 255, real / 255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
        channel_axis=-1), abs=1e-4)
    # the same try-ons against the released tree itself: ground truth read at 1024x768, resized to the results' size
    raw = tmp_path / "run-raw"
    _ok("evaluate", src, "--results", run / "results", "--out", raw, "--metrics", "ssim,psnr,iou,ssim_cloth",
        "--device", "cpu", "--workers", 0)
    resize = json.loads((raw / fm.SUMMARY_FILE).read_text())["protocol"]["resize"]
    assert resize["eval_size"] == [256, 192] and resize["resized_images"]["ground_truth"] > 0
    native = Image.open(src / "test" / fm.HD_IMAGE_DIR / person).convert("RGB")
    real_native = np.asarray(native.resize((192, 256), Image.Resampling.BICUBIC))
    raw_frame = pd.read_parquet(raw / fm.METRICS_FILE)
    assert raw_frame[(raw_frame.metric == "ssim") & (raw_frame.person == person)]["value"].item() == pytest.approx(
        structural_similarity(fake / 255, real_native / 255, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=1.0, channel_axis=-1), abs=1e-4)
    assert "report:" in _ok("report", run)
    assert (run / "report.html").stat().st_size > 0

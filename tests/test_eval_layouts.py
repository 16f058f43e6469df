"""`vton evaluate`'s vton protocol on any dataset layout: the raw VITON files (762x1100 photos, LIP parse in .mat) and
the CP-VTON layout, scored at the results' size or at --eval-size, against skimage and hand conversions of the raw
files (CP-VTON's convert_data.m for the parse, PIL for the resizes)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.io import loadmat
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vton.cli import main
from vton.core import formats as fm
from vton.pipelines.layouts import CPVTON, VITON_RAW
from vton.pipelines.layouts.base import PERSON, Item
from vton.pipelines.synth.generate import synthesize

pytestmark = pytest.mark.xdist_group("eval_layouts")
METRICS = "ssim,psnr,iou,ssim_cloth,tv"
CLOTH = (5, 6, 7)  # LIP's upper clothes, dress, coat
CROP = 5  # skimage's Gaussian SSIM: an 11x11 window (truncate 3.5, sigma 1.5), its mean crops (11 - 1) // 2 px


# --- the oracle: the raw files read by hand ------------------------------------------------------------------
def _rgb(path: Path, size_hw: tuple[int, int] | None = None) -> np.ndarray:
    """The image as floats in [0, 1], resized with PIL bicubic to ``size_hw`` when given and different."""
    img = Image.open(path).convert("RGB")
    if size_hw is not None and img.size != size_hw[::-1]:
        img = img.resize(size_hw[::-1], Image.Resampling.BICUBIC)
    return np.asarray(img, np.float64) / 255


def _raw_parse(data: Path, person: str) -> np.ndarray:
    """convert_data.m: the 641x641 segment transposed, its columns cropped to the portrait photo's aspect
    (round(641 w / h)), nearest-resized to the photo's size."""
    (segment,) = [v for k, v in loadmat(data / fm.RAW_SEGMENT_DIR / f"{Path(person).stem}.mat").items()
                  if not k.startswith("__")]
    w, h = Image.open(data / fm.RAW_IMAGE_DIR / person).size
    seg = segment.T[:, : int(np.floor(641 * w / h + 0.5))]
    return np.asarray(Image.fromarray(seg.astype(np.uint8)).resize((w, h), Image.Resampling.NEAREST))


def _region(labels: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(labels.astype(np.uint8)).resize(size_hw[::-1], Image.Resampling.NEAREST)
    return np.isin(np.asarray(img), CLOTH)


# per layout: the test pairs file, the photos' folder, the in-shop cloths' folder
FOLDERS = {"viton": (fm.RAW_TEST_PAIRS, fm.RAW_IMAGE_DIR, fm.RAW_IMAGE_DIR),
           "cpvton": (fm.TEST_PAIRS, f"test/{fm.IMAGE_DIR}", f"test/{fm.CLOTH_DIR}"),
           "hd": (fm.HD_TEST_PAIRS, f"test/{fm.HD_IMAGE_DIR}", f"test/{fm.HD_CLOTH_DIR}")}


def _truth(data: Path, layout: str, person: str, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The real photo and its cloth region at the scoring size (a P-mode parse: its indices, as np.asarray reads)."""
    if layout == "viton":
        labels = _raw_parse(data, person)
    elif layout == "hd":
        labels = np.asarray(Image.open(data / "test" / fm.HD_PARSE_DIR / f"{Path(person).stem}.png"))
    else:
        labels = np.asarray(Image.open(data / "test" / fm.PARSE_DIR / fm.parse_name(person)))
    return _rgb(data / FOLDERS[layout][1] / person, size_hw), _region(labels, size_hw)


def _expected(fake: np.ndarray, real: np.ndarray, region: np.ndarray, warp: np.ndarray) -> dict[str, float]:
    ssim, smap = structural_similarity(fake, real, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1.0, channel_axis=-1, full=True)
    inner = smap.mean(axis=-1)[CROP:-CROP, CROP:-CROP]
    return {"ssim": ssim, "psnr": peak_signal_noise_ratio(real, fake, data_range=1.0),
            "iou": (region & warp).sum() / (region | warp).sum(),
            "ssim_cloth": inner[region[CROP:-CROP, CROP:-CROP]].mean()}


def _tv(img: np.ndarray) -> float:
    return (np.abs(np.diff(img, axis=0)).sum() + np.abs(np.diff(img, axis=1)).sum()) / img.size


# --- the data and the results ------------------------------------------------------------------------------
def _test_persons(data: Path, layout: str) -> list[str]:
    return [line.split()[0] for line in (data / FOLDERS[layout][0]).read_text().splitlines() if line.strip()]


def make_results(out: Path, data: Path, layout: str, size_hw: tuple[int, int], seed: int = 0) -> Path:
    """Paired try-ons at ``size_hw``: the photo shrunk with PIL bilinear (not the bicubic the scoring uses) plus
    noise; warp-masks: the true cloth region shifted by 2 + i pixels."""
    rng = np.random.default_rng(seed)
    for i, person in enumerate(_test_persons(data, layout)):
        photo = Image.open(data / FOLDERS[layout][1] / person).convert("RGB")
        photo = photo.resize(size_hw[::-1], Image.Resampling.BILINEAR)
        noisy = np.clip(np.asarray(photo, np.float64) + rng.normal(0, 4 + 4 * i, (*size_hw, 3)), 0, 255)
        _, region = _truth(data, layout, person, size_hw)
        for sub, img in ((fm.TRYON_DIR, noisy.astype(np.uint8)),
                         (fm.WARP_MASK_DIR, np.roll(region, 2 + i, axis=1).astype(np.uint8) * 255)):
            (out / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(out / sub / f"{Path(person).stem}.png")
    return out


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw VITON tree with 3 test persons (20 pairs, seed 3)."""
    data = tmp_path_factory.mktemp("viton_raw") / "data"
    synthesize(data, 20, 3, layout="viton")
    assert len(_test_persons(data, "viton")) == 3
    return data


def _evaluate(data: Path, paired: Path, out: Path, *extra: str) -> tuple[object, pd.DataFrame | None, dict | None]:
    result = CliRunner().invoke(main, ["evaluate", str(data), "--paired", str(paired), "--out", str(out),
                                       "--metrics", METRICS, "--device", "cpu", "--workers", "0", *extra])
    if result.exit_code != 0:
        return result, None, None
    return result, pd.read_parquet(out / fm.METRICS_FILE), json.loads((out / fm.SUMMARY_FILE).read_text())


def _check_rows(frame: pd.DataFrame, data: Path, layout: str, results: Path, size_hw: tuple[int, int]) -> None:
    """Every paired row against the oracle at ``size_hw``; every in-shop cloth's TV at ``size_hw``."""
    persons = _test_persons(data, layout)
    paired = frame[frame.setting == "paired"]
    assert sorted(paired.person.unique()) == sorted(persons)
    for person in persons:
        real, region = _truth(data, layout, person, size_hw)
        stem = Path(person).stem
        fake = _rgb(results / fm.TRYON_DIR / f"{stem}.png")
        warp = np.asarray(Image.open(results / fm.WARP_MASK_DIR / f"{stem}.png")) >= 128
        expect = _expected(fake, real, region, warp)
        row = paired[paired.person == person].set_index("metric")["value"]
        assert 0 < expect["iou"] < 1 and region.any()
        assert row["ssim"] == pytest.approx(expect["ssim"], abs=1e-4)
        assert row["psnr"] == pytest.approx(expect["psnr"], abs=1e-6)
        assert row["iou"] == pytest.approx(expect["iou"], abs=1e-12)
        assert row["ssim_cloth"] == pytest.approx(expect["ssim_cloth"], abs=1e-4)
    tv = frame[frame.setting == "cloth"].set_index("cloth")["value"]
    assert len(tv) > 0
    for cloth, value in tv.items():
        assert value == pytest.approx(_tv(_rgb(data / FOLDERS[layout][2] / cloth, size_hw)), rel=1e-5)


# --- the tests ---------------------------------------------------------------------------------------------
def test_raw_viton_scores_at_the_results_size(raw: Path, tmp_path: Path) -> None:
    """256x192 results on 762x1100 photos: the ground truth is shrunk (bicubic; the parse nearest), never the
    predictions, and the summary says so."""
    results = make_results(tmp_path / "results", raw, "viton", (256, 192))
    result, frame, summary = _evaluate(raw, results, tmp_path / "run")
    assert frame is not None and summary is not None, result.output
    _check_rows(frame, raw, "viton", results, (256, 192))
    persons = _test_persons(raw, "viton")
    paired = frame[frame.setting == "paired"]
    assert dict(zip(paired.person, paired.cloth)) == {p: p.replace("_0.jpg", "_1.jpg") for p in persons}
    p = summary["protocol"]
    assert p["dataset"] == {"layout": "viton", "labels": "LIP", "cloth_labels": [5, 6, 7],
                            "pairs": {"paired": f"{fm.RAW_TEST_PAIRS} (each person with their own cloth)"}}
    n_cloths = int((frame.setting == "cloth").sum())
    assert p["resize"] == {
        "eval_size": [256, 192], "origin": "results",
        "first_prediction": str((results / fm.TRYON_DIR / f"{Path(sorted(persons)[0]).stem}.png").resolve()),
        "predictions_at_another_size": 0,
        "ground_truth": {"rgb": "PIL bicubic", "masks_and_labels": "PIL nearest"},
        "predictions": "must be at eval_size (another size is an error)",
        "resized_images": {"ground_truth": 2 * len(persons), "cloths": n_cloths, "predictions": 0}}
    assert summary["skipped"] == {}


def test_raw_viton_at_another_size_given_or_from_the_results(raw: Path, tmp_path: Path) -> None:
    """512x384 results score at 512x384 by default and with --eval-size 512x384: the same rows; only the origin
    differs."""
    results = make_results(tmp_path / "results", raw, "viton", (512, 384), seed=1)
    _, frame, summary = _evaluate(raw, results, tmp_path / "default")
    result, given, given_summary = _evaluate(raw, results, tmp_path / "given", "--eval-size", "512x384")
    assert frame is not None and given is not None and summary and given_summary, result.output
    _check_rows(frame, raw, "viton", results, (512, 384))
    pd.testing.assert_frame_equal(frame, given)
    assert summary["protocol"]["resize"]["eval_size"] == given_summary["protocol"]["resize"]["eval_size"] == [512, 384]
    assert (summary["protocol"]["resize"]["origin"], given_summary["protocol"]["resize"]["origin"]) == ("results",
                                                                                                       "given")
    assert given_summary["protocol"]["resize"]["first_prediction"] is None


def test_a_prediction_of_another_size_is_refused_by_name(raw: Path, tmp_path: Path) -> None:
    results = make_results(tmp_path / "results", raw, "viton", (256, 192))
    result, _, _ = _evaluate(raw, results, tmp_path / "given", "--eval-size", "512x384")
    first = results / fm.TRYON_DIR / f"{Path(sorted(_test_persons(raw, 'viton'))[0]).stem}.png"
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{first.resolve()}: the prediction is 256x192 (HxW), not the scoring size 512x384" in result.output
    assert "6 of 6 predictions" in result.output  # 3 try-ons and 3 warp-masks
    assert not (tmp_path / "given" / fm.SUMMARY_FILE).exists()

    odd = results / fm.TRYON_DIR / f"{Path(sorted(_test_persons(raw, 'viton'))[-1]).stem}.png"
    Image.open(odd).resize((190, 250)).save(odd)
    result, _, _ = _evaluate(raw, results, tmp_path / "mixed")
    assert result.exit_code == 1
    assert f"{odd.resolve()}: the prediction is 250x190 (HxW), not the scoring size 256x192" in result.output
    assert f"1 of 6 predictions are not at the scoring size (results by {first.resolve()})" in result.output
    result, frame, summary = _evaluate(raw, results, tmp_path / "resized", "--resize-predictions")
    assert frame is not None and summary is not None, result.output
    assert summary["protocol"]["resize"]["resized_images"]["predictions"] == 1
    assert summary["protocol"]["resize"]["predictions_at_another_size"] == 1
    assert summary["protocol"]["resize"]["predictions"].startswith("resized to eval_size")


def test_cpvton_layout_at_a_given_size(synth_cpvton: Path, tmp_path: Path) -> None:
    """The prepared CP-VTON layout (256x192, palette parse maps) scored at --eval-size 128x96: the same reading."""
    results = make_results(tmp_path / "results", synth_cpvton, "cpvton", (128, 96))
    result, frame, summary = _evaluate(synth_cpvton, results, tmp_path / "run", "--eval-size", "128x96")
    assert frame is not None and summary is not None, result.output
    _check_rows(frame, synth_cpvton, "cpvton", results, (128, 96))
    assert summary["protocol"]["dataset"]["pairs"] == {"paired": fm.TEST_PAIRS_SAME}
    assert summary["protocol"]["resize"]["origin"] == "given"
    assert summary["protocol"]["resize"]["resized_images"]["ground_truth"] == 2 * len(_test_persons(synth_cpvton,
                                                                                                    "cpvton"))


def test_eval_size_must_be_height_x_width(raw: Path, tmp_path: Path) -> None:
    for bad in ("256", "256x0", "axb", "256x192x3"):
        result = CliRunner().invoke(main, ["evaluate", str(raw), "--paired", str(tmp_path), "--out",
                                           str(tmp_path / "run"), "--eval-size", bad])
        assert result.exit_code == 2 and "HEIGHTxWIDTH" in result.output, bad


def test_adapters_read_the_parse_and_the_paired_list(raw: Path, synth_cpvton: Path) -> None:
    """`Layout.person_parse`: labels at the photo's size (raw VITON: convert_data.m before its last resize, so
    nearest to 256x192 gives exactly the parse ingest writes); `read_test_pairs` derives a missing paired list."""
    person = _test_persons(raw, "viton")[0]
    labels = VITON_RAW.person_parse(raw, "", person)
    assert labels.shape == (1100, 762) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, _raw_parse(raw, person))
    (_, parse_png, *_), _ = VITON_RAW.ingest_person(raw, Item(PERSON, person, ""))
    ingested = np.asarray(Image.open(io.BytesIO(parse_png)))
    small = Image.fromarray(labels).resize(fm.FINE_SIZE_WH, Image.Resampling.NEAREST)
    np.testing.assert_array_equal(np.asarray(small), ingested)
    assert VITON_RAW.read_test_pairs(raw, "paired") == [(p, p.replace("_0.jpg", "_1.jpg"))
                                                         for p in _test_persons(raw, "viton")]
    assert VITON_RAW.test_pairs_file(raw, "paired") == raw / fm.RAW_TEST_PAIRS
    cp_person = _test_persons(synth_cpvton, "cpvton")[0]
    np.testing.assert_array_equal(CPVTON.person_parse(synth_cpvton, "test", cp_person), np.asarray(
        Image.open(synth_cpvton / "test" / fm.PARSE_DIR / fm.parse_name(cp_person))))
    assert CPVTON.read_test_pairs(synth_cpvton, "paired") == fm.read_pairs(synth_cpvton / fm.TEST_PAIRS_SAME)


def test_viton_hd_is_read_through_its_adapter(tmp_path: Path) -> None:
    """A VITON-HD tree as released (CIHP labels, a P-mode parse at 1024x768, no paired file: the adapter's
    `own_cloth` is the person's own name): scored at the results' 64x48 against the same hand computations."""
    data = Path(synthesize(tmp_path / "data", 8, 0, layout="viton-hd")["root"])
    results = make_results(tmp_path / "results", data, "hd", (64, 48))
    result, frame, summary = _evaluate(data, results, tmp_path / "run")
    assert frame is not None and summary is not None, result.output
    _check_rows(frame, data, "hd", results, (64, 48))
    paired = frame[frame.setting == "paired"]
    assert dict(zip(paired.person, paired.cloth)) == {p: p for p in _test_persons(data, "hd")}
    assert summary["protocol"]["dataset"] == {"layout": "viton-hd", "labels": "CIHP", "cloth_labels": [5, 6, 7],
                                              "pairs": {"paired": "test_pairs.txt (each person with their own cloth)"}}

"""The field's protocols (`vton evaluate --protocol`) against the libraries their scripts call, called the way the
scripts call them, on a tiny dataset with random weights shared through the same files."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from unittest import mock

import cleanfid
import cleanfid.fid
import numpy as np
import pandas as pd
import pytest
import torch
from cleanfid.inception_torchscript import InceptionV3W
from click.testing import CliRunner
from PIL import Image
from skimage.metrics import structural_similarity

from tests.eval_fixtures import eval_world, load_sliced_backbone
from vton.cli import main
from vton.core import formats as fm
from vton.eval import weights
from vton.eval.protocols import PROTOCOLS

pytestmark = pytest.mark.xdist_group("eval_protocols")
N = 10
SEED = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    world = eval_world(tmp_path_factory.mktemp("protocols"), N)
    return {**world, "gt": world["data"] / "test" / fm.IMAGE_DIR}


def _evaluate(world: dict[str, Path], out: Path, *args: str) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(world["root"] / "empty_home"))
        result = CliRunner().invoke(main, ["evaluate", str(world["data"]), "--out", str(out), "--weights-dir",
                                           str(world["weights"]), "--device", "cpu", "--workers", "0", "--seed",
                                           str(SEED), "--bootstrap", "50", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return {"output": result.output, "summary": json.loads((out / fm.SUMMARY_FILE).read_text()),
            "frame": pd.read_parquet(out / fm.METRICS_FILE)}


@pytest.fixture(scope="module")
def run_all(world: dict[str, Path]) -> dict:
    return _evaluate(world, world["root"] / "all", "--results", str(world["results"]), "--protocol", "all",
                     "--is-splits", "2", "--kid-subset-size", "4", "--subset-size", "2")


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _value(run: dict, protocol: str, key: str) -> float:
    return run["summary"]["protocols"][protocol]["metrics"][key]["value"]


def _lpips_reference(world: dict[str, Path], net: str):
    import lpips

    ref = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
    file = weights.ALEXNET_FILE if net == "alex" else weights.SQUEEZENET_FILE
    load_sliced_backbone(ref.net, weights.load_state(world["weights"] / file))
    return lambda a, b: float(ref(*(torch.from_numpy(x).permute(2, 0, 1)[None].float() / 127.5 - 1 for x in (a, b))))


@pytest.fixture
def cleanfid_lib(world: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """clean-fid with the same random TorchScript file, its statistics folder in tmp_path."""
    monkeypatch.setattr(cleanfid, "__file__", str(tmp_path / "cleanfid" / "__init__.py"))
    model = InceptionV3W(str(world["weights"]), download=False)
    monkeypatch.setattr(cleanfid.fid, "build_feature_extractor", lambda *a, **k: model)


def _cpu() -> dict:
    return {"mode": "clean", "device": torch.device("cpu"), "num_workers": 0, "verbose": False}


# --- all protocols at once -----------------------------------------------------------------------------------
def test_every_protocol_in_one_run_with_its_settings_side_by_side(run_all: dict) -> None:
    s, frame = run_all["summary"], run_all["frame"]
    assert set(s["protocols"]) == set(PROTOCOLS)
    assert set(frame.protocol) == set(PROTOCOLS)
    for name, block in s["protocols"].items():
        assert block["source"] and block["settings"], name
        for key in (*block["metrics"], *block["skipped"]):
            assert key.split("/")[1] in block["settings"] or name == "vton", (name, key)
    # the same outputs, SSIM under every protocol: grey SSIM (HR-VITON) differs, the others agree at equal sizes
    ssim = next(r for r in s["comparison"] if r["metric"] == "paired/ssim")
    assert set(ssim["values"]) == set(PROTOCOLS)
    assert ssim["values"]["ladi-vton"] == pytest.approx(ssim["values"]["vton"], abs=1e-5)
    assert ssim["values"]["hr-viton"] != pytest.approx(ssim["values"]["vton"], abs=1e-3)
    assert "grey" in ssim["differ"]["colour"]["hr-viton"] and "colour" in ssim["differ"]
    lp = next(r for r in s["comparison"] if r["metric"] == "paired/lpips")
    assert "SqueezeNet" in lp["differ"]["backbone"]["catvton"]
    assert "protocol comparison:" in run_all["output"] and "paired/ssim colour:" in run_all["output"]
    vton = s["protocols"]["vton"]["metrics"]["paired/ssim"]["value"]
    assert vton == pytest.approx(s["metrics"]["paired/ssim"]["all"]["mean"])
    per_image = frame[(frame.protocol == "cit") & (frame.metric == "ssim")]
    assert len(per_image) == N and _value(run_all, "cit", "paired/ssim") == pytest.approx(per_image.value.mean())
    assert "unseeded in the original" in run_all["output"]  # what the original leaves to chance is said


def test_report_shows_the_protocol_comparison(world: dict[str, Path], run_all: dict) -> None:
    from vton.reports.html import write_report

    html = write_report([world["root"] / "all"], world["root"] / "report.html").read_text()
    table = html[html.index("Protocol comparison"):]
    table = table[:table.index("</table>")]
    assert all(f"<th>{name}</th>" in table for name in PROTOCOLS)
    assert f"<td>{_value(run_all, 'hr-viton', 'paired/ssim'):.4g}</td>" in table and "grey (PIL" in table


# --- LaDI-VTON ------------------------------------------------------------------------------------------------
def test_ladi_vton_against_torchmetrics_lpips_and_clean_fid(world: dict[str, Path], run_all: dict,
                                                            cleanfid_lib: None) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torchmetrics.image.inception import InceptionScore

    pairs = fm.read_pairs(world["data"] / fm.TEST_PAIRS_SAME)
    lp = _lpips_reference(world, "alex")
    for setting in ("paired", "unpaired"):
        fakes = [_rgb(world["results"] / setting / fm.TRYON_DIR / f"{Path(p).stem}.png") for p, _ in pairs]
        reals = [_rgb(world["gt"] / p) for p, _ in pairs]  # the paired GT, also for unpaired runs
        ssim = [structural_similarity(f / 255, r / 255, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1.0, channel_axis=-1)
                for f, r in zip(fakes, reals)]
        assert _value(run_all, "ladi-vton", f"{setting}/ssim") == pytest.approx(np.mean(ssim), abs=1e-5)
        assert _value(run_all, "ladi-vton", f"{setting}/lpips") == pytest.approx(
            np.mean([lp(f, r) for f, r in zip(fakes, reals)]), rel=1e-4)
    gen = world["results"] / "unpaired" / fm.TRYON_DIR
    cleanfid.fid.make_custom_stats("ladi_ref", str(world["gt"]), **_cpu())
    fid = cleanfid.fid.compute_fid(str(gen), dataset_name="ladi_ref", dataset_split="custom", **_cpu())
    np.random.seed(SEED)
    kid = cleanfid.fid.compute_kid(str(gen), dataset_name="ladi_ref", dataset_split="custom", **_cpu())
    assert _value(run_all, "ladi-vton", "unpaired/fid") == pytest.approx(fid, rel=1e-4, abs=1e-6)
    assert _value(run_all, "ladi-vton", "unpaired/kid") == pytest.approx(kid, rel=1e-4, abs=1e-7)  # raw, not x1000

    class Logits(torch.nn.Module):  # torchmetrics 0.11.4's IS feature: torch-fidelity's logits_unbiased
        def __init__(self) -> None:
            super().__init__()
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"],
                                                   feature_extractor_weights_path=str(world["weights"] /
                                                                                      weights.INCEPTION_FILE))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)[0]

    metric = InceptionScore(feature=Logits(), splits=10, normalize=True)
    metric.update(torch.stack([torch.from_numpy(_rgb(p)).permute(2, 0, 1) for p in sorted(gen.iterdir())]) / 255)
    torch.manual_seed(SEED)
    assert _value(run_all, "ladi-vton", "unpaired/is") == pytest.approx(metric.compute()[0].item(), rel=1e-4)


# --- CatVTON: GT resized to the prediction's height, re-saved at q75, folder vs folder ----------------------------
@pytest.fixture(scope="module")
def half(world: dict[str, Path]) -> Path:
    """Predictions at half size (128 x 96) as a flat folder named by person, as CatVTON writes them."""
    out = world["root"] / "half"
    out.mkdir()
    for f in sorted((world["results"] / "paired" / fm.TRYON_DIR).iterdir()):
        Image.open(f).resize((96, 128), Image.Resampling.BICUBIC).save(out / f.name)
    return out


def test_catvton_resizes_the_ground_truth_as_its_script(world: dict[str, Path], half: Path, tmp_path: Path,
                                                        cleanfid_lib: None) -> None:
    run = _evaluate(world, tmp_path / "run", "--paired", str(half), "--protocol", "catvton")
    copy = tmp_path / "gt_128"  # what copy_resize_gt writes: LANCZOS to the height, the .jpg saved at quality 75
    copy.mkdir()
    for f in sorted(world["gt"].iterdir()):
        im = Image.open(f)
        im.resize((int(im.width * 128 / im.height), 128), Image.Resampling.LANCZOS).save(copy / f.name)
    lp = _lpips_reference(world, "squeeze")
    ssim, dist = [], []
    for pred in sorted(half.iterdir()):
        gt, fake = _rgb(copy / f"{pred.stem}.jpg"), _rgb(pred)
        ssim.append(structural_similarity(fake / 255, gt / 255, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=1.0, channel_axis=-1))
        dist.append(lp(fake, gt))
    assert _value(run, "catvton", "paired/ssim") == pytest.approx(np.mean(ssim), abs=1e-5)
    assert _value(run, "catvton", "paired/lpips") == pytest.approx(np.mean(dist), rel=1e-3)  # eps 1e-8 vs 1e-10
    fid = cleanfid.fid.compute_fid(str(copy), str(half), **_cpu())
    np.random.seed(SEED)
    kid = cleanfid.fid.compute_kid(str(copy), str(half), **_cpu())
    assert _value(run, "catvton", "paired/fid") == pytest.approx(fid, rel=1e-4, abs=1e-6)
    assert _value(run, "catvton", "paired/kid") == pytest.approx(kid * 1000, rel=1e-4, abs=1e-6)
    assert run["summary"]["protocols"]["catvton"]["inputs"]["paired"]["gt_resized"] is True
    # without the q75 re-save the score differs: the re-encoding is part of the protocol
    plain = [structural_similarity(_rgb(p) / 255, np.asarray(Image.open(world["gt"] / f"{p.stem}.jpg").resize(
        (96, 128), Image.Resampling.LANCZOS)) / 255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=1.0, channel_axis=-1) for p in sorted(half.iterdir())]
    assert np.mean(plain) != pytest.approx(np.mean(ssim), abs=1e-4)


# --- HR-VITON: {person}_{cloth} names, grey SSIM, LPIPS at 128x128, sums over the number of GT files -------------
def test_hrviton_names_grey_ssim_and_its_divisor(world: dict[str, Path], half: Path, tmp_path: Path) -> None:
    pairs = dict(fm.read_pairs(world["data"] / fm.TEST_PAIRS_SAME))
    preds = tmp_path / "hr"
    preds.mkdir()
    for f in sorted(half.iterdir())[1:]:  # one person left out: the script still divides by all GT files
        person = f"{f.stem}.jpg"
        Image.open(f).save(preds / f"{f.stem}_{Path(pairs[person]).stem}.png")
    run = _evaluate(world, tmp_path / "run", "--paired", str(preds), "--protocol", "hr-viton")
    lp = _lpips_reference(world, "alex")
    ssim = mse = dist = 0.0
    for pred in sorted(preds.iterdir()):
        gt_im = Image.open(world["gt"] / (pred.name.split("_")[0] + "_0.jpg")).resize((96, 128),
                                                                                     Image.Resampling.BILINEAR)
        fake_im = Image.open(pred)
        ssim += structural_similarity(np.asarray(gt_im.convert("L")), np.asarray(fake_im.convert("L")),
                                      data_range=255, gaussian_weights=True, use_sample_covariance=False)
        mse += float(((np.asarray(fake_im, np.float64) - np.asarray(gt_im, np.float64)) / 255).__pow__(2).mean())
        small = [np.asarray(im.resize((128, 128), Image.Resampling.BILINEAR)) for im in (fake_im, gt_im)]
        dist += lp(*small)
    divisor = len(list(world["gt"].iterdir()))
    assert divisor == N and len(list(preds.iterdir())) == N - 1
    assert _value(run, "hr-viton", "paired/ssim") == pytest.approx(ssim / divisor, abs=1e-5)
    assert _value(run, "hr-viton", "paired/mse") == pytest.approx(mse / divisor, rel=1e-6)
    assert _value(run, "hr-viton", "paired/lpips") == pytest.approx(dist / divisor, rel=1e-4)


def test_hrviton_inception_score_is_torchvisions_imagenet_network_one_split(world: dict[str, Path],
                                                                           tmp_path: Path) -> None:
    from scipy.stats import entropy
    from torchvision.models import inception_v3

    pairs = dict(fm.read_pairs(world["data"] / fm.TEST_PAIRS))
    preds = tmp_path / "hr"
    preds.mkdir()
    for f in sorted((world["results"] / "unpaired" / fm.TRYON_DIR).iterdir()):
        (preds / f"{f.stem}_{Path(pairs[f.stem + '.jpg']).stem}.png").write_bytes(f.read_bytes())
    run = _evaluate(world, tmp_path / "run", "--unpaired", str(preds), "--protocol", "hr-viton")
    net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    net.load_state_dict(weights.load_state(world["weights"] / weights.IMAGENET_INCEPTION_FILE))
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(f).resize((299, 299), Image.Resampling.BILINEAR)))
                     .permute(2, 0, 1) for f in sorted(preds.iterdir())]).float() / 255
    with torch.no_grad():
        p = torch.softmax(net.eval()((x - 0.5) / 0.5), dim=1).double().numpy()
    expect = math.exp(np.mean([entropy(row, p.mean(0)) for row in p]))
    assert _value(run, "hr-viton", "unpaired/is") == pytest.approx(expect, rel=1e-5)


# --- CIT: RGB SSIM with each generated image's own range; IS in 10 floor parts ---------------------------------
def test_cit_ssim_range_and_inception_score(world: dict[str, Path], run_all: dict) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    pairs = fm.read_pairs(world["data"] / fm.TEST_PAIRS_SAME)
    ssim = []
    for person, _ in pairs:
        gen = _rgb(world["results"] / "paired" / fm.TRYON_DIR / f"{Path(person).stem}.png")
        ref = _rgb(world["gt"] / person)
        ssim.append(structural_similarity(ref, gen, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                          channel_axis=-1, data_range=int(gen.max()) - int(gen.min())))
    assert _value(run_all, "cit", "paired/ssim") == pytest.approx(np.mean(ssim), abs=1e-4)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["logits_unbiased"],
                                      feature_extractor_weights_path=str(world["weights"] / weights.INCEPTION_FILE))
    files = sorted((world["results"] / "unpaired" / fm.TRYON_DIR).iterdir())
    with torch.no_grad():
        logits = net(torch.stack([torch.from_numpy(_rgb(f)).permute(2, 0, 1) for f in files]))[0].double().numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    for i in range(10):  # CIT's IS.py: part i = rows [i N // 10, (i + 1) N // 10)
        part = p[i * N // 10:(i + 1) * N // 10]
        kl = part * (np.log(part) - np.log(part.mean(0, keepdims=True)))
        scores.append(math.exp(kl.sum(1).mean()))
    assert _value(run_all, "cit", "unpaired/is") == pytest.approx(np.mean(scores), rel=1e-5)


# --- VtonEval: PSNR pooled per batch, pytorch-fid next to clean-fid ------------------------------------------------
def test_vtoneval_pooled_psnr_and_pytorch_fid(world: dict[str, Path], run_all: dict) -> None:
    from pytorch_fid import fid_score
    from pytorch_fid import inception as pf_inception
    from torchmetrics.image import PeakSignalNoiseRatio

    pairs = fm.read_pairs(world["data"] / fm.TEST_PAIRS_SAME)
    psnr = PeakSignalNoiseRatio(data_range=1.0)
    fakes = [_rgb(world["results"] / "paired" / fm.TRYON_DIR / f"{Path(p).stem}.png") for p, _ in pairs]
    reals = [_rgb(world["gt"] / p) for p, _ in pairs]
    psnr.update(*(torch.from_numpy(np.stack(x)).permute(0, 3, 1, 2).float() / 255 for x in (fakes, reals)))
    assert _value(run_all, "vtoneval", "paired/psnr") == pytest.approx(psnr.compute().item(), rel=1e-5)
    local = weights.load_state(world["weights"] / weights.PYTORCH_FID_INCEPTION_FILE)
    with mock.patch.object(pf_inception, "load_state_dict_from_url", lambda *a, **k: local):
        expect = fid_score.calculate_fid_given_paths(
            [str(world["gt"]), str(world["results"] / "paired" / fm.TRYON_DIR)], 16, "cpu", 2048, num_workers=0)
    assert _value(run_all, "vtoneval", "paired/pytorch_fid") == pytest.approx(expect, rel=1e-4, abs=1e-6)


# --- results as the field writes them --------------------------------------------------------------------------
def test_flat_folder_files_are_all_accounted_for(world: dict[str, Path], tmp_path: Path) -> None:
    pairs = dict(fm.read_pairs(world["data"] / fm.TEST_PAIRS))
    folder = tmp_path / "unpaired" / "upper_body"  # nested category folder, {person}_{cloth} names, JPEG bytes
    folder.mkdir(parents=True)
    for i, f in enumerate(sorted((world["results"] / "unpaired" / fm.TRYON_DIR).iterdir())):
        im = Image.open(f).convert("RGB")
        buf = io.BytesIO()
        im.save(buf, format="JPEG" if i == 0 else "PNG")
        (folder / f"{f.stem}_{Path(pairs[f.stem + '.jpg']).stem}.png").write_bytes(buf.getvalue())
    (folder / "notes.txt").write_text("x")
    Image.new("RGB", (8, 8)).save(folder / "stray_999999.png")
    run = _evaluate(world, tmp_path / "run", "--unpaired", str(tmp_path / "unpaired"), "--protocol", "catvton",
                    "--protocol", "vton", "--metrics", "is")
    record = run["summary"]["results_files"]["unpaired"]
    assert record["found"] == N and record["name_forms"]["person_cloth"] == N
    assert len(record["jpeg"]) == 1 and record["ignored"][0].endswith("notes.txt")
    assert record["extra"][0].endswith("stray_999999.png") and record["missing"] == []
    assert run["summary"]["metrics"]["unpaired/is"]["all"]["n"] == N  # vton scored every matched file
    catvton = run["summary"]["protocols"]["catvton"]["inputs"]["unpaired"]
    assert catvton["predictions"] == N + 1 and catvton["dropped_unmatched"][0].endswith("stray_999999.png")


def test_an_undecodable_prediction_is_one_line_naming_it(world: dict[str, Path], half: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    for f in sorted(half.iterdir()):
        (folder / f.name).write_bytes(f.read_bytes())
    broken, cut = sorted(folder.iterdir())[2:4]
    broken.write_bytes(b"not an image")  # fails when its size is read, before any decoding
    cut.write_bytes(cut.read_bytes()[:40])  # a PNG header and nothing else: fails when decoded
    result = CliRunner().invoke(main, ["evaluate", str(world["data"]), "--paired", str(folder), "--out",
                                       str(tmp_path / "run"), "--protocol", "cit", "--weights-dir",
                                       str(world["weights"]), "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 1 and str(broken) in result.output and "cannot decode" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run" / fm.SUMMARY_FILE).exists()
    broken.write_bytes((half / broken.name).read_bytes())
    result = CliRunner().invoke(main, ["evaluate", str(world["data"]), "--paired", str(folder), "--out",
                                       str(tmp_path / "run"), "--protocol", "cit", "--weights-dir",
                                       str(world["weights"]), "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 1 and str(cut) in result.output and "Traceback" not in result.output

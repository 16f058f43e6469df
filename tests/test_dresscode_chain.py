"""DressCode through every command, as a user runs them (synth -> prepare -> train a few steps -> evaluate, inference
included -> report), and its per-category scores checked by hand: each category's per-image statistics from skimage,
its FID and KID from torchmetrics on features taken here with torch-fidelity against that category's own real
images."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tests.eval_fixtures import GivenFeatures, save_random_weights
from vton.cli import main
from vton.core import formats as fm
from vton.eval import weights
from vton.pipelines.layouts import LAYOUTS
from vton.pipelines.synth.generate import synthesize

pytestmark = pytest.mark.xdist_group("dresscode_chain")
CATEGORIES = ("upper_body", "lower_body", "dresses")
SIZE_WH = (96, 128)  # the results' size: the scoring size


def _ok(*args: object) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a / 255, b / 255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0, channel_axis=-1)


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 pairs: 12 per category, 2 test models in each."""
    root = tmp_path_factory.mktemp("dc_chain") / "DressCode"
    synthesize(root, 36, 5, layout="dresscode")
    return root


def test_dresscode_synth_prepare_train_evaluate_report(dc: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    _ok("prepare", dc, data, "--workers", 1)
    common = ("--width", 4, "--steps", 2, "--batch-size", 2, "--workers", 0, "--device", "cpu")
    _ok("train", "gmm", data, "--out", tmp_path / "gmm", *common)
    _ok("train", "tom", data, "--out", tmp_path / "tom", "--gmm", tmp_path / "gmm" / "gmm_final.pth",
        "--lambda-vgg", 0, *common)
    run = tmp_path / "run"
    printed = _ok("evaluate", data, "--checkpoint", tmp_path / "tom" / "tom_final.pth", "--out", run, "--metrics",
                  "ssim,psnr,iou,ssim_cloth", "--device", "cpu", "--workers", 0)
    summary = json.loads((run / fm.SUMMARY_FILE).read_text())
    frame = pd.read_parquet(run / fm.METRICS_FILE)
    folder = LAYOUTS["dresscode"].test_folders(dc)
    persons = [p for p, _ in LAYOUTS["dresscode"].read_test_pairs(dc, "paired")]
    assert summary["categories"]["names"] == list(CATEGORIES)
    assert summary["categories"]["persons"] == {c: 2 for c in CATEGORIES}
    paired = frame[frame.setting == "paired"]
    assert dict(zip(paired.person, paired.category)) == {p: folder(p) for p in persons}
    for person in persons:  # each try-on against the prepared ground truth, by skimage
        fake = np.asarray(Image.open(run / "results" / "paired" / fm.TRYON_DIR / f"{Path(person).stem}.png"))
        real = np.asarray(Image.open(data / "test" / fm.IMAGE_DIR / person).convert("RGB"))
        value = paired[(paired.metric == "ssim") & (paired.person == person)]["value"].item()
        assert value == pytest.approx(_ssim(fake, real), abs=1e-4)
    for category in CATEGORIES:  # a category's statistics are those of its own images
        values = paired[(paired.metric == "iou") & (paired.category == category)]["value"]
        entry = summary["metrics"]["paired/iou"][category]
        assert entry["n"] == 2 and entry["mean"] == pytest.approx(values.mean())
    assert "by garment category" in printed and "lower_body" in printed
    _ok("report", run)
    html = (run / "report.html").read_text()
    assert "By garment category" in html and "dresses" in html


@pytest.fixture(scope="module")
def outputs(dc: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Try-ons as DressCode methods write them, at 128x96: each test model's photo plus noise growing with their
    index, under paired/<category>/ and unpaired/<category>/ (nested, as LaDI-VTON) and flat under unpaired-flat/;
    the real photos at that size; random weights for every network."""
    root = tmp_path_factory.mktemp("dc_outputs")
    folder = LAYOUTS["dresscode"].test_folders(dc)
    persons = [p for p, _ in LAYOUTS["dresscode"].read_test_pairs(dc, "paired")]
    real, fake = {}, {}
    for i, person in enumerate(persons):
        image = Image.open(dc / folder(person) / "images" / person).convert("RGB")
        real[person] = np.asarray(image.resize(SIZE_WH, Image.Resampling.BICUBIC))
        noise = np.random.default_rng(i).normal(0, 4 + 4 * i, (SIZE_WH[1], SIZE_WH[0], 3))
        fake[person] = np.clip(np.asarray(image.resize(SIZE_WH), np.float64) + noise, 0, 255).astype(np.uint8)
        for where in (root / "paired" / folder(person), root / "unpaired" / folder(person), root / "unpaired-flat"):
            where.mkdir(parents=True, exist_ok=True)
            Image.fromarray(fake[person]).save(where / f"{person[:-4]}.png")
    return {"root": root, "persons": persons, "folder": folder, "real": real, "fake": fake,
            "weights": save_random_weights(root / "weights")}


def test_per_category_scores_by_hand(dc: Path, outputs: dict, tmp_path: Path) -> None:
    """The released tree, paired results nested by category, unpaired flat: SSIM and PSNR per category from
    skimage; FID and KID per category from torchmetrics on pool3 features taken here, each category's generated
    images against its own real images, 'all' against all of them."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    persons, folder, real, fake = (outputs[k] for k in ("persons", "folder", "real", "fake"))
    run = tmp_path / "run"
    _ok("evaluate", dc, "--paired", outputs["root"] / "paired", "--unpaired", outputs["root"] / "unpaired-flat",
        "--out", run, "--metrics", "ssim,psnr,fid,kid", "--weights-dir", outputs["weights"], "--kid-subset-size", 2,
        "--bootstrap", 50, "--device", "cpu", "--workers", 0)
    summary = json.loads((run / fm.SUMMARY_FILE).read_text())
    metrics = summary["metrics"]

    by_category = {c: [p for p in persons if folder(p) == c] for c in CATEGORIES}
    for category, members in {**by_category, "all": persons}.items():
        ssim = np.array([_ssim(fake[p], real[p]) for p in members])
        psnr = np.array([peak_signal_noise_ratio(real[p], fake[p], data_range=255) for p in members])
        for name, values in (("paired/ssim", ssim), ("paired/psnr", psnr)):
            entry = metrics[name][category]
            assert entry["n"] == len(members)
            assert entry["mean"] == pytest.approx(values.mean(), abs=1e-4)
            assert entry["std"] == pytest.approx(values.std(ddof=1), abs=1e-3)

    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(
        outputs["weights"] / weights.INCEPTION_FILE)).eval()

    def pool3(members: list[str], images: dict[str, np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack([images[p] for p in members])).permute(0, 3, 1, 2)
        with torch.no_grad():
            return net(batch)[0].double()

    for category, members in {**by_category, "all": persons}.items():
        ref, gen = pool3(members, real), pool3(members, fake)
        assert metrics["unpaired/fid"][category]["n"] == metrics["unpaired/kid"][category]["n"] == len(members)
        if len(members) == 2:  # a subset of 2 out of 2 is the whole set, whatever the draw
            kid = KernelInceptionDistance(feature=GivenFeatures(), subsets=3, subset_size=2)
            kid.update(ref, real=True)
            kid.update(gen, real=False)
            assert metrics["unpaired/kid"][category]["mean"] == pytest.approx(kid.compute()[0].item(), rel=1e-3)
        if category == "dresses":  # one category's FID: torchmetrics' 2048 x 2048 eigenproblem is slow on a CPU
            fid = FrechetInceptionDistance(feature=GivenFeatures())
            fid.set_dtype(torch.float64)
            fid.update(ref, real=True)
            fid.update(gen, real=False)
            assert metrics["unpaired/fid"][category]["mean"] == pytest.approx(fid.compute().item(), rel=1e-3)
    assert summary["protocol"]["kid"]["subset_size_used"]["dresses"] == 2


def test_ladi_vton_scores_each_category_against_its_paired_persons(dc: Path, outputs: dict, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """LaDI-VTON on DressCode (val_metrics.py, generate_fid_stats.py): clean-fid's statistics of a category are its
    persons of the paired list at full resolution (``dresscode_<category>``), scored against the outputs in
    ``<results>/<category>/``; 'all' is every category's persons against every output. Checked with clean-fid
    itself, called the same way, and SSIM per category with skimage on the bilinear-shrunk ground truth."""
    import shutil

    import cleanfid
    import cleanfid.fid
    from cleanfid.inception_torchscript import InceptionV3W

    persons, folder, fake = outputs["persons"], outputs["folder"], outputs["fake"]
    run = tmp_path / "run"
    _ok("evaluate", dc, "--unpaired", outputs["root"] / "unpaired", "--out", run, "--protocol", "ladi-vton",
        "--weights-dir", outputs["weights"], "--seed", 3, "--bootstrap", 50, "--device", "cpu", "--workers", 0)
    block = json.loads((run / fm.SUMMARY_FILE).read_text())["protocols"]["ladi-vton"]["metrics"]
    for category in CATEGORIES:
        members = [p for p in persons if folder(p) == category]
        ssim = [_ssim(fake[p], np.asarray(Image.open(dc / category / "images" / p).convert("RGB").resize(
            SIZE_WH, Image.Resampling.BILINEAR)))
                for p in members]
        assert block["unpaired/ssim"]["categories"][category] == pytest.approx(np.mean(ssim), abs=1e-5)

    monkeypatch.setattr(cleanfid, "__file__", str(tmp_path / "cleanfid" / "__init__.py"))
    model = InceptionV3W(str(outputs["weights"]), download=False)
    monkeypatch.setattr(cleanfid.fid, "build_feature_extractor", lambda *a, **k: model)
    cpu = {"mode": "clean", "device": torch.device("cpu"), "num_workers": 0, "verbose": False}
    for category in CATEGORIES:  # generate_fid_stats.py: the category's paired persons copied to one folder
        copy = tmp_path / "dresscode" / category
        copy.mkdir(parents=True)
        for person in (p for p in persons if folder(p) == category):
            shutil.copy(dc / category / "images" / person, copy / person)
        cleanfid.fid.make_custom_stats(f"dresscode_{category}", str(copy), **cpu)
        np.random.seed(3)
        kid = cleanfid.fid.compute_kid(str(outputs["root"] / "unpaired" / category),
                                       dataset_name=f"dresscode_{category}", dataset_split="custom", **cpu)
        assert block["unpaired/kid"]["categories"][category] == pytest.approx(kid, rel=1e-4, abs=1e-7)
    cleanfid.fid.make_custom_stats("dresscode_all", str(tmp_path / "dresscode"), **cpu)
    fid = cleanfid.fid.compute_fid(str(outputs["root"] / "unpaired"), dataset_name="dresscode_all",
                                   dataset_split="custom", **cpu)
    assert block["unpaired/fid"]["value"] == pytest.approx(fid, rel=1e-4, abs=1e-6)
    assert set(block["unpaired/fid"]["categories"]) == set(CATEGORIES)

"""`vton evaluate` end to end on a tiny CP-VTON-layout dataset with results folders made by the test."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tests.eval_fixtures import (
    eval_world,
    load_sliced_backbone,
    make_results,
    png_header_only,
    save_random_alexnet,
    save_random_inception,
    save_random_vgg16_features,
)
from vton.cli import main
from vton.core import formats as fm
from vton.core.io import sha256_file
from vton.eval import weights
from vton.eval.registry import ALL_METRICS, HIGHER_IS_BETTER, PAIRED_METRICS, SPECS, UNPAIRED_METRICS
from vton.eval.run import evaluate
from vton.eval.settings import Settings
from vton.eval.summary import EXIT_SKIPPED

pytestmark = pytest.mark.xdist_group("eval_protocol")
N = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    def save(folder: Path) -> None:  # the default metrics' networks only
        for write in (save_random_alexnet, save_random_inception, save_random_vgg16_features):
            write(folder)

    return eval_world(tmp_path_factory.mktemp("eval"), N, save)


@pytest.fixture(scope="module")
def run(world: dict[str, Path]) -> dict:
    """One full CLI run; the TORCH_HOME it sees is empty, so the weights can only come from --weights-dir."""
    out = world["root"] / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(world["root"] / "empty_home"))
        result = CliRunner().invoke(main, [
            "evaluate", str(world["data"]), "--results", str(world["results"]), "--out", str(out),
            "--weights-dir", str(world["weights"]), "--device", "cpu", "--workers", "0", "--batch-size", "4",
            "--is-splits", "2", "--kid-subset-size", "4", "--subset-size", "2", "--bootstrap", "200"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return {"out": out, "output": result.output, "frame": pd.read_parquet(out / "metrics.parquet"),
            "summary": json.loads((out / "summary.json").read_text())}


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255


def test_metrics_parquet_rows_match_independent_computations(world: dict[str, Path], run: dict) -> None:
    frame = run["frame"]
    import lpips
    import torchmetrics.functional.image.dists as tm_dists
    from torchvision.models import vgg16

    assert list(frame.columns) == ["setting", "person", "cloth", "metric", "value", "large", "small", "protocol",
                                   "category"]
    assert frame["value"].dtype == np.float64 and set(frame.protocol) == {"vton"}
    assert set(frame.category) == {""}  # VITON has no garment categories
    test = world["data"] / "test"
    paired = frame[frame.setting == "paired"]
    assert sorted(paired.metric.unique()) == ["dists", "iou", "lpips", "lpips_cloth", "psnr", "ssim", "ssim_cloth"]
    lpips_map = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, spatial=True, verbose=False)
    load_sliced_backbone(lpips_map.net, weights.load_state(world["weights"] / weights.ALEXNET_FILE))
    vgg = vgg16(weights=None)
    vgg.load_state_dict(weights.load_state(world["weights"] / weights.VGG16_FILE), strict=False)
    for person in sorted(paired.person.unique()):
        stem = Path(person).stem
        real, fake = _rgb(test / fm.IMAGE_DIR / person), _rgb(world["results"] / "paired/try-on" / f"{stem}.png")
        row = paired[paired.person == person].set_index("metric")["value"]
        expect = structural_similarity(fake, real, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1.0, channel_axis=-1)
        assert row["ssim"] == pytest.approx(expect, abs=1e-4)
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(real, fake, data_range=1.0), abs=1e-6)
        labels = np.asarray(Image.open(test / fm.PARSE_DIR / fm.parse_name(person)))
        region = np.isin(labels, (5, 6, 7))
        warp = np.asarray(Image.open(world["results"] / "paired/warp-mask" / f"{stem}.png")) >= 128
        assert row["iou"] == pytest.approx((region & warp).sum() / (region | warp).sum())
        as_tensor = [torch.from_numpy(a).permute(2, 0, 1)[None].float() for a in (fake, real)]
        with torch.no_grad():
            lp_map = lpips_map(as_tensor[0] * 2 - 1, as_tensor[1] * 2 - 1)[0, 0].numpy()
            with mock.patch.object(tm_dists, "vgg16", lambda **_: vgg):
                dists = tm_dists.deep_image_structure_and_texture_similarity(*as_tensor, reduction="none")
        assert row["lpips_cloth"] == pytest.approx(lp_map[region].mean(), rel=1e-4)
        assert row["dists"] == pytest.approx(float(dists), abs=1e-5)
        assert paired[paired.person == person].cloth.iloc[0] == fm.cloth_name(stem[:-2])
    cloth_rows = frame[frame.setting == "cloth"]
    assert len(cloth_rows) == N and set(cloth_rows.metric) == {"tv"} and set(cloth_rows.person) == {""}
    for _, r in cloth_rows.iterrows():
        img = _rgb(test / fm.CLOTH_DIR / r.cloth)
        tv = (np.abs(np.diff(img, axis=0)).sum() + np.abs(np.diff(img, axis=1)).sum()) / img.size
        assert r.value == pytest.approx(tv, rel=1e-5)
    ranked = cloth_rows.sort_values("value").cloth.tolist()
    assert set(cloth_rows[cloth_rows.large].cloth) == set(ranked[-2:])
    assert set(cloth_rows[cloth_rows.small].cloth) == set(ranked[:2])
    # a paired row is flagged by its own cloth's subset
    flags = cloth_rows.set_index("cloth")["large"]
    assert (paired.large.to_numpy() == flags.loc[paired.cloth].to_numpy()).all()


def test_summary_follows_the_contract(world: dict[str, Path], run: dict) -> None:
    s, frame = run["summary"], run["frame"]
    assert s["run"] == "run" and s["data"] == str(world["data"].resolve())
    assert s["results"] == {k: str((world["results"] / k).resolve()) for k in ("paired", "unpaired")}
    assert s["skipped"] == {}
    expected = {f"paired/{m}" for m in ("ssim", "lpips", "lpips_cloth", "dists", "iou", "ssim_cloth", "psnr")} | {
        f"unpaired/{m}" for m in ("is", "fid", "kid")} | {"cloth/tv"}
    assert set(s["metrics"]) == expected
    for name in ("paired/ssim", "paired/lpips", "paired/psnr", "cloth/tv"):
        setting, metric = name.split("/")
        values = frame[(frame.setting == setting) & (frame.metric == metric)]
        for subset in ("all", "large", "small"):
            v = values.value if subset == "all" else values[values[subset]].value
            entry = s["metrics"][name][subset]
            assert entry["n"] == len(v)
            assert entry["mean"] == pytest.approx(v.mean()) and entry["std"] == pytest.approx(v.std(ddof=1))
            lo, hi = entry["ci95"]
            assert v.min() <= lo <= entry["mean"] <= hi <= v.max()
    for metric in ("is", "fid", "kid"):
        assert s["metrics"][f"unpaired/{metric}"]["all"]["ci95"] is None
        assert s["metrics"][f"unpaired/{metric}"]["all"]["n"] == N
        assert s["metrics"][f"unpaired/{metric}"]["large"]["n"] == 2
    # noise grows with the person index in the fixture: SSIM falls, LPIPS rises
    ssim = frame[(frame.metric == "ssim")].sort_values("person").value.to_numpy()
    assert (np.diff(ssim) < 0).all()
    p = s["protocol"]
    assert p["ssim"]["data_range"] == 1.0 and p["inception_score"]["splits"] == 2
    assert p["lpips"]["weights"]["backbone"]["official_hash"] is False
    assert p["tv"]["subset_size_used"] == 2 and "torch" in p["versions"]
    assert set(HIGHER_IS_BETTER) == {"ssim", "lpips", "lpips_cloth", "dists", "iou", "ssim_cloth", "psnr", "is", "fid",
                                     "kid"}
    assert "paired/ssim" in run["output"] and "unpaired/is" in run["output"]
    for name, spec in SPECS.items():  # each row's definition is recorded, from the table
        assert p["inception_score" if name == "is" else name]["definition"] == spec.definition
    assert ",".join(ALL_METRICS) in "".join(CliRunner().invoke(main, ["evaluate", "--help"]).output.split())


def test_scores_ignore_batch_size_and_pair_order(world: dict[str, Path], run: dict, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.symlink_to(world["data"])
    shuffled = tmp_path / "shuffled"
    shuffled.mkdir()
    for sub in ("test",):
        (shuffled / sub).symlink_to(world["data"] / sub)
    for name in (fm.TEST_PAIRS, fm.TEST_PAIRS_SAME):
        lines = (world["data"] / name).read_text().splitlines()
        (shuffled / name).write_text("\n".join(reversed(lines)) + "\n")
    settings = Settings(device="cpu", workers=1, batch_size=3, is_splits=2, kid_subset_size=4, subset_size=2,
                        n_boot=200, weights_dir=world["weights"], progress=False)
    summary = evaluate(shuffled, {k: world["results"] / k for k in ("paired", "unpaired")}, tmp_path / "again",
                       settings)
    again = pd.read_parquet(tmp_path / "again" / "metrics.parquet")
    pd.testing.assert_frame_equal(again.drop(columns="value"), run["frame"].drop(columns="value"))
    assert np.allclose(again.value, run["frame"].value, rtol=1e-5, atol=1e-6)
    for name, entry in run["summary"]["metrics"].items():
        for subset, e in entry.items():
            assert summary["metrics"][name][subset]["mean"] == pytest.approx(e["mean"], rel=1e-5), (name, subset)


def test_missing_weights_skip_only_their_metrics(world: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Metrics named with --metrics that cannot run: recorded as skipped with why, exit 4 (0 with --allow-skips)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    (tmp_path / "results" / "paired").mkdir(parents=True)
    (tmp_path / "results" / "paired" / "try-on").symlink_to(world["results"] / "paired" / "try-on")
    args = ["evaluate", str(world["data"]), "--results", str(tmp_path / "results"), "--out", str(tmp_path / "run"),
            "--metrics", "ssim,lpips,iou,is", "--device", "cpu", "--workers", "0"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == EXIT_SKIPPED == 4, result.output
    assert "error: named metrics not computed: lpips (missing weights file" in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    skipped = summary["skipped"]
    assert weights.ALEXNET_FILE in skipped["lpips"]
    assert str(tmp_path / "home" / "hub" / "checkpoints") in skipped["lpips"]
    assert "warp-mask missing" in skipped["iou"]
    assert "no unpaired try-on results" in skipped["is"]
    assert set(summary["metrics"]) == {"paired/ssim", "cloth/tv"}
    assert summary["missing_weights"] == [skipped["lpips"]]  # only the weights, not the other skips
    assert f"warning: {skipped['lpips']}" in result.output
    assert not (tmp_path / "home" / "hub" / "checkpoints" / weights.ALEXNET_FILE).exists()  # nothing downloaded
    assert CliRunner().invoke(main, [*args, "--allow-skips"]).exit_code == 0
    # all metrics by default (none named): what cannot run is a note, not a failure
    default = CliRunner().invoke(main, [a for a in args if a not in ("--metrics", "ssim,lpips,iou,is")])
    assert default.exit_code == 0 and "skipped lpips: missing weights file" in default.output


def test_empty_or_too_small_pairs_lists_skip_with_the_reason(world: dict[str, Path], tmp_path: Path) -> None:
    """Every metric is computed or listed as skipped: empty pairs files, one unpaired person (no FID / KID)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "test").symlink_to(world["data"] / "test")
    (data / fm.TEST_PAIRS_SAME).write_text("\n")
    (data / fm.TEST_PAIRS).write_text("")
    base = ["evaluate", str(data), "--results", str(world["results"]), "--device", "cpu", "--workers", "0",
            "--weights-dir", str(world["weights"])]
    result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "empty")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "empty" / "summary.json").read_text())
    assert set(summary["metrics"]) == {"cloth/tv"}
    assert summary["skipped"] == {**{m: f"{data / fm.TEST_PAIRS_SAME} lists no pairs" for m in PAIRED_METRICS},
                                  **{m: f"{data / fm.TEST_PAIRS} lists no pairs" for m in UNPAIRED_METRICS}}
    named = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "named"), "--metrics", "ssim"])
    assert named.exit_code == 4 and "ssim (" in named.output and "lists no pairs" in named.output
    (data / fm.TEST_PAIRS).write_text((world["data"] / fm.TEST_PAIRS).read_text().splitlines()[0] + "\n")
    one = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "one"), "--metrics", "is,fid,kid"])
    assert one.exit_code == 4, one.output
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["metrics"]["unpaired/is"]["all"]["n"] == 1  # IS of one image is defined (1.0)
    assert (
        summary["skipped"]["fid"] == summary["skipped"]["kid"] == "no value could be computed from the 1 images scored"
    )
    assert "unpaired/fid" not in summary["metrics"] and "unpaired/kid" not in summary["metrics"]


def test_missing_inception_weights_are_named(world: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    summary = evaluate(world["data"], {"paired": None, "unpaired": world["results"] / "unpaired"}, tmp_path / "run",
                       Settings(metrics=("fid",), device="cpu", workers=0, progress=False))
    assert weights.INCEPTION_FILE in summary["skipped"]["fid"]
    assert set(summary["metrics"]) == {"cloth/tv"}


def _bundle(path: Path, seed: int) -> Path:
    """Random GMM + TOM of width 4: a checkpoint that runs inference in a moment."""
    from vton.models.checkpoint import save_bundle
    from vton.models.config import ModelConfig
    from vton.models.gmm import GMM
    from vton.models.tom import TOM

    torch.manual_seed(seed)
    return save_bundle(path, ModelConfig("cpvton", 4, 4), gmm=GMM("cpvton", 4), tom=TOM("cpvton", 4))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_checkpoint_runs_reuse_resume_or_refuse(world: dict[str, Path], tmp_path: Path) -> None:
    """Scores belong to the weights named: RUN/results is reused or resumed for the same checkpoints (by content),
    and refused, in one line, for others."""
    a, b = _bundle(tmp_path / "a.pth", 0), _bundle(tmp_path / "b.pth", 1)
    run = tmp_path / "run"

    def evaluate_with(ckpt: Path) -> Any:
        return CliRunner().invoke(main, ["evaluate", str(world["data"]), "--checkpoint", str(ckpt), "--out", str(run),
                                         "--metrics", "ssim", "--device", "cpu", "--workers", "0"])

    first = evaluate_with(a)
    assert first.exit_code == 0, first.output + repr(first.exception)
    summary = json.loads((run / "summary.json").read_text())
    sha_a, sha_b = sha256_file(a), sha256_file(b)
    assert summary["checkpoints"] == [{"path": str(a.resolve()), "sha256": sha_a}]
    assert {s: r["pairs"] for s, r in summary["inference"].items()} == {"paired": "paired", "unpaired": "unpaired"}
    results = _files(run / "results")
    assert sum(k.startswith("paired/try-on/") for k in results) == N

    assert evaluate_with(a).exit_code == 0  # reused: nothing rewritten, the same scores
    assert _files(run / "results") == results
    assert json.loads((run / "summary.json").read_text())["metrics"] == summary["metrics"]
    victim = run / "results" / "unpaired" / "try-on" / "000002_0.png"
    victim.unlink()
    renamed = tmp_path / "renamed.pth"
    renamed.write_bytes(a.read_bytes())
    assert evaluate_with(renamed).exit_code == 0  # an interrupted run resumes, with the same weights under any name
    assert _files(run / "results") == results

    other = evaluate_with(b)
    assert other.exit_code == 1 and "Traceback" not in other.output
    assert other.output.count("\n") == 1 and "another run" in other.output and "new --out" in other.output
    assert f"checkpoints: recorded {sha_a[:12]}, requested {sha_b[:12]}" in other.output
    assert json.loads((run / "summary.json").read_text())["metrics"] == summary["metrics"]  # A's scores stay A's
    both = CliRunner().invoke(main, ["evaluate", str(world["data"]), "--checkpoint", str(a), "--out", str(run),
                                     "--results", str(world["results"])])
    assert both.exit_code != 0 and "exactly one" in both.output


def test_results_runs_record_what_made_them(world: dict[str, Path], tmp_path: Path) -> None:
    """--results: summary.json records each folder's infer.json; mixed weights or the wrong pairs are refused."""
    results = tmp_path / "results"
    for setting in ("paired", "unpaired"):
        (results / setting).mkdir(parents=True)
        (results / setting / "try-on").symlink_to(world["results"] / setting / "try-on")
    args = ["evaluate", str(world["data"]), "--results", str(results), "--metrics", "ssim", "--device", "cpu",
            "--workers", "0"]
    assert CliRunner().invoke(main, [*args, "--out", str(tmp_path / "plain")]).exit_code == 0
    plain = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert plain["checkpoints"] is None and plain["inference"] == {"paired": None, "unpaired": None}

    made = {s: {"checkpoints": [{"path": "/x/a.pth", "sha256": "a" * 64}], "split": "test", "pairs": s}
            for s in ("paired", "unpaired")}
    for setting, meta in made.items():
        (results / setting / "infer.json").write_text(json.dumps(meta))
    assert CliRunner().invoke(main, [*args, "--out", str(tmp_path / "known")]).exit_code == 0
    known = json.loads((tmp_path / "known" / "summary.json").read_text())
    assert known["checkpoints"] == made["paired"]["checkpoints"] and known["inference"] == made

    (results / "unpaired" / "infer.json").write_text(json.dumps({**made["unpaired"], "checkpoints": [
        {"path": "/x/a.pth", "sha256": "b" * 64}]}))
    mixed = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "mixed")])
    assert mixed.exit_code == 1 and "different checkpoints" in mixed.output and "b" * 12 in mixed.output
    (results / "unpaired" / "infer.json").write_text(json.dumps({**made["unpaired"], "pairs": "paired"}))
    swapped = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "swapped")])
    assert swapped.exit_code == 1 and "not the unpaired test pairs" in swapped.output
    assert not (tmp_path / "mixed").exists() and not (tmp_path / "swapped").exists()


def test_scoring_runs_in_ieee_fp32_and_restores_the_settings(world: dict[str, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """cuDNN's TF32 default (Ampere and newer) would make scores depend on the GPU; the caller's settings come back."""
    from vton.eval import metrics

    seen = []
    real_ssim_map = metrics.ssim_map

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        cudnn = torch.backends.cudnn
        seen.append((cudnn.allow_tf32, cudnn.deterministic, torch.get_float32_matmul_precision()))
        return real_ssim_map(*args, **kwargs)

    monkeypatch.setattr(metrics, "ssim_map", spy)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        summary = evaluate(world["data"], {"paired": world["results"] / "paired", "unpaired": None}, tmp_path,
                           Settings(metrics=("ssim",), device="cpu", workers=0, progress=False))
        after = (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic,
                 torch.get_float32_matmul_precision())
    finally:
        torch.set_float32_matmul_precision(before)
    assert seen and set(seen) == {(False, True, "highest")}
    assert after == (True, False, "medium")
    assert "TF32 off" in summary["protocol"]["precision"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scores_equal_cpu_scores(world: dict[str, Path], run: dict, tmp_path: Path) -> None:
    settings = Settings(device="cuda", workers=2, batch_size=4, is_splits=2, kid_subset_size=4, subset_size=2,
                        n_boot=200, weights_dir=world["weights"], progress=False)
    summary = evaluate(world["data"], {k: world["results"] / k for k in ("paired", "unpaired")}, tmp_path, settings)
    again = pd.read_parquet(tmp_path / "metrics.parquet")
    assert np.allclose(again.value, run["frame"].value, rtol=1e-4, atol=1e-5)
    for name, entry in run["summary"]["metrics"].items():
        assert summary["metrics"][name]["all"]["mean"] == pytest.approx(entry["all"]["mean"], rel=1e-3), name


def test_evaluate_reads_a_synth_dataset(synth_cpvton: Path, tmp_path: Path) -> None:
    """The layout `vton synth` writes (palette parse maps, its own pairs files) evaluates as is."""
    same = [line.split()[0] for line in (synth_cpvton / fm.TEST_PAIRS_SAME).read_text().splitlines()]
    make_results(tmp_path / "results", synth_cpvton, same)
    summary = evaluate(synth_cpvton, {"paired": tmp_path / "results" / "paired", "unpaired": None}, tmp_path / "run",
                       Settings(metrics=("ssim", "iou", "ssim_cloth"), device="cpu", workers=0, progress=False))
    assert summary["skipped"] == {}
    assert summary["metrics"]["paired/ssim"]["all"]["n"] == len(same)
    assert 0 < summary["metrics"]["paired/iou"]["all"]["mean"] <= 1
    n_cloths = len(list((synth_cpvton / "test" / fm.CLOTH_DIR).iterdir()))
    assert summary["metrics"]["cloth/tv"]["all"]["n"] == n_cloths


def test_bad_pairs_files_are_refused_with_the_line(world: dict[str, Path], tmp_path: Path) -> None:
    from vton.core.formats import read_pairs

    bad = tmp_path / "pairs.txt"
    bad.write_text("000000_0.jpg 000000_1.jpg\n000001_0.jpg\n")
    with pytest.raises(ValueError, match=r"pairs.txt:2"):
        read_pairs(bad)
    bad.write_text("000000_0.jpg 000000_1.jpg\n000000_0.jpg 000001_1.jpg\n")
    with pytest.raises(ValueError, match="listed twice"):
        read_pairs(bad, unique_persons=True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "test").symlink_to(world["data"] / "test")
    (data / fm.TEST_PAIRS_SAME).write_text("999999_0.jpg 000000_1.jpg\n")
    result = CliRunner().invoke(main, ["evaluate", str(data), "--results", str(world["results"]), "--out",
                                       str(tmp_path / "run"), "--metrics", "ssim", "--device", "cpu", "--workers", "0"])
    assert result.exit_code == 1 and "999999_0.jpg" in result.output and "missing" in result.output
    assert not (tmp_path / "run" / "summary.json").exists()


def _grey_copy(world: dict[str, Path], root: Path, sixteen: bool) -> tuple[Path, Path]:
    """The dataset and paired results in grey: 8-bit, or the same levels in 16 bits (v * 257), parse maps included.
    The warp-masks get a level 100 ring (below the 128 threshold) so an inexact reading changes the IoU."""
    def save(levels: np.ndarray, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((levels.astype(np.uint16) * 257) if sixteen else levels.astype(np.uint8)).save(path)

    data, results = root / "data", root / "results" / "paired"
    data.mkdir(parents=True)
    for name in (fm.TEST_PAIRS, fm.TEST_PAIRS_SAME):
        (data / name).symlink_to(world["data"] / name)
    for sub in (fm.IMAGE_DIR, fm.CLOTH_DIR):
        (data / "test" / sub).mkdir(parents=True)
        for f in (world["data"] / "test" / sub).iterdir():
            (data / "test" / sub / f.name).symlink_to(f)
    for f in (world["data"] / "test" / fm.PARSE_DIR).iterdir():
        labels = np.asarray(Image.open(f))
        if sixteen:  # label indices are not levels: stored as they are
            (data / "test" / fm.PARSE_DIR).mkdir(parents=True, exist_ok=True)
            Image.fromarray(labels.astype(np.uint16)).save(data / "test" / fm.PARSE_DIR / f.name)
        else:
            save(labels, data / "test" / fm.PARSE_DIR / f.name)
    for f in (world["results"] / "paired" / fm.TRYON_DIR).iterdir():
        save(np.asarray(Image.open(f).convert("L")), results / fm.TRYON_DIR / f.name)
    for f in (world["results"] / "paired" / fm.WARP_MASK_DIR).iterdir():
        mask = np.asarray(Image.open(f)).copy()
        mask[:, :20] = 100
        save(mask, results / fm.WARP_MASK_DIR / f.name)
    return data, results


def test_16_bit_images_score_as_their_8_bit_levels(world: dict[str, Path], tmp_path: Path) -> None:
    """A 16-bit grey try-on, warp-mask and parse map (PIL mode I;16) score exactly like the 8-bit files."""
    settings = Settings(metrics=("ssim", "iou", "ssim_cloth"), device="cpu", workers=0, progress=False)
    scores = []
    for sixteen in (False, True):
        data, results = _grey_copy(world, tmp_path / str(sixteen), sixteen)
        with Image.open(next((results / fm.TRYON_DIR).iterdir())) as im:
            assert im.mode == ("I;16" if sixteen else "L")
        evaluate(data, {"paired": results, "unpaired": None}, tmp_path / f"run{sixteen}", settings)
        scores.append(pd.read_parquet(tmp_path / f"run{sixteen}" / "metrics.parquet"))
    pd.testing.assert_frame_equal(scores[0], scores[1])
    iou = scores[1][scores[1].metric == "iou"].set_index("person").value
    assert iou["000000_0.jpg"] == 1.0  # its warp-mask is the cloth region plus the ring at level 100 (not cloth)


@pytest.mark.parametrize("fault", ["transparent", "bomb", "truncated"])
def test_an_undecodable_result_is_named_in_one_line(world: dict[str, Path], tmp_path: Path, fault: str) -> None:
    """Decoded in a DataLoader worker process (--workers 1), the file is still named in one line, exit 1."""
    results = tmp_path / "results"
    shutil.copytree(world["results"], results)
    bad = results / "paired" / fm.TRYON_DIR / "000002_0.png"
    if fault == "transparent":
        Image.open(bad).convert("RGBA").save(bad)  # fully opaque: decodes as its RGB
        CliRunner().invoke(main, ["evaluate", str(world["data"]), "--results", str(results), "--out",
                                  str(tmp_path / "ok"), "--metrics", "ssim", "--device", "cpu", "--workers", "1"])
        assert (tmp_path / "ok" / "summary.json").is_file()
        rgba = np.asarray(Image.open(bad)).copy()
        rgba[0, 0, 3] = 0
        Image.fromarray(rgba).save(bad)
    elif fault == "bomb":
        png_header_only(bad, 30_000, 30_000)
    else:
        bad.write_bytes(bad.read_bytes()[:3000])
    result = CliRunner().invoke(main, ["evaluate", str(world["data"]), "--results", str(results), "--out",
                                       str(tmp_path / "run"), "--metrics", "ssim", "--device", "cpu", "--workers", "1"])
    assert result.exit_code == 1, result.output + repr(result.exception)
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and error[0].startswith(f"Error: {bad}: ")
    assert {"transparent": "1 pixels are transparent", "bomb": "decompression bomb",
            "truncated": "truncated"}[fault] in error[0]
    assert "Traceback" not in result.output and "worker" not in result.output
    assert not (tmp_path / "run" / "summary.json").exists()

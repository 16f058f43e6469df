"""Training: loss falls, seeded runs are byte-identical, resume equals an uninterrupted run, VGG19 loss layout, CLI."""
from __future__ import annotations

import copy
import csv
import io
import json
import re
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch.utils.data import Dataset

from vton.cli import main
from vton.models.checkpoint import CheckpointError, load_models, read_checkpoint
from vton.models.config import ModelConfig
from vton.models.losses import VGG19_FILE, MissingWeightsError, VGGLoss, grid_regularizer
from vton.models.train import TrainOptions, train

H, W = 256, 192


class TinyTryOn(Dataset):
    """Items with the keys of vton.pipelines.dataset.TryOnDataset: a smooth cloth whose target region is the cloth
    shifted."""

    def __init__(self, n: int = 4) -> None:
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
        self.cloth = torch.stack([xx, yy, xx * yy])
        self.target = torch.roll(self.cloth, (20, 15), (1, 2))
        self.mask = (xx.abs() < 0.5).float()[None]
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        return {"c_name": f"{i:06d}_1.jpg", "im_name": f"{i:06d}_0.jpg", "cloth": self.cloth, "cloth_mask": self.mask,
                "image": self.target, "agnostic": torch.rand(22, H, W, generator=g) * 2 - 1, "parse_cloth": self.target,
                "parse_cloth_mask": torch.roll(self.mask, 15, 2)}


@pytest.fixture(autouse=True)
def one_thread():
    """The suite runs two workers on two shared cores: one intra-op thread each avoids oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def opts(**kw) -> TrainOptions:
    base = {"batch_size": 2, "lr": 1e-3, "save_every": 2, "log_every": 1, "workers": 0, "progress": False}
    return TrainOptions(**{**base, **kw})


def log_rows(out: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((out / "train_log.csv").read_text())))


def state_bytes(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save({k: v.contiguous() for k, v in state.items()}, buf)
    return buf.getvalue()


def test_gmm_loss_falls_and_checkpoints_are_written(tmp_path: Path) -> None:
    result = train("gmm", TinyTryOn(), tmp_path, ModelConfig("cpvton", gmm_width=4), opts(steps=16, save_every=8))
    rows = log_rows(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(1, 17))
    assert list(rows[0]) == ["step", "loss", "l1", "seconds"]
    first, last = float(rows[0]["loss"]), sum(float(r["loss"]) for r in rows[-4:]) / 4
    assert last < 0.8 * first
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["gmm_final.pth", "step_000008.pth", "step_000016.pth"]
    gmm, tom, config = load_models([result.final])
    assert tom is None and config.gmm_width == 4 and read_checkpoint(result.final)["step"] == 16


def test_same_seed_same_bytes_and_resume_equals_uninterrupted(tmp_path: Path) -> None:
    config = ModelConfig("cpvton+", gmm_width=2)
    train("gmm", TinyTryOn(3), tmp_path / "a", config, opts(steps=4))
    train("gmm", TinyTryOn(3), tmp_path / "b", config, opts(steps=4))
    train("gmm", TinyTryOn(3), tmp_path / "c", config, opts(steps=2, save_every=0))
    (tmp_path / "c" / "gmm_final.pth").rename(tmp_path / "c" / "step_000002.pth")
    result = train("gmm", TinyTryOn(3), tmp_path / "c", config, opts(steps=4, save_every=0), resume=True)
    assert result.start_step == 2
    a, b, c = (read_checkpoint(tmp_path / d / "gmm_final.pth")["gmm"] for d in "abc")
    assert state_bytes(a) == state_bytes(b)
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert list(log_rows(tmp_path / "c")[0]) == ["step", "loss", "l1", "gic", "seconds"]
    assert [r["loss"] for r in log_rows(tmp_path / "c")] == [r["loss"] for r in log_rows(tmp_path / "a")]
    with pytest.raises(ValueError, match="cannot resume"):
        train("gmm", TinyTryOn(3), tmp_path / "c", ModelConfig("cpvton", gmm_width=2), opts(steps=5), resume=True)
    with pytest.raises(ValueError, match="cannot resume with other settings than the run's: seed 0 -> 7$"):
        train("gmm", TinyTryOn(3), tmp_path / "c", config, opts(steps=5, seed=7), resume=True)


def test_grid_regularizer_against_loop() -> None:
    grid = torch.rand(1, 4, 5, 2, generator=torch.Generator().manual_seed(0))
    total = 0.0
    for i in range(1, 3):
        for j in range(1, 4):
            gx, gy = grid[0, ..., 0], grid[0, ..., 1]
            total += abs(abs(gx[i, j - 1] - gx[i, j]) - abs(gx[i, j + 1] - gx[i, j]))
            total += abs(abs(gy[i - 1, j] - gy[i, j]) - abs(gy[i + 1, j] - gy[i, j]))
    assert abs(float(grid_regularizer(grid)) - float(total)) < 1e-5


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torchvision's VGG19 with random weights, saved where torchvision would cache the real file."""
    from torchvision.models import vgg19

    home = tmp_path_factory.mktemp("torch_home")
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(vgg19().state_dict(), home / "hub" / "checkpoints" / VGG19_FILE)
    return home


def test_vgg_loss_slices_match_torchvision_layers(torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models import vgg19

    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    loss = VGGLoss()
    net = vgg19()
    net.load_state_dict(torch.load(torch_home / "hub" / "checkpoints" / VGG19_FILE, weights_only=True))
    x, y = (torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(s)) * 2 - 1 for s in (1, 2))
    taps = {1: 1 / 32, 6: 1 / 16, 11: 1 / 8, 20: 1 / 4, 29: 1.0}  # relu1_1 relu2_1 relu3_1 relu4_1, then index 29

    def tapped(t: torch.Tensor) -> dict[int, torch.Tensor]:
        out = {}
        for i, layer in enumerate(net.features[:30]):
            t = layer(t.clone())
            if i in taps:
                out[i] = t
        return out

    with torch.no_grad():
        fx, fy = tapped(x), tapped(y)
    expected = sum(w * F.l1_loss(fx[i], fy[i]) for i, w in taps.items())
    assert abs(float(loss(x, y).detach()) - float(expected)) < 1e-5 * float(expected)
    assert [type(net.features[i]).__name__ for i in taps] == ["ReLU"] * 5
    assert not any(p.requires_grad for p in loss.parameters())


def test_missing_vgg_weights_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(
        MissingWeightsError, match=f"{VGG19_FILE}: put it in {tmp_path}/hub/checkpoints.*--lambda-vgg 0"
    ):
        VGGLoss()


def test_tom_trains_with_frozen_gmm_and_vgg(tmp_path: Path, torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    train("gmm", TinyTryOn(2), tmp_path / "gmm", ModelConfig("cpvton", gmm_width=2), opts(steps=1))
    gmm, _, _ = load_models([tmp_path / "gmm"])
    before = {k: v.clone() for k, v in gmm.state_dict().items()}
    config = ModelConfig("cpvton", gmm_width=2, tom_width=2)
    result = train("tom", TinyTryOn(2), tmp_path / "tom", config, opts(steps=1, batch_size=1), gmm=gmm)
    assert all(torch.equal(v, gmm.state_dict()[k]) for k, v in before.items())  # frozen, BN stats untouched
    assert list(log_rows(tmp_path / "tom")[0]) == ["step", "loss", "l1", "vgg", "mask", "seconds"]
    row = log_rows(tmp_path / "tom")[-1]
    assert float(row["vgg"]) > 0
    assert abs(float(row["loss"]) - sum(float(row[k]) for k in ("l1", "vgg", "mask"))) < 1e-4
    g2, t2, c2 = load_models([result.final])  # the TOM bundle carries the GMM it was trained with
    assert g2 is not None and t2 is not None and c2 == config


def test_cli_train_uses_tryondataset_and_requires_gmm_for_tom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_dataset(root, split="test", pairs="unpaired", variant="cpvton"):
        calls.append((Path(root), split, pairs, variant))
        return TinyTryOn(2)

    monkeypatch.setitem(sys.modules, "vton.pipelines.dataset", types.SimpleNamespace(TryOnDataset=fake_dataset))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    runner = CliRunner()
    args = ["--steps", "2", "--batch-size", "1", "--width", "2", "--workers", "0", "--save-every", "0"]
    result = runner.invoke(
        main, ["train", "gmm", str(tmp_path), "--out", str(tmp_path / "g"), "--variant", "cpvton+", *args]
    )
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path, "train", "train", "cpvton+")]
    result = runner.invoke(main, ["train", "tom", str(tmp_path), "--out", str(tmp_path / "t"), *args])
    assert result.exit_code != 0 and "needs --gmm" in result.output
    result = runner.invoke(
        main, ["train", "tom", str(tmp_path), "--out", str(tmp_path / "t"), "--gmm", str(tmp_path / "g"), *args]
    )
    assert result.exit_code != 0 and VGG19_FILE in result.output
    result = runner.invoke(main, ["train", "tom", str(tmp_path), "--out", str(tmp_path / "t"), "--gmm",
                                  str(tmp_path / "g" / "gmm_final.pth"), "--lambda-vgg", "0", *args])
    assert result.exit_code == 0, result.output
    assert calls[-1][3] == "cpvton+"  # the TOM follows the GMM's variant
    assert (tmp_path / "t" / "tom_final.pth").is_file()


def test_cli_trains_on_a_synthetic_dataset(synth_cpvton: Path, tmp_path: Path) -> None:
    """End to end through the real TryOnDataset: one GMM step, one TOM step, then inspect the TOM bundle."""
    runner = CliRunner()
    args = ["--steps", "1", "--batch-size", "1", "--width", "2", "--workers", "0", "--save-every", "0"]
    result = runner.invoke(main, ["train", "gmm", str(synth_cpvton), "--out", str(tmp_path / "g"), *args])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["train", "tom", str(synth_cpvton), "--out", str(tmp_path / "t"), "--gmm",
                                  str(tmp_path / "g"), "--lambda-vgg", "0", *args])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["checkpoint", "inspect", "--json", str(tmp_path / "t" / "tom_final.pth")])
    assert [(e["module"], e["variant"], e["strict"]) for e in json.loads(result.output)] == [
        ("gmm", "cpvton", True), ("tom", "cpvton", True)]


def test_resume_refuses_changed_settings_and_trains_at_the_recorded_lr(tmp_path: Path) -> None:
    """--resume --lr 0.5 on a run trained at 1e-3 used to record 0.5 and train at 1e-3 (the optimizer state's lr)."""
    config = ModelConfig("cpvton", gmm_width=2)
    train("gmm", TinyTryOn(2), tmp_path, config, opts(steps=2, save_every=0))
    final = tmp_path / "gmm_final.pth"
    before = final.read_bytes()
    with pytest.raises(CheckpointError) as err:
        train("gmm", TinyTryOn(2), tmp_path, ModelConfig("cpvton", gmm_width=4), opts(steps=4, lr=0.5, lambda_l1=2.0),
              resume=True)
    assert str(err.value) == (f"{final}: cannot resume with other settings than the run's: "
                              "gmm_width 2 -> 4, lr 0.001 -> 0.5, lambda_l1 1.0 -> 2.0")
    assert final.read_bytes() == before
    # Raising steps continues the run, at the lr it records even where the optimizer state says otherwise.
    bundle = torch.load(final, weights_only=True)
    bundle["optimizer"]["param_groups"][0]["lr"] = 0.5
    torch.save(bundle, final)
    result = train("gmm", TinyTryOn(2), tmp_path, config, opts(steps=3, save_every=0), resume=True)
    saved = read_checkpoint(final)
    assert (result.start_step, saved["step"], saved["train"]["lr"]) == (2, 3, 1e-3)
    assert [group["lr"] for group in saved["optimizer"]["param_groups"]] == [1e-3]


def test_resume_refuses_nonfinite_or_malformed_training_state(tmp_path: Path) -> None:
    config = ModelConfig("cpvton", gmm_width=2)
    train("gmm", TinyTryOn(2), tmp_path, config, opts(steps=1, save_every=0))
    final = tmp_path / "gmm_final.pth"
    good = torch.load(final, weights_only=True)
    nan, inf = copy.deepcopy(good), copy.deepcopy(good)
    nan["gmm"]["regression.linear.bias"][0] = float("nan")
    inf["optimizer"]["state"][0]["exp_avg_sq"].fill_(float("inf"))
    shape = copy.deepcopy(good)
    shape["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)
    text = copy.deepcopy(good)
    text["optimizer"]["state"][0]["exp_avg"] = "zeros"
    cases = [(nan, "GMM tensor regression.linear.bias holds NaN or infinite values"),
             (inf, "optimizer tensor state.0.exp_avg_sq holds NaN or infinite values"),
             (shape, r"optimizer state.0.exp_avg has shape \[3\], not its parameter's \[2, 22, 4, 4\]"),
             (text, "optimizer entry state.0.exp_avg is 'zeros' \\(str\\), not a dense tensor"),
             ({**good, "optimizer": {"state": {}, "param_groups": []}}, "optimizer state that does not fit"),
             ({**good, "step": [1]}, "vton-bundle entry 'step' is \\[1\\] \\(list\\), not an integer")]
    for bundle, message in cases:
        torch.save(bundle, final)
        with pytest.raises(CheckpointError, match=f"^{re.escape(str(final))}: {message}"):
            train("gmm", TinyTryOn(2), tmp_path, config, opts(steps=2, save_every=0), resume=True)


def test_tom_resume_refuses_another_gmm(tmp_path: Path) -> None:
    """The frozen GMM shapes every TOM step: resuming with other GMM weights would not continue the run."""
    for seed in (0, 1):
        train("gmm", TinyTryOn(1), tmp_path / f"gmm{seed}", ModelConfig("cpvton", gmm_width=2),
              opts(steps=1, batch_size=1, seed=seed))
    gmm0, gmm1 = (load_models([tmp_path / f"gmm{seed}"])[0] for seed in (0, 1))
    config = ModelConfig("cpvton", gmm_width=2, tom_width=2)
    tom_opts = opts(batch_size=1, lambda_vgg=0.0, save_every=0)
    train("tom", TinyTryOn(1), tmp_path / "tom", config, replace(tom_opts, steps=1), gmm=gmm0)
    with pytest.raises(CheckpointError, match="GMM weights \\(--gmm\\) other than those the TOM was trained with$"):
        train("tom", TinyTryOn(1), tmp_path / "tom", config, replace(tom_opts, steps=2), gmm=gmm1, resume=True)
    assert train("tom", TinyTryOn(1), tmp_path / "tom", config, replace(tom_opts, steps=2), gmm=gmm0,
                 resume=True).start_step == 1


def test_cli_train_device_follows_the_device_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--device auto (CUDA when visible, else the CPU) as for every command; a misspelt device is one line."""
    monkeypatch.setitem(sys.modules, "vton.pipelines.dataset",
                        types.SimpleNamespace(TryOnDataset=lambda *args, **kwargs: TinyTryOn(1)))
    args = ["train", "gmm", str(tmp_path), "--steps", "1", "--batch-size", "1", "--width", "2", "--workers", "0"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "auto"), "--device", "auto"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert (tmp_path / "auto" / "gmm_final.pth").is_file()
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "bad"), "--device", "gpu0"])
    assert result.exit_code == 1 and result.output == "Error: unknown device 'gpu0': use auto, cpu, cuda or cuda:N\n"

"""Networks against the reference key/shape table (sergeywong/cp-vton networks.py: GMM, UnetGenerator),
original-format loading, bundles, inspect CLI."""
from __future__ import annotations

import copy
import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from vton.cli import main
from vton.models.checkpoint import CheckpointError, inspect_checkpoint, load_models, save_bundle
from vton.models.config import ModelConfig
from vton.models.gmm import GMM
from vton.models.tom import TOM

# --- the reference table, written out from sergeywong/cp-vton networks.py (not derived from our code) ---------
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def gmm_table(cloth_channels: int) -> dict[str, tuple[int, ...]]:
    table: dict[str, tuple[int, ...]] = {}
    for name, cin in (("extractionA", 22), ("extractionB", cloth_channels)):
        convs = [(0, (64, cin, 4, 4)), (3, (128, 64, 4, 4)), (6, (256, 128, 4, 4)), (9, (512, 256, 4, 4)),
                 (12, (512, 512, 3, 3)), (15, (512, 512, 3, 3))]
        for idx, shape in convs:
            table[f"{name}.model.{idx}.weight"], table[f"{name}.model.{idx}.bias"] = shape, shape[:1]
            if idx != 15:
                for k in BN:
                    table[f"{name}.model.{idx + 2}.{k}"] = () if k == "num_batches_tracked" else shape[:1]
    for idx, shape in ((0, (512, 192, 4, 4)), (3, (256, 512, 4, 4)), (6, (128, 256, 3, 3)), (9, (64, 128, 3, 3))):
        table[f"regression.conv.{idx}.weight"], table[f"regression.conv.{idx}.bias"] = shape, shape[:1]
        for k in BN:
            table[f"regression.conv.{idx + 1}.{k}"] = () if k == "num_batches_tracked" else shape[:1]
    table["regression.linear.weight"], table["regression.linear.bias"] = (50, 768), (50,)
    return table


def tom_table(in_channels: int) -> dict[str, tuple[int, ...]]:
    rows = [
        ("model.model.0", (64, in_channels, 4, 4)),
        ("model.model.1.model.1", (128, 64, 4, 4)),
        ("model.model.1.model.3.model.1", (256, 128, 4, 4)),
        ("model.model.1.model.3.model.3.model.1", (512, 256, 4, 4)),
        ("model.model.1.model.3.model.3.model.3.model.1", (512, 512, 4, 4)),
        ("model.model.1.model.3.model.3.model.3.model.3.model.1", (512, 512, 4, 4)),
        ("model.model.1.model.3.model.3.model.3.model.3.model.4", (512, 512, 3, 3)),
        ("model.model.1.model.3.model.3.model.3.model.6", (512, 1024, 3, 3)),
        ("model.model.1.model.3.model.3.model.6", (256, 1024, 3, 3)),
        ("model.model.1.model.3.model.6", (128, 512, 3, 3)),
        ("model.model.1.model.6", (64, 256, 3, 3)),
        ("model.model.4", (4, 128, 3, 3)),
    ]
    table: dict[str, tuple[int, ...]] = {}
    for prefix, shape in rows:
        table[f"{prefix}.weight"], table[f"{prefix}.bias"] = shape, shape[:1]
    return table


CASES = [  # (network, variant, table, trainable parameters of the networks.py nets)
    ("gmm", "cpvton", gmm_table(3), 19_057_650),
    ("gmm", "cpvton+", gmm_table(1), 19_055_602),
    ("tom", "cpvton", tom_table(25), 21_349_252),
    ("tom", "cpvton+", tom_table(26), 21_350_276),
]
NETS = {"gmm": GMM, "tom": TOM}


def original_state(table: dict[str, tuple[int, ...]], seed: int = 0) -> OrderedDict:
    """A state dict as the original code saves it: plain OrderedDict, random values of the table's shapes."""
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((k, torch.tensor(7) if not s else torch.rand(s, generator=g)) for k, s in table.items())


@pytest.mark.parametrize(("net", "variant", "table", "params"), CASES)
def test_keys_shapes_and_parameter_counts_match_reference(net, variant, table, params) -> None:
    model = NETS[net](variant=variant)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == table
    assert len(table) == (104 if net == "gmm" else 24)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("prefix", ["", "module."])
def test_original_format_files_load_strictly(tmp_path: Path, prefix: str) -> None:
    gmm_state, tom_state = original_state(gmm_table(3), 1), original_state(tom_table(25), 2)
    torch.save(OrderedDict((prefix + k, v) for k, v in gmm_state.items()), tmp_path / "gmm_final.pth")
    torch.save(OrderedDict((prefix + k, v) for k, v in tom_state.items()), tmp_path / "tom_final.pth")
    gmm, tom, config = load_models([tmp_path], "cpu")
    assert config == ModelConfig("cpvton", 64, 64)
    assert not gmm.training and not tom.training
    for model, state in ((gmm, gmm_state), (tom, tom_state)):
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k


def test_files_told_apart_by_keys_and_cpvton_plus_detected(tmp_path: Path) -> None:
    torch.save(original_state(tom_table(26)), tmp_path / "a.pth")
    state = original_state(gmm_table(1))
    del state["extractionA.model.2.num_batches_tracked"]  # PyTorch 0.4.0 files lack it
    torch.save(state, tmp_path / "b.pth")
    gmm, tom, config = load_models([tmp_path / "a.pth", tmp_path / "b.pth"], "cpu")
    assert (gmm.variant, tom.variant, config.variant) == ("cpvton+", "cpvton+", "cpvton+")


def test_mismatch_error_lists_first_keys_and_shapes(tmp_path: Path) -> None:
    state = original_state(gmm_table(3))
    del state["regression.linear.bias"]
    state["regression.linear.weight"] = torch.zeros(50, 700)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_models([tmp_path / "bad.pth"])
    message = str(err.value)
    assert "missing regression.linear.bias [50]" in message
    assert "shape regression.linear.weight: file [50, 700] != network [50, 768]" in message


def test_corrupt_and_foreign_files_give_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_models([tmp_path / "junk.pth"])
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a GMM or TOM state dict.*conv.weight"):
        load_models([tmp_path / "other.pth"])
    with pytest.raises(CheckpointError, match="neither gmm_final.pth nor tom_final.pth"):
        load_models([tmp_path])


def test_bundle_round_trip_and_inspect_cli(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = ModelConfig("cpvton+", gmm_width=2, tom_width=3)
    gmm, tom = GMM("cpvton+", 2), TOM("cpvton+", 3)
    path = save_bundle(tmp_path / "bundle.pth", config, gmm=gmm, tom=tom, step=12)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file
    g2, t2, c2 = load_models([path])
    assert c2 == config
    for a, b in ((gmm, g2), (tom, t2)):
        assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    torch.save(original_state(gmm_table(3)), tmp_path / "gmm_final.pth")

    runner = CliRunner()
    result = runner.invoke(main, ["checkpoint", "inspect", str(path), str(tmp_path / "gmm_final.pth"), "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [(e["module"], e["variant"], e["width"], e["strict"], e["nonfinite"], e["source"]) for e in entries] == [
        ("gmm", "cpvton+", 2, True, 0, "bundle"), ("tom", "cpvton+", 3, True, 0, "bundle"),
        ("gmm", "cpvton", 64, True, 0, "state_dict")]
    assert entries[1]["parameters"] == sum(p.numel() for p in tom.parameters())
    assert entries[2]["parameters"] == 19_057_650

    result = runner.invoke(main, ["checkpoint", "inspect", str(tmp_path / "gmm_final.pth")])
    assert result.exit_code == 0
    header, row = result.output.splitlines()[:2]
    assert header.split() == [
        "file",
        "module",
        "variant",
        "width",
        "parameters",
        "strict",
        "nonfinite",
        "source",
        "step",
    ]
    assert row.split() == ["gmm_final.pth", "gmm", "cpvton", "64", "19,057,650", "yes", "0", "state_dict"]


def test_inspect_cli_reports_non_strict_file(tmp_path: Path) -> None:
    state = original_state(tom_table(25))
    state["model.model.4.bias"] = torch.zeros(5)
    state["extra.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "tom.pth")
    (info,) = inspect_checkpoint(tmp_path / "tom.pth")
    assert not info.strict
    result = CliRunner().invoke(main, ["checkpoint", "inspect", str(tmp_path / "tom.pth")])
    assert result.exit_code == 1
    assert "unexpected extra.weight [2]" in result.output
    assert "shape model.model.4.bias: file [5] != network [4]" in result.output
    result = CliRunner().invoke(main, ["checkpoint", "inspect", str(tmp_path / "missing.pth")])
    assert result.exit_code == 1 and "no such checkpoint file" in result.output


def reference_unet(x: torch.Tensor, sd: dict) -> torch.Tensor:
    """The original UnetGenerator written out functionally from sergeywong/cp-vton networks.py (UnetGenerator and
    UnetSkipConnectionBlock: conv order, InstanceNorm placement, nesting)."""
    import torch.nn.functional as F

    def up(h: torch.Tensor, key: str) -> torch.Tensor:
        h = F.interpolate(F.relu(h), scale_factor=2, mode="bilinear", align_corners=False)
        return F.instance_norm(F.conv2d(h, sd[key + ".weight"], sd[key + ".bias"], padding=1))

    def block(x: torch.Tensor, prefix: str) -> torch.Tensor:
        x = F.leaky_relu(x, 0.2)
        h = F.conv2d(x, sd[f"{prefix}.model.1.weight"], sd[f"{prefix}.model.1.bias"], stride=2, padding=1)
        if f"{prefix}.model.6.weight" in sd:
            h = up(block(F.instance_norm(h), f"{prefix}.model.3"), f"{prefix}.model.6")
        else:  # innermost
            h = up(h, f"{prefix}.model.4")
        return torch.cat([x, h], 1)

    h = F.conv2d(x, sd["model.model.0.weight"], sd["model.model.0.bias"], stride=2, padding=1)
    return up(block(h, "model.model.1"), "model.model.4")


def test_tom_forward_matches_functional_reference() -> None:
    torch.manual_seed(0)
    tom = TOM(width=2).eval()
    x = torch.randn(1, 25, 256, 192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference_unet(x, tom.state_dict())
        assert torch.allclose(tom(x.clone()), expected, atol=1e-5)


# --- malformed and non-finite files: one CheckpointError line naming the file, never another exception -------------
@pytest.fixture(scope="module")
def bundle_contents(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A valid bundle (GMM and TOM of width 2) as torch.load returns it: the base every malformed case edits."""
    torch.manual_seed(0)
    path = save_bundle(tmp_path_factory.mktemp("bundle") / "ok.pth", ModelConfig("cpvton", 2, 2), gmm=GMM(width=2),
                       tom=TOM(width=2), step=3, train={"stage": "tom", "lr": 1e-4}, elapsed=1.5)
    return torch.load(path, weights_only=True)


def edit(key: str, value: Any) -> Callable[[dict], dict]:
    return lambda bundle: {**bundle, key: value}


def merge(key: str, changes: dict) -> Callable[[dict], dict]:
    return lambda bundle: {**bundle, key: {**bundle[key], **changes}}


def drop(key: str) -> Callable[[dict], dict]:
    return lambda bundle: {k: v for k, v in bundle.items() if k != key}


MALFORMED: dict[str, Callable[[dict], Any]] = {
    "gmm entry a list": edit("gmm", [1, 2]),
    "tom entry a string": edit("tom", "weights"),
    "neither network": lambda b: {**b, "gmm": None, "tom": None},
    "step a list": edit("step", [3]),
    "step missing": drop("step"),
    "step negative": edit("step", -1),
    "format_version a string": edit("format_version", "1"),
    "format_version from the future": edit("format_version", 2),
    "config missing": drop("config"),
    "config a list": edit("config", [1]),
    "config lacks a width": edit("config", {"variant": "cpvton", "gmm_width": 2}),
    "width a string": merge("config", {"gmm_width": "2"}),
    "width a bool": merge("config", {"tom_width": True}),
    "width a float": merge("config", {"gmm_width": 2.5}),
    "width 100000": merge("config", {"gmm_width": 100_000}),
    "width 1e9": merge("config", {"tom_width": 10**9}),
    "variant unknown": merge("config", {"variant": "cpvton++"}),
    "variant a number": merge("config", {"variant": 1}),
    "weight a float": merge("gmm", {"regression.linear.bias": 0.5}),
    "weight missing": lambda b: {**b, "tom": {k: v for k, v in b["tom"].items() if k != "model.model.4.bias"}},
    "parameter named by a number": merge("gmm", {7: torch.zeros(1)}),
    "sparse weight": merge("gmm", {"regression.linear.bias": torch.zeros(50).to_sparse()}),
    "meta weight": merge("gmm", {"regression.linear.bias": torch.empty(50, device="meta")}),
    "complex weight": merge("gmm", {"regression.linear.bias": torch.zeros(50, dtype=torch.complex64)}),
    "integer weight": merge("tom", {"model.model.4.bias": torch.zeros(4, dtype=torch.long)}),
    "train record a list": edit("train", [1]),
    "train record holds a tensor": edit("train", {"stage": "tom", "lr": torch.ones(2)}),
    "elapsed a string": edit("elapsed", "1 s"),
    "optimizer a list": edit("optimizer", []),
    "a list, not a dict": lambda b: [b],
    "state dict with a 0-d first layer": lambda b: {"extractionA.model.0.weight": torch.tensor(1.0)},
    "state dict with a non-tensor": lambda b: {**b["gmm"], "extractionA.model.0.bias": "zeros"},
}


def assert_one_line_naming(message: str, path: Path) -> None:
    assert message.startswith(f"{path}: ") and "\n" not in message, message


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_checkpoints_give_one_checkpoint_error_line(tmp_path: Path, bundle_contents: dict, case: str) -> None:
    """Loading raises CheckpointError (no TypeError, KeyError, AttributeError, MemoryError: width 100000 is refused on
    the meta device before a 1 TB network is allocated); inspect raises it too or reports the file as unusable."""
    path = tmp_path / "bad.pth"
    torch.save(MALFORMED[case](copy.deepcopy(bundle_contents)), path)
    with pytest.raises(CheckpointError) as err:
        load_models([path])
    assert_one_line_naming(str(err.value), path)
    try:
        infos = inspect_checkpoint(path)
    except CheckpointError as exc:
        assert_one_line_naming(str(exc), path)
    else:
        assert not all(info.usable for info in infos)


@pytest.mark.parametrize("case", ["gmm entry a list", "step a list", "width 100000"])
def test_cli_commands_name_a_malformed_checkpoint_in_one_line(tmp_path: Path, bundle_contents: dict, case: str) -> None:
    path = tmp_path / "bad.pth"
    torch.save(MALFORMED[case](copy.deepcopy(bundle_contents)), path)
    commands = {
        "infer": ["infer", str(tmp_path), "--checkpoint", str(path), "--out", str(tmp_path / "i"), "--device", "cpu"],
        "evaluate": ["evaluate", str(tmp_path), "--checkpoint", str(path), "--out", str(tmp_path / "e"),
                     "--device", "cpu"],
        "train tom": ["train", "tom", str(tmp_path), "--gmm", str(path), "--out", str(tmp_path / "t")],
        "checkpoint inspect": ["checkpoint", "inspect", str(path)],
    }
    if case == "width 100000":  # inspect reports it in its table (the fuzz test checks that), the others refuse it
        del commands["checkpoint inspect"]
    for name, args in commands.items():
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (name, result.output, result.exception)
        assert_one_line_naming(result.output.strip().removeprefix("Error: "), path)


def nonfinite_bundle(path: Path) -> Path:
    """GMM and TOM of width 2 with one NaN in the GMM and one infinity in the TOM."""
    torch.manual_seed(0)
    gmm, tom = GMM(width=2), TOM(width=2)
    with torch.no_grad():
        gmm.regression.linear.bias[3] = float("nan")
        tom.model.model[0].weight[0, 0, 0, 0] = float("-inf")
    return save_bundle(path, ModelConfig("cpvton", 2, 2), gmm=gmm, tom=tom)


def test_nonfinite_weights_are_reported_and_refused_unless_allowed(tmp_path: Path) -> None:
    path = nonfinite_bundle(tmp_path / "nan.pth")
    infos = inspect_checkpoint(path)
    assert [(i.module, i.strict, i.nonfinite_keys) for i in infos] == [
        ("gmm", True, ["regression.linear.bias"]), ("tom", True, ["model.model.0.weight"])]
    result = CliRunner().invoke(main, ["checkpoint", "inspect", "--json", str(path)])
    assert result.exit_code == 1 and [e["nonfinite"] for e in json.loads(result.output)] == [1, 1]
    result = CliRunner().invoke(main, ["checkpoint", "inspect", str(path)])
    lines = result.output.splitlines()
    assert result.exit_code == 1 and lines[1].split()[5:8] == ["yes", "1", "bundle"]
    assert f"{path}: GMM tensor regression.linear.bias holds NaN or infinite values (1 such tensors)" in lines
    with pytest.raises(CheckpointError) as err:
        load_models([path])
    assert str(err.value) == (f"{path}: GMM tensor regression.linear.bias holds NaN or infinite values "
                              "(1 such tensors); --allow-nonfinite loads it anyway")
    gmm, tom, _ = load_models([path], allow_nonfinite=True)
    assert torch.isnan(gmm.regression.linear.bias[3]) and torch.isinf(tom.model.model[0].weight[0, 0, 0, 0])


def test_infer_and_evaluate_load_nonfinite_weights_only_when_allowed(synth_cpvton: Path, tmp_path: Path) -> None:
    path = nonfinite_bundle(tmp_path / "nan.pth")
    runs = {"infer": ["infer", str(synth_cpvton), "--checkpoint", str(path), "--out", str(tmp_path / "i"),
                      "--device", "cpu"],
            "evaluate": ["evaluate", str(synth_cpvton), "--checkpoint", str(path), "--out", str(tmp_path / "e"),
                         "--device", "cpu", "--metrics", "ssim", "--workers", "0", "--bootstrap", "10"]}
    for name, args in runs.items():
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (name, result.output)
        assert_one_line_naming(result.output.strip().removeprefix("Error: "), path)
        assert "regression.linear.bias holds NaN" in result.output
        result = CliRunner().invoke(main, [*args, "--allow-nonfinite"])
        assert result.exit_code == 0, (name, result.output, result.exception)
    assert len(list((tmp_path / "i" / "try-on").glob("*.png"))) == 3
    assert len(list((tmp_path / "e" / "results" / "unpaired" / "try-on").glob("*.png"))) == 3

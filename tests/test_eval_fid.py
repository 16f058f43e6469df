"""eval/fid.py against clean-fid 0.1.35 and pytorch-fid 0.3.0 themselves, run on the same folders on the CPU.

No pretrained weights exist here: the libraries' feature networks are replaced by small seeded random ones shared
with ours (clean-fid: ``cleanfid.fid.build_feature_extractor``; pytorch-fid: ``pytorch_fid.fid_score.InceptionV3``),
with feature size D < N; the real loading paths are exercised with random weight files the tests write.
"""
from __future__ import annotations

import urllib.request
from pathlib import Path

import cleanfid
import cleanfid.fid
import numpy as np
import pytest
import torch
from cleanfid.utils import ResizeDataset
from PIL import Image
from pytorch_fid import fid_score, inception
from torch import nn

from tests.eval_fixtures import ScriptedInception, random_fid_inception
from vton.eval import fid, weights
from vton.eval.images import read_image, rgb

D = 8  # feature size, below every folder's image count so covariances are full rank
CPU = torch.device("cpu")
SMALL, LARGE = (48, 64), (96, 128)  # (H, W)


def _image(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """A smooth random colour field with noise: distinct features per image, JPEG-friendly."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    field = rng.uniform(0, 255, 3) + rng.uniform(-120, 120, (2, 3))[:, None, None, :] * np.stack([yy, xx])[..., None]
    return np.clip(field.sum(0) / 2 + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def _write(folder: Path, names: list[str], seed: int, sizes: tuple[tuple[int, int], ...]) -> None:
    rng = np.random.default_rng(seed)
    for i, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        fmt = "JPEG" if name.lower().endswith((".jpg", ".jpeg")) else "PNG"
        Image.fromarray(_image(rng, sizes[i % len(sizes)])).save(folder / name, format=fmt)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """clean-fid folders (mixed sizes, nested, PNG and JPEG, upper-case extensions, a non-image file) and
    pytorch-fid folders (one size each: it stacks batches)."""
    root = tmp_path_factory.mktemp("fid")
    ref_names = [f"r{i:02d}.png" for i in range(6)] + [f"r{i:02d}.jpg" for i in range(6, 10)] + [
        "sub/r10.png", "sub/deeper/r11.jpeg", "r12.PNG", "r13.JPG", "sub.png", "sub/r14.JPEG"]
    gen_names = [f"g{i:02d}.png" for i in range(5)] + [f"g{i:02d}.jpg" for i in range(5, 10)] + ["x/g10.PNG",
                                                                                                 "x/g11.png"]
    dirs = {name: root / name for name in ("ref", "gen", "pa", "pb")}
    _write(dirs["ref"], ref_names, 0, (SMALL, LARGE))
    _write(dirs["gen"], gen_names, 1, (LARGE, SMALL))
    (dirs["ref"] / "notes.txt").write_text("not an image")
    _write(dirs["pa"], [f"a{i:02d}.png" for i in range(7)] + [f"a{i:02d}.jpg" for i in range(7, 12)]
           + ["skipped.PNG", "nested/skipped.png"], 2, (SMALL,))
    _write(dirs["pb"], [f"b{i:02d}.{'jpg' if i % 3 else 'png'}" for i in range(13)], 3, (LARGE,))
    return dirs


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network and an empty torch hub: any download attempt fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"download attempted: {args}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def _decode(files: list[Path]) -> list[np.ndarray]:
    return [read_image(f, rgb) for f in files]


def _clean_net() -> nn.Module:
    """(B, 3, 299, 299) floats in [0, 255] -> (B, D), as clean-fid's feature extractor is called."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.AvgPool2d(23), nn.Flatten(), nn.Linear(3 * 13 * 13, 32), nn.Tanh(),
                             nn.Linear(32, D)).eval()


@pytest.fixture(scope="module")
def clean_net() -> nn.Module:
    return _clean_net()


@pytest.fixture
def cleanfid_lib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_net: nn.Module) -> Path:
    """clean-fid with our random network as its extractor and its statistics folder in tmp_path."""
    monkeypatch.setattr(cleanfid, "__file__", str(tmp_path / "cleanfid" / "__init__.py"))
    monkeypatch.setattr(cleanfid.fid, "build_feature_extractor", lambda *args, **kwargs: clean_net)
    return tmp_path / "cleanfid" / "stats"


@pytest.fixture(scope="module")
def clean_feats(folders: dict[str, Path], clean_net: nn.Module) -> dict[str, np.ndarray]:
    ext = fid.CleanFidFeatures(clean_net)
    return {name: ext.features(_decode(fid.cleanfid_files(folders[name]))) for name in ("ref", "gen")}


LIB = {"mode": "clean", "device": CPU, "num_workers": 0, "verbose": False}


# --- file discovery -------------------------------------------------------------------------------------------------

def test_cleanfid_files_match_its_listing(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The list clean-fid's get_folder_features builds (captured where it hands it on), in its order."""
    folder = folders["ref"]
    np.save(folder.parent / "arr.npy", np.zeros((4, 4, 3), np.uint8))  # clean-fid lists .npy arrays too
    (folder / ".hidden.png").write_bytes((folder / "r00.png").read_bytes())
    captured: list[list[str]] = []
    monkeypatch.setattr(cleanfid.fid, "get_files_features", lambda files, *a, **k: captured.append(files))
    cleanfid.fid.get_folder_features(str(folder.parent), num_workers=0, verbose=False)
    ours = fid.cleanfid_files(folder.parent)
    (folder / ".hidden.png").unlink()
    (folder.parent / "arr.npy").unlink()
    assert [str(p) for p in ours] == captured[0]
    names = [p.relative_to(folder.parent).as_posix() for p in ours]
    assert {"ref/r12.PNG", "ref/r13.JPG", "ref/sub/r14.JPEG", "ref/sub/deeper/r11.jpeg", "arr.npy"} <= set(names)
    assert "ref/notes.txt" not in names and "ref/.hidden.png" not in names
    assert names.index("ref/sub.png") < names.index("ref/sub/r10.png")  # string order, not Path order


def test_pytorch_fid_files_match_its_listing(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The list pytorch-fid's compute_statistics_of_path builds: this folder only, lower-case extensions."""
    folder = folders["pa"]
    (folder / ".hidden.png").write_bytes((folder / "a00.png").read_bytes())
    captured: list[list[Path]] = []
    monkeypatch.setattr(fid_score, "calculate_activation_statistics", lambda files, *a, **k: captured.append(files)
                        or (None, None))
    fid_score.compute_statistics_of_path(str(folder), None, 50, D, "cpu", 0)
    ours = fid.pytorch_fid_files(folder)
    (folder / ".hidden.png").unlink()
    assert ours == captured[0]
    assert [p.name for p in ours][:2] == [".hidden.png", "a00.png"] and len(ours) == 13


# --- clean-fid ------------------------------------------------------------------------------------------------------

def test_cleanfid_fid_folder_vs_folder(folders: dict[str, Path], clean_feats: dict[str, np.ndarray],
                                       cleanfid_lib: Path) -> None:
    lib = cleanfid.fid.compute_fid(str(folders["ref"]), str(folders["gen"]), **LIB)
    ours = fid.cleanfid_fid(clean_feats["ref"], clean_feats["gen"])
    assert clean_feats["ref"].shape == (16, D) and clean_feats["ref"].dtype == np.float32
    assert lib > 0.1 and abs(ours - lib) <= 1e-12  # measured: 0.0
    assert abs(fid.cleanfid_fid(clean_feats["gen"], clean_feats["ref"]) - lib) <= 1e-10  # order: float noise (9e-15)


def test_cleanfid_against_custom_statistics(folders: dict[str, Path], clean_feats: dict[str, np.ndarray],
                                            clean_net: nn.Module, cleanfid_lib: Path) -> None:
    """make_custom_stats (batch 64) then compute_fid / compute_kid of the generated folder against it."""
    cleanfid.fid.make_custom_stats("VTON_Ref", str(folders["ref"]), mode="clean", device=CPU, num_workers=0,
                                   verbose=False)
    saved = np.load(cleanfid_lib / "vton_ref_clean_custom_na.npz")
    ref64 = fid.CleanFidFeatures(clean_net, batch_size=64).features(_decode(fid.cleanfid_files(folders["ref"])))
    mu, sigma = fid.gaussian_stats(ref64)
    assert saved["mu"].dtype == mu.dtype == np.float32 and saved["sigma"].dtype == sigma.dtype == np.float64
    assert np.array_equal(saved["mu"], mu) and np.array_equal(saved["sigma"], sigma)
    kid_feats = np.load(cleanfid_lib / "vton_ref_clean_custom_na_kid.npz")["feats"]
    assert np.array_equal(kid_feats, ref64)

    lib = cleanfid.fid.compute_fid(str(folders["gen"]), dataset_name="VTON_Ref", dataset_split="custom", **LIB)
    assert lib > 0.1 and abs(fid.cleanfid_fid(clean_feats["gen"], ref64) - lib) <= 1e-12  # measured: 0.0
    np.random.seed(7)
    lib_kid = cleanfid.fid.compute_kid(str(folders["gen"]), dataset_name="VTON_Ref", dataset_split="custom", **LIB)
    assert lib_kid != 0 and abs(fid.cleanfid_kid(ref64, clean_feats["gen"], seed=7) - lib_kid) <= 1e-9  # 0.0


def test_cleanfid_kid_folder_vs_folder(folders: dict[str, Path], clean_feats: dict[str, np.ndarray],
                                       cleanfid_lib: Path) -> None:
    before = np.random.get_state()[1].copy()
    ours = fid.cleanfid_kid(clean_feats["ref"], clean_feats["gen"], seed=3)
    assert np.array_equal(np.random.get_state()[1], before)  # the global state is restored
    np.random.seed(3)
    lib = cleanfid.fid.compute_kid(str(folders["ref"]), str(folders["gen"]), **LIB)
    assert lib != 0 and abs(ours - lib) <= 1e-9  # measured: 0.0
    # the seed and the argument order choose the subsets (16 reference features, subsets of 12)
    assert fid.cleanfid_kid(clean_feats["ref"], clean_feats["gen"], seed=4) != ours
    assert fid.cleanfid_kid(clean_feats["gen"], clean_feats["ref"], seed=3) != ours


def test_cleanfid_features_independent_of_batch(folders: dict[str, Path], clean_feats: dict[str, np.ndarray],
                                                clean_net: nn.Module) -> None:
    images = _decode(fid.cleanfid_files(folders["ref"]))
    small = fid.CleanFidFeatures(clean_net, batch_size=5).features(images)
    np.testing.assert_allclose(small, clean_feats["ref"], rtol=1e-5, atol=1e-5)


def test_cleanfid_torchscript_weights(folders: dict[str, Path], tmp_path: Path, offline: Path) -> None:
    """The TorchScript file read through clean-fid's InceptionV3W offline: (x - 128) / 128 applied, pool features
    as clean-fid's own folder pipeline gives them."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        net = ScriptedInception().eval()
    torch.jit.script(net).save(str(tmp_path / weights.CLEANFID_INCEPTION_FILE))
    ext = fid.CleanFidFeatures.from_weights(tmp_path)
    files = fid.cleanfid_files(folders["gen"])
    ours = ext.features(_decode(files))
    assert ext.weights_file == tmp_path / weights.CLEANFID_INCEPTION_FILE
    assert ours.shape == (12, 2048) and ours.dtype == np.float32
    resized = torch.stack([ResizeDataset(files, mode="clean")[i] for i in range(len(files))])
    with torch.no_grad():
        expected = net.layers((resized - 128) / 128).flatten(1).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    lib = cleanfid.fid.get_folder_features(str(folders["gen"]), ext.model, num_workers=0, batch_size=32,
                                           device=CPU, mode="clean", verbose=False)
    np.testing.assert_array_equal(ours, lib)
    assert not offline.exists()


# --- pytorch-fid ----------------------------------------------------------------------------------------------------

def _pytorch_fid_net() -> nn.Module:
    """[0, 1] images -> B x D x h x w maps (not 1 x 1, so pytorch-fid's spatial averaging runs)."""
    with torch.random.fork_rng():
        torch.manual_seed(2)
        return nn.Sequential(nn.Conv2d(3, D, 9, stride=8), nn.Tanh()).eval()


def test_pytorch_fid_against_calculate_fid_given_paths(folders: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    net = _pytorch_fid_net()

    class Stub(nn.Module):
        BLOCK_INDEX_BY_DIM = {D: 0}

        def __init__(self, output_blocks: list[int]) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            return [self.net(x)]

    monkeypatch.setattr(fid_score, "InceptionV3", Stub)
    lib = fid_score.calculate_fid_given_paths([str(folders["pa"]), str(folders["pb"])], 5, "cpu", D, 0)
    ext = fid.PytorchFidFeatures(Stub([0]), batch_size=5)
    feats = [ext.features(_decode(fid.pytorch_fid_files(folders[n]))) for n in ("pa", "pb")]
    assert feats[0].shape == (12, D) and feats[0].dtype == np.float64
    ours = fid.pytorch_fid_fid(*feats)
    assert lib > 1e-3 and abs(ours - lib) <= 1e-12  # measured: 0.0


def test_pytorch_fid_refuses_a_mixed_size_batch() -> None:
    ext = fid.PytorchFidFeatures(lambda x: [x], batch_size=2)
    with pytest.raises(ValueError, match="one size"):
        ext.features([np.zeros((48, 64, 3), np.uint8), np.zeros((96, 128, 3), np.uint8)])




def test_pytorch_fid_weight_file_offline(folders: dict[str, Path], tmp_path: Path, offline: Path) -> None:
    """InceptionV3([3]) built from a local file: the same pool3 activations as pytorch-fid's network with those
    weights, nothing fetched, the library's loader restored."""
    loader = inception.load_state_dict_from_url
    torch.save(random_fid_inception().state_dict(), tmp_path / weights.PYTORCH_FID_INCEPTION_FILE)
    ext = fid.PytorchFidFeatures.from_weights(tmp_path)
    assert inception.load_state_dict_from_url is loader and not offline.exists()

    with pytest.MonkeyPatch.context() as m:  # the reference: the same random init, never saved or loaded
        m.setattr(inception, "fid_inception_v3", random_fid_inception)
        reference = inception.InceptionV3([3]).eval()
    images = _decode(fid.pytorch_fid_files(folders["pa"])[:3])
    ours = ext.features(images)
    with torch.no_grad():
        expected = reference(torch.stack([torch.from_numpy(im).permute(2, 0, 1) / 255 for im in images]))[0]
    assert ours.shape == (3, 2048) and ours.dtype == np.float64 and ours.std() > 0
    np.testing.assert_allclose(ours, expected.flatten(1).double().numpy(), rtol=1e-5, atol=1e-7 * np.abs(ours).max())


# --- missing weights and bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, filename", [(fid.CleanFidFeatures, weights.CLEANFID_INCEPTION_FILE),
                                           (fid.PytorchFidFeatures, weights.PYTORCH_FID_INCEPTION_FILE)])
def test_missing_weights_named(cls: type, filename: str, tmp_path: Path) -> None:
    with pytest.raises(weights.MissingWeightsError, match=filename.replace(".", r"\.")):
        cls.from_weights(tmp_path)


@pytest.mark.parametrize("image", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8),
                                   np.zeros((8, 8, 4), np.uint8)])
def test_features_refuse_non_rgb_uint8(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        fid.CleanFidFeatures(_clean_net()).features([image])


def test_identical_feature_sets_are_scored_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within one run, two protocols with the same reference and generated features (CatVTON's and VtonEval's
    clean-fid FID) pay for one sqrtm; other features, another computation."""
    calls = []
    monkeypatch.setattr(fid, "frechet_distance", lambda *a: calls.append(1) or float(len(calls)))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, D)).astype(np.float32), rng.normal(size=(12, D)).astype(np.float32)
    with fid.shared_scores():
        first = fid.cleanfid_fid(a, b)
        assert fid.cleanfid_fid(a.copy(), b.copy()) == first and len(calls) == 1
        assert fid.cleanfid_fid(b, a) != first and len(calls) == 2
    fid.cleanfid_fid(a, b)  # outside a run nothing is kept
    assert len(calls) == 3

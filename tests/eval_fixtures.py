"""Test helpers for the evaluation tests: tiny CP-VTON-layout datasets, results folders, random weight files."""
from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torchvision
from PIL import Image, ImageFilter
from pytorch_fid import inception as pytorch_fid_inception

from vton.core import formats as fm
from vton.eval import weights

H, W = fm.FINE_HEIGHT, fm.FINE_WIDTH


def save_random_alexnet(folder: Path, seed: int = 0) -> Path:
    """A random torchvision AlexNet saved under the official file name (the LPIPS backbone)."""
    from torchvision.models import alexnet

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(alexnet(weights=None).state_dict(), folder / weights.ALEXNET_FILE)
    return folder / weights.ALEXNET_FILE


def save_random_torchvision(folder: Path, arch: str, filename: str, seed: int = 0, only: str = "",
                            **kwargs: object) -> Path:
    """A random torchvision ``arch`` saved under ``filename``; ``only``: keep the keys with this prefix (DISTS reads
    VGG16's ``features.`` alone: the full random file would be half a gigabyte)."""
    import torchvision.models as tvm

    torch.manual_seed(seed)
    state = getattr(tvm, arch)(weights=None, **kwargs).state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v for k, v in state.items() if k.startswith(only)}, folder / filename)
    return folder / filename


def save_random_squeezenet(folder: Path, seed: int = 0) -> Path:
    return save_random_torchvision(folder, "squeezenet1_1", weights.SQUEEZENET_FILE, seed)


def save_random_vgg16_features(folder: Path, seed: int = 0) -> Path:
    return save_random_torchvision(folder, "vgg16", weights.VGG16_FILE, seed, only="features.")


def save_random_imagenet_inception(folder: Path, seed: int = 0) -> Path:
    return save_random_torchvision(folder, "inception_v3", weights.IMAGENET_INCEPTION_FILE, seed, aux_logits=True,
                                   init_weights=True)


def load_sliced_backbone(ref_net: torch.nn.Module, tv_state: dict[str, torch.Tensor]) -> None:
    """Copy torchvision ``features.<i>...`` weights into a library's sliced backbone: lpips names them
    ``slice<k>.<i>...``, torchmetrics' SqueezeNet ``slices.<k>.<i>...``."""
    mapped = {}
    for key in ref_net.state_dict():
        rest = key.split(".", 2)[2] if key.startswith("slices.") else key.split(".", 1)[1]
        mapped[key] = tv_state[f"features.{rest}"]
    ref_net.load_state_dict(mapped)


def save_random_inception(folder: Path, seed: int = 0) -> Path:
    """Random torch-fidelity Inception weights (Kaiming convs so features vary) under the official file name."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    torch.manual_seed(seed)
    with mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, strict=True: None), \
            mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    torch.nn.init.normal_(net.fc.weight, std=0.5)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / weights.INCEPTION_FILE)
    return folder / weights.INCEPTION_FILE


def _person(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A smooth person-like image and its label map: background, a face (13) and a shirt (5, with a coat part 7)."""
    yy, xx = np.mgrid[0:H, 0:W]
    base = rng.uniform(40, 200, size=3)
    img = base + 30 * np.sin(xx[..., None] / rng.uniform(8, 30) + yy[..., None] / rng.uniform(8, 30))
    labels = np.zeros((H, W), np.uint8)
    top, left = rng.integers(70, 100), rng.integers(30, 60)
    labels[top:top + rng.integers(80, 120), left:W - rng.integers(30, 60)] = 5
    labels[top + 10:top + 40, left:left + 15] = 7
    labels[20:60, 70:120] = 13
    img[labels == 5] = rng.uniform(0, 255, size=3)
    img[labels == 13] = (220, 180, 150)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8), labels


def _cloth(rng: np.random.Generator, stripes: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((H, W, 3), 255, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[40:220, 30:162] = 255
    colour = rng.integers(0, 255, size=3)
    band = (np.arange(H)[:, None] // max(1, 40 // max(stripes, 1))) % 2 if stripes else np.zeros((H, 1), int)
    shirt = np.where(band[..., None] == 1, 255 - colour, colour) * np.ones((1, W, 1))
    img[mask > 0] = shirt[mask > 0]
    return img, mask


def make_dataset(root: Path, n: int = 6, seed: int = 0) -> list[str]:
    """A CP-VTON-layout test split with n persons; test_pairs.txt pairs person i with cloth i+1 (cyclic)."""
    rng = np.random.default_rng(seed)
    ids = [f"{i:06d}" for i in range(n)]
    for sub in fm.SOURCE_DIRS:
        (root / "test" / sub).mkdir(parents=True, exist_ok=True)
    for i, pid in enumerate(ids):
        img, labels = _person(rng)
        Image.fromarray(img).save(root / "test" / fm.IMAGE_DIR / fm.person_name(pid))
        Image.fromarray(labels, mode="L").save(root / "test" / fm.PARSE_DIR / fm.parse_name(fm.person_name(pid)))
        cloth, mask = _cloth(rng, stripes=i)
        Image.fromarray(cloth).save(root / "test" / fm.CLOTH_DIR / fm.cloth_name(pid))
        Image.fromarray(mask).save(root / "test" / fm.CLOTH_MASK_DIR / fm.cloth_name(pid))
        keypoints = {"people": [{"pose_keypoints": [0.0] * 3 * fm.NUM_JOINTS}]}
        (root / "test" / fm.POSE_DIR / fm.pose_name(fm.person_name(pid))).write_text(json.dumps(keypoints))
    same = [f"{fm.person_name(p)} {fm.cloth_name(p)}" for p in ids]
    other = [f"{fm.person_name(p)} {fm.cloth_name(ids[(i + 1) % n])}" for i, p in enumerate(ids)]
    (root / fm.TEST_PAIRS_SAME).write_text("\n".join(same) + "\n")
    (root / fm.TEST_PAIRS).write_text("\n".join(other) + "\n")
    return [fm.person_name(p) for p in ids]


def make_results(root: Path, data: Path, persons: list[str], seed: int = 1, warp: bool = True) -> Path:
    """Try-ons = the real person with noise (paired) or blur (unpaired); warp-mask = the cloth region dilated."""
    rng = np.random.default_rng(seed)
    for i, person in enumerate(persons):
        stem = Path(person).stem
        real = Image.open(data / "test" / fm.IMAGE_DIR / person).convert("RGB")
        noisy = np.asarray(real, np.float64) + rng.normal(0, 5 + 5 * i, (H, W, 3))
        for setting, img in (("paired", Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))),
                             ("unpaired", real.filter(ImageFilter.GaussianBlur(1 + i)))):
            (root / setting / fm.TRYON_DIR).mkdir(parents=True, exist_ok=True)
            img.save(root / setting / fm.TRYON_DIR / f"{stem}.png")
        if warp:
            labels = np.asarray(Image.open(data / "test" / fm.PARSE_DIR / fm.parse_name(person)))
            region = Image.fromarray(np.isin(labels, fm.CLOTH_LABELS).astype(np.uint8) * 255)
            (root / "paired" / fm.WARP_MASK_DIR).mkdir(parents=True, exist_ok=True)
            region.filter(ImageFilter.MaxFilter(2 * i + 1)).save(root / "paired" / fm.WARP_MASK_DIR / f"{stem}.png")
    return root


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims width x height (8-bit grey) and holds one row: what a decompression bomb's header says."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
                     + chunk(b"IEND", b""))
    return path


class _Layers(torch.nn.Module):
    """Stands in for the TorchScript file's ``layers``: normalised input -> B x 2048 x 1 x 1."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3 * 13 * 13, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.nn.functional.avg_pool2d(x, 23).flatten(1))[:, :, None, None]


class ScriptedInception(torch.nn.Module):
    """The interface clean-fid's InceptionV3W uses: ``base.layers`` and ``base(x, return_features=...)``."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _Layers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


def save_random_cleanfid_inception(folder: Path, seed: int = 1) -> Path:
    """A random stand-in for clean-fid's TorchScript ``inception-2015-12-05.pt`` (only 8 of its 2048 features vary,
    so tiny test sets keep well-conditioned covariances)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = ScriptedInception().eval()
    with torch.no_grad():
        net.layers.fc.weight[8:] = 0
        net.layers.fc.bias[8:] = 0
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.script(net).save(str(folder / weights.CLEANFID_INCEPTION_FILE))
    return folder / weights.CLEANFID_INCEPTION_FILE


_FID_INCEPTION_V3 = pytorch_fid_inception.fid_inception_v3  # the original, for tests that patch the name


def random_fid_inception() -> torch.nn.Module:
    """pytorch-fid's own FID Inception (``fid_inception_v3``), randomly initialised with seed 0: its
    state-dict fetch is answered with nothing and the load skipped."""
    with mock.patch.object(pytorch_fid_inception, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(torchvision.models.Inception3, "load_state_dict", lambda self, *a, **k: None), \
            torch.random.fork_rng():
        torch.manual_seed(0)
        return _FID_INCEPTION_V3()


def save_random_pytorch_fid_inception(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(random_fid_inception().state_dict(), folder / weights.PYTORCH_FID_INCEPTION_FILE)
    return folder / weights.PYTORCH_FID_INCEPTION_FILE


def save_random_weights(folder: Path) -> Path:
    """Every weight file the metric rows and protocols read, random, under its official name."""
    for save in (save_random_alexnet, save_random_squeezenet, save_random_vgg16_features, save_random_inception,
                 save_random_imagenet_inception, save_random_cleanfid_inception, save_random_pytorch_fid_inception):
        save(folder)
    return folder


def eval_world(root: Path, n: int, save_weights: Callable[[Path], object] = save_random_weights) -> dict[str, Path]:
    """An evaluation's inputs under ``root``: a CP-VTON test split of ``n`` persons (data), try-on results for it
    (results) and random weight files (weights, written by ``save_weights``)."""
    make_results(root / "results", root / "data", make_dataset(root / "data", n=n))
    save_weights(root / "weights")
    return {"root": root, "data": root / "data", "results": root / "results", "weights": root / "weights"}


class GivenFeatures(torch.nn.Module):
    """Hands torchmetrics precomputed features, so its IS / FID / KID formulas are compared on identical inputs."""

    num_features = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

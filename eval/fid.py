"""FID and KID exactly as clean-fid 0.1.35 and pytorch-fid 0.3.0 compute them, fed by images decoded once.

The libraries read folders themselves; here the same steps run on uint8 H x W x 3 arrays the caller decoded, so
several protocols share one pass over the files. Each step is the library's own code where it is reachable without
files (clean-fid's resizer, ``get_batch_features``, ``frechet_distance``, ``kernel_distance``; pytorch-fid's
``InceptionV3`` and ``calculate_frechet_distance``) and a line-for-line restatement where it is not (the file
listings, batching, pytorch-fid's activation storage), following GaParmar/clean-fid ``cleanfid/fid.py``,
``cleanfid/utils.py``, ``cleanfid/features.py`` (PyPI 0.1.35) and mseitzer/pytorch-fid ``src/pytorch_fid/
fid_score.py``, ``inception.py`` (v0.3.0).

Weights are read offline (``eval.weights.require``); nothing downloads.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from glob import glob
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from cleanfid.fid import frechet_distance, get_batch_features, kernel_distance
from cleanfid.inception_torchscript import InceptionV3W
from cleanfid.resize import build_resizer
from cleanfid.utils import EXTENSIONS as CLEANFID_EXTENSIONS
from pytorch_fid import inception
from pytorch_fid.fid_score import IMAGE_EXTENSIONS as PYTORCH_FID_EXTENSIONS
from pytorch_fid.fid_score import calculate_frechet_distance
from torch.nn.functional import adaptive_avg_pool2d
from torchvision.transforms import ToTensor

from vton.eval import weights

CPU = torch.device("cpu")
CLEANFID_BATCH = 32  # compute_fid / compute_kid default (make_custom_stats uses 64; only float noise differs)
PYTORCH_FID_BATCH = 50  # pytorch-fid's --batch-size default (VtonEval passes 16)
TO_TENSOR = ToTensor()  # uint8 H x W x 3 -> float32 3 x H x W in [0, 1]; float32 input keeps its values
FeatureModel = Callable[[torch.Tensor], torch.Tensor]


def cleanfid_files(folder: str | os.PathLike) -> list[Path]:
    """clean-fid's ``get_folder_features`` listing: a recursive ``glob`` per extension of its ``EXTENSIONS`` (bmp
    jpg jpeg pgm png ppm tif tiff webp npy JPEG JPG PNG; case-sensitive, hidden files and folders skipped, ``.npy``
    arrays included), sorted as full path *strings* (not as Paths: 'a.png' sorts before 'a/b.png' as a string,
    after it as a Path)."""
    fdir = os.fspath(folder)
    if ".zip" in fdir:  # clean-fid would open the path as a zip archive
        raise ValueError(f"{fdir}: clean-fid reads a path containing '.zip' as an archive; not a folder listing")
    return [Path(f) for f in sorted(f for ext in CLEANFID_EXTENSIONS
                                    for f in glob(os.path.join(fdir, f"**/*.{ext}"), recursive=True))]


def pytorch_fid_files(folder: str | os.PathLike) -> list[Path]:
    """pytorch-fid's ``compute_statistics_of_path`` listing: ``Path.glob('*.ext')`` in the folder only, for its
    lower-case ``IMAGE_EXTENSIONS`` only (bmp jpg jpeg pgm png ppm tif tiff webp; hidden files included, as pathlib
    matches them), sorted as Paths."""
    path = Path(folder)
    return sorted(f for ext in PYTORCH_FID_EXTENSIONS for f in path.glob(f"*.{ext}"))


def _check_images(images: Sequence[np.ndarray]) -> None:
    if not len(images):
        raise ValueError("no images: FID/KID features need at least one")
    for i, im in enumerate(images):
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3:
            raise ValueError(f"image {i}: expected uint8 H x W x 3, got {im.dtype} {im.shape}")


def _chunks(images: Sequence[np.ndarray], size: int) -> Iterator[Sequence[np.ndarray]]:
    """Consecutive batches in order, the last one short: a DataLoader with shuffle=False, drop_last=False."""
    return (images[start:start + size] for start in range(0, len(images), size))


class CleanFidFeatures:
    """clean-fid mode "clean": each image resized alone (PIL bicubic on float32 'F' channels to 299 x 299, clipped,
    not re-quantised), batched, through the feature model; float32 (N, D) like ``get_files_features``."""

    def __init__(self, model: FeatureModel, batch_size: int = CLEANFID_BATCH, device: torch.device = CPU,
                 weights_file: Path | None = None) -> None:
        self.model, self.batch_size, self.device, self.weights_file = model, batch_size, device, weights_file
        self.resize = build_resizer("clean")

    @classmethod
    def from_weights(cls, weights_dir: str | os.PathLike | None = None, batch_size: int = CLEANFID_BATCH,
                     device: torch.device = CPU) -> CleanFidFeatures:
        """clean-fid's own ``InceptionV3W`` on the TorchScript file found offline; ``download=False`` so it never
        fetches (its wrapper applies (x - 128) / 128 and keeps the 2048-d pool features)."""
        path = weights.require(weights.CLEANFID_INCEPTION_FILE, weights_dir)
        model = InceptionV3W(str(path.parent), download=False).to(device).eval()
        return cls(model, batch_size, device, path)

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        _check_images(images)
        return self.features_resized([self.resize(im) for im in images])

    def features_resized(self, resized: Sequence[np.ndarray]) -> np.ndarray:
        """Features of images already through clean-fid's resize (`vton.eval.views.cleanfid_resize`, made where the
        one pass decodes them), batched as clean-fid batches."""
        parts = [get_batch_features(torch.stack([TO_TENSOR(im) for im in chunk]), self.model, self.device)
                 for chunk in _chunks(resized, self.batch_size)]
        return np.concatenate(parts)


class PytorchFidFeatures:
    """pytorch-fid's ``get_activations``: ``ToTensor`` of the uint8 image ([0, 1]), a stacked batch (so one size per
    batch), the model's first output block, spatially averaged unless already 1 x 1, stored as float64 (N, D)."""

    def __init__(self, model: Callable[[torch.Tensor], list[torch.Tensor]], batch_size: int = PYTORCH_FID_BATCH,
                 device: torch.device = CPU, weights_file: Path | None = None) -> None:
        self.model, self.batch_size, self.device, self.weights_file = model, batch_size, device, weights_file

    @classmethod
    def from_weights(cls, weights_dir: str | os.PathLike | None = None, batch_size: int = PYTORCH_FID_BATCH,
                     device: torch.device = CPU) -> PytorchFidFeatures:
        """pytorch-fid's own ``InceptionV3([3])`` (pool3, 2048-d; resize to 299 bilinear and 2x - 1 inside) with the
        weight file found offline. Its ``fid_inception_v3`` fetches the state dict through the module-level
        ``load_state_dict_from_url``; that name is replaced by a reader of the local file only while the network
        is built, then restored."""
        path = weights.require(weights.PYTORCH_FID_INCEPTION_FILE, weights_dir)

        def local_file(url: str, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
            if url.rsplit("/", 1)[-1] != path.name:
                raise weights.MissingWeightsError(f"pytorch-fid asked for {url}, not {path.name}")
            return weights.load_state(path)

        with mock.patch.object(inception, "load_state_dict_from_url", local_file):
            model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
        return cls(model.to(device).eval(), batch_size, device, path)

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        _check_images(images)
        parts = []
        for chunk in _chunks(images, self.batch_size):
            if len({im.shape for im in chunk}) > 1:
                raise ValueError(f"pytorch-fid stacks a batch, so its images need one size; this batch has "
                                 f"{sorted({im.shape[:2] for im in chunk})} (H, W)")
            with torch.no_grad():
                pred = self.model(torch.stack([TO_TENSOR(im) for im in chunk]).to(self.device))[0]
            if pred.size(2) != 1 or pred.size(3) != 1:
                pred = adaptive_avg_pool2d(pred, output_size=(1, 1))
            parts.append(pred.squeeze(3).squeeze(2).cpu().numpy())
        return np.concatenate(parts).astype(np.float64)  # pytorch-fid fills an np.empty float64 array


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mu and sigma as both libraries compute them (compute_fid's either side, make_custom_stats,
    calculate_activation_statistics): ``np.mean`` in the features' dtype (float32 for clean-fid), ``np.cov``
    (float64, / (N - 1))."""
    return np.mean(feats, axis=0), np.cov(feats, rowvar=False)


_SCORES: dict[tuple, float] | None = None  # set inside `shared_scores`


@contextmanager
def shared_scores() -> Iterator[None]:
    """Within one run, protocols that score identical feature sets (CatVTON's and VtonEval's clean-fid FID on the
    same files) pay for one sqrtm; nothing is kept across runs."""
    global _SCORES
    _SCORES = {}
    try:
        yield
    finally:
        _SCORES = None


def _digest(a: np.ndarray) -> bytes:
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + np.ascontiguousarray(a).tobytes()).digest()


def _once(name: str, compute: Callable[[], float], *arrays: np.ndarray, extra: tuple = ()) -> float:
    """``compute()``, remembered by the exact bytes of its inputs: a pure function of them, so the value is the same."""
    if _SCORES is None:
        return compute()
    key = (name, *map(_digest, arrays), *extra)
    if key not in _SCORES:
        _SCORES[key] = compute()
    return _SCORES[key]


def cleanfid_fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """clean-fid's ``frechet_distance(mu_a, sigma_a, mu_b, sigma_b)``: a = fdir1, b = fdir2 for ``compute_fid(fdir1,
    fdir2)``; a = the folder, b = the custom statistics for ``compute_fid(fdir, dataset_name=..., dataset_split=
    "custom")``. Swapping them changes only float noise (sqrtm of S_b S_a instead of S_a S_b)."""
    return _once("clean-fid", lambda: float(frechet_distance(*gaussian_stats(feats_a), *gaussian_stats(feats_b))),
                 feats_a, feats_b)


def pytorch_fid_fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` of paths[0] (a) and paths[1] (b)."""
    return _once("pytorch-fid",
                 lambda: float(calculate_frechet_distance(*gaussian_stats(feats_a), *gaussian_stats(feats_b))),
                 feats_a, feats_b)


def cleanfid_kid(ref_feats: np.ndarray, gen_feats: np.ndarray, seed: int) -> float:
    """clean-fid's ``kernel_distance(ref_feats, gen_feats)`` (raw, not x1000) with the global ``np.random`` seeded
    for this call only. Its subsets are drawn from the *second* argument first, then the first. ref = fdir1, gen =
    fdir2 for ``compute_kid(fdir1, fdir2)``; ref = the custom statistics, gen = the folder for
    ``compute_kid(fdir, dataset_name=..., dataset_split="custom")``."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return kernel_distance(ref_feats, gen_feats)
    finally:
        np.random.set_state(state)

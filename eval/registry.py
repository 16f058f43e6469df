"""The metric table: one row per metric says what it scores, what it needs, how it is computed and what it means.

The one pass (`vton.eval.run`) loops over the rows, the summary's protocol block records their definitions, and the
reports and the CLI read names and directions from here. A per-image row's ``score`` reads the named inputs of one
batch (`Tensors`); a set-level row's ``score`` reads the Inception features gathered over the whole run.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final, Literal

from vton.core import formats as fm

if TYPE_CHECKING:
    from torch import Tensor

    from vton.eval.settings import Settings


class _Deferred:
    """A module imported when first used: the table is also read where no metric runs (reports, CLI help), and
    `vton.eval.metrics` imports torch."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)


M = _Deferred("vton.eval.metrics")
P = _Deferred("vton.eval.perceptual")

DATA_RANGE: Final = 1.0  # SSIM and PSNR on [0, 1] floats (uint8 / 255)
MASK_THRESHOLD: Final = 128  # warp-mask pixel >= 128 counts as cloth
SUBSET_METRIC: Final = "tv"  # always computed: its ranking of the in-shop cloths defines the LARGE / SMALL subsets
SUBSETS: Final = ("all", "large", "small")

# What a row may read. Per image: the generated image ("fake"), the real person ("real"), the warp-mask ("warp"), the
# real person's cloth region from the parse ("region"), an in-shop cloth ("cloth"). Set level: Inception features of
# the real persons and the generated images ("real", "fake").
INPUTS: Final = ("fake", "real", "warp", "region", "cloth")
NETWORKS: Final = ("lpips", "dists", "inception")


class Tensors:
    """The inputs of one batch by name, as float [0, 1] images (B, 3, H, W) or boolean masks (B, H, W), and the
    networks by name. Shared intermediates (the SSIM map) are made once, when a row first reads them."""

    def __init__(self, **named: Any) -> None:
        self.__dict__.update(named)

    @cached_property
    def ssim_map(self) -> Tensor:
        return M.ssim_map(self.fake, self.real, DATA_RANGE)


@dataclass(frozen=True)
class SetScore:
    """A set-level score: mean, std (None where the metric has none) and the parameter actually used, if any."""

    mean: float | None
    std: float | None = None
    used: int | None = None


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``level`` "image": ``score(t)`` gives one value per image of the batch (NaN: undefined for it);
    "set": ``score(t, settings)`` gives a `SetScore` from the features of a whole subset."""

    name: str
    setting: Literal["paired", "unpaired", "cloth"]
    higher_is_better: bool | None  # None: no direction (TV only ranks the cloths)
    inputs: tuple[str, ...]
    networks: tuple[str, ...]
    level: Literal["image", "set"]
    score: Callable[..., Any]
    definition: str


def _inception_score(t: Tensors, settings: Settings) -> SetScore:
    n = t.logits.shape[0]
    splits = min(settings.is_splits, max(1, n // 2))  # at least 2 images per split
    mean, std = M.inception_score(t.logits, splits, settings.seed) if n else (None, None)
    return SetScore(mean, std, splits)


def _fid(t: Tensors, settings: Settings) -> SetScore:
    return SetScore(M.frechet_distance(t.real, t.fake) if min(t.fake.shape[0], t.real.shape[0]) >= 2 else None)


def _kid(t: Tensors, settings: Settings) -> SetScore:
    size = min(settings.kid_subset_size, t.fake.shape[0], t.real.shape[0])
    mean, std = (M.kernel_inception_distance(t.real, t.fake, settings.kid_subsets, size, settings.seed)
                 if size >= 2 else (None, None))
    return SetScore(mean, std, size)


_CLOTH = list(fm.CLOTH_LABELS)
METRICS: Final = (
    MetricSpec("ssim", "paired", True, ("fake", "real"), (), "image", lambda t: t.ssim_map.mean(dim=(1, 2)),
               "SSIM of the try-on and the real person (Wang et al. as skimage, Gaussian window), channels averaged"),
    MetricSpec("lpips", "paired", False, ("fake", "real"), ("lpips",), "image",
               lambda t: t.lpips(t.fake * 2 - 1, t.real * 2 - 1),
               "LPIPS v0.1 (AlexNet) distance of the try-on to the real person"),
    MetricSpec("lpips_cloth", "paired", False, ("fake", "real", "region"), ("lpips",), "image",
               lambda t: P.masked_lpips(t.lpips, t.fake * 2 - 1, t.real * 2 - 1, t.region),
               f"garment fidelity: the LPIPS v0.1 (AlexNet) distance map (each layer's map upsampled bilinearly to "
               f"the image, summed over layers, as lpips' spatial=True) averaged over the real person's cloth region "
               f"(parse labels {_CLOTH}); NaN (excluded) if empty"),
    MetricSpec("dists", "paired", False, ("fake", "real"), ("dists",), "image",
               lambda t: P.dists(t.dists, t.fake, t.real),
               "DISTS (Ding et al. 2020, torchmetrics' network: VGG16 + L2 pooling, its shipped alpha/beta) of the "
               "try-on and the real person, inputs in [0,1]"),
    MetricSpec("iou", "paired", True, ("warp", "region"), (), "image", lambda t: M.iou(t.warp, t.region),
               f"warp-mask >= {MASK_THRESHOLD} vs parse labels {_CLOTH}; 1.0 if both empty"),
    MetricSpec("ssim_cloth", "paired", True, ("fake", "real", "region"), (), "image",
               lambda t: M.masked_mean(t.ssim_map, t.region),
               f"mean of the SSIM map over the pixels of the real person's cloth region (parse labels {_CLOTH}) "
               "inside the same cropped area; NaN (excluded) if empty"),
    MetricSpec("psnr", "paired", True, ("fake", "real"), (), "image", lambda t: M.psnr(t.fake, t.real, DATA_RANGE),
               f"PSNR 10 log10({DATA_RANGE:g}^2 / MSE) of the try-on and the real person, RGB uint8/255, MSE over all "
               "pixels and channels; inf for an identical image (as skimage), which the statistics leave out"),
    MetricSpec("is", "unpaired", True, ("fake",), ("inception",), "set", _inception_score,
               "Inception Score exp(E KL(p(y|x) || p(y))) of the unpaired try-ons, mean and std over splits"),
    MetricSpec("fid", "unpaired", False, ("fake", "real"), ("inception",), "set", _fid,
               "Frechet distance of the Inception pool3 features of the unpaired try-ons and the real persons"),
    MetricSpec("kid", "unpaired", False, ("fake", "real"), ("inception",), "set", _kid,
               "Kernel Inception Distance (unbiased polynomial MMD^2) of the unpaired try-ons and the real persons, "
               "mean and std over random subsets"),
    MetricSpec("tv", "cloth", None, ("cloth",), (), "image", lambda t: M.total_variation(t.cloth),
               "anisotropic L1 on [0,1] RGB, sum of |vertical| + |horizontal| differences / (C*H*W)"),
)
SPECS: Final = {spec.name: spec for spec in METRICS}
ALL_METRICS: Final = tuple(SPECS)
PAIRED_METRICS: Final = tuple(s.name for s in METRICS if s.setting == "paired")  # per image, against the real person
UNPAIRED_METRICS: Final = tuple(s.name for s in METRICS if s.setting == "unpaired")  # on the official unpaired pairs
CLOTH_METRICS: Final = tuple(s.name for s in METRICS if s.setting == "cloth")
SETTING_OF: Final = {s.name: s.setting for s in METRICS}
HIGHER_IS_BETTER: Final = {s.name: s.higher_is_better for s in METRICS if s.higher_is_better is not None}

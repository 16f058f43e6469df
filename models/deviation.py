"""How far the fast path's images are from the exact path's, on the same pairs: the record `vton infer --fast`
writes to infer.json and bench/infer.py prints.

What a user needs is that scores do not move, so beside the pixel figures the record holds the change of the two
scores inference alone decides: paired SSIM (try-on against the person photo, as skimage computes it with
``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``, the convention of `vton evaluate`) and the
warped-mask IoU (warp-mask >= 128 against the person's cloth region in the parse). Both changes must stay within
``TOLERANCE``.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vton.core import formats as fm

TOLERANCE = 1e-3  # largest accepted |change| of mean paired SSIM and of mean warped-mask IoU
MASK_LEVEL = 128  # a warp-mask pixel >= 128 is cloth, as `vton evaluate` reads it


def mean_ssim(images: np.ndarray, references: np.ndarray) -> float:
    """Mean SSIM of uint8 N x H x W x 3 images against their references, on [0, 1] floats."""
    from skimage.metrics import structural_similarity

    return float(np.mean([
        structural_similarity(a / 255.0, b / 255.0, channel_axis=-1, data_range=1.0, gaussian_weights=True,
                              sigma=1.5, use_sample_covariance=False)
        for a, b in zip(images, references)
    ]))


def mean_iou(masks: np.ndarray, regions: np.ndarray) -> float:
    """Mean IoU of uint8 N x H x W (x 1) warp-masks (>= 128) against boolean regions; two empty masks agree (1)."""
    cloth = masks.reshape(regions.shape) >= MASK_LEVEL
    inter = (cloth & regions).sum(axis=(1, 2))
    union = (cloth | regions).sum(axis=(1, 2))
    return float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))


def pixel_figures(exact: np.ndarray, fast: np.ndarray) -> dict[str, float | int]:
    """Share of pixels (all channels) equal, and the largest difference of one value, of two uint8 N x H x W x C."""
    equal = (exact == fast).all(axis=-1)
    diff = np.abs(exact.astype(np.int16) - fast.astype(np.int16))
    return {"equal_pixels": float(equal.mean()), "max_abs_diff": int(diff.max(initial=0)), "pixels": int(equal.size)}


def deviation_record(exact: Mapping[str, np.ndarray], fast: Mapping[str, np.ndarray], persons: np.ndarray,
                     regions: np.ndarray) -> dict:
    """Pixel figures per output folder and over all, and the change (fast - exact) of mean paired SSIM and of mean
    warped-mask IoU, for the same pairs: ``exact`` / ``fast`` map folders to uint8 N x H x W x C images, ``persons``
    are the pairs' person photos (uint8 N x H x W x 3), ``regions`` their cloth regions (bool N x H x W)."""
    folders = {folder: pixel_figures(exact[folder], fast[folder]) for folder in exact}
    pixels = sum(f["pixels"] for f in folders.values())
    record: dict = {
        "pairs": len(persons),
        "equal_pixels": sum(f["equal_pixels"] * f["pixels"] for f in folders.values()) / max(pixels, 1),
        "max_abs_diff": max((f["max_abs_diff"] for f in folders.values()), default=0),
        "folders": folders,
        "iou_change": mean_iou(fast[fm.WARP_MASK_DIR], regions) - mean_iou(exact[fm.WARP_MASK_DIR], regions),
        "ssim_change": None,
        "tolerance": TOLERANCE,
    }
    if fm.TRYON_DIR in exact:
        record["ssim_change"] = mean_ssim(fast[fm.TRYON_DIR], persons) - mean_ssim(exact[fm.TRYON_DIR], persons)
    record["within_tolerance"] = all(abs(record[k] or 0.0) <= TOLERANCE for k in ("ssim_change", "iou_change"))
    return record


def describe(record: Mapping) -> str:
    """One line of a deviation record, for bench/infer.py and error messages."""
    ssim = "n/a (no TOM)" if record["ssim_change"] is None else f"{record['ssim_change']:+.2e}"
    return (f"{record['pairs']} pairs: equal pixels {record['equal_pixels']:.4f}, max |diff| "
            f"{record['max_abs_diff']} levels, paired SSIM change {ssim}, warped-mask IoU change "
            f"{record['iou_change']:+.2e} (tolerance {record['tolerance']:g})")

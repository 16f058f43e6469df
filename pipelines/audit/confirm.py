"""Confirmation of a candidate pair by its pixels at a common size.

A re-encode, resize, brightness or contrast change leaves two copies aligned; a crop or pad of a few per cent
rescales and shifts the content, a shift moves it. So the pair is aligned first, coarsely on the 48x64 thumbnails
(`signature.THUMB_WH`: scales 0.96-1.04, shifts up to `MAX_SHIFT` pixels; the pose of least mean-removed squared
difference), then within a pixel at the working size (`signature.WORK_WH`, 96x128). The score is the share of
pixels there that agree: with b's brightness and contrast matched to a's (a gain within 1 +- `MAX_GAIN`), each pixel
of one lies within `TOLERANCE` of the range of the other's 3x3 neighbourhood in every channel (so a sub-pixel
misalignment at an edge is forgiven, a region of another colour or texture is not). A shared pose or background
alone scores low: the clothes, hair and skin differ.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

SCALES = (0.96, 0.98, 1.0, 1.02, 1.04)  # a crop or pad of up to 4% of each side's length
MAX_SHIFT = 3  # thumbnail pixels (48 wide): 6% of the width
TOLERANCE = 12  # levels beyond the neighbourhood's range: what JPEG and resampling leave
MAX_GAIN = 0.1
# Gaussian sigma at the working size, against JPEG noise and the softening a resize, crop or pad leaves: on 250
# synthetic persons and cloths with each edit, 1.0 confirms every copy where 0.5 missed 0.5% of the persons' and 1.9%
# of the cloths' (fine prints lose their extremes when rescaled), while unrelated people in one pose and background
# score at most 0.888 against 0.877
FINE_BLUR = 1.0


def _overlap(a: np.ndarray, b: np.ndarray, oy: int, ox: int) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``a`` and ``b`` that coincide when ``b``'s top-left pixel lies at (oy, ox) of ``a``."""
    y0, x0 = max(oy, 0), max(ox, 0)
    y1, x1 = min(a.shape[0], oy + b.shape[0]), min(a.shape[1], ox + b.shape[1])
    return a[y0:y1, x0:x1], b[y0 - oy:y1 - oy, x0 - ox:x1 - ox]


def _scaled(b: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return b
    height, width = b.shape[:2]
    return np.asarray(Image.fromarray(b).resize((round(width * scale), round(height * scale)),
                                                Image.Resampling.BILINEAR))


def _window_sums(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sums of ``x`` (H, W) over every height x width window (valid positions)."""
    c = np.pad(x.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return c[height:, width:] - c[:-height, width:] - c[height:, :-width] + c[:-height, :-width]


def _costs(core: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean-removed mean squared difference of ``core`` (h, w, C) against every window of ``b`` of its size,
    computed at once: sum(b^2) - 2 sum(core * b) + sum(core^2), less the squared difference of the means."""
    from scipy.signal import correlate

    h, w = core.shape[:2]
    n = h * w * core.shape[2]
    cross = sum(correlate(b[..., c], core[..., c], mode="valid", method="fft") for c in range(core.shape[2]))
    b_sum = _window_sums(b.sum(axis=2), h, w)
    b_sq = _window_sums((b * b).sum(axis=2), h, w)
    ssd = b_sq - 2 * cross + float((core * core).sum())
    return ssd / n - ((b_sum - float(core.sum())) / n) ** 2


def _best(a: np.ndarray, b: np.ndarray, scales: tuple[float, ...], centre: tuple[int, int] | None, shift: int
          ) -> tuple[float, int, int]:
    """The (scale, oy, ox) of least mean-removed squared difference: b rescaled, its top-left pixel at (oy, ox) of
    a, within ``shift`` of ``centre`` (None: the offset that centres b on a). The inner part of a that every such b
    covers (a margin cut) is compared with the windows of b of its size."""
    best: tuple[float, float, int, int] | None = None
    for scale in scales:
        bs = _scaled(b, scale).astype(np.float64)
        cy, cx = centre if centre is not None else ((a.shape[0] - bs.shape[0]) // 2, (a.shape[1] - bs.shape[1]) // 2)
        margin = 1 + shift + max(cy, cx, a.shape[0] - bs.shape[0] - cy, a.shape[1] - bs.shape[1] - cx, 0)
        core = a[margin:a.shape[0] - margin, margin:a.shape[1] - margin].astype(np.float64)
        if min(core.shape[:2]) < min(a.shape[:2]) // 2:
            continue  # too little left to compare
        costs = _costs(core, bs)  # core at (py, px) of bs: b's origin at (margin - py, margin - px) of a
        for oy in range(cy - shift, cy + shift + 1):
            for ox in range(cx - shift, cx + shift + 1):
                cost = float(costs[margin - oy, margin - ox])
                if best is None or cost < best[0]:
                    best = (cost, scale, oy, ox)
    if best is None:
        raise ValueError("no alignment leaves enough of the images to compare")
    return best[1:]


def coarse_alignment(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int]:
    """Scale and offset of b's thumbnail on a's (uint8 (H, W, 3) each): centred, shifts up to `MAX_SHIFT`."""
    return _best(a, b, SCALES, None, MAX_SHIFT)


def _inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pixels of ``x`` within `TOLERANCE` of the range of ``y``'s 3x3 neighbourhood, in every channel."""
    from scipy.ndimage import maximum_filter, minimum_filter

    low = minimum_filter(y, size=(3, 3, 1), mode="nearest")
    high = maximum_filter(y, size=(3, 3, 1), mode="nearest")
    return ((x >= low - TOLERANCE) & (x <= high + TOLERANCE)).all(axis=2)


def agreement(pa: np.ndarray, pb: np.ndarray) -> float:
    """The share of agreeing pixels of two aligned float RGB arrays (see the module)."""
    xa, xb = pa - pa.mean(), pb - pb.mean()
    denominator = float((xa * xa).sum())
    gain = float(np.clip((xa * xb).sum() / denominator, 1 - MAX_GAIN, 1 + MAX_GAIN)) if denominator else 1.0
    matched = gain * xa + pb.mean()
    return float((_inside(matched, pb) & _inside(pb, matched)).mean())


def _fine(work: Image.Image) -> np.ndarray:
    return np.asarray(work.filter(ImageFilter.GaussianBlur(FINE_BLUR)))


def pixel_score(a_thumb: np.ndarray, b_thumb: np.ndarray, a_work: Image.Image, b_work: Image.Image) -> float:
    """The agreement of a pair (1 for the same picture): aligned on the thumbnails, refined and scored at the
    working size (an integer multiple of the thumbnail's)."""
    scale, oy, ox = coarse_alignment(a_thumb, b_thumb)
    ratio = a_work.width // a_thumb.shape[1]
    a, b = _fine(a_work), _fine(b_work)
    _, fy, fx = _best(a, b, (scale,), (oy * ratio, ox * ratio), ratio)
    return agreement(*_overlap(a.astype(np.float64), _scaled(b, scale).astype(np.float64), fy, fx))

"""CP-VTON's cloth-agnostic person representation, as pure numpy functions on uint8 images.

This is the ONE place it is computed; `prepare` (precomputed shape, samples) and `TryOnDataset` use it.
Every piece is a uint8 image whose CP-VTON tensor is ``T(x) = (x / 255 - 0.5) / 0.5``: black (0) maps to exactly
-1 and white (255) to exactly +1, so ``T(where(head, image, 0))`` equals the reference ``im * phead - (1 - phead)``
bit for bit, and the same holds for the cloth target and the pose squares (sergeywong/cp-vton cp_dataset.py,
CPDataset.__getitem__).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from vton.core.formats import FINE_HEIGHT, FINE_WIDTH, LIP, POSE_RADIUS, LabelSpace

GRID_SPACING = 17  # grid.png of the reference: 3-pixel red lines every 17 pixels inside a 1-pixel frame
GRID_LINE = 3


def label_mask(parse: np.ndarray, labels: Iterable[int]) -> np.ndarray:
    """Boolean mask of the pixels whose LIP label is one of ``labels``."""
    return np.isin(parse, tuple(labels))


def body_mask(parse: np.ndarray, labels: LabelSpace = LIP) -> np.ndarray:
    """Every non-background label (CP-VTON's body shape before the blur)."""
    return parse != labels.background


def shape_image(parse: np.ndarray, labels: LabelSpace = LIP) -> np.ndarray:
    """The blurred body shape: mask x255 as 'L', BILINEAR down to (W/16, H/16) and back up (uint8, H x W); relative to
    the parse's own size, so the same at every prepared size."""
    height, width = parse.shape
    small = Image.fromarray(body_mask(parse, labels).astype(np.uint8) * 255).resize(
        (width // 16, height // 16), Image.Resampling.BILINEAR)
    return np.asarray(small.resize((width, height), Image.Resampling.BILINEAR))


def keep_region(image: np.ndarray, mask: np.ndarray, fill: int) -> np.ndarray:
    """RGB ``image`` where ``mask``, the grey level ``fill`` elsewhere (0 -> -1, 255 -> +1 after T)."""
    return np.where(mask[..., None], image, np.uint8(fill)).astype(np.uint8)


def head_image(image: np.ndarray, parse: np.ndarray, labels: LabelSpace = LIP) -> np.ndarray:
    """Reserved region (LIP: hat, hair, sunglasses, face) keeps its RGB, black elsewhere."""
    return keep_region(image, label_mask(parse, labels.head), 0)


def cloth_target(image: np.ndarray, parse: np.ndarray, labels: LabelSpace = LIP) -> np.ndarray:
    """The GMM target: the worn cloth (LIP: upper clothes, dress, coat) keeps its RGB, white elsewhere."""
    return keep_region(image, label_mask(parse, labels.cloth), 255)


def pose_radius(height: int) -> int:
    """The pose squares' half-side at ``height`` rows: CP-VTON's 5 at 256, scaled with the height (10 at 512, 20 at
    1024) so a square covers the same part of the body at every size `vton prepare --size` writes, as the 1/16 blur
    of `shape_image` does; floored for other heights."""
    return POSE_RADIUS * height // FINE_HEIGHT


def pose_squares(keypoints: np.ndarray, height: int = FINE_HEIGHT, width: int = FINE_WIDTH,
                 radius: int | None = None) -> np.ndarray:
    """One uint8 0/255 map per joint: a filled square of half-side ``radius`` (default `pose_radius` of ``height``)
    where x > 1 and y > 1.

    Pillow's ``rectangle((x-r, y-r, x+r, y+r))`` semantics: float corners truncated towards zero, both ends inclusive,
    clipped at the borders (checked against Pillow in the tests). Joints are never dropped: missing ones give a 0 map.
    """
    radius = pose_radius(height) if radius is None else radius
    maps = np.zeros((len(keypoints), height, width), np.uint8)
    for j, (x, y) in enumerate(np.asarray(keypoints, np.float64)[:, :2]):
        if x > 1 and y > 1:
            x0, x1, y0, y1 = int(x - radius), int(x + radius), int(y - radius), int(y + radius)
            maps[j, max(y0, 0):max(y1 + 1, 0), max(x0, 0):max(x1 + 1, 0)] = 255
    return maps


def pose_image(maps: np.ndarray) -> np.ndarray:
    """All squares on one canvas (the reference's ``im_pose``, for visualisation)."""
    return maps.max(axis=0) if len(maps) else np.zeros(maps.shape[1:], np.uint8)


def grid_image(height: int = FINE_HEIGHT, width: int = FINE_WIDTH) -> np.ndarray:
    """The reference grid.png (RGB, red 0/255 lines), drawn procedurally.

    Rows r with (r + 1) % 17 < 3 and columns c with (c - 1) % 17 < 3 are lines, plus the first and last column.
    """
    rows = (np.arange(height) + 1) % GRID_SPACING < GRID_LINE
    cols = (np.arange(width) - 1) % GRID_SPACING < GRID_LINE
    cols[[0, -1]] = True
    grid = np.zeros((height, width, 3), np.uint8)
    grid[..., 0] = np.where(rows[:, None] | cols[None, :], 255, 0)
    return grid


def visualise(image: np.ndarray, parse: np.ndarray, keypoints: np.ndarray, cloth: np.ndarray,
              cloth_mask: np.ndarray) -> np.ndarray:
    """A strip for reports: person | shape | head | pose | cloth target | cloth | cloth mask (uint8 RGB)."""
    def rgb(gray: np.ndarray) -> np.ndarray:
        return np.repeat(gray[..., None], 3, axis=2)

    maps = pose_squares(keypoints, *parse.shape)
    panels = [image, rgb(shape_image(parse)), head_image(image, parse), rgb(pose_image(maps)),
              cloth_target(image, parse), cloth, rgb(cloth_mask)]
    return np.concatenate(panels, axis=1)


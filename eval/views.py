"""What an evaluation script does to an image between decoding it and scoring it, as hashable steps.

Each protocol names, per file, the steps its script applies (resize with a PIL filter, a JPEG round trip where the
script re-saves a ``.jpg`` copy, clean-fid's own resize before its Inception); a view is (file, steps). The one pass
decodes each file once and makes every view any protocol asks of it, so protocols that resize the same way share the
work. The functions are pure, on uint8 H x W x 3 arrays (float32 for clean-fid's resize, as it leaves them).
"""
from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Final

import numpy as np
from PIL import Image

from vton.core.io import encode_image

FILTERS: Final = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}

# A step: ("resize", filter, (w, h)) | ("jpeg", quality) | ("cleanfid",)
Step = tuple
Steps = tuple[Step, ...]


def resize(img: np.ndarray, size_wh: tuple[int, int], filt: str) -> np.ndarray:
    """PIL resize, as torchvision's ``Resize`` on a PIL image and the scripts' ``Image.resize`` do it (antialiased
    when shrinking). A resize to the same size returns the image itself: PIL's is the identity there too."""
    if (img.shape[1], img.shape[0]) == tuple(size_wh):
        return img
    return np.asarray(Image.fromarray(img).resize(tuple(size_wh), FILTERS[filt]))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """The pixels a script reads back after saving ``img`` as JPEG at ``quality`` (PIL's encoder and decoder, PIL's
    default 4:2:0 subsampling at that quality), as when a script writes a resized ``.jpg`` copy of the ground truth."""
    data = encode_image(Image.fromarray(img), "JPEG", quality=quality)
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def cleanfid_resize(img: np.ndarray) -> np.ndarray:
    """clean-fid's "clean" resize to 299 x 299 (float32 H x W x 3, not re-quantised), by clean-fid's own function."""
    from cleanfid.resize import build_resizer

    return build_resizer("clean")(img)


def apply(img: np.ndarray, steps: Sequence[Step]) -> np.ndarray:
    """``img`` after ``steps``, in order."""
    for step in steps:
        kind = step[0]
        if kind == "resize":
            img = resize(img, step[2], step[1])
        elif kind == "jpeg":
            img = jpeg(img, step[1])
        elif kind == "cleanfid":
            img = cleanfid_resize(img)
        else:
            raise ValueError(f"unknown image step {step!r}")
    return img

"""Names of the evaluation metrics and the direction in which each one improves."""
from __future__ import annotations

from typing import Final

HIGHER_IS_BETTER: Final = {
    "ssim": True, "lpips": False, "iou": True, "ssim_cloth": True, "is": True, "fid": False, "kid": False,
}  # "tv" has no direction: it only ranks the in-shop cloths into the LARGE / SMALL subsets
PAIRED_METRICS: Final = ("ssim", "lpips", "iou", "ssim_cloth")  # per image, against the real person
UNPAIRED_METRICS: Final = ("is", "fid", "kid")  # set level, on the official unpaired pairs
CLOTH_METRICS: Final = ("tv",)
ALL_METRICS: Final = PAIRED_METRICS + UNPAIRED_METRICS + CLOTH_METRICS
SETTING_OF: Final = {**{m: "paired" for m in PAIRED_METRICS}, **{m: "unpaired" for m in UNPAIRED_METRICS},
                     "tv": "cloth"}
SUBSETS: Final = ("all", "large", "small")


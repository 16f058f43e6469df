"""Which network variant and width to build; stored in our bundles so the same nets are rebuilt on load."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

VARIANTS: Final = ("cpvton", "cpvton+")
PAPER_WIDTH: Final = 64  # ngf of both GMM and TOM in the paper
# Far above any trainable net, and low enough that every layer's element count fits in 64 bits (a width of 1e9 read
# from a file would overflow even on the meta device).
MAX_WIDTH: Final = 1 << 20
AGNOSTIC_CHANNELS: Final = 22  # shape (1) + head (3) + pose maps (18)
GRID_SIZE: Final = 5  # 5x5 TPS control points
# GMM extractionB input: the RGB cloth (CP-VTON) or the 1-channel cloth mask (CP-VTON+).
GMM_CLOTH_CHANNELS: Final = {"cpvton": 3, "cpvton+": 1}
# TOM input: [agnostic, warped cloth] (CP-VTON) or [agnostic, warped cloth, warped mask] (CP-VTON+).
TOM_INPUT_CHANNELS: Final = {"cpvton": AGNOSTIC_CHANNELS + 3, "cpvton+": AGNOSTIC_CHANNELS + 4}


# The GMM's regression Linear takes width * (H / 64) * (W / 64) features (gmm.FeatureRegression): CP-VTON's networks,
# and every checkpoint of them, are built for this (height, width) only.
NETWORK_SIZE_HW: Final = (256, 192)


def check_input_size(size_hw: tuple[int, int], data: object) -> None:
    """Refuse, in one line, a dataset ``data`` whose images are not `NETWORK_SIZE_HW` (`vton prepare --size`)."""
    if tuple(size_hw) != NETWORK_SIZE_HW:
        raise ValueError(f"{data} holds {size_hw[0]}x{size_hw[1]} images: the GMM's regression layer is built for "
                         "256x192 inputs; prepare with --size 256x192")


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return variant


def check_width(width: int) -> int:
    if not 1 <= int(width) <= MAX_WIDTH:
        raise ValueError(f"network width must be a channel count from 1 to {MAX_WIDTH}, got {width!r}")
    return int(width)


@dataclass(frozen=True)
class ModelConfig:
    """Variant and base channel widths (ngf) of the GMM and TOM; the paper's nets are width 64."""

    variant: str = "cpvton"
    gmm_width: int = PAPER_WIDTH
    tom_width: int = PAPER_WIDTH

    def __post_init__(self) -> None:
        check_variant(self.variant)
        check_width(self.gmm_width)
        check_width(self.tom_width)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ModelConfig:
        """Strict, since the data come from a file: every field present with the type of its default (a width of
        "64", 2.7 or True is refused rather than guessed); ValueError says which field is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"config is a {type(data).__name__}, not a mapping")
        for f in fields(cls):
            if f.name not in data:
                raise ValueError(f"config lacks {f.name}")
            value, kind = data[f.name], type(f.default)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"config {f.name} is {value!r}, not of type {kind.__name__}")
        return cls(**{f.name: data[f.name] for f in fields(cls)})

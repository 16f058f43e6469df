"""Which network variant and width to build; stored in our bundles so the same nets are rebuilt on load."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

VARIANTS: Final = ("cpvton", "cpvton+")
PAPER_WIDTH: Final = 64  # ngf of both GMM and TOM in the paper
AGNOSTIC_CHANNELS: Final = 22  # shape (1) + head (3) + pose maps (18)
GRID_SIZE: Final = 5  # 5x5 TPS control points
# GMM extractionB input: the RGB cloth (CP-VTON) or the 1-channel cloth mask (CP-VTON+).
GMM_CLOTH_CHANNELS: Final = {"cpvton": 3, "cpvton+": 1}
# TOM input: [agnostic, warped cloth] (CP-VTON) or [agnostic, warped cloth, warped mask] (CP-VTON+).
TOM_INPUT_CHANNELS: Final = {"cpvton": AGNOSTIC_CHANNELS + 3, "cpvton+": AGNOSTIC_CHANNELS + 4}


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return variant


def check_width(width: int) -> int:
    if int(width) < 1:
        raise ValueError(f"network width must be a positive channel count, got {width!r}")
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
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        return cls(variant=str(data["variant"]), gmm_width=int(data["gmm_width"]), tom_width=int(data["tom_width"]))

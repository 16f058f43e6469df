"""Try-On Module of CP-VTON: the pix2pix-style U-Net (Upsample + 3x3 conv, InstanceNorm), original module names."""
from __future__ import annotations

import torch
from torch import nn

from vton.models.config import PAPER_WIDTH, TOM_INPUT_CHANNELS, check_variant

NUM_DOWNS = 6


def _up(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.ReLU(True),
        nn.Upsample(scale_factor=2, mode="bilinear"),
        nn.Conv2d(in_channels, out_channels, 3, 1, 1),
        nn.InstanceNorm2d(out_channels),
    ]


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level; non-outermost levels return [x, block(x)] on channels."""

    def __init__(
        self, outer: int, inner: int, submodule: nn.Module | None = None, in_channels: int | None = None
    ) -> None:
        super().__init__()
        self.outermost = in_channels is not None
        down = nn.Conv2d(in_channels if self.outermost else outer, inner, 4, 2, 1)
        if self.outermost:
            layers = [down, submodule, *_up(2 * inner, outer)]
        elif submodule is None:  # innermost
            layers = [nn.LeakyReLU(0.2, True), down, *_up(inner, outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nn.InstanceNorm2d(inner), submodule, *_up(2 * inner, outer)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        # The in-place LeakyReLU at model[0] rewrites x, as in the original; harmless, since the parent block applies
        # ReLU to the concatenation first and ReLU(LeakyReLU(x)) = ReLU(x).
        out = self.model(x)
        return torch.cat([x, out], 1)


class TOM(nn.Module):
    """UnetGenerator(25 or 26 -> 4, 6 downs, ngf=width, InstanceNorm); forward returns the raw 4-channel output."""

    def __init__(self, variant: str = "cpvton", width: int = PAPER_WIDTH) -> None:
        super().__init__()
        self.variant, self.width = check_variant(variant), width
        block = UnetSkipConnectionBlock(8 * width, 8 * width)
        for _ in range(NUM_DOWNS - 5):
            block = UnetSkipConnectionBlock(8 * width, 8 * width, block)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(mult * width, 2 * mult * width, block)
        self.model = UnetSkipConnectionBlock(4, width, block, in_channels=TOM_INPUT_CHANNELS[variant])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def tom_input(
    agnostic: torch.Tensor, warped_cloth: torch.Tensor, warped_mask: torch.Tensor, variant: str
) -> torch.Tensor:
    """[agnostic, warped cloth] for CP-VTON; CP-VTON+ appends the warped mask."""
    parts = [agnostic, warped_cloth] + ([warped_mask] if variant == "cpvton+" else [])
    return torch.cat(parts, 1)


def compose(out: torch.Tensor, warped_cloth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw TOM output -> (try-on, rendered person tanh, composition mask sigmoid); try-on = M c + (1 - M) rendered."""
    rendered, mask = torch.split(out, 3, 1)
    rendered, mask = torch.tanh(rendered), torch.sigmoid(mask)
    return warped_cloth * mask + rendered * (1 - mask), rendered, mask


# The original TOM read the warped mask back from an 8-bit file (value m * 255, truncated) and kept pixels >= 128.
WARP_MASK_THRESHOLD = 128 / 255


def binarize_warped_mask(warped_mask: torch.Tensor) -> torch.Tensor:
    return (warped_mask >= WARP_MASK_THRESHOLD).to(warped_mask.dtype)


def run_tom(tom: TOM, agnostic: torch.Tensor, warped_cloth: torch.Tensor, warped_mask: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(try-on, rendered person, composition mask) for a batch; shared by training and inference."""
    return compose(tom(tom_input(agnostic, warped_cloth, warped_mask, tom.variant)), warped_cloth)

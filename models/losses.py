"""Training losses of CP-VTON and CP-VTON+: the VGG19 perceptual loss and the GMM grid regulariser L_gic."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from vton.core import weight_files
from vton.core.weights import MissingWeightsError, require

VGG19_FILE = weight_files.using(weight_files.VGG_LOSS).filename  # torchvision's ImageNet VGG19 weights
# Slices of vgg19.features as the original VGGLoss cuts them: [0:2] [2:7] [7:12] [12:21] [21:30]; their last
# layers are ReLU 1, 6, 11, 20, 29 = relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def vgg19_weights_path(explicit: str | os.PathLike | None = None) -> Path:
    """The VGG19 file given by the user, else torchvision's ImageNet VGG19 where torchvision caches it."""
    if explicit and not Path(explicit).is_file():
        raise MissingWeightsError(f"VGG19 weights file {explicit} does not exist")
    return Path(explicit) if explicit else require(
        VGG19_FILE, hint="; or pass --vgg-weights PATH, or train without the perceptual loss (--lambda-vgg 0)")


class VGGLoss(nn.Module):
    """sum_i w_i L1(phi_i(x), phi_i(y)) over frozen VGG19 slices; inputs in [-1, 1] without ImageNet normalisation."""

    def __init__(self, weights_path: str | os.PathLike | None = None) -> None:
        super().__init__()
        from torchvision.models import vgg19

        state = torch.load(vgg19_weights_path(weights_path), map_location="cpu", weights_only=True)
        with torch.device("meta"):  # no random init of 143M parameters that the file replaces anyway
            net = vgg19()
        net.load_state_dict(state, strict=True, assign=True)
        features = net.features
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in VGG_SLICES)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGLoss:  # frozen feature extractor: never leaves eval mode
        return super().train(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.features(x), self.features(y)
        return sum(w * torch.nn.functional.l1_loss(a, b.detach()) for w, a, b in zip(VGG_WEIGHTS, fx, fy))


def grid_regularizer(grid: torch.Tensor) -> torch.Tensor:
    """CP-VTON+ L_gic summed over interior points:
    | |Gx(l)-Gx(c)| - |Gx(r)-Gx(c)| | + | |Gy(u)-Gy(c)| - |Gy(d)-Gy(c)| |."""
    gx, gy = grid[..., 0], grid[..., 1]
    cx, cy = gx[:, 1:-1, 1:-1], gy[:, 1:-1, 1:-1]
    left, right = (gx[:, 1:-1, :-2] - cx).abs(), (gx[:, 1:-1, 2:] - cx).abs()
    up, down = (gy[:, :-2, 1:-1] - cy).abs(), (gy[:, 2:, 1:-1] - cy).abs()
    return ((left - right).abs() + (up - down).abs()).sum()

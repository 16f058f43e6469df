"""Perceptual metric networks, built from local weight files: LPIPS v0.1 (AlexNet or SqueezeNet), DISTS, and the
torchvision ImageNet Inception that HR-VITON's Inception Score uses.

Each reproduces a library's computation exactly (tests hold them to it on random weights):
- LPIPS as ``lpips`` 0.1.4 (richzhang/PerceptualSimilarity) and torchmetrics ``LearnedPerceptualImagePatchSimilarity``;
  the two differ only in how features are unit-normalised (``eps``).
- DISTS as torchmetrics ``DeepImageStructureAndTextureSimilarity`` (>= 1.7.0), whose VGG16 would otherwise download.
- HR-VITON's ``inception_v3(pretrained=True, transform_input=False)`` followed by a softmax.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vton.eval.metrics import masked_mean
from vton.eval.weights import load_state

Backbone = Literal["alex", "squeeze"]
Eps = Literal["lpips", "torchmetrics"]

# Indices in torchvision's ``features`` whose outputs LPIPS compares: the last module of each slice that lpips
# 0.1.4 (pretrained_networks.py) and torchmetrics (functional/image/lpips.py) cut, i.e. the ReLUs for AlexNet,
# ReLU / Fire outputs for SqueezeNet 1.1 (slices [0,2) [2,5) [5,8) [8,10) [10,11) [11,12) [12,13)).
LPIPS_TAPS: dict[str, tuple[int, ...]] = {"alex": (1, 4, 7, 9, 11), "squeeze": (1, 4, 7, 9, 10, 11, 12)}
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def _torchvision_net(name: str, **kwargs: object) -> nn.Module:
    """A torchvision model without weights, built without touching the global RNG (its random init is overwritten)."""
    import torchvision.models as tvm

    with torch.random.fork_rng(devices=[]):
        return getattr(tvm, name)(weights=None, **kwargs)


def unit_normalise(f: Tensor, eps: Eps) -> Tensor:
    """Features divided by their channel norm: ``lpips`` 0.1.4 and torchmetrics < 1.3.0 use f / (||f|| + 1e-10);
    torchmetrics >= 1.3.0 f / sqrt(||f||^2 + 1e-8)."""
    sq = f.square().sum(dim=1, keepdim=True)
    return f / (sq.sqrt() + 1e-10) if eps == "lpips" else f / (sq + 1e-8).sqrt()


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al. 2018): forward(x, y) with x, y in [-1, 1] gives (B,) distances, ``spatial`` the map."""

    def __init__(self, backbone: Backbone, backbone_state: dict[str, Tensor], lin_state: dict[str, Tensor],
                 eps: Eps = "lpips") -> None:
        super().__init__()
        if backbone not in LPIPS_TAPS or eps not in ("lpips", "torchmetrics"):
            raise ValueError(f"unknown LPIPS backbone {backbone!r} or eps {eps!r}")
        net = _torchvision_net({"alex": "alexnet", "squeeze": "squeezenet1_1"}[backbone])
        net.load_state_dict(backbone_state)
        self.taps = LPIPS_TAPS[backbone]
        self.eps = eps
        self.features = net.features[: self.taps[-1] + 1]
        self.lins = nn.ParameterList([nn.Parameter(lin_state[f"lin{i}.model.1.weight"]) for i in range(len(self.taps))])
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, backbone: Backbone, backbone_path: Path, lin_path: Path, eps: Eps = "lpips") -> LPIPS:
        return cls(backbone, load_state(backbone_path), load_state(lin_path), eps)

    def layer_maps(self, x: Tensor, y: Tensor) -> list[Tensor]:
        """Per tapped layer, the (B, 1, h, w) map lin(|f(x) - f(y)|^2) of unit-normalised features."""
        if x.shape != y.shape:
            raise ValueError(f"lpips needs two tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        b = x.shape[0]
        h = (torch.cat([x, y]) - self.shift) / self.scale
        maps = []
        lins = iter(self.lins)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                f = unit_normalise(h, self.eps)
                maps.append(F.conv2d((f[:b] - f[b:]).square(), next(lins)))
        return maps

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return sum(m.mean(dim=(1, 2, 3)) for m in self.layer_maps(x, y))

    def spatial(self, x: Tensor, y: Tensor) -> Tensor:
        """(B, H, W) distance map as ``lpips.LPIPS(spatial=True)``: each layer's map bilinearly upsampled
        (align_corners=False) to the input size, summed over layers."""
        size = tuple(x.shape[-2:])
        maps = (F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in self.layer_maps(x, y))
        return sum(maps)[:, 0]


def masked_lpips(net: LPIPS, x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """(B,) mean of the LPIPS map over the pixels of ``mask`` (B, H, W): garment fidelity inside the cloth region.
    NaN where the mask is empty."""
    return masked_mean(net.spatial(x, y), mask)


def dists_network(vgg16_path: Path) -> nn.Module:
    """torchmetrics' own ``DISTSNetwork`` with the VGG16 backbone read from ``vgg16_path`` instead of downloaded,
    and alpha/beta from the ``dists_models/weights.pt`` torchmetrics ships.

    DISTSNetwork builds its backbone by calling the module-level name ``vgg16`` of
    ``torchmetrics.functional.image.dists`` and keeps only ``.features``; that name is replaced while the network is
    constructed by one giving VGG16's convolutional part (configuration "D") with the file's ``features.*`` tensors
    (the classifier in the file is not needed).
    """
    from torchmetrics.functional.image import dists as tm_dists
    from torchvision.models.vgg import cfgs, make_layers

    prefix = "features."
    state = {k[len(prefix):]: v for k, v in load_state(vgg16_path).items() if k.startswith(prefix)}

    def local_vgg16(**_: object) -> nn.Module:
        backbone = nn.Module()
        backbone.features = make_layers(cfgs["D"])
        backbone.features.load_state_dict(state)
        return backbone

    with mock.patch.object(tm_dists, "vgg16", local_vgg16), torch.random.fork_rng(devices=[]):
        net = tm_dists.DISTSNetwork(load_weights=False)
    shipped = load_state(tm_dists._PATH_WEIGHT_DISTS)
    net.alpha.data, net.beta.data = shipped["alpha"], shipped["beta"]
    return net.eval()


def dists(net: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """(B,) DISTS of images in [0, 1] (the network normalises with ImageNet mean/std itself)."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"dists needs two B x 3 x H x W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return net(x, y).reshape(x.shape[0])


def imagenet_inception(path: Path) -> nn.Module:
    """torchvision's ImageNet Inception v3 (1000 classes, fc with bias) giving softmax probabilities (B, 1000) for
    float [-1, 1] input at 299 x 299: HR-VITON's ``inception_v3(pretrained=True, transform_input=False)``."""
    net = _torchvision_net("inception_v3", aux_logits=True, init_weights=False, transform_input=False)
    net.load_state_dict(load_state(path))
    return nn.Sequential(net, nn.Softmax(dim=1)).eval().requires_grad_(False)

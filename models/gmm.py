"""Geometric Matching Module of CP-VTON, with the original's module names so its checkpoints load strictly."""
from __future__ import annotations

import torch
from torch import nn

from vton.models.config import AGNOSTIC_CHANNELS, GMM_CLOTH_CHANNELS, GRID_SIZE, PAPER_WIDTH, check_variant
from vton.models.ops import per_sample_matmul
from vton.models.tps import TpsGridGen, warp_cloth


def init_normal(module: nn.Module) -> None:
    """The original's ``weights_init_normal``: conv/linear weights N(0, 0.02), BN weights N(1, 0.02), BN bias 0."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class FeatureExtraction(nn.Module):
    """Four stride-2 and two stride-1 convs, each Conv -> ReLU -> BN (no BN after the last), in ``model``."""

    def __init__(self, in_channels: int, width: int = PAPER_WIDTH) -> None:
        super().__init__()
        channels = [in_channels, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU(True), nn.BatchNorm2d(cout)]
        top = channels[-1]
        layers += [
            nn.Conv2d(top, top, 3, 1, 1),
            nn.ReLU(True),
            nn.BatchNorm2d(top),
            nn.Conv2d(top, top, 3, 1, 1),
            nn.ReLU(True),
        ]
        self.model = nn.Sequential(*layers)
        self.model.apply(init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def feature_l2norm(feature: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Divide each feature vector by sqrt(sum_c f^2 + eps) (epsilon inside the root, as the original)."""
    return feature / torch.sqrt(feature.pow(2).sum(1, keepdim=True) + eps)


def feature_correlation(feature_a: torch.Tensor, feature_b: torch.Tensor) -> torch.Tensor:
    """out[b, k, yB, xB] = <A(yA, xA), B(yB, xB)> with k = xA * h + yA (A's positions column-major)."""
    b, c, h, w = feature_a.shape
    a = feature_a.transpose(2, 3).reshape(b, c, h * w)  # column k = xA * h + yA
    prod = torch.einsum("bck,bcyx->bkyx", a, feature_b)
    return prod


class FeatureRegression(nn.Module):
    """Correlation volume -> theta in [-1, 1]^(2 n^2): two stride-2 and two stride-1 Conv -> BN -> ReLU, then Linear."""

    def __init__(self, in_channels: int = 192, width: int = PAPER_WIDTH, out_dim: int = 2 * GRID_SIZE**2,
                 cells: int = 4 * 3, batch_invariant: bool = False) -> None:
        super().__init__()
        self.batch_invariant = batch_invariant  # see GMM.set_batch_invariant
        chans = [in_channels, 8 * width, 4 * width, 2 * width, width]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            conv = nn.Conv2d(cin, cout, 4, 2, 1) if i < 2 else nn.Conv2d(cin, cout, 3, padding=1)
            layers += [conv, nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.conv = nn.Sequential(*layers)
        self.linear = nn.Linear(width * cells, out_dim)  # cells: positions left after the two stride-2 convs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alone = self.batch_invariant and not self.training  # training keeps the batch for BatchNorm statistics
        features = (torch.cat([self.conv(s) for s in x.split(1)]) if alone else self.conv(x)).flatten(1)
        return torch.tanh(per_sample_matmul(features, self.linear.weight.t()) + self.linear.bias)


class GMM(nn.Module):
    """forward(agnostic, cloth_or_mask) -> (grid B x 256 x 192 x 2, theta B x 50).

    ``batch_invariant`` (off by default; see ``set_batch_invariant``): in eval mode, each pair's output is the same
    bits whatever batch it is in.
    """

    def __init__(self, variant: str = "cpvton", width: int = PAPER_WIDTH, out_h: int = 256, out_w: int = 192,
                 batch_invariant: bool = False) -> None:
        super().__init__()
        self.variant, self.width = check_variant(variant), width
        self.extractionA = FeatureExtraction(AGNOSTIC_CHANNELS, width)
        self.extractionB = FeatureExtraction(GMM_CLOTH_CHANNELS[variant], width)
        # Feature maps are 1/16 of the image; the correlation has one channel per feature position.
        self.regression = FeatureRegression(
            (out_h // 16) * (out_w // 16), width, 2 * GRID_SIZE**2, (out_h // 64) * (out_w // 64), batch_invariant
        )
        self.gridGen = TpsGridGen(out_h, out_w, GRID_SIZE)

    def forward(self, agnostic: torch.Tensor, cloth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_a = feature_l2norm(self.extractionA(agnostic))
        feature_b = feature_l2norm(self.extractionB(cloth))
        theta = self.regression(feature_correlation(feature_a, feature_b))
        return self.gridGen(theta), theta

    def set_batch_invariant(self, on: bool = True) -> GMM:
        """In eval mode, run the regression head's convolutions one sample at a time (``on``) or on the whole batch.

        oneDNN and cuDNN (like BLAS, see ``ops.per_sample_matmul``) pick their kernels, and so their summation order,
        by batch size: batched, a pair's theta changes in the last bits with the batch it happens to be in, and the
        TPS grid carries that into a few saved pixels. One sample at a time makes the head's output the same bits in a
        batch of 4, in 4 batches of 1 and in a resumed run, which `vton infer` relies on and the reference loop's
        byte-equality tests check (the feature extractors stay batched: at the paper's width their CPU kernels do not
        depend on the batch); it costs a little speed, so it is off unless asked for. Training mode always keeps
        the batch (BatchNorm needs its statistics). Returns the module, for chaining.
        """
        self.regression.batch_invariant = on
        return self

    @property
    def batch_invariant(self) -> bool:
        return self.regression.batch_invariant


def gmm_cloth_input(cloth: torch.Tensor, cloth_mask: torch.Tensor, variant: str) -> torch.Tensor:
    """What extractionB sees: the RGB cloth (CP-VTON) or the cloth mask (CP-VTON+)."""
    return cloth_mask if variant == "cpvton+" else cloth


def run_gmm(gmm: GMM, agnostic: torch.Tensor, cloth: torch.Tensor, cloth_mask: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(warped cloth, warped mask, grid) for a batch, as train.py / test.py of the original compute them."""
    grid, _ = gmm(agnostic, gmm_cloth_input(cloth, cloth_mask, gmm.variant))
    warped_cloth, warped_mask = warp_cloth(cloth, cloth_mask, grid)
    return warped_cloth, warped_mask, grid

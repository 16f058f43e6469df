"""Image metrics as pure tensor functions, the two networks they need, and a batched feature accumulator.

Conventions (the protocol, see README "Evaluation protocol"):
- SSIM follows Wang et al. as skimage computes it with ``gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False``: 11-tap Gaussian window, K1=0.01, K2=0.03, population (co)variances, the map kept
  only where the window lies inside the image (skimage crops 5 px per border), channels averaged. torchmetrics 1.9.0
  instead averages over the full reflect-padded map, which is why we do not call it.
- LPIPS v0.1, AlexNet backbone, spatial average, inputs in [-1, 1] at native resolution.
- IS / FID / KID take torch-fidelity ``inception-v3-compat`` features (``logits_unbiased`` / ``2048``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # skimage / scipy truncation: radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
SSIM_K1 = 0.01
SSIM_K2 = 0.03


# --- SSIM ----------------------------------------------------------------------------------------
def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE, *, dtype=torch.float32,
                    device: torch.device | str | None = None) -> Tensor:
    """Normalised 1-D Gaussian taps, the same truncation scipy's ``gaussian_filter`` uses."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return (w / w.sum()).to(dtype=dtype, device=device)


def ssim_radius(sigma: float = SSIM_SIGMA) -> int:
    return int(SSIM_TRUNCATE * sigma + 0.5)


def _blur_valid(x: Tensor, taps: Tensor) -> Tensor:
    """Separable Gaussian filter of every (N, C) plane, kept only where the window fits inside the image."""
    n, c, h, w = x.shape
    k = taps.numel()
    # every plane a channel of one depthwise conv: same sums, several times faster than N*C one-channel convs
    planes = x.reshape(1, n * c, h, w)
    planes = F.conv2d(planes, taps.view(1, 1, 1, k).expand(n * c, 1, 1, k), groups=n * c)
    planes = F.conv2d(planes, taps.view(1, 1, k, 1).expand(n * c, 1, k, 1), groups=n * c)
    return planes.reshape(n, c, planes.shape[-2], planes.shape[-1])


def ssim_map(x: Tensor, y: Tensor, data_range: float, sigma: float = SSIM_SIGMA) -> Tensor:
    """Channel-averaged SSIM map, shape (B, H - 2r, W - 2r) with r = 5: the pixels skimage averages."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"ssim needs two B x C x H x W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not data_range or data_range <= 0:
        raise ValueError("ssim needs an explicit positive data_range")
    taps = gaussian_window(sigma, dtype=x.dtype, device=x.device)
    b = x.shape[0]
    moments = _blur_valid(torch.cat([x, y, x * x, y * y, x * y]), taps)
    mx, my, mxx, myy, mxy = moments.split(b)
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=1)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Per-image mean of ``values`` (B, h, w) over the pixels of ``mask`` (B, H, W), centre-cropped to (h, w).

    NaN where the cropped mask is empty. With an SSIM map this is "SSIM inside the cloth region".
    """
    dh, dw = (mask.shape[-2] - values.shape[-2]) // 2, (mask.shape[-1] - values.shape[-1]) // 2
    m = mask[..., dh:dh + values.shape[-2], dw:dw + values.shape[-1]].to(values.dtype)
    total = m.sum(dim=(-2, -1))
    return torch.where(total > 0, (values * m).sum(dim=(-2, -1)) / total.clamp_min(1), torch.nan)


# --- pixel metrics -------------------------------------------------------------------------------
def psnr(x: Tensor, y: Tensor, data_range: float) -> Tensor:
    """PSNR per image (B,): 10 log10(data_range^2 / MSE), the MSE over all pixels and channels, in float64.

    Identical images give inf, as skimage's ``peak_signal_noise_ratio`` does (no cap: any would be arbitrary).
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"psnr needs two B x C x H x W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    mse = (x.double() - y.double()).square().mean(dim=(1, 2, 3))
    return 10 * torch.log10(data_range**2 / mse)


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic L1 total variation per image divided by C*H*W (size invariant); x is (B, C, H, W) in [0, 1]."""
    dv = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().sum(dim=(1, 2, 3))
    dh = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().sum(dim=(1, 2, 3))
    return (dv + dh) / x[0].numel()


def iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of boolean masks (B, H, W); 1.0 where both are empty (they agree)."""
    inter = (a & b).sum(dim=(-2, -1)).double()
    union = (a | b).sum(dim=(-2, -1)).double()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


# --- set metrics on Inception features -----------------------------------------------------------
def seeded_permutation(n: int, seed: int) -> Tensor:
    """``torch.randperm`` from a private generator: the permutation torchmetrics draws after ``manual_seed(seed)``."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def inception_score(logits: Tensor, splits: int, seed: int) -> tuple[float, float]:
    """IS = exp(E KL(p(y|x) || p(y))) on ``splits`` chunks of a seeded shuffle; mean and std (ddof 0) over chunks.

    Chunk bounds i*N//splits as torch-fidelity; float64 as torch-fidelity.
    """
    n = logits.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"inception score needs 1 <= splits <= N, got splits={splits}, N={n}")
    x = logits.double().cpu()[seeded_permutation(n, seed)]
    p, log_p = x.softmax(dim=1), x.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        q = p[lo:hi].mean(dim=0, keepdim=True)
        scores.append((p[lo:hi] * (log_p[lo:hi] - q.log())).sum(dim=1).mean().exp())
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID between feature sets: |mu1-mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^1/2), covariances with ddof 1.

    With centred features D1, D2 (S = D^T D / (n-1)), the eigenvalues of S1 S2 are the squared singular values of
    D1 D2^T / sqrt((n1-1)(n2-1)), so Tr((S1 S2)^1/2) is that matrix's nuclear norm: exact, symmetric, and an
    n1 x n2 problem instead of a non-symmetric 2048 x 2048 eigenproblem.
    """
    n1, n2 = real.shape[0], fake.shape[0]
    if min(n1, n2) < 2:
        raise ValueError("FID needs at least 2 real and 2 generated images")
    real, fake = real.double(), fake.double()
    mu1, mu2 = real.mean(dim=0), fake.mean(dim=0)
    d1, d2 = real - mu1, fake - mu2
    trace1, trace2 = d1.square().sum() / (n1 - 1), d2.square().sum() / (n2 - 1)
    root_trace = torch.linalg.svdvals(d1 @ d2.T).sum() / math.sqrt((n1 - 1) * (n2 - 1))
    return float((mu1 - mu2).square().sum() + trace1 + trace2 - 2 * root_trace)


def _poly_mmd(x: Tensor, y: Tensor, degree: int, coef: float) -> Tensor:
    """Unbiased MMD^2 with the polynomial kernel (x.y / d + coef)^degree (Binkowski et al.)."""
    gamma = 1.0 / x.shape[1]
    kxx, kyy, kxy = ((a @ b.T * gamma + coef) ** degree for a, b in ((x, x), (y, y), (x, y)))
    m = x.shape[0]
    off = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return off - 2 * kxy.sum() / m**2


def kernel_inception_distance(real: Tensor, fake: Tensor, subsets: int, subset_size: int, seed: int,
                              degree: int = 3, coef: float = 1.0) -> tuple[float, float]:
    """KID: mean and std (ddof 0) of the MMD over ``subsets`` random subsets (real perm, then fake perm, per subset)."""
    if not 2 <= subset_size <= min(real.shape[0], fake.shape[0]):
        raise ValueError(f"KID subset size {subset_size} must be in [2, min(N_real, N_fake)]")
    real, fake = real.double(), fake.double()
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        r = real[torch.randperm(real.shape[0], generator=gen)[:subset_size].to(real.device)]
        f = fake[torch.randperm(fake.shape[0], generator=gen)[:subset_size].to(fake.device)]
        scores.append(_poly_mmd(r, f, degree, coef))
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))


# --- networks ------------------------------------------------------------------------------------
ALEX_TAPS = (1, 4, 7, 9, 11)  # ReLU outputs of torchvision AlexNet.features that LPIPS compares
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al. 2018) with an AlexNet backbone; forward(x, y) in [-1, 1] gives (B,) distances."""

    def __init__(self, backbone_state: dict[str, Tensor], lin_state: dict[str, Tensor]) -> None:
        super().__init__()
        from torchvision.models import alexnet

        net = alexnet(weights=None)
        net.load_state_dict(backbone_state)
        self.features = net.features[: ALEX_TAPS[-1] + 1]
        self.lins = nn.ParameterList([nn.Parameter(lin_state[f"lin{i}.model.1.weight"]) for i in range(len(ALEX_TAPS))])
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(cls, backbone: Path, lin: Path) -> LPIPS:
        from vton.eval.weights import load_state

        return cls(load_state(backbone), load_state(lin))

    def _taps(self, x: Tensor) -> list[Tensor]:
        out, h = [], (x - self.shift) / self.scale
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in ALEX_TAPS:
                out.append(h / (h.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape:
            raise ValueError(f"lpips needs two tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        b = x.shape[0]
        total = x.new_zeros(b)
        for f, w in zip(self._taps(torch.cat([x, y])), self.lins):
            total = total + F.conv2d((f[:b] - f[b:]).square(), w).mean(dim=(1, 2, 3))
        return total


def inception_extractor(path: Path) -> nn.Module:
    """torch-fidelity's ``inception-v3-compat`` giving ("2048", "logits_unbiased") for uint8 B x 3 x H x W input."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from vton.eval.weights import load_state

    load_state(path)  # refuse anything but plain tensors before torch-fidelity unpickles it itself
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                       feature_extractor_weights_path=str(path))
    # channels_last: the same network ~25% faster per image on the CPU (float rounding aside; the tests hold it to
    # torchmetrics at their tolerances)
    return net.to(memory_format=torch.channels_last)


# --- accumulator ---------------------------------------------------------------------------------
class FeatureBank:
    """Per-image feature rows gathered over batches; read back sorted by key so results ignore batching and order."""

    def __init__(self) -> None:
        self._rows: dict[str, Tensor] = {}

    def update(self, keys: Sequence[str], features: Tensor) -> None:
        if len(keys) != features.shape[0]:
            raise ValueError("one key per feature row")
        for key, row in zip(keys, features.detach().double().cpu()):
            if key in self._rows:
                raise ValueError(f"duplicate key {key!r}")
            self._rows[key] = row

    def __len__(self) -> int:
        return len(self._rows)

    def keys(self) -> list[str]:
        return sorted(self._rows)

    def stack(self, keys: Sequence[str] | None = None) -> Tensor:
        chosen = sorted(self._rows if keys is None else keys)
        if not chosen:
            return torch.empty(0, 0, dtype=torch.float64)
        return torch.stack([self._rows[k] for k in chosen])


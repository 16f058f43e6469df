"""Image metrics as pure tensor functions, the Inception feature extractor, and a batched feature accumulator.

Conventions (the protocol, see README "Evaluation protocol"):
- SSIM follows Wang et al. as skimage computes it with ``gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False``: 11-tap Gaussian window, K1=0.01, K2=0.03, population (co)variances, the map kept
  only where the window lies inside the image (skimage crops 5 px per border), channels averaged. torchmetrics 1.9.0
  instead averages over the full reflect-padded map, which is why we do not call it.
- LPIPS, DISTS and the ImageNet Inception live in ``vton.eval.perceptual``.
- IS / FID / KID take torch-fidelity ``inception-v3-compat`` features (``logits_unbiased`` / ``2048``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # skimage / scipy truncation: radius int(3.5 * 1.5 + 0.5) = 5 -> 11 taps
SSIM_K1 = 0.01
SSIM_K2 = 0.03
Chunking = Literal["floor", "torch_chunk"]


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


def ssim_map(x: Tensor, y: Tensor, data_range: float | Tensor, sigma: float = SSIM_SIGMA) -> Tensor:
    """Channel-averaged SSIM map, shape (B, H - 2r, W - 2r) with r = 5: the pixels skimage averages.

    ``data_range`` is one number or one per image (B,), in the units of x and y: CIT passes each generated image's
    max - min (``per_image_range``), HR-VITON 255 on grey levels.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"ssim needs two B x C x H x W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    rng = torch.as_tensor(data_range, dtype=x.dtype, device=x.device)
    if rng.dim() > 1 or rng.numel() not in (1, x.shape[0]) or not bool((rng > 0).all()):
        raise ValueError("ssim needs an explicit positive data_range: one number or one per image")
    rng = rng.reshape(-1, 1, 1, 1)
    taps = gaussian_window(sigma, dtype=x.dtype, device=x.device)
    b = x.shape[0]
    moments = _blur_valid(torch.cat([x, y, x * x, y * y, x * y]), taps)
    mx, my, mxx, myy, mxy = moments.split(b)
    vx, vy, cxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (SSIM_K1 * rng) ** 2, (SSIM_K2 * rng) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=1)


def per_image_range(x: Tensor) -> Tensor:
    """(B,) max - min of each image over all pixels and channels: CIT's SSIM data_range (of the generated image)."""
    return x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))


def pil_gray(x: Tensor) -> Tensor:
    """uint8 RGB (B, 3, H, W) to uint8 grey (B, 1, H, W) by Pillow's ``convert('L')`` integer rule
    (19595 R + 38470 G + 7471 B + 32768) >> 16, bit-exact (a float formula is off by one on many pixels)."""
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"pil_gray needs uint8 B x 3 x H x W, got {x.dtype} {tuple(x.shape)}")
    r, g, b = x.int().unbind(dim=1)
    return ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16).to(torch.uint8).unsqueeze(1)


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
    return 10 * torch.log10(data_range**2 / mse(x, y))


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per image (B,) over all pixels and channels, in float64 (HR-VITON: ``F.mse_loss`` of each
    ToTensor RGB pair)."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"pixel metrics need two B x C x H x W tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    return (x.double() - y.double()).square().mean(dim=(1, 2, 3))


def psnr_of_batches(err: Tensor, data_range: float, batch: int) -> float:
    """VtonEval's PSNR from the per-image MSEs ``err`` (N,) of equally sized images, in scan order: torchmetrics
    ``PeakSignalNoiseRatio(data_range, dim=None)`` called on consecutive batches of ``batch`` images, each batch's
    PSNR of its pooled MSE weighted by its size, averaged over images.

    Not a per-image mean: the value depends on which images share a batch.
    """
    total = sum(float(10 * torch.log10(data_range**2 / e.mean())) * e.numel() for e in err.split(batch))
    return total / err.numel()


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


def inception_score(outputs: Tensor, splits: int, seed: int | None, *, chunks: Chunking = "floor", ddof: int = 0,
                    softmax: bool = True) -> tuple[float, float]:
    """IS = exp(E KL(p(y|x) || p(y))) per split; mean and std over the splits, in float64 (as torch-fidelity).

    ``outputs``: logits (``softmax=True``) or class probabilities (``softmax=False``: HR-VITON's and CIT's networks
    end in a softmax). ``seed``: rows shuffled by ``seeded_permutation(N, seed)`` first (torchmetrics), or None to
    keep their order (CIT, HR-VITON). ``chunks``: "floor" = rows [i N // splits, (i + 1) N // splits) (torch-fidelity,
    CIT's IS.py), "torch_chunk" = ``torch.chunk(splits)`` (torchmetrics; may give fewer than ``splits`` parts).
    ``ddof``: 0 = population std (torch-fidelity, np.std), 1 = unbiased (torchmetrics).
    """
    n = outputs.shape[0]
    if chunks not in ("floor", "torch_chunk"):
        raise ValueError(f"unknown chunking {chunks!r}")
    if not 1 <= splits <= n and not (chunks == "torch_chunk" and n and splits >= 1):  # torch.chunk: min(N, splits)
        raise ValueError(f"inception score needs 1 <= splits <= N, got splits={splits}, N={n}")
    x = outputs.double().cpu()
    if seed is not None:
        x = x[seeded_permutation(n, seed)]
    p, log_p = (x.softmax(dim=1), x.log_softmax(dim=1)) if softmax else (x, x.log())
    if chunks == "floor":
        bounds = [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]
        parts = [(p[lo:hi], log_p[lo:hi]) for lo, hi in bounds]
    else:
        parts = list(zip(p.chunk(splits), log_p.chunk(splits)))
    scores = []
    for pk, log_pk in parts:
        q = pk.mean(dim=0, keepdim=True)
        kl = torch.where(pk > 0, pk * (log_pk - q.log()), 0.0)  # 0 log 0 = 0, as scipy's entropy
        scores.append(kl.sum(dim=1).mean().exp())
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(correction=ddof))


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


"""Thin-plate-spline grid generator of CP-VTON's GMM and the warping helpers around it.

The TPS maps a regular ``grid_size`` x ``grid_size`` set of control points P (in [-1, 1]) to Q = P + theta and
interpolates that map over every output pixel. Because the map is linear in Q, it is precomputed once as a matrix
(pixels x control points); the result is identical to the original's per-call solve up to float rounding.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vton.models.ops import per_sample_matmul


def control_points(grid_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Control points as in the original: point k has x = a[k // n], y = a[k % n] with a = linspace(-1, 1, n)."""
    axis = np.linspace(-1.0, 1.0, grid_size)
    px, py = np.meshgrid(axis, axis, indexing="ij")
    return px.reshape(-1), py.reshape(-1)


def tps_radial(d2: np.ndarray) -> np.ndarray:
    """U(d^2) = d^2 log d^2, with d^2 = 0 treated as 1 (so U = 0) as in the original."""
    d2 = np.where(d2 == 0, 1.0, d2)
    return d2 * np.log(d2)


def tps_matrix(px: np.ndarray, py: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Matrix M (len(x) x N) such that the TPS through P -> Q evaluated at (x, y) is M @ Q (float64)."""
    n = len(px)
    p = np.stack([np.ones(n), px, py], axis=1)
    k = tps_radial((px[:, None] - px[None, :]) ** 2 + (py[:, None] - py[None, :]) ** 2)
    lmat = np.zeros((n + 3, n + 3))
    lmat[:n, :n], lmat[:n, n:], lmat[n:, :n] = k, p, p.T
    li = np.linalg.inv(lmat)[:, :n]  # only the Q columns matter: the right-hand side is [Q; 0]
    u = tps_radial((x[:, None] - px[None, :]) ** 2 + (y[:, None] - py[None, :]) ** 2)
    basis = np.concatenate([u, np.ones((len(x), 1)), x[:, None], y[:, None]], axis=1)
    return basis @ li


class TpsGridGen(nn.Module):
    """theta (B x 2N: N x offsets, then N y offsets) -> sampling grid (B x H x W x 2, (x, y), align_corners=True)."""

    def __init__(self, out_h: int = 256, out_w: int = 192, grid_size: int = 5) -> None:
        super().__init__()
        self.out_h, self.out_w, self.grid_size = out_h, out_w, grid_size
        px, py = control_points(grid_size)
        gx, gy = np.meshgrid(np.linspace(-1.0, 1.0, out_w), np.linspace(-1.0, 1.0, out_h))
        matrix = tps_matrix(px, py, gx.reshape(-1), gy.reshape(-1))
        # Constants, not weights: kept out of the state dict so original checkpoints load strictly.
        self.register_buffer("matrix", torch.from_numpy(matrix.T.copy()).float(), persistent=False)  # N x HW
        self.register_buffer("points", torch.from_numpy(np.concatenate([px, py])).float(), persistent=False)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        n = self.grid_size**2
        with torch.autocast(theta.device.type, enabled=False):  # sampling coordinates stay fp32 under mixed precision
            q = theta.float() + self.points  # B x 2N target control points
            grid = torch.stack(
                [per_sample_matmul(q[:, :n], self.matrix), per_sample_matmul(q[:, n:], self.matrix)], dim=-1
            )
        return grid.view(theta.shape[0], self.out_h, self.out_w, 2)


def warp(image: torch.Tensor, grid: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """Bilinear sampling with the pre-1.3 PyTorch convention (align_corners=True) CP-VTON was trained with."""
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=True)


def warp_cloth(cloth: torch.Tensor, cloth_mask: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp the cloth (border padding) and its mask (zero padding) as the original train.py / test.py do."""
    return warp(cloth, grid, "border"), warp(cloth_mask, grid, "zeros")

"""TPS grid, warping, correlation and composition checked against numpy/scipy and plain loops."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator

from vton.models.gmm import feature_correlation, feature_l2norm
from vton.models.tom import compose
from vton.models.tps import TpsGridGen, warp

H, W = 256, 192


def reference_control_points() -> np.ndarray:
    """sergeywong/cp-vton networks.py TpsGridGen: point k has x = a[k // 5], y = a[k % 5], a = linspace(-1, 1, 5)."""
    a = [-1.0, -0.5, 0.0, 0.5, 1.0]
    return np.array([[a[k // 5], a[k % 5]] for k in range(25)])


def pixel_coords() -> tuple[np.ndarray, np.ndarray]:
    xs = np.array([-1 + 2 * j / (W - 1) for j in range(W)])
    ys = np.array([-1 + 2 * i / (H - 1) for i in range(H)])
    return np.broadcast_to(xs[None, :], (H, W)), np.broadcast_to(ys[:, None], (H, W))


@pytest.fixture(scope="module")
def gen() -> TpsGridGen:
    return TpsGridGen(H, W, 5)


def test_tps_constants_are_not_in_the_state_dict(gen: TpsGridGen) -> None:
    assert len(gen.state_dict()) == 0


def test_zero_theta_gives_identity_grid_and_warp_returns_input(gen: TpsGridGen) -> None:
    grid = gen(torch.zeros(2, 50))
    x, y = pixel_coords()
    np.testing.assert_allclose(grid[0, ..., 0].numpy(), x, atol=1e-5)
    np.testing.assert_allclose(grid[0, ..., 1].numpy(), y, atol=1e-5)
    image = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(warp(image, grid, "border").numpy(), image.numpy(), atol=1e-4)


def test_affine_offsets_give_that_affine_map_everywhere(gen: TpsGridGen) -> None:
    (ax0, axx, axy), (ay0, ayx, ayy) = (0.1, 0.9, -0.2), (-0.05, 0.15, 1.1)
    p = reference_control_points()
    theta = np.concatenate(
        [ax0 + axx * p[:, 0] + axy * p[:, 1] - p[:, 0], ay0 + ayx * p[:, 0] + ayy * p[:, 1] - p[:, 1]]
    )
    grid = gen(torch.tensor(theta, dtype=torch.float32)[None])[0].numpy()
    x, y = pixel_coords()
    np.testing.assert_allclose(grid[..., 0], ax0 + axx * x + axy * y, atol=1e-4)
    np.testing.assert_allclose(grid[..., 1], ay0 + ayx * x + ayy * y, atol=1e-4)


def test_random_theta_matches_scipy_thin_plate_spline(gen: TpsGridGen) -> None:
    """scipy's TPS (r^2 log r kernel, linear polynomial) is the same interpolant as d^2 log d^2."""
    rng = np.random.default_rng(3)
    theta = rng.uniform(-0.2, 0.2, 50)
    p = reference_control_points()
    q = p + np.stack([theta[:25], theta[25:]], axis=1)
    x, y = pixel_coords()
    rows = slice(None, None, 17)  # a subset of pixels keeps scipy quick
    points = np.stack([x[rows, rows].ravel(), y[rows, rows].ravel()], axis=1)
    expected = RBFInterpolator(p, q, kernel="thin_plate_spline", degree=1)(points)
    grid = gen(torch.tensor(theta, dtype=torch.float32)[None])[0].numpy()
    np.testing.assert_allclose(grid[rows, rows].reshape(-1, 2), expected, atol=1e-4)


def test_warp_uses_align_corners_true_convention() -> None:
    """A grid shifted by exactly one pixel in x samples the neighbouring column (border-padded at the edge)."""
    image = torch.arange(4 * 5, dtype=torch.float32).view(1, 1, 4, 5)
    xs = torch.linspace(-1, 1, 5) + 2 / 4
    ys = torch.linspace(-1, 1, 4)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None]
    out = warp(image, grid, "border")[0, 0].numpy()
    expected = image[0, 0].numpy()[:, [1, 2, 3, 4, 4]]
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_correlation_channel_order_against_loop() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 4, 3, generator=g), torch.randn(2, 3, 4, 3, generator=g)
    out = feature_correlation(a, b)
    bsz, c, h, w = a.shape
    assert out.shape == (bsz, h * w, h, w)
    for n in range(bsz):
        for ya in range(h):
            for xa in range(w):
                for yb in range(h):
                    for xb in range(w):
                        dot = sum(float(a[n, ch, ya, xa]) * float(b[n, ch, yb, xb]) for ch in range(c))
                        assert abs(float(out[n, xa * h + ya, yb, xb]) - dot) < 1e-5


def test_l2norm_divides_by_root_of_sum_plus_eps() -> None:
    f = np.random.default_rng(0).normal(size=(1, 4, 2, 3)).astype(np.float32)
    expected = f / np.sqrt((f**2).sum(1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(feature_l2norm(torch.from_numpy(f)).numpy(), expected, rtol=1e-6)


def test_compose_blends_cloth_and_rendered_with_sigmoid_mask() -> None:
    out = torch.tensor([0.5, -1.0, 2.0, 0.3]).view(1, 4, 1, 1)
    cloth = torch.tensor([0.2, 0.4, -0.6]).view(1, 3, 1, 1)
    tryon, rendered, mask = compose(out, cloth)
    m = 1 / (1 + np.exp(-0.3))
    r = np.tanh([0.5, -1.0, 2.0])
    np.testing.assert_allclose(mask.flatten().numpy(), [m], rtol=1e-6)
    np.testing.assert_allclose(rendered.flatten().numpy(), r, rtol=1e-6)
    np.testing.assert_allclose(tryon.flatten().numpy(), m * np.array([0.2, 0.4, -0.6]) + (1 - m) * r, rtol=1e-5)

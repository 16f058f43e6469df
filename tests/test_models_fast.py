"""The inference fast path keeps outputs within tolerance of eager fp32 and reports its deviation."""
from __future__ import annotations

import torch

from vton.models.fast import prepare_for_inference
from vton.models.gmm import GMM, run_gmm
from vton.models.tom import TOM


def test_fast_path_matches_eager_and_reports_deviation() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    agnostic, cloth = torch.rand(1, 22, 256, 192, generator=g), torch.rand(1, 3, 256, 192, generator=g)
    gmm = GMM(width=8)  # at width 2 the regression's ReLUs are all dead and theta is just tanh(bias)
    eager = prepare_for_inference(gmm, "cpu", fast=False)
    assert eager is gmm and not gmm.training
    with torch.no_grad():
        grid_ref, theta_ref = gmm(agnostic, cloth)
    for channels_last in (False, True):
        fast = prepare_for_inference(gmm, "cpu", channels_last=channels_last, example=(agnostic, cloth))
        grid, theta = fast(agnostic, cloth)
        dev = max(float((grid - grid_ref).abs().max()), float((theta - theta_ref).abs().max()))
        assert dev < 1e-5
        assert abs(fast.max_abs_deviation - dev) < 1e-6
    fast = prepare_for_inference(gmm, "cpu", precision="bf16", example=(agnostic, cloth))
    grid, _ = fast(agnostic, cloth)
    assert grid.dtype == torch.float32 and 0 < fast.max_abs_deviation < 0.05
    assert fast.max_abs_deviation >= float((grid - grid_ref).abs().max()) - 1e-6


def test_fast_tom_and_gmm_warp_helper() -> None:
    torch.manual_seed(0)
    tom = TOM("cpvton+", width=2)
    x = torch.rand(2, 26, 256, 192, generator=torch.Generator().manual_seed(2))
    fast = prepare_for_inference(tom, "cpu", example=(x,))
    with torch.no_grad():
        assert torch.allclose(fast(x), tom(x), atol=1e-5)
    gmm = GMM("cpvton+", width=2).eval()
    mask = torch.zeros(1, 1, 256, 192)
    with torch.no_grad():
        warped_cloth, warped_mask, grid = run_gmm(gmm, torch.rand(1, 22, 256, 192), torch.rand(1, 3, 256, 192), mask)
    assert warped_cloth.shape == (1, 3, 256, 192) and grid.shape == (1, 256, 192, 2)
    assert float(warped_mask.abs().max()) == 0.0  # zero padding and an empty mask stay empty

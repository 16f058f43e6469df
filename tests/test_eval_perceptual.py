"""LPIPS, DISTS and the ImageNet Inception against the libraries they reproduce, on shared random weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from tests.eval_fixtures import load_sliced_backbone, save_random_alexnet
from vton.eval import metrics as M
from vton.eval import perceptual as P
from vton.eval import weights

TV_NAMES = {"alex": "alexnet", "squeeze": "squeezenet1_1"}


def _pair(seed: int, b: int = 3, h: int = 64, w: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g) * 2 - 1, torch.rand(b, 3, h, w, generator=g) * 2 - 1


def _torchvision_state(backbone: str, seed: int) -> dict[str, torch.Tensor]:
    import torchvision.models as tvm

    torch.manual_seed(seed)
    return getattr(tvm, TV_NAMES[backbone])(weights=None).state_dict()


def _ours(backbone: str, tv_state: dict[str, torch.Tensor], eps: P.Eps = "lpips") -> P.LPIPS:
    return P.LPIPS(backbone, tv_state, weights.load_state(weights.lpips_lin_path(backbone)), eps)


@pytest.mark.parametrize("backbone", ["alex", "squeeze"])
def test_lpips_and_its_map_equal_lpips_package(backbone: str) -> None:
    import lpips

    tv_state = _torchvision_state(backbone, seed=1)
    ours = _ours(backbone, tv_state)
    x, y = _pair(2, h=64, w=48)
    with torch.no_grad():
        got, got_map = ours(x, y), ours.spatial(x, y)
        one_by_one = torch.cat([ours(x[i:i + 1], y[i:i + 1]) for i in range(x.shape[0])])
    for spatial, mine in ((False, got), (True, got_map)):
        ref = lpips.LPIPS(net=backbone, version="0.1", pnet_rand=True, spatial=spatial, verbose=False)
        load_sliced_backbone(ref.net, tv_state)
        with torch.no_grad():
            expect = ref(x, y)
        expect = expect[:, 0] if spatial else expect.flatten()
        assert mine.shape == expect.shape
        assert torch.allclose(mine, expect, rtol=1e-5, atol=1e-7), (spatial, (mine - expect).abs().max())
    assert torch.allclose(one_by_one, got, rtol=1e-5, atol=1e-7)
    assert got.min() > 0


def test_lpips_squeeze_equals_torchmetrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """CatVTON / VtonEval: torchmetrics LPIPS(net_type='squeeze') on [-1, 1] inputs, with its >= 1.3.0 eps."""
    import torchmetrics.image.lpip as tm_lpip
    from torchmetrics.functional.image.lpips import _NoTrainLpips

    tv_state = _torchvision_state("squeeze", seed=3)
    for name in ("features.0.weight", "features.0.bias"):  # features ~1e-4, where the two eps rules part
        tv_state[name] = tv_state[name] * 1e-4

    def random_backbone(net: str) -> _NoTrainLpips:  # torchmetrics would download the torchvision weights
        built = _NoTrainLpips(net=net, pnet_rand=True)
        load_sliced_backbone(built.net, tv_state)
        return built

    monkeypatch.setattr(tm_lpip, "_NoTrainLpips", random_backbone)
    metric = tm_lpip.LearnedPerceptualImagePatchSimilarity(net_type="squeeze", reduction="sum")
    ours = _ours("squeeze", tv_state, eps="torchmetrics")
    x, y = _pair(4)
    with torch.no_grad():
        got = ours(x, y)
        expect = torch.stack([metric(x[i:i + 1], y[i:i + 1]) for i in range(x.shape[0])])
    assert torch.allclose(got, expect, rtol=1e-5, atol=1e-7), (got - expect).abs().max()
    with torch.no_grad():
        lpips_rule = _ours("squeeze", tv_state, eps="lpips")(x, y)
    assert (lpips_rule - expect).abs().min() > 1e-4  # lpips 0.1.4's f / (|f| + 1e-10) would not reproduce it


def test_unit_normalise_eps_rules_hand_worked() -> None:
    f = torch.tensor([3e-4, 4e-4]).view(1, 2, 1, 1)  # norm 5e-4
    assert P.unit_normalise(f, "lpips").flatten().tolist() == pytest.approx([0.6, 0.8], rel=1e-6)
    shrink = 5e-4 / np.sqrt(25e-8 + 1e-8)
    assert P.unit_normalise(f, "torchmetrics").flatten().tolist() == pytest.approx([0.6 * shrink, 0.8 * shrink])


def test_masked_lpips_is_the_mean_of_lpips_spatial_map_over_the_mask() -> None:
    import lpips

    tv_state = _torchvision_state("alex", seed=5)
    ref = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, spatial=True, verbose=False)
    load_sliced_backbone(ref.net, tv_state)
    x, y = _pair(6, b=2, h=64, w=48)
    mask = torch.zeros(2, 64, 48, dtype=torch.bool)
    mask[0, 10:40, 5:30] = True
    with torch.no_grad():
        got = P.masked_lpips(_ours("alex", tv_state), x, y, mask)
        expect = ref(x, y)[0, 0][mask[0]].mean()
    assert got[0].item() == pytest.approx(expect.item(), rel=1e-5)
    assert torch.isnan(got[1])  # empty mask: no cloth to score


def test_lpips_from_files_finds_backbone_and_lin_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lpips

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    backbone = save_random_alexnet(weights.hub_checkpoints_dir())
    reference = lpips.LPIPS(net="alex", version="0.1", verbose=False)  # finds the file where torchvision caches it
    ours = P.LPIPS.from_files("alex", weights.require(weights.ALEXNET_FILE), weights.lpips_lin_path("alex"))
    x, y = _pair(7, b=2, h=64, w=48)
    with torch.no_grad():
        assert torch.allclose(ours(x, y), reference(x, y).flatten(), rtol=1e-5, atol=1e-7)
    assert weights.lpips_lin_path("squeeze").name == "squeeze.pth"
    assert weights.official_hash(backbone) is False  # random weights are told apart from the official file


def test_dists_equals_torchmetrics_with_the_same_vgg16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchmetrics.functional.image.dists as tm_dists
    from torchmetrics.image.dists import DeepImageStructureAndTextureSimilarity
    from torchvision.models import vgg16

    torch.manual_seed(8)
    vgg = vgg16(weights=None)
    path = tmp_path / weights.VGG16_FILE
    torch.save({k: v for k, v in vgg.state_dict().items() if k.startswith("features.")}, path)  # DISTS reads no more
    ours = P.dists_network(path)
    monkeypatch.setattr(tm_dists, "vgg16", lambda **_: vgg)  # torchmetrics would download VGG16_Weights.DEFAULT
    g = torch.Generator().manual_seed(9)
    x = torch.rand(3, 3, 64, 64, generator=g)
    y = (x + 0.3 * torch.randn(3, 3, 64, 64, generator=g)).clamp(0, 1)
    got = P.dists(ours, x, y)
    expect = tm_dists.deep_image_structure_and_texture_similarity(x, y, reduction="none")
    assert got.shape == (3,)
    assert torch.allclose(got, expect, rtol=1e-5, atol=1e-6), (got - expect).abs().max()
    metric = DeepImageStructureAndTextureSimilarity(reduction="mean")
    metric.update(x, y)
    assert metric.compute().item() == pytest.approx(got.mean().item(), abs=1e-6)
    assert P.dists(ours, x[:1], y[:1]).shape == (1,)
    assert P.dists(ours, x, x).abs().max() < 1e-3  # identical images: distance 0 up to the 1e-6 constants


def test_imagenet_inception_probabilities_and_hrviton_inception_score(tmp_path: Path) -> None:
    """HR-VITON: softmax of torchvision's ImageNet Inception, one split, exp(mean scipy entropy(p_i, p_mean))."""
    from torchvision.models import inception_v3

    torch.manual_seed(10)
    ref = inception_v3(weights=None, aux_logits=True, init_weights=True, transform_input=False).eval()
    path = tmp_path / weights.IMAGENET_INCEPTION_FILE
    torch.save(ref.state_dict(), path)
    state = torch.random.get_rng_state()
    net = P.imagenet_inception(path)
    assert torch.equal(torch.random.get_rng_state(), state)  # building it leaves the global RNG alone
    x = torch.rand(4, 3, 299, 299, generator=torch.Generator().manual_seed(11)) * 2 - 1
    with torch.no_grad():
        probs = net(x)
        expect = ref(x).softmax(dim=1)
    assert probs.shape == (4, 1000)
    assert torch.allclose(probs, expect, rtol=1e-5, atol=1e-8)
    p = probs.double().numpy()
    hr_viton = np.exp(np.mean([entropy(p_i, p.mean(axis=0)) for p_i in p]))
    mean, std = M.inception_score(probs, 1, None, softmax=False)
    assert mean == pytest.approx(hr_viton, rel=1e-9) and std == 0.0

"""Each metric against an independent implementation (skimage, lpips, torchmetrics, hand-worked values)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from skimage.metrics import structural_similarity

from tests.eval_fixtures import GivenFeatures, save_random_inception
from vton.eval import metrics as M
from vton.eval import stats, weights
from vton.eval.summary import tv_subsets


def _images(seed: int, b: int = 3, h: int = 40, w: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g)
    y = (x + 0.2 * torch.randn(b, 3, h, w, generator=g)).clamp(0, 1)
    return x, y


def _skimage_ssim(x: torch.Tensor, y: torch.Tensor, full: bool = False):
    return structural_similarity(x.permute(1, 2, 0).double().numpy(), y.permute(1, 2, 0).double().numpy(),
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
                                 channel_axis=-1, full=full)


def test_ssim_equals_skimage_wang_settings() -> None:
    x, y = _images(0)
    ours = M.ssim_map(x, y, 1.0).mean(dim=(1, 2))
    for i in range(x.shape[0]):
        assert ours[i].item() == pytest.approx(_skimage_ssim(x[i], y[i]), abs=1e-4)
    # data_range matters and is explicit: on [0, 255] data the same images give the same score
    assert M.ssim_map(x * 255, y * 255, 255.0).mean(dim=(1, 2)) == pytest.approx(ours.tolist(), abs=1e-4)
    with pytest.raises(ValueError):
        M.ssim_map(x, y, 0)


def test_ssim_border_handling_of_torchmetrics_190_differs_only_by_the_crop() -> None:
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    x, y = _images(1, b=2)
    ours = M.ssim_map(x, y, 1.0).mean(dim=(1, 2))
    _, full = tm_ssim(x, y, data_range=1.0, reduction="none", return_full_image=True)
    r = M.ssim_radius()
    cropped = full[..., r:-r, r:-r].mean(dim=(1, 2, 3))
    assert cropped.tolist() == pytest.approx(ours.tolist(), abs=1e-5)
    uncropped = tm_ssim(x, y, data_range=1.0, reduction="none")
    assert (uncropped - ours).abs().max() > 1e-3  # torchmetrics 1.9.0 averages the reflect-padded border too


def test_ssim_in_cloth_region_is_the_masked_mean_of_skimage_map() -> None:
    x, y = _images(2, b=2)
    mask = torch.zeros(2, 40, 32, dtype=torch.bool)
    mask[0, 8:30, 4:20] = True
    mask[1, 0:3, :] = True  # lies entirely in the cropped border: undefined
    ours = M.masked_mean(M.ssim_map(x, y, 1.0), mask)
    _, smap = _skimage_ssim(x[0], y[0], full=True)
    r = M.ssim_radius()
    inner = smap.mean(axis=-1)[r:-r, r:-r]
    expect = inner[mask[0, r:-r, r:-r].numpy()].mean()
    assert ours[0].item() == pytest.approx(expect, abs=1e-4)
    assert torch.isnan(ours[1])


def test_total_variation_hand_worked_and_torchmetrics() -> None:
    from torchmetrics.functional.image import total_variation as tm_tv

    x = torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])  # |1-0| + |1-1| vertical, |1-0| + |1-1| horizontal = 2 over 4 px
    assert M.total_variation(x).item() == pytest.approx(0.5)
    imgs, _ = _images(3)
    expect = tm_tv(imgs, reduction="none") / imgs[0].numel()
    assert M.total_variation(imgs).tolist() == pytest.approx(expect.tolist(), rel=1e-5)


def test_iou_hand_worked() -> None:
    a = torch.zeros(3, 4, 4, dtype=torch.bool)
    b = torch.zeros(3, 4, 4, dtype=torch.bool)
    a[0, :2, :] = True  # 8 px
    b[0, 1:3, :] = True  # 8 px, 4 shared -> 4 / 12
    a[1, 0, 0] = True  # disjoint
    b[1, 3, 3] = True
    assert M.iou(a, b).tolist() == pytest.approx([1 / 3, 0.0, 1.0])  # both empty: they agree


def test_psnr_equals_skimage_per_image() -> None:
    """RGB uint8/255 images, data_range 1: skimage's peak_signal_noise_ratio per image; identical images give inf."""
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(4, 3, 40, 32), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, size=a.shape), 0, 255).astype(np.uint8)
    b[3] = a[3]
    x, y = (torch.from_numpy(v).float() / 255 for v in (a, b))
    got = M.psnr(x, y, 1.0)
    assert got.dtype == torch.float64 and got.shape == (4,)
    for i in range(3):
        expect = peak_signal_noise_ratio(a[i] / 255, b[i] / 255, data_range=1)
        assert got[i].item() == pytest.approx(expect, abs=1e-6)
    assert got[3].item() == peak_signal_noise_ratio(a[3] / 255, b[3] / 255, data_range=1) == float("inf")
    with pytest.raises(ValueError, match="one shape"):
        M.psnr(x, y[:, :, :-1], 1.0)


def test_tv_subsets_take_top_and_bottom_k_without_overlap() -> None:
    tv = {"a": 0.3, "b": 0.1, "c": 0.3, "d": 0.05, "e": 0.2}
    large, small, k = tv_subsets(tv, 50)
    assert k == 2 and large == {"a", "c"} and small == {"d", "b"}
    large, small, k = tv_subsets(tv, 1)
    assert (large, small, k) == ({"a"}, {"d"}, 1)  # tie between a and c broken by name


@pytest.fixture(scope="module")
def inception_features(tmp_path_factory: pytest.TempPathFactory):
    """Features of a few random images from our extractor and from torchmetrics' (same random weights)."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        path = save_random_inception(weights.hub_checkpoints_dir())
        ours = M.inception_extractor(path)
        tm = NoTrainInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], antialias=False)
    g = torch.Generator().manual_seed(5)
    real = (torch.rand(6, 3, 64, 48, generator=g) * 255).byte()
    fake = (torch.rand(10, 3, 64, 48, generator=g) ** 2 * 255).byte()
    with torch.no_grad():
        pool_r, _ = ours(real)
        pool_f, logits_f = ours(fake)
        tm_pool, tm_logits = tm._torch_fidelity_forward(fake)
    return {"real": pool_r, "fake": pool_f, "logits": logits_f, "tm_pool": tm_pool, "tm_logits": tm_logits}


def test_extractor_matches_torchmetrics_inception(inception_features) -> None:
    f = inception_features
    assert torch.allclose(f["fake"], f["tm_pool"], rtol=1e-4, atol=1e-5)
    assert torch.allclose(f["logits"], f["tm_logits"], rtol=1e-4, atol=1e-4)


def test_inception_score_equals_torchmetrics(inception_features) -> None:
    from torchmetrics.image.inception import InceptionScore

    logits = inception_features["logits"]
    for splits in (1, 5):
        tm = InceptionScore(feature=GivenFeatures(), splits=splits)
        tm.update(logits)
        torch.manual_seed(7)  # torchmetrics shuffles with the global generator; ours uses a private seeded one
        mean, std = tm.compute()
        ours = M.inception_score(logits, splits, seed=7)
        assert ours[0] == pytest.approx(mean.item(), rel=1e-6)
        if splits > 1:  # torchmetrics reports ddof=1; the protocol (as torch-fidelity) ddof=0
            # torchmetrics works in float32, we in float64 (as torch-fidelity): agree to float32 precision
            assert ours[1] == pytest.approx(std.item() * np.sqrt((splits - 1) / splits), abs=1e-6)
    assert ours[0] > 1.0 + 1e-3  # the random extractor still separates the images


def test_fid_and_kid_equal_torchmetrics(inception_features) -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = inception_features["real"], inception_features["fake"]
    fid = FrechetInceptionDistance(feature=GivenFeatures())
    fid.update(real, real=True)
    fid.update(fake, real=False)
    assert M.frechet_distance(real, fake) == pytest.approx(fid.compute().item(), rel=1e-4)
    kid = KernelInceptionDistance(feature=GivenFeatures(), subsets=6, subset_size=5)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    torch.manual_seed(3)
    mean, std = kid.compute()
    ours = M.kernel_inception_distance(real, fake, subsets=6, subset_size=5, seed=3)
    assert ours[0] == pytest.approx(mean.item(), rel=1e-5)
    assert ours[1] == pytest.approx(std.item(), rel=1e-4)  # torchmetrics: float32 features


def test_set_metrics_ignore_feature_order(inception_features) -> None:
    bank_a, bank_b = M.FeatureBank(), M.FeatureBank()
    logits = inception_features["logits"]
    names = [f"{i:02d}" for i in range(logits.shape[0])]
    bank_a.update(names, logits)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(0)).tolist()
    bank_b.update([names[i] for i in order[:4]], logits[order[:4]])
    bank_b.update([names[i] for i in order[4:]], logits[order[4:]])
    assert M.inception_score(bank_a.stack(), 2, 0) == M.inception_score(bank_b.stack(), 2, 0)


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0.7, 0.1, size=400)
    lo, hi = stats.bootstrap_ci(x, 2000, seed=1)
    assert stats.bootstrap_ci(x, 2000, seed=1) == (lo, hi)
    se = x.std(ddof=1) / np.sqrt(x.size)  # the normal-theory interval the bootstrap should approach
    assert lo == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert hi == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)
    assert stats.bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    d = stats.describe([1.0, 2.0, float("nan"), 3.0])
    assert (d["mean"], d["std"], d["n"]) == (2.0, 1.0, 3)


def test_each_metric_row_reads_only_what_it_declares() -> None:
    """The pass finds files, loads networks and skips metrics by the names a row declares: a row reading anything
    else would fail here, not silently need an input nobody checked."""
    from vton.eval.networks import LOADERS
    from vton.eval.registry import INPUTS, METRICS, NETWORKS, SETTING_OF, Tensors
    from vton.eval.settings import Settings

    fake, real = _images(0, b=4)
    masks = torch.rand(2, 4, 40, 32, generator=torch.Generator().manual_seed(1)) > 0.5
    class Distance:  # stands in for the LPIPS and DISTS networks: a distance per image, and a map
        def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return (x - y).abs().mean(dim=(1, 2, 3))

        def spatial(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return (x - y).abs().mean(dim=1)

    image_inputs = {"fake": fake, "real": real, "cloth": fake, "warp": masks[0], "region": masks[1],
                    "lpips": Distance(), "dists": Distance()}
    features = torch.randn(6, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    set_inputs = {"real": {"real": features}, "fake": {"fake": features.flip(0), "logits": features[:, :5]}}
    settings = Settings(is_splits=2, kid_subsets=3, kid_subset_size=4)
    assert set(NETWORKS) == set(LOADERS)
    for spec in METRICS:
        assert set(spec.inputs) <= set(INPUTS) and set(spec.networks) <= set(NETWORKS), spec.name
        assert SETTING_OF[spec.name] == spec.setting and spec.definition and "\n" not in spec.definition
        if spec.level == "image":
            out = spec.score(Tensors(**{k: image_inputs[k] for k in (*spec.inputs, *spec.networks)}))
            assert out.shape == (4,), spec.name
        else:
            given = {k: v for name in spec.inputs for k, v in set_inputs[name].items()}
            assert spec.score(Tensors(**given), settings).mean is not None, spec.name
        with pytest.raises(AttributeError):  # without its inputs a row cannot score
            spec.score(Tensors(), settings) if spec.level == "set" else spec.score(Tensors())


def _uint8_pairs(seed: int, b: int = 3, h: int = 40, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """uint8 HWC reference / generated pairs; generated ranges differ per image (0..255, 30..200, ...)."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 256, size=(b, h, w, 3), dtype=np.uint8)
    gen = np.clip(ref.astype(int) + rng.integers(-40, 41, size=ref.shape), 0, 255)
    lo = np.arange(b)[:, None, None, None] * 30
    gen = (lo + gen * (255 - 2 * lo) / 255).astype(np.uint8)
    return ref, gen


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2)


def test_ssim_with_per_image_data_range_equals_cit_skimage_call() -> None:
    """CIT: skimage SSIM on uint8 RGB with data_range = max - min of each generated image."""
    ref, gen = _uint8_pairs(0)
    x, y = _chw(ref).double(), _chw(gen).double()
    rng = M.per_image_range(y)
    assert rng.tolist() == [float(g.max() - g.min()) for g in gen] and len(set(rng.tolist())) == 3
    ours = M.ssim_map(x, y, rng).mean(dim=(1, 2))
    for i in range(3):
        expect = structural_similarity(ref[i], gen[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       channel_axis=-1, data_range=gen[i].max() - gen[i].min())
        assert ours[i].item() == pytest.approx(expect, abs=1e-4)
    # a per-image range is not the same as one range for all
    assert (M.ssim_map(x, y, 255.0).mean(dim=(1, 2)) - ours).abs().max() > 1e-3
    with pytest.raises(ValueError):
        M.ssim_map(x, y, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError):
        M.ssim_map(x, y, torch.ones(2))


def test_pil_gray_and_grayscale_ssim_equal_pil_and_hrviton_skimage_call() -> None:
    """HR-VITON: convert('L') both, skimage SSIM with data_range 255 on the grey arrays."""
    from PIL import Image

    ref, gen = _uint8_pairs(1)
    gray_ref, gray_gen = M.pil_gray(_chw(ref)), M.pil_gray(_chw(gen))
    assert gray_ref.dtype == torch.uint8 and gray_ref.shape == (3, 1, 40, 32)
    pil = [np.asarray(Image.fromarray(g).convert("L")) for g in gen]
    assert all(np.array_equal(gray_gen[i, 0].numpy(), pil[i]) for i in range(3))
    ours = M.ssim_map(gray_ref.double(), gray_gen.double(), 255.0).mean(dim=(1, 2))
    for i in range(3):
        pil_ref = np.asarray(Image.fromarray(ref[i]).convert("L"))
        expect = structural_similarity(pil_ref, pil[i], data_range=255, gaussian_weights=True,
                                       use_sample_covariance=False)
        assert ours[i].item() == pytest.approx(expect, abs=1e-4)


def test_mse_equals_torch_mse_loss_per_image() -> None:
    x, y = _images(4)
    expect = [torch.nn.functional.mse_loss(x[i], y[i]).item() for i in range(3)]
    assert M.mse(x, y).tolist() == pytest.approx(expect, rel=1e-6)


def test_psnr_of_batches_equals_torchmetrics_called_per_batch_as_vtoneval() -> None:
    from torchmetrics.image import PeakSignalNoiseRatio

    g = torch.Generator().manual_seed(5)
    x = torch.rand(10, 3, 16, 12, generator=g)
    noise = torch.linspace(0.02, 0.3, 10).view(10, 1, 1, 1)  # unequal errors: batch composition matters
    y = (x + noise * torch.randn(10, 3, 16, 12, generator=g)).clamp(0, 1)
    metric = PeakSignalNoiseRatio(data_range=1.0, dim=None)
    total = sum(metric(x[i:i + 4], y[i:i + 4]).item() * len(x[i:i + 4]) for i in range(0, 10, 4))
    err = M.mse(x, y)
    assert M.psnr_of_batches(err, 1.0, batch=4) == pytest.approx(total / 10, rel=1e-5)
    assert M.psnr_of_batches(err, 1.0, batch=1) == pytest.approx(M.psnr(x, y, 1.0).mean().item())
    assert abs(M.psnr_of_batches(err, 1.0, batch=4) - M.psnr_of_batches(err, 1.0, batch=1)) > 0.1


class _RandomLogits(torch.nn.Module):
    """A tiny random classifier of uint8 images: what InceptionScore's ``feature`` receives after normalize=True."""

    def __init__(self, pixels: int, classes: int = 12) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(pixels, classes)
        torch.nn.init.normal_(self.fc.weight, std=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.float().flatten(1) / 255)


@pytest.mark.parametrize("n", [6, 30, 34])  # 34 rows: torch.chunk(10) gives 9 parts of 4 and 2; 6: 6 parts
def test_inception_score_torch_chunk_equals_torchmetrics_ten_splits(n: int) -> None:
    from torchmetrics.image.inception import InceptionScore

    torch.manual_seed(0)
    net = _RandomLogits(3 * 8 * 8)
    images = torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(n))
    metric = InceptionScore(feature=net, splits=10, normalize=True)
    metric.update(images)
    torch.manual_seed(12)
    mean, std = metric.compute()
    with torch.no_grad():
        logits = net((images * 255).byte())
    ours = M.inception_score(logits, 10, 12, chunks="torch_chunk", ddof=1)
    assert ours == pytest.approx((mean.item(), std.item()), rel=1e-5, abs=1e-6)  # 6 rows: std 0 up to float32
    if n < 10:  # fewer rows than splits: torch.chunk makes n parts, the floor bounds would leave some empty
        with pytest.raises(ValueError, match="splits <= N"):
            M.inception_score(logits, 10, 12)
        return
    floor = M.inception_score(logits, 10, 12)[0]
    if n % 10:  # unequal parts: the floor bounds give other parts, another value
        assert floor != pytest.approx(mean.item(), rel=1e-5)
    else:
        assert floor == pytest.approx(mean.item(), rel=1e-5)


def _probabilities(seed: int, n: int, k: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.3), size=n)
    return p / p.sum(axis=1, keepdims=True)


def test_inception_score_one_split_of_probabilities_equals_hrviton_scipy_entropy() -> None:
    p = _probabilities(0, 20)
    p[3, 2] = 0.0  # a zero probability: 0 log 0 = 0, as scipy
    p[3] /= p[3].sum()
    expect = np.exp(np.mean([entropy(p_i, p.mean(axis=0)) for p_i in p]))
    mean, std = M.inception_score(torch.from_numpy(p), 1, None, softmax=False)
    assert mean == pytest.approx(expect, rel=1e-10) and std == 0.0


def test_inception_score_floor_parts_population_std_equal_cit_numpy() -> None:
    """CIT's IS.py: part i = rows [i N // 10, (i + 1) N // 10) in order, np.std (population)."""
    n, splits = 23, 10
    p = _probabilities(1, n)
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    mean, std = M.inception_score(torch.from_numpy(p), splits, None, chunks="floor", ddof=0, softmax=False)
    assert (mean, std) == pytest.approx((np.mean(scores), np.std(scores)), rel=1e-10)
    # the same rows as logits (log p) give the same score through the softmax
    assert M.inception_score(torch.from_numpy(np.log(p)), splits, None)[0] == pytest.approx(mean, rel=1e-9)

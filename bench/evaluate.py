"""Throughput of `vton evaluate` against a naive loop that calls torchmetrics image by image (same data, same run).

Both sides score the same synthetic dataset: paired SSIM, SSIM in the cloth, LPIPS, IoU, unpaired IS / FID / KID,
cloth TV. The naive side decodes in the main process, runs one image per call and feeds Inception once per metric
(torchmetrics' IS, FID and KID each own an extractor); it computes set metrics for the whole set only (no LARGE /
SMALL subsets, no bootstrap), which favours it. Weights are RANDOM (the pretrained files are not on this machine):
timings are valid, scores are not.

    python -m bench.evaluate --n 256 [--device cuda]
Last line: ``bench evaluate: <ratio>x naive``.

    python -m bench.evaluate --n 64 --protocol all
Every protocol (`vton.eval.protocols`) in one run, each file decoded once and each view shared, against running
each protocol on its own (the same images, weights and settings). Last line:
``bench evaluate protocols: <ratio>x separate``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.eval_fixtures import make_dataset, make_results, save_random_weights
from vton.core import formats as fm
from vton.eval.protocols import PROTOCOLS, resolve
from vton.eval.run import evaluate
from vton.eval.settings import Settings


def _tensor(path: Path, device: torch.device) -> torch.Tensor:
    arr = np.asarray(Image.open(path).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].to(device)


def naive(data: Path, results: Path, device: torch.device) -> dict[str, float]:
    """The straightforward loop: torchmetrics objects, one image at a time, decoding in the main process."""
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim
    from torchmetrics.functional.image import total_variation
    from torchmetrics.image import (
        FrechetInceptionDistance,
        InceptionScore,
        KernelInceptionDistance,
        LearnedPerceptualImagePatchSimilarity,
    )

    paired = [line.split() for line in (data / fm.TEST_PAIRS_SAME).read_text().splitlines()]
    unpaired = [line.split() for line in (data / fm.TEST_PAIRS).read_text().splitlines()]
    n = len(unpaired)
    lp = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).to(device)
    inception_score = InceptionScore().to(device)
    fid = FrechetInceptionDistance().to(device)
    kid = KernelInceptionDistance(subset_size=min(1000, n)).to(device)
    test = data / "test"
    out: dict[str, list[float]] = {"ssim": [], "ssim_cloth": [], "lpips": [], "iou": [], "tv": []}
    r = 5
    for person, _ in paired:
        stem = Path(person).stem
        real = _tensor(test / fm.IMAGE_DIR / person, device).float() / 255
        fake = _tensor(results / "paired" / fm.TRYON_DIR / f"{stem}.png", device).float() / 255
        labels = np.asarray(Image.open(test / fm.PARSE_DIR / fm.parse_name(person)))
        region = torch.from_numpy(np.isin(labels, fm.CLOTH_LABELS)).to(device)
        warp = torch.from_numpy(np.asarray(Image.open(results / "paired" / fm.WARP_MASK_DIR / f"{stem}.png")) >= 128)
        warp = warp.to(device)
        _, full = ssim(fake, real, data_range=1.0, return_full_image=True)
        inner = full[0, :, r:-r, r:-r].mean(0)
        out["ssim"].append(inner.mean().item())
        out["ssim_cloth"].append(inner[region[r:-r, r:-r]].mean().item())
        out["lpips"].append(lp(fake, real).item())
        out["iou"].append(((warp & region).sum() / (warp | region).sum()).item())
    for person, _ in unpaired:
        real = _tensor(test / fm.IMAGE_DIR / person, device)
        fake = _tensor(results / "unpaired" / fm.TRYON_DIR / f"{Path(person).stem}.png", device)
        inception_score.update(fake)
        fid.update(real, real=True)
        fid.update(fake, real=False)
        kid.update(real, real=True)
        kid.update(fake, real=False)
    for cloth in sorted((test / fm.CLOTH_DIR).iterdir()):
        out["tv"].append((total_variation(_tensor(cloth, device).float() / 255) / (3 * 256 * 192)).item())
    means = {k: float(np.mean(v)) for k, v in out.items()}
    means["is"] = inception_score.compute()[0].item()
    means["fid"] = fid.compute().item()
    means["kid"] = kid.compute()[0].item()
    return means


def protocols(root: Path, names: list[str], settings: Settings) -> None:
    """All ``names`` in one run against each alone; prints the time of each and the ratio."""
    results = {k: root / "results" / k for k in ("paired", "unpaired")}
    t0 = time.perf_counter()
    together = evaluate(root / "data", results, root / "together", settings, protocols=names)
    t_together = time.perf_counter() - t0
    t_separate = 0.0
    for name in names:
        t0 = time.perf_counter()
        alone = evaluate(root / "data", results, root / f"alone-{name}", settings, protocols=[name])
        t_separate += time.perf_counter() - t0
        same = alone["protocols"][name]["metrics"] == together["protocols"][name]["metrics"]
        print(f"  {name:<10} alone {time.perf_counter() - t0:6.2f} s, same numbers as together: {same}")
    print(f"all {len(names)} protocols together {t_together:.2f} s, each alone {t_separate:.2f} s in all")
    print(f"bench evaluate protocols: {t_separate / t_together:.2f}x separate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64, help="test persons (and cloths)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--protocol", action="append", choices=[*PROTOCOLS, "all"],
                        help="compare these protocols run together against each alone (repeatable; all)")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        persons = make_dataset(root / "data", n=args.n)
        make_results(root / "results", root / "data", persons)
        home = root / "torch_home"
        wdir = home / "hub" / "checkpoints"
        save_random_weights(wdir)
        torch.hub.set_dir(str(home / "hub"))  # both sides find the random weights where torch.hub looks
        for f in sorted((root / "data").rglob("*")) + sorted((root / "results").rglob("*")):
            if f.is_file():
                f.read_bytes()  # warm the page cache for both sides alike
        torch.zeros(1, device=device)
        if args.protocol:
            print(f"bench evaluate protocols: {args.n} persons, device {device}, RANDOM weights (timings only)")
            protocols(root, resolve(args.protocol), Settings(device=args.device, batch_size=args.batch_size,
                                                             workers=args.workers, progress=False))
            return
        print(f"bench evaluate: {args.n} persons, device {device}, RANDOM weights (timings only, scores meaningless)")

        t0 = time.perf_counter()
        naive_scores = naive(root / "data", root / "results", device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t_naive = time.perf_counter() - t0

        settings = Settings(device=args.device, batch_size=args.batch_size, workers=args.workers, progress=False)
        t0 = time.perf_counter()
        summary = evaluate(root / "data", {k: root / "results" / k for k in ("paired", "unpaired")}, root / "run",
                           settings)
        t_ours = time.perf_counter() - t0

    for name in ("ssim", "ssim_cloth", "lpips", "iou", "tv", "is", "fid", "kid"):
        key = next(k for k in summary["metrics"] if k.endswith("/" + name))
        print(f"  {name:<11} naive {naive_scores[name]:.6g}  ours {summary['metrics'][key]['all']['mean']:.6g}")
    print(f"naive loop {t_naive:.2f} s, vton evaluate {t_ours:.2f} s (incl. LARGE/SMALL subsets and bootstrap)")
    print(f"bench evaluate: {t_naive / t_ours:.2f}x naive")


if __name__ == "__main__":
    main()

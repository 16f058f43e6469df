"""Benchmark `vton infer` against a straightforward loop written like the original test.py, on the same data.

Baseline: a DataLoader (batch 4, one worker, as test.py's defaults), eager fp32 under no_grad, GMM then TOM per
batch, each image saved synchronously with PIL. Both write lossless PNG from the same weights; the script checks
that the files are identical before it prints the ratio.

    python -m bench.infer --pairs 64            # synthesises a dataset, random paper-width weights
    python -m bench.infer --data DIR --checkpoint CKPT

Last line: ``bench infer: <ratio>x baseline, <pairs/s> pairs/s``.
"""
from __future__ import annotations

import argparse
import hashlib
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.reference_loop import reference_batches


def baseline(data: Path, ckpt: Path, out: Path, device: torch.device) -> int:
    """The test.py-style loop, saving each image synchronously with PIL as it comes."""
    for folder in ("warp-cloth", "warp-mask", "try-on"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    n = 0
    for names, images in reference_batches(data, [ckpt], "unpaired", device, workers=1):
        for folder, arrays in images.items():
            for name, array in zip(names, arrays):
                Image.fromarray(array).save(out / folder / f"{name}.png")
        n += len(names)
    return n


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(np.asarray(Image.open(p)).tobytes()).hexdigest()
            for p in sorted(folder.glob("*/*.png"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=64, help="synthetic pairs (test share ~1/8) when --data is absent")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workers", type=int, default=1, help="vton infer's Dask processes")
    args = parser.parse_args()

    from vton.core.devices import resolve_device
    from vton.models.infer import InferOptions, run_inference

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = args.data
        if data is None:
            from vton.pipelines.synth.generate import synthesize

            data = tmp_path / "data"
            synthesize(data, pairs=args.pairs * 8, seed=0)
        ckpt = args.checkpoint
        if ckpt is None:
            from vton.models.checkpoint import save_bundle
            from vton.models.config import ModelConfig
            from vton.models.gmm import GMM
            from vton.models.tom import TOM

            torch.manual_seed(0)
            ckpt = save_bundle(tmp_path / "random.pth", ModelConfig(), gmm=GMM(), tom=TOM())
        # warm-up: load libraries and kernels once for both sides
        run_inference(data, [ckpt], tmp_path / "warm", InferOptions(device=str(device), progress=False))

        start = time.perf_counter()
        n = baseline(data, ckpt, tmp_path / "base", device)
        t_base = time.perf_counter() - start

        start = time.perf_counter()
        run_inference(data, [ckpt], tmp_path / "ours", InferOptions(device=str(device), batch_size=args.batch_size,
                                                                    precision=args.precision, workers=args.workers,
                                                                    progress=False))
        t_ours = time.perf_counter() - start
        same = digest(tmp_path / "base") == digest(tmp_path / "ours")

    machine = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    )
    print(
        f"device: {device} ({machine}); pairs: {n}; precision: {args.precision}; outputs identical to baseline: {same}"
    )
    print(f"baseline (test.py-style loop, batch 4): {t_base:8.2f} s  {n / t_base:8.2f} pairs/s")
    print(f"vton infer (batch {args.batch_size}, {args.workers} workers): {t_ours:8.2f} s  {n / t_ours:8.2f} pairs/s")
    print(f"bench infer: {t_base / t_ours:.2f}x baseline, {n / t_ours:.1f} pairs/s")


if __name__ == "__main__":
    main()

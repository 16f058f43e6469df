"""Benchmark `vton infer --fast` against a straightforward loop written like the original test.py, on the same data.

Baseline: a DataLoader (batch 4, one worker, as test.py's defaults), eager fp32 under no_grad, GMM then TOM per
batch, each image saved synchronously with PIL; its files are the exact path's bytes. The fast path's time includes
its calibration and compilation (printed apart too). Its deviation from the baseline is measured on every pair of
the run (fraction of equal pixels, max difference, change of paired SSIM and warped-mask IoU: `vton.models.deviation`)
beside the record `vton infer --fast` wrote to infer.json from its calibration sample. ``--exact`` also times the
exact path (`vton infer` without --fast) and checks that its files equal the baseline's. ``--decode host device`` times
the fast path once per place of JPEG decoding (PIL in the loader processes, decode_jpeg batched on the device), each
in a new folder with its own calibration and compilation. The host's share per pair (loading, PNG encoding; one
thread) is printed with the pairs per second the machine's cores allow for it, whatever the accelerator.

    python -m bench.infer --pairs 2000          # synthesises a dataset (train split), random paper-width weights
    python -m bench.infer --data DIR --checkpoint CKPT [--device cuda --batch-size 64]

Last line: ``bench infer: <ratio>x loop (fast path, <device>), equal pixels <fraction>``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.reference_loop import reference_batches
from vton.core import formats as fm
from vton.core.io import save_uint8_image
from vton.models.deviation import describe, deviation_record
from vton.models.fast import FastSettings
from vton.models.options import DECODES
from vton.pipelines.dataset import TryOnDataset

FOLDERS = (fm.WARP_CLOTH_DIR, fm.WARP_MASK_DIR, fm.TRYON_DIR)


def baseline(data: Path, ckpt: Path, split: str, pairs: str, out: Path, device: torch.device) -> int:
    """The test.py-style loop, saving each image synchronously with PIL as it comes."""
    for folder in FOLDERS:
        (out / folder).mkdir(parents=True, exist_ok=True)
    n = 0
    for names, images in reference_batches(data, [ckpt], pairs, device, workers=1, split=split):
        for folder, arrays in images.items():
            for name, array in zip(names, arrays):
                Image.fromarray(array).save(out / folder / f"{name}.png")
        n += len(names)
    return n


def read_folder(root: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Each output folder's images of ``names``, stacked as uint8 N x H x W x C."""
    def read(path: Path) -> np.ndarray:
        with Image.open(path) as img:
            array = np.asarray(img)
        return array[..., None] if array.ndim == 2 else array

    return {folder: np.stack([read(root / folder / f"{name}.png") for name in names]) for folder in FOLDERS}


def full_deviation(data: Path, split: str, pairs: str, exact: Path, fast: Path) -> dict:
    """The deviation record of the fast files against the exact ones, on every pair."""
    dataset = TryOnDataset(data, split, pairs)
    items = [dataset.load(i) for i in range(len(dataset))]
    names = [Path(item["im_name"]).stem for item in items]
    persons = np.stack([item["image"].transpose(1, 2, 0) for item in items])
    regions = np.stack([item["parse_cloth_mask"][0].astype(bool) for item in items])
    return deviation_record(read_folder(exact, names), read_folder(fast, names), persons, regions)


def host_costs(data: Path, split: str, pairs: str, out: Path, n: int = 64) -> dict[str, float]:
    """Milliseconds per pair of the host's share of the fast path, one thread, on the run's first ``n`` pairs: the
    loader's ``load`` (JPEGs decoded by PIL, or left encoded for the device) and the PNG encoding of its three
    outputs at the fast path's zlib level (the person photo stands in for each). The DataLoader processes and the
    writer threads share the host's cores, so ``cores / (load + encode)`` bounds the pairs per second whatever the
    accelerator."""
    dataset = TryOnDataset(data, split, pairs)
    n = min(n, len(dataset))
    costs = {}
    loaded = {}
    for name, keep in (("load", False), ("load_jpeg_kept", True)):
        start = time.perf_counter()
        loaded[name] = [dataset.load(i, keep) for i in range(n)]
        costs[name] = (time.perf_counter() - start) / n * 1000
    photos = [item["image"].transpose(1, 2, 0) for item in loaded["load"]]
    start = time.perf_counter()
    for i, photo in enumerate(photos):
        for folder in FOLDERS:
            save_uint8_image(photo, out / f"{i}-{folder}.png", png_compress_level=FastSettings.png_compress_level)
    costs["encode"] = (time.perf_counter() - start) / n * 1000
    return costs


def synthetic_inputs(tmp: Path, pairs: int) -> tuple[Path, str, str]:
    """A synthetic dataset with at least ``pairs`` train pairs and a pairs file of exactly ``pairs`` of them (the
    train split: 2,000 test pairs would need 16,000 synthesised)."""
    from vton.pipelines.synth.generate import synthesize, train_count

    total = math.ceil(pairs * 1.2) + 2
    while train_count(total) < pairs:
        total += 16
    data = tmp / "data"
    synthesize(data, pairs=total, seed=0)
    listing = tmp / "pairs.txt"
    listing.write_text("".join((data / "train_pairs.txt").read_text().splitlines(keepends=True)[:pairs]))
    return data, "train", str(listing)


def random_checkpoint(tmp: Path) -> Path:
    from vton.models.checkpoint import save_bundle
    from vton.models.config import ModelConfig
    from vton.models.gmm import GMM
    from vton.models.tom import TOM

    torch.manual_seed(0)
    gmm = GMM()
    with torch.no_grad():  # off the identity warp, as trained networks are
        gmm.regression.linear.bias.normal_(0, 0.3)
    return save_bundle(tmp / "random.pth", ModelConfig(), gmm=gmm, tom=TOM())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=64, help="synthetic pairs when --data is absent")
    parser.add_argument("--data", type=Path, help="a prepared dataset (its unpaired test list)")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="fp32", help="fast path precision (fp32: its default for the device)")
    parser.add_argument("--no-compile", action="store_true", help="the fast path without torch.compile")
    parser.add_argument("--workers", type=int, default=1, help="vton infer's Dask processes")
    parser.add_argument("--exact", action="store_true", help="also time the exact path (vton infer without --fast)")
    parser.add_argument("--decode", nargs="+", choices=DECODES, default=["host"],
                        help="where the fast path decodes JPEGs; several: one fast run each, the fastest reported last")
    args = parser.parse_args()

    from vton.core.devices import resolve_device
    from vton.models.infer import InferOptions, run_inference

    device = resolve_device(args.device)
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        if args.data is None:
            data, split, pairs = synthetic_inputs(tmp_path, args.pairs)
        else:
            data, split, pairs = args.data, "test", "unpaired"
        ckpt = args.checkpoint or random_checkpoint(tmp_path)
        opts = InferOptions(split=split, pairs=pairs, device=str(device), batch_size=args.batch_size,
                            workers=args.workers, progress=False)
        fast_opts = replace(opts, fast=True, precision=args.precision, compile=not args.no_compile)
        warm = tmp_path / "warm.txt"  # load libraries and kernels once for both sides, on a few pairs
        warm.write_text(fm.pairs_text(TryOnDataset(data, split, pairs).pairs[:8]))
        run_inference(data, [ckpt], tmp_path / "warm", replace(opts, pairs=str(warm)))

        # each figure is printed as soon as it is measured: a run stopped at a time limit keeps what it measured
        start = time.perf_counter()
        n = baseline(data, ckpt, split, pairs, tmp_path / "base", device)
        t_base = time.perf_counter() - start
        print(f"device: {device} ({machine}); pairs: {n}")
        print(f"baseline (test.py-style loop, batch 4): {t_base:8.2f} s  {n / t_base:8.2f} pairs/s", flush=True)
        fast_runs = {}  # decode -> (seconds, equal pixels of every pair against the loop)
        for decode in dict.fromkeys(args.decode):
            out = tmp_path / f"fast-{decode}"
            start = time.perf_counter()
            summary = run_inference(data, [ckpt], out, replace(fast_opts, decode=decode))
            t_fast = time.perf_counter() - start
            record = full_deviation(data, split, pairs, tmp_path / "base", out)
            fast_runs[decode] = t_fast, record["equal_pixels"]
            first = summary.first_fast_batch_s or 0.0
            settings = json.loads((out / fm.INFER_RECORD_FILE).read_text())["fast"]
            print(f"fast path (vton infer --fast, batch {args.batch_size}, {args.workers} workers, decode {decode}): "
                  f"{t_fast:8.2f} s  {n / t_fast:8.2f} pairs/s, of which its first batch (compilation) {first:.1f} s; "
                  f"without it {t_base / max(t_fast - first, 1e-9):.2f}x loop; settings {settings}")
            print(f"  deviation, infer.json (calibration): {describe(summary.fast_deviation)}")
            print(f"  deviation, every pair vs the loop:   {describe(record)}")
            for folder, fig in record["folders"].items():
                print(f"    {folder:11} equal pixels {fig['equal_pixels']:.4f}, max |diff| {fig['max_abs_diff']}")
            sys.stdout.flush()
        (tmp_path / "host").mkdir()
        host = host_costs(data, split, pairs, tmp_path / "host")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        print(f"host, ms per pair on one thread: load {host['load']:.2f} (JPEGs left for the device "
              f"{host['load_jpeg_kept']:.2f}), PNG encode of 3 outputs {host['encode']:.2f}; {cores} cores bound the "
              f"run at {cores * 1000 / (host['load'] + host['encode']):.0f} pairs/s "
              f"({cores * 1000 / (host['load_jpeg_kept'] + host['encode']):.0f} decoding on the device)", flush=True)
        if args.exact:
            start = time.perf_counter()
            run_inference(data, [ckpt], tmp_path / "exact", opts)
            t_exact = time.perf_counter() - start
            same = full_deviation(data, split, pairs, tmp_path / "base", tmp_path / "exact")["equal_pixels"] == 1.0
            print(f"exact path (vton infer, batch {args.batch_size}): {t_exact:8.2f} s  {n / t_exact:8.2f} pairs/s  "
                  f"{t_base / t_exact:.2f}x loop, files equal to the loop's: {same}")

    decode = min(fast_runs, key=lambda d: fast_runs[d][0])
    t_fast, equal = fast_runs[decode]
    name = "cpu" if device.type == "cpu" else machine
    suffix = f", decode {decode}" if len(fast_runs) > 1 else ""
    print(f"bench infer: {t_base / t_fast:.2f}x loop (fast path, {name}{suffix}), equal pixels {equal:.4f}")


if __name__ == "__main__":
    main()

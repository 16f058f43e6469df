"""Benchmark: openpifpaf keypoints (network + decoder + conversion) in images/s, on the CPU and on a GPU when present.

No pretrained weights can be downloaded here, so the network is openpifpaf's shufflenetv2k16 with random weights,
saved and loaded exactly as a real checkpoint would be. The network costs the same with any weights; the decoder does
less on random fields (it finds nobody), so real photos decode somewhat slower. Images are 192x256 (CP-VTON size).
Batched throughput is compared with batch size 1 measured in the same run.

    python -m bench.keypoints [--images 32] [--batch-size 8]
Last line: ``bench keypoints: <images/s> images/s`` (the GPU figure when there is one, else the CPU one).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vton.pipelines.keypoints.pifpaf import PifpafOptions, load_model, save_random_checkpoint, write_poses


def images_per_second(paths: list[Path], out: Path, options: PifpafOptions) -> float:
    """Decode, detect, convert and write, as `vton keypoints` does in one process."""
    load_model(options)
    write_poses(paths[: options.batch_size], out, options)  # warm-up (allocations, cuDNN autotuning)
    start = time.perf_counter()
    write_poses(paths, out, options)  # ends with host-side decoding, so the GPU work is finished
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_random_checkpoint(root / "random.pkl")
        rng = np.random.default_rng(0)
        paths = []
        for i in range(args.images):
            paths.append(root / f"{i:06d}_0.jpg")
            Image.fromarray(rng.integers(0, 256, (256, 192, 3), dtype=np.uint8)).save(paths[-1])
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        headline = 0.0
        for device in devices:
            rates = {}
            for batch in (1, args.batch_size):
                options = PifpafOptions(checkpoint=str(root / "random.pkl"), trust_checkpoint=True, device=device,
                                        batch_size=batch)
                rates[batch] = images_per_second(paths, root / "out", options)
                print(f"{device} batch {batch}: {rates[batch]:.2f} images/s")
            print(f"{device}: batch {args.batch_size} vs batch 1: x{rates[args.batch_size] / rates[1]:.2f}")
            headline = rates[args.batch_size]
        print(f"torch threads {torch.get_num_threads()}, {args.images} images of 192x256, random-init shufflenetv2k16")
        print(f"bench keypoints: {headline:.2f} images/s")


if __name__ == "__main__":
    main()

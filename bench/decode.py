"""JPEG decoding of the dataset's person and cloth images: PIL (what `vton infer`'s loader runs, one image at a time in
each DataLoader process) against torchvision.io.decode_jpeg, on the CPU and batched on CUDA (nvjpeg), with how far
each one's pixels are from PIL's. It tells whether decoding on the device pays before the loader is changed for it.

    python -m bench.decode [--images 512] [--device cuda] [--data DIR]

Last line: ``bench decode: <ratio>x PIL (<device> decode_jpeg, batch <n>), equal pixels <fraction>``.
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import decode_jpeg


def pil_decode(blobs: list[bytes]) -> list[np.ndarray]:
    out = []
    for blob in blobs:
        with Image.open(io.BytesIO(blob)) as img:
            out.append(np.asarray(img.convert("RGB")))
    return out


def best_of(fn, reps: int) -> tuple[float, object]:
    """Fastest of ``reps`` calls (after one warm-up call) and the last result."""
    result = fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--data", type=Path, help="a CP-VTON-layout folder (default: synthesised)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64, help="images per decode_jpeg call on CUDA")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from vton.pipelines.synth.generate import synthesize

            data = Path(tmp) / "data"
            synthesize(data, pairs=args.images * 3 // 5 + 2, seed=0)  # train persons + their cloths
        paths = sorted((data / "train" / "image").glob("*.jpg")) + sorted((data / "train" / "cloth").glob("*.jpg"))
        blobs = [p.read_bytes() for p in paths[:args.images]]
    tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    device = torch.device(args.device)
    t_pil, reference = best_of(lambda: pil_decode(blobs), args.reps)
    print(f"{len(blobs)} JPEGs; PIL: {len(blobs) / t_pil:9.1f} images/s (one thread)")
    t_cpu, _ = best_of(lambda: [decode_jpeg(t) for t in tensors], args.reps)
    print(f"torchvision decode_jpeg, CPU: {len(blobs) / t_cpu:9.1f} images/s (one thread), {t_pil / t_cpu:.2f}x PIL")
    if device.type == "cuda":
        def on_device() -> list[torch.Tensor]:
            out = [img for i in range(0, len(tensors), args.batch)
                   for img in decode_jpeg(tensors[i:i + args.batch], device=device)]
            torch.cuda.synchronize()
            return out
        t_dev, decoded = best_of(on_device, args.reps)
        print(f"torchvision decode_jpeg, {torch.cuda.get_device_name(device)}, batch {args.batch}: "
              f"{len(blobs) / t_dev:9.1f} images/s, {t_pil / t_dev:.2f}x PIL")
    else:
        t_dev, decoded = t_cpu, [decode_jpeg(t) for t in tensors]
    arrays = [d.permute(1, 2, 0).cpu().numpy() for d in decoded]
    equal = float(np.mean([(a == r).all(axis=-1).mean() for a, r in zip(arrays, reference)]))
    worst = max(int(np.abs(a.astype(int) - r.astype(int)).max()) for a, r in zip(arrays, reference))
    print(f"pixels against PIL's: equal {equal:.4f}, max |diff| {worst} levels")
    print(f"bench decode: {t_pil / t_dev:.2f}x PIL ({device.type} decode_jpeg, batch "
          f"{args.batch if device.type == 'cuda' else 1}), equal pixels {equal:.4f}")


if __name__ == "__main__":
    main()

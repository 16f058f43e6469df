"""Forward throughput (pairs/s) of GMM and TOM: eager fp32 against the inference fast path, measured in one run.

Fast path = ``vton.models.fast.prepare_for_inference``: inference_mode, plus torch.compile (not with --quick, whose
budget is < 1 min) and, on CUDA, channels_last and fp16 autocast; a reduced precision counts only while its outputs
stay within TOLERANCE of eager fp32 (rows over it are flagged). Eager and fast calls are interleaved and the
fastest repetition of each is kept, which resists noise from other work on a shared machine.
Last line: ``bench models: <ratio>x eager`` (geometric mean of the per-row speed-ups).
Usage: python -m bench.models [--quick] [--device all|cpu|cuda] [--precision fp16|bf16|fp32]
       [--no-compile] [--width N]
"""
from __future__ import annotations

import argparse
import math
import time

import torch

from vton.models.fast import prepare_for_inference
from vton.models.gmm import GMM
from vton.models.tom import TOM

H, W = 256, 192
# Largest accepted |fast - eager fp32| on the raw outputs: GMM grid coordinates in [-1, 1] (one pixel is
# 2/191 ~ 0.0105) and TOM pre-activation values (instance-normalised, ~N(0, 1)).
TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2, "bf16": 1e-1}


def inputs(net: str, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(batch)
    shapes = [(batch, 22, H, W), (batch, 3, H, W)] if net == "gmm" else [(batch, 25, H, W)]
    return tuple((torch.rand(s, generator=g) * 2 - 1).to(device) for s in shapes)


def best_seconds(fns, args: tuple[torch.Tensor, ...], device: torch.device, reps: int) -> list[float]:
    """Fastest of ``reps`` timed calls of each function, calls interleaved, after one warm-up call each."""
    def timed(fn) -> float:
        start = time.perf_counter()
        fn(*args)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    with torch.no_grad():
        for fn in fns:
            timed(fn)
        times = [[timed(fn) for fn in fns] for _ in range(reps)]
    return [min(col) for col in zip(*times)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU, batches 1 and 4, width 32, no compile (< 1 min).")
    parser.add_argument("--device", default="all", choices=["all", "cpu", "cuda"])
    parser.add_argument("--precision", default=None, choices=list(TOLERANCE), help="CUDA fast-path precision (fp16).")
    parser.add_argument("--no-compile", action="store_true", help="Leave torch.compile out of the fast path.")
    parser.add_argument("--width", type=int, default=None, help="Network width ngf (paper 64; --quick 32).")
    args = parser.parse_args()
    torch.manual_seed(0)
    wanted = ["cpu"] if args.quick and args.device == "all" else ["cpu", "cuda"]
    devices = [d for d in wanted if args.device in ("all", d) and (d == "cpu" or torch.cuda.is_available())]
    width = args.width or (32 if args.quick else 64)
    batches = (1, 4) if args.quick else (1, 4, 16)
    compile_ = not (args.quick or args.no_compile)
    ratios = []
    print(f"width {width}, compile {compile_}, timings: best of interleaved repetitions")
    print(f"{'device':6} {'net':4} {'batch':>5} {'eager/s':>9} {'fast/s':>9} {'ratio':>6} "
          f"{'precision':>9} {'max|dev|':>9}")
    for dev in devices:
        device = torch.device(dev)
        precision = "fp32" if dev == "cpu" else (args.precision or "fp16")
        for net in ("gmm", "tom"):
            model = (GMM(width=width) if net == "gmm" else TOM(width=width)).to(device).eval()
            for batch in batches:
                x = inputs(net, batch, device)
                reps = 3 if args.quick else (5 if dev == "cpu" else 30)
                eager = prepare_for_inference(model, device, fast=False)
                fast = prepare_for_inference(model, device, precision=precision, compile=compile_, example=x)
                t_eager, t_fast = best_seconds([eager, fast], x, device, reps)
                ratios.append(t_eager / t_fast)
                flag = "" if fast.max_abs_deviation <= TOLERANCE[precision] else "  OVER TOLERANCE"
                print(
                    f"{dev:6} {net:4} {batch:5d} {batch / t_eager:9.2f} {batch / t_fast:9.2f} {t_eager / t_fast:6.2f} "
                    f"{precision:>9} {fast.max_abs_deviation:9.2e}{flag}",
                    flush=True,
                )
    ratio = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(f"bench models: {ratio:.2f}x eager")


if __name__ == "__main__":
    main()

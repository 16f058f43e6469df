"""Forward time per pair of GMM and TOM, one fast-path change at a time, against eager fp32 measured in the same run.

Rows (``vton.models.fast.prepare_for_inference``): channels_last (oneDNN / cuDNN NHWC), reduced-precision autocast
(bf16 on the CPU: native where /proc/cpuinfo has avx512_bf16 or amx_bf16, emulated and slow otherwise; fp16 or bf16
on CUDA), both, and torch.compile (inductor, fixed shape) on top of the reduced precision, with its compilation
seconds and the pairs after which it has paid for itself. The thread row runs the best eager setting on one thread:
two such processes side by side could at most reach the ratio printed (an upper bound: they share caches and memory
bandwidth). Calls are interleaved and the fastest and median of the repetitions are kept, which resists the noise of
other work on a shared machine; compare ratios, which come from the same run, not seconds across runs.
Last line: ``bench models: <ratio>x eager (<best row>)``.
Usage: python -m bench.models [--quick] [--device cpu|cuda] [--precision bf16|fp16] [--no-compile] [--width N]
       [--batch N] [--reps N]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from vton.models.fast import native_bf16, prepare_for_inference
from vton.models.gmm import GMM
from vton.models.tom import TOM

H, W = 256, 192


def inputs(batch: int, device: torch.device) -> dict[str, tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(batch)
    shapes = {"gmm": [(batch, 22, H, W), (batch, 3, H, W)], "tom": [(batch, 25, H, W)]}
    return {net: tuple((torch.rand(s, generator=g) * 2 - 1).to(device) for s in sh) for net, sh in shapes.items()}


class Pair:
    """GMM then TOM as one callable, each network prepared with the same settings; ``first_s`` is the first call's
    time (a compiled pair's compilation)."""

    def __init__(self, nets: dict[str, torch.nn.Module], x: dict[str, tuple[torch.Tensor, ...]], device: torch.device,
                 **settings: object) -> None:
        self.device, self.x = device, x
        self.fast = {name: prepare_for_inference(net, device, **settings) for name, net in nets.items()}
        self.first_s = self.seconds()

    def __call__(self) -> dict[str, tuple[torch.Tensor, ...]]:
        with torch.inference_mode():
            out = {name: self.fast[name](*self.x[name]) for name in self.fast}
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return {name: o if isinstance(o, tuple) else (o,) for name, o in out.items()}

    def seconds(self) -> float:
        start = time.perf_counter()
        self()
        return time.perf_counter() - start


def deviation(a: dict[str, tuple[torch.Tensor, ...]], b: dict[str, tuple[torch.Tensor, ...]]) -> float:
    return max(float((x.float() - y.float()).abs().max()) for n in a for x, y in zip(a[n], b[n]))


def interleaved(fns: list[Callable[[], float]], reps: int) -> list[list[float]]:
    times = [[fn() for fn in fns] for _ in range(reps)]
    return [list(col) for col in zip(*times)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="width 32, batch 4, 3 repetitions, no compile (< 1 min)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default=None, choices=["bf16", "fp16"],
                        help="reduced precision (default: bf16; fp16 also offered on CUDA)")
    parser.add_argument("--no-compile", action="store_true", help="leave the torch.compile row out")
    parser.add_argument("--width", type=int, default=None, help="network width ngf (paper 64; --quick 32)")
    parser.add_argument("--batch", type=int, default=None, help="pairs per call (default 8; --quick 4)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per row (default 5)")
    args = parser.parse_args()
    device = torch.device(args.device)
    width, batch = args.width or (32 if args.quick else 64), args.batch or (4 if args.quick else 8)
    reps = args.reps or (3 if args.quick else 5)
    low = args.precision or "bf16"
    torch.manual_seed(0)
    nets = {"gmm": GMM(width=width), "tom": TOM(width=width)}
    x = inputs(batch, device)
    native = native_bf16() if device.type == "cpu" else True
    print(f"device {device}, width {width}, batch {batch}, {torch.get_num_threads()} threads, {reps} repetitions, "
          f"native bf16 on this CPU: {native}")
    rows = {"eager fp32": Pair(nets, x, device, fast=False),
            "channels_last": Pair(nets, x, device, channels_last=True),
            f"{low} autocast": Pair(nets, x, device, precision=low, channels_last=False),
            f"{low} + channels_last": Pair(nets, x, device, precision=low, channels_last=True)}
    if not (args.quick or args.no_compile):
        rows[f"{low} + compile"] = Pair(nets, x, device, precision=low, compile=True, channels_last=False)
    reference = rows["eager fp32"]()
    times = dict(zip(rows, interleaved([pair.seconds for pair in rows.values()], reps)))
    base = statistics.median(times["eager fp32"])
    print(f"{'row':22} {'best ms/pair':>12} {'median':>8} {'ratio':>6} {'spread':>12} {'max|dev|':>9}  notes")
    ratios = {}
    for name, pair in rows.items():
        ts = times[name]
        med = statistics.median(ts)
        ratios[name] = base / med
        # the ratio's spread: each repetition's eager time over this row's time in the same repetition
        each = [b / t for b, t in zip(times["eager fp32"], ts)]
        note = ""
        if "compile" in name:
            compile_s = pair.first_s - med
            gain = statistics.median(times[f"{low} autocast"]) - med
            paid = f"{compile_s / gain * batch:.0f} pairs" if gain > 0 else "never"
            note = f"compilation {compile_s:.1f} s, paid back after {paid} against {low} eager"
        print(f"{name:22} {min(ts) / batch * 1e3:12.1f} {med / batch * 1e3:8.1f} {ratios[name]:6.2f} "
              f"{min(each):5.2f}-{max(each):5.2f} {deviation(reference, pair()):9.2e}  {note}", flush=True)
    if device.type == "cpu":
        best_eager = max((n for n in ratios if "compile" not in n), key=ratios.get)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        one = statistics.median(interleaved([rows[best_eager].seconds], reps)[0])
        torch.set_num_threads(threads)
        upper = threads * statistics.median(times[best_eager]) / one
        print(f"thread layout: {best_eager} on 1 thread {one / batch * 1e3:.1f} ms/pair; {threads} one-thread "
              f"processes could at most be {upper:.2f}x the {threads}-thread process")
    best = max(ratios, key=ratios.get)
    print(f"bench models: {ratios[best]:.2f}x eager ({best})")


if __name__ == "__main__":
    main()

"""Benchmark the dataset audit: signing images (linear in N) and the candidate search (against comparing all pairs,
measured in the same run).

    python -m bench.audit [--sign [500 2000]] [--search 2000 8000 32000] [--all-pairs-up-to 8000]

Signing: synthetic person photos (192x256 JPEG, distinct people drawn by `vton synth`'s drawing) decoded and signed
(pHash, thumbnail) in one process: seconds per 10,000 images at each size, which is linear when the rate stays.
Search: the thumbnails of N synthetic persons drawn at the working size, 1% of them followed by a near copy (the
edits of `vton synth --defects`, in turn); `candidate_pairs` at each N, the candidates it finds and the copies among
them, against all pairs compared in blocks (every shifted embedding against every own one, one matrix product per
block: what the search avoids; up to ``--all-pairs-up-to`` N). The growth exponent is the slope of log(time) over
log(N) between the smallest and largest N, and between each N and the next. ``--sign`` with no sizes skips signing.
Peak RSS of this process (ru_maxrss).
Last line: ``bench audit: <images/s>, candidate search <exponent> in N``.
"""
from __future__ import annotations

import argparse
import io
import math
import resource
import time

import numpy as np
from PIL import Image

from vton.pipelines.audit.duplicates import NearSettings
from vton.pipelines.audit.search import OFFSETS, OWN, candidate_pairs, embeddings
from vton.pipelines.audit.signature import WORK_WH, decode, signature, thumbnail, work_image
from vton.pipelines.synth.draw import draw_labels, make_person, paint_person
from vton.pipelines.synth.near import KINDS, edit

COPY_SHARE = 100  # one image in this many is a near copy of another


def photos(n: int, seed: int = 0) -> list[bytes]:
    out = []
    for k in range(n):
        person = make_person(np.random.default_rng([seed, k]))
        buf = io.BytesIO()
        Image.fromarray(paint_person(person, draw_labels(person))).save(buf, "JPEG", quality=95)
        out.append(buf.getvalue())
    return out


def sign_seconds(files: list[bytes]) -> float:
    start = time.perf_counter()
    for data in files:
        signature(decode(data))
    return time.perf_counter() - start


def search_set(n: int, seed: int = 1) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Thumbnails of ``n`` images: distinct persons drawn at the working size, each `COPY_SHARE`-th followed by an
    edited copy of it (the edit kinds in turn); and the (source, copy) index pairs."""
    thumbs: list[np.ndarray] = []
    copies = set()
    rng = np.random.default_rng([seed, n])
    for k in range(n):
        person = make_person(np.random.default_rng([seed, k]))
        work = Image.fromarray(paint_person(person, draw_labels(person, *WORK_WH)))
        thumbs.append(thumbnail(work))
        if k % COPY_SHARE == 0 and len(thumbs) < n:
            data, _ = edit(KINDS[len(copies) % len(KINDS)], work, rng)
            copies.add((len(thumbs) - 1, len(thumbs)))
            thumbs.append(thumbnail(work_image(decode(data))))
        if len(thumbs) == n:
            break
    return np.stack(thumbs), copies


def all_pairs(thumbs: np.ndarray, radius: float, block: int = 1024) -> int:
    """Pairs within ``radius`` counted by comparing every image's shifted embeddings with every other's own."""
    probes = embeddings(thumbs)
    own = probes[:, OWN]
    own_sq = (own * own).sum(axis=1)
    within = np.zeros((len(own), len(own)), bool)
    for offset in range(len(OFFSETS)):
        shifted = probes[:, offset]
        for start in range(0, len(own), block):
            rows = shifted[start:start + block]
            d2 = (rows * rows).sum(axis=1)[:, None] + own_sq[None, :] - 2 * rows @ own.T
            within[start:start + block] |= d2 <= radius * radius
    within |= within.T
    return int(np.triu(within, k=1).sum())


def exponent(times: list[float], sizes: list[int], a: int, b: int) -> float:
    """Slope of log(time) over log(N) from size ``a`` to size ``b`` (indices)."""
    return math.log(times[b] / times[a]) / math.log(sizes[b] / sizes[a])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sign", type=int, nargs="*", default=[500, 2000])
    parser.add_argument("--search", type=int, nargs="+", default=[2000, 8000, 32000])
    parser.add_argument("--all-pairs-up-to", type=int, default=8000)
    args = parser.parse_args()
    radius = NearSettings().radius
    rates = []
    for n in args.sign:
        seconds = sign_seconds(photos(n))
        rates.append(n / seconds)
        print(f"sign {n:>6} images: {seconds:7.2f} s, {seconds / n * 10_000:7.1f} s per 10,000 images, "
              f"{n / seconds:6.1f} images/s", flush=True)
    times = []
    for n in args.search:
        thumbs, copies = search_set(n)
        start = time.perf_counter()
        pairs, _ = candidate_pairs(thumbs, radius)
        search = time.perf_counter() - start
        times.append(search)
        found = {tuple(p) for p in pairs.tolist()}
        line = (f"search {n:>6} thumbnails: {search:7.2f} s, {len(found)} candidates ({len(found) / n:.3f} per "
                f"image), planted copies found {len(copies & found)}/{len(copies)}")
        if n <= args.all_pairs_up_to:
            start = time.perf_counter()
            brute = all_pairs(thumbs, radius)
            baseline = time.perf_counter() - start
            line += f"; all pairs compared {baseline:7.2f} s, {brute} pairs; {baseline / search:5.1f}x"
        print(line, flush=True)
    steps = ", ".join(f"{exponent(times, args.search, k, k + 1):.2f} from {args.search[k]} to {args.search[k + 1]}"
                      for k in range(len(times) - 1))
    print(f"growth exponents: {steps}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    rate = f"{rates[-1]:.0f}" if rates else "-"
    print(f"bench audit: {rate} images/s, candidate search {exponent(times, args.search, 0, -1):.2f} in N")


if __name__ == "__main__":
    main()

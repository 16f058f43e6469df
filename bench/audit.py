"""Benchmark the dataset audit: signing images (linear in N) and the candidate search (against comparing all pairs,
measured in the same run).

    python -m bench.audit [--sign 500 2000] [--search 2000 8000 32000]

Signing: synthetic person photos (192x256 JPEG, distinct people drawn by `vton synth`'s drawing) decoded and signed
(pHash, embedding, thumbnail) in one process: seconds per 10,000 images at each size, which is linear when the
rate stays. Search: the embeddings of N distinct synthetic persons; `candidate_pairs` at each N
against all pairs compared in blocks (one matrix product per block: what the search avoids); the growth exponent is
the slope of log(time) over log(N) between the smallest and largest N. Peak RSS of this process (ru_maxrss).
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
from vton.pipelines.audit.search import candidate_pairs
from vton.pipelines.audit.signature import WORK_WH, decode, embedding, signature
from vton.pipelines.synth.draw import draw_labels, make_person, paint_person


def photos(n: int, seed: int = 0) -> list[bytes]:
    out = []
    for k in range(n):
        person = make_person(np.random.default_rng([seed, k]))
        buf = io.BytesIO()
        Image.fromarray(paint_person(person, draw_labels(person))).save(buf, "JPEG", quality=95)
        out.append(buf.getvalue())
    return out


def sign_rate(files: list[bytes]) -> tuple[float, np.ndarray]:
    """Seconds to sign ``files``, and their embeddings."""
    start = time.perf_counter()
    sigs = [signature(decode(f)) for f in files]
    seconds = time.perf_counter() - start
    return seconds, np.stack([np.frombuffer(s.embedding, np.float32) for s in sigs])


def embeddings(n: int, seed: int = 1) -> np.ndarray:
    """The embeddings of ``n`` distinct synthetic persons (drawn at the working size: only the embedding is made)."""
    out = []
    for k in range(n):
        person = make_person(np.random.default_rng([seed, k]))
        work = Image.fromarray(paint_person(person, draw_labels(person, *WORK_WH)))
        out.append(embedding(work))
    return np.stack(out)


def all_pairs(vectors: np.ndarray, radius: float, block: int = 2048) -> int:
    """Pairs within ``radius`` counted by comparing every pair (blocks of rows against all later rows)."""
    v = vectors.astype(np.float64)
    sq = (v * v).sum(axis=1)
    found = 0
    for start in range(0, len(v), block):
        rows = v[start:start + block]
        d2 = sq[start:start + block, None] + sq[None, start:] - 2 * rows @ v[start:].T
        upper = np.triu(np.ones(d2.shape, bool), k=1)
        found += int(((d2 <= radius * radius) & upper).sum())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sign", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--search", type=int, nargs="+", default=[2000, 8000, 32000])
    args = parser.parse_args()
    radius = NearSettings().radius
    rates = []
    for n in args.sign:
        files = photos(n)
        seconds, _ = sign_rate(files)
        rates.append(n / seconds)
        print(f"sign {n:>6} images: {seconds:7.2f} s, {seconds / n * 10_000:7.1f} s per 10,000 images, "
              f"{n / seconds:6.1f} images/s")
    times = []
    for n in args.search:
        vectors = embeddings(n)
        start = time.perf_counter()
        found = len(candidate_pairs(vectors, radius))
        search = time.perf_counter() - start
        start = time.perf_counter()
        brute = all_pairs(vectors, radius)
        baseline = time.perf_counter() - start
        times.append(search)
        print(f"search {n:>6} embeddings: {search:7.3f} s, {found} pairs; all pairs compared {baseline:7.3f} s, "
              f"{brute} pairs; {baseline / search:5.1f}x")
    exponent = math.log(times[-1] / times[0]) / math.log(args.search[-1] / args.search[0])
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"bench audit: {rates[-1]:.0f} images/s, candidate search {exponent:.2f} in N")


if __name__ == "__main__":
    main()

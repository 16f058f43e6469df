"""Benchmark `vton prepare` against the codec floor, measured in the same run.

    python -m vton.bench.prepare --pairs 2000   (or: python bench/prepare.py --pairs 2000)

Floor: one process that only decodes every input (person JPEG, parse PNG, pose JSON, cloth JPEG, mask JPEG) and
encodes the one computed output (the shape PNG) with the same libraries, no Dask, no hashing, no files written.
Prepare: ``vton prepare SRC OUT --workers W`` in a subprocess; its peak RSS is the peak of the summed RSS of that
process and its workers (sampled every 20 ms). Targets: >= 1.2x the floor with 2 workers; RSS flat in N.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from vton.pipelines import formats as F
from vton.pipelines.sources import shape_png
from vton.pipelines.synth import synthesize


def codec_floor(src: Path) -> tuple[int, float]:
    """Decode all inputs and encode the shape PNG of every pair; (pairs, seconds)."""
    pairs = [(split, line.split()) for split in F.SPLITS
             for line in (src / F.PAIRS_FILES[split]).read_text().splitlines()]
    start = time.perf_counter()
    for split, (person, cloth) in pairs:
        root = src / split
        for path in (root / F.IMAGE_DIR / person, root / F.CLOTH_DIR / cloth, root / F.CLOTH_MASK_DIR / cloth):
            Image.open(io.BytesIO(path.read_bytes())).load()
        parse = np.asarray(Image.open(io.BytesIO((root / F.PARSE_DIR / F.parse_name(person)).read_bytes())))
        json.loads((root / F.POSE_DIR / F.pose_name(person)).read_bytes())
        shape_png(parse)
    return len(pairs), time.perf_counter() - start


def run_prepare(src: Path, out: Path, workers: int, local: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB of the prepare process tree)."""
    import vton

    package_parent = str(Path(vton.__file__).resolve().parents[1])  # this checkout, also when not installed
    cmd = [sys.executable, "-m", "vton.cli", "prepare", str(src), str(out), "--workers", str(workers),
           "--local", local, "--allow-rejects"]
    env = {**os.environ, "PYTHONPATH": package_parent}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        parent = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed ({proc.returncode}): {output.decode()[-2000:]}")
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--local", choices=("threads", "processes"), default="processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="folder for the data (default: a temp folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    src = work / f"synth-{args.pairs}-{args.seed}"
    if not src.exists():
        t = time.perf_counter()
        synthesize(src, args.pairs, args.seed, progress=True)
        print(f"synth: {args.pairs} pairs in {time.perf_counter() - t:.1f} s", flush=True)
    codec_floor(src)  # warm the page cache so both runs read from memory
    os.sync()  # no writeback of earlier runs' files competing with either measurement
    n, floor_s = codec_floor(src)
    out = work / f"prepared-{args.pairs}-{time.time_ns()}"
    prep_s, rss = run_prepare(src, out, args.workers, args.local)
    floor_rate, prep_rate = n / floor_s, n / prep_s
    print(f"codec floor (1 process): {floor_rate:.1f} pairs/s ({floor_s:.2f} s for {n} pairs)")
    print(f"prepare --workers {args.workers} --local {args.local}: {prep_rate:.1f} pairs/s ({prep_s:.2f} s), peak RSS {rss:.0f} MB")
    print(f"bench prepare: {prep_rate / floor_rate:.2f}x floor, rss {rss:.0f} MB")


if __name__ == "__main__":
    main()

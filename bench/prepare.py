"""Benchmark `vton prepare` against the codec floor, measured in the same run.

    python -m bench.prepare [--pairs 1000 2000 8000] [--work DIR]
    python -m bench.prepare --layout viton-hd --pairs 2000 4000


Each size is measured in turn (synthesised on first use; with --work the data is kept for later runs). The floor and
prepare read a warm page cache, after an os.sync() so that no writeback of earlier files competes with them.

Floor: one process that only decodes every input (person JPEG, parse PNG, pose JSON, cloth JPEG, mask JPEG) and
encodes the one computed output (the shape PNG) with the same libraries, no Dask, no hashing, no files written. A
source layout that prepare converts (``--layout viton-hd``: 1024x768 sources to 256x192) has every output computed:
its floor is the adapter's own ingest of every pair (decode, resize, encode), one process, nothing written.
Prepare: ``vton prepare SRC OUT --workers W`` in a subprocess; its peak RSS is the peak of the summed RSS of that
process and its workers (sampled every 100 ms). Targets: >= 1.2x the floor with 2 workers; RSS flat in N
(within 10% from 1,000 to 8,000 pairs). Last line: the largest size's ratio and RSS.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from vton.pipelines.layouts import LAYOUTS, PREPARED
from vton.pipelines.layouts.base import SPLIT_LIST
from vton.pipelines.layouts.files import shape_png
from vton.pipelines.synth.generate import synthesize


def codec_floor(src: Path) -> tuple[int, float]:
    """Decode all inputs and encode the shape PNG of every pair; (pairs, seconds)."""
    pairs = [(split, pair) for split, which in SPLIT_LIST.items() for pair in PREPARED.read_pairs(src, which)]
    start = time.perf_counter()
    for split, (person, cloth) in pairs:
        files, cloth_files = PREPARED.person_files(split, person), PREPARED.cloth_files(split, cloth)
        for relative in (files.image, cloth_files.cloth, cloth_files.mask):
            Image.open(io.BytesIO((src / relative).read_bytes())).load()
        parse = np.asarray(Image.open(io.BytesIO((src / files.parse).read_bytes())))
        json.loads((src / files.pose).read_bytes())
        shape_png(parse)
    return len(pairs), time.perf_counter() - start


def ingest_floor(src: Path, layout: str) -> tuple[int, float]:
    """The adapter's ingest of every pair's person and cloth in one process; (pairs, seconds)."""
    adapter = LAYOUTS[layout]
    pairs, _ = adapter.discover(src, resplit=False)
    start = time.perf_counter()
    for pair in pairs:
        adapter.ingest_person(src, pair.person)
        adapter.ingest_cloth(src, pair.cloth)
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
            time.sleep(0.1)  # each sample costs about 1 ms of CPU: sparse enough not to slow what it measures

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed ({proc.returncode}): {output.decode()[-2000:]}")
    return elapsed, peak


def measure(work: Path, pairs: int, seed: int, workers: int, local: str, repeat: int,
            layout: str = PREPARED.name) -> tuple[float, float, float]:
    """(floor pairs/s, prepare pairs/s, prepare peak RSS MB) on ``pairs`` synthetic pairs of ``layout``; each side's
    best of ``repeat`` runs, taken in turns (a shared machine's noise hits both alike)."""
    src = work / f"synth-{layout}-{pairs}-{seed}"
    if not src.exists():
        t = time.perf_counter()
        synthesize(src, pairs, seed, layout=layout, progress=True)
        print(f"synth: {pairs} pairs in {time.perf_counter() - t:.1f} s", flush=True)
    floor = codec_floor if layout == PREPARED.name else lambda root: ingest_floor(root, layout)
    floor(src)  # warm the page cache so both runs read from memory
    floors, preps = [], []
    for _ in range(repeat):
        os.sync()  # no writeback of earlier runs' files competing with either measurement
        n, floor_s = floor(src)
        floors.append(floor_s)
        os.sync()
        preps.append(run_prepare(src, work / f"prepared-{pairs}-{time.time_ns()}", workers, local))
    floor_s, (prep_s, rss) = min(floors), min(preps)
    print(
        f"{n} pairs: codec floor (1 process) {n / floor_s:.1f} pairs/s ({floor_s:.2f} s); prepare --workers {workers} "
        f"--local {local} {n / prep_s:.1f} pairs/s ({prep_s:.2f} s), peak RSS {rss:.0f} MB: "
        f"{floor_s / prep_s:.2f}x floor",
        flush=True,
    )
    return n / floor_s, n / prep_s, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[1000, 2000, 8000],
                        help="dataset sizes; the last line reports the largest")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--local", choices=("threads", "processes"), default="processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default=PREPARED.name, help="source layout to prepare")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side per size (the best counts)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the data, kept for later runs (default: a temp folder, removed)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    try:
        results = {n: measure(work, n, args.seed, args.workers, args.local, args.repeat, args.layout)
                   for n in sorted(args.pairs)}
    finally:  # outputs are removed only now: deleting files just before a run slows ext4's file creation in it
        for out in work.glob("prepared-*"):
            shutil.rmtree(out, ignore_errors=True)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    rss = [r for _, _, r in results.values()]
    if len(results) > 1:
        print(f"peak RSS from {min(results)} to {max(results)} pairs: {min(rss):.0f} to {max(rss):.0f} MB "
              f"({(max(rss) / min(rss) - 1) * 100:.0f}% apart)")
    floor_rate, prep_rate, top_rss = results[max(results)]
    name = "" if args.layout == PREPARED.name else f" {args.layout}"
    print(f"bench prepare{name}: {prep_rate / floor_rate:.2f}x floor, rss {top_rss:.0f} MB")


if __name__ == "__main__":
    main()

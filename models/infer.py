"""GMM + TOM over a whole dataset: warped cloth, warped mask and try-on images, resumable and batched.

One pass per batch: the GMM warps the cloth in memory and the TOM consumes it at once (the original test.py ran
the two stages separately, round-tripping the warped cloth through JPEG files). Images are decoded by a thread pool
ahead of the compute and encoded by another behind it, so the networks never wait for the disk. Files are named by
the person, so no two pairs collide, and each is written atomically: an existing file is a finished file, which is
what makes a re-run skip finished pairs.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vton.core import formats as fm
from vton.core.devices import autocast_dtype, resolve_device
from vton.core.io import atomic_write_bytes, atomic_write_json, save_uint8_image, sha256_file
from vton.core.runner import RunnerConfig, map_partitions
from vton.models.config import check_input_size
from vton.models.deviation import describe, deviation_record
from vton.models.fast import FastSettings, fast_networks, fast_settings, pad_batch
from vton.models.options import InferOptions
from vton.pipelines.dataset import TryOnDataset, collate_raw
from vton.pipelines.layouts import PREPARED

MANIFEST_COLUMNS = ("index", "person", "cloth", "warp_cloth", "warp_mask", "try_on")
# `--fast` runs the first pairs of the list both ways before any file is written: the deviation record's sample.
CALIBRATION_PAIRS = 16


@dataclass
class InferSummary:
    out: str
    pairs: int
    written: int
    skipped: int
    device: str
    checkpoints: list[dict[str, str]] = field(default_factory=list)  # path and sha256 of each file
    fast_deviation: dict | None = None  # --fast: the deviation record written to infer.json
    first_fast_batch_s: float | None = None  # --fast: the first fast batch's seconds (with compilation); None: reused


def to_uint8(batch: torch.Tensor) -> np.ndarray:
    """[-1, 1] tensors -> uint8 N x H x W x C as the original ``save_images``: (x + 1) / 2 * 255, clamped, truncated."""
    scaled = ((batch.detach().float() + 1) * 0.5 * 255).clamp(0, 255).to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def output_name(im_name: str, jpeg_quality: int | None) -> str:
    return Path(im_name).stem + (".jpg" if jpeg_quality is not None else ".png")


def output_folders(tom: bool, extras: bool) -> tuple[str, ...]:
    folders = [fm.WARP_CLOTH_DIR, fm.WARP_MASK_DIR]
    if tom:
        folders.append(fm.TRYON_DIR)
        if extras:
            folders += [fm.RENDERED_DIR, fm.COMPOSITE_MASK_DIR]
    return tuple(folders)


# --- models, loaded once per process --------------------------------------------------------------

_MODEL_CACHE: dict[tuple, tuple] = {}


def cached_models(checkpoints: tuple[str, ...], device: torch.device, allow_nonfinite: bool = False,
                  fast: FastSettings | None = None) -> tuple:
    """(gmm, tom, config) loaded once per worker process and device; tasks of a Dask worker share them. With
    ``fast``, the fast path's networks (compiled once per process and setting)."""
    from vton.models.checkpoint import load_models

    key = (checkpoints, str(device))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = batch_invariant(load_models([Path(p) for p in checkpoints], device, allow_nonfinite))
    if fast is None:
        return _MODEL_CACHE[key]
    if (*key, fast) not in _MODEL_CACHE:
        gmm, tom, config = _MODEL_CACHE[key]
        _MODEL_CACHE[(*key, fast)] = (*fast_networks(gmm, tom, fast), config)
    return _MODEL_CACHE[(*key, fast)]


def batch_invariant(models: tuple) -> tuple:
    """``load_models``' (gmm, tom, config) with the GMM made batch-invariant (``GMM.set_batch_invariant``): a pair's
    files should be the same bytes whatever batch it falls in (resumed runs, --batch-size, workers)."""
    gmm, tom, config = models
    return (gmm.set_batch_invariant() if gmm is not None else None), tom, config


def checkpoint_records(paths: Sequence[str | os.PathLike]) -> list[dict[str, str]]:
    """Each checkpoint file's path and SHA-256: results belong to the weights' content, whatever the files' names."""
    from vton.models.checkpoint import expand_paths

    return [{"path": str(p), "sha256": sha256_file(p)} for p in expand_paths(paths)]


# --- the batched loop -----------------------------------------------------------------------------

class _Pieces(Dataset):
    """The dataset's uint8 pieces (``TryOnDataset.load``), for a DataLoader whose workers only decode (or, with
    ``keep_jpeg``, read the JPEGs for the device to decode)."""

    def __init__(self, dataset: TryOnDataset, keep_jpeg: bool = False) -> None:
        self.dataset, self.keep_jpeg = dataset, keep_jpeg

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.dataset.load(index, self.keep_jpeg)


def io_pools(workers: int, device: torch.device, dataset: TryOnDataset, batches: list[list[int]],
             keep_jpeg: bool = False) -> tuple[DataLoader, Executor]:
    """Decoding ahead of the networks in DataLoader processes (on CUDA, one per core: decoding in threads would hold
    the GIL that the kernel-launching thread needs) and encoding behind them in threads (PIL's zlib and JPEG coders
    release the GIL). Inside a daemonic process (a Dask worker) no children may start: decode inline there, the
    cluster's own processes giving the parallelism."""
    daemon = multiprocessing.current_process().daemon
    cuda = device.type == "cuda"
    n = workers or (min(16, os.cpu_count() or 1) if cuda else 1)
    loader = DataLoader(_Pieces(dataset, keep_jpeg), batch_sampler=batches, collate_fn=collate_raw, pin_memory=cuda,
                        num_workers=0 if daemon else n, prefetch_factor=None if daemon else 4)
    return loader, ThreadPoolExecutor(max(2, n))


@torch.inference_mode()
def forward_batch(gmm, tom, batch: dict, device: torch.device, precision: str) -> dict[str, torch.Tensor]:
    """GMM then TOM on one batch; the outputs in [-1, 1] (masks in [0, 1] are returned as 2m - 1, like test.py)."""
    from vton.models.gmm import run_gmm
    from vton.models.tom import binarize_warped_mask, run_tom

    dtype = autocast_dtype(precision)
    move = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        warped_cloth, warped_mask, _ = run_gmm(gmm, move["agnostic"], move["cloth"], move["cloth_mask"])
        out = {fm.WARP_CLOTH_DIR: warped_cloth.float(), fm.WARP_MASK_DIR: warped_mask.float() * 2 - 1}
        if tom is not None:
            tryon, rendered, mask = run_tom(tom, move["agnostic"], warped_cloth, binarize_warped_mask(warped_mask))
            out.update({fm.TRYON_DIR: tryon.float(), fm.RENDERED_DIR: rendered.float(),
                        fm.COMPOSITE_MASK_DIR: mask.float() * 2 - 1})
    return out


def infer_partition(indices: list[int], data: str, checkpoints: tuple[str, ...], out: str,
                    opts: InferOptions, device_index: int | None = None,
                    dataset: TryOnDataset | None = None, fast: FastSettings | None = None) -> list[int]:
    """Process ``indices`` of the dataset (skipping finished pairs); returns the indices it wrote. ``dataset``: the
    one the caller already opened on ``data`` (a Dask task opens its own); ``fast``: run the fast path."""
    from tqdm import tqdm

    device = resolve_device(opts.device)
    if device.type == "cuda" and device.index is None and device_index is not None:
        device = torch.device("cuda", device_index % torch.cuda.device_count())
    gmm, tom, config = cached_models(
        checkpoints, device, opts.allow_nonfinite, fast
    )  # run_inference checked that a GMM is there
    if dataset is None:
        dataset = TryOnDataset(data, split=opts.split, pairs=opts.pairs, variant=config.variant, unique_persons=True)
    folders = output_folders(tom is not None, opts.extras)
    root = Path(out)
    names = {i: output_name(dataset.pairs[i][0], opts.jpeg_quality) for i in indices}
    missing = {i: [d for d in folders if not (root / d / names[i]).exists()] for i in indices}
    # Batches are fixed chunks of the pair list, recomputed whole when any file of theirs is missing: a resumed run
    # then sees exactly the batches of an uninterrupted one, so its files are the same bytes.
    batches = [chunk for chunk in chunked(indices, opts.batch_size) if any(missing[i] for i in chunk)]
    if not batches:  # a finished folder: no decoding workers to start
        return []
    todo = [i for chunk in batches for i in chunk]
    bar = tqdm(total=len(todo), unit="pair", desc="infer", disable=not opts.progress or not todo)
    loader, writer = io_pools(opts.io_workers, device, dataset, batches, fast is not None and fast.decode == "device")
    with writer:
        writes: list[Future] = []
        for chunk, raw in zip(batches, loader):
            raw = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in raw.items()}
            if fast is not None:
                raw = pad_batch(raw, fast.batch_size)
                torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs: the last batch's outputs are copied out
            outputs = forward_batch(gmm, tom, dataset.assemble(raw, device), device,
                                    fast.precision if fast is not None else opts.precision)
            for folder in folders:
                arrays = to_uint8(outputs[folder][:len(chunk)])
                for i, array in zip(chunk, arrays):
                    if folder in missing[i]:
                        writes.append(writer.submit(save_uint8_image, array, root / folder / names[i],
                                                    opts.jpeg_quality,
                                                    fast.png_compress_level if fast else None))
            writes = settle(writes)
            bar.update(len(chunk))
        settle(writes, wait=True)
    bar.close()
    return [i for i in indices if missing[i]]


def settle(futures: list[Future], wait: bool = False) -> list[Future]:
    """Raise the first failed write; keep the writes still running (all are awaited with ``wait``)."""
    pending = []
    for future in futures:
        if wait or future.done():
            future.result()
        else:
            pending.append(future)
    return pending


def chunked(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def checkpoint_shas(records: list) -> list[str]:
    """The sorted SHA-256s of ``checkpoint_records`` (an older infer.json's entries count as they are)."""
    return sorted(str(c.get("sha256") if isinstance(c, dict) else c) for c in records)


def _identity(meta: dict) -> dict:
    """What two runs must share for their files to be interchangeable: checkpoints by content (not path or order);
    the fast path's deviation record is a measurement of those files, not a setting."""
    return {**{k: v for k, v in meta.items() if k != "fast_deviation"},
            "checkpoints": checkpoint_shas(meta.get("checkpoints") or [])}


def meta_differences(old: dict, new: dict) -> list[str]:
    """The recorded vs requested value of each setting that differs, for a one-line message."""
    def show(key: str, value: object) -> str:  # hashes by their first 12 hex digits
        if isinstance(value, list) and key == "checkpoints":
            return " ".join(h[:12] for h in value) or "none"
        return value[:12] if isinstance(value, str) and key.endswith("sha256") else repr(value)

    a, b = _identity(old), _identity(new)
    return [f"{key}: recorded {show(key, a.get(key))}, requested {show(key, b.get(key))}"
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def check_meta(out: Path, meta: dict) -> None:
    """Refuse to resume or reuse a results folder made with other weights or settings (its files would be mixed,
    or credited to the wrong weights), or one whose files have no ``infer.json`` to tell what made them."""
    path = out / fm.INFER_RECORD_FILE
    if not path.exists():
        made = [d for d in (*output_folders(True, True), fm.INFER_MANIFEST_FILE) if (out / d).exists()]
        if made:
            raise ValueError(f"{out} holds results ({', '.join(made)}) but no {fm.INFER_RECORD_FILE}, so the weights "
                             "that made them are unknown; use a new --out folder")
        atomic_write_json(path, meta)
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc}); use a new --out folder") from exc
    changed = meta_differences(old, meta) if isinstance(old, dict) else ["infer.json is not an object"]
    if changed:
        raise ValueError(f"{out} holds results of another run ({'; '.join(changed)}); use a new --out folder "
                         "or delete it")


def write_manifest(
    out: Path, pairs: Sequence[tuple[str, str]], folders: Sequence[str], jpeg_quality: int | None
) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for i, (person, cloth) in enumerate(pairs):
        name = output_name(person, jpeg_quality)
        files = [f"{d}/{name}" if d in folders else "" for d in (fm.WARP_CLOTH_DIR, fm.WARP_MASK_DIR, fm.TRYON_DIR)]
        writer.writerow([i, person, cloth, *files])
    atomic_write_bytes(out / fm.INFER_MANIFEST_FILE, buf.getvalue().encode())


def run_inference(data: str | os.PathLike, checkpoints: Sequence[str | os.PathLike], out: str | os.PathLike,
                  opts: InferOptions = InferOptions()) -> InferSummary:
    """Warp and try on every pair of ``opts.pairs`` in ``data``; write the results folder ``out`` (resumable)."""
    from vton.models.checkpoint import expand_paths, load_models

    out = Path(out)
    check_input_size(PREPARED.source_size_hw(Path(data)), data)
    paths = tuple(str(p.resolve()) for p in expand_paths(checkpoints))
    gmm, tom, config = batch_invariant(
        load_models([Path(p) for p in paths], "cpu", opts.allow_nonfinite)
    )  # validates the files before any work
    if gmm is None:
        raise ValueError("inference needs a GMM checkpoint (the TOM consumes the GMM's warped cloth)")
    dataset = TryOnDataset(data, split=opts.split, pairs=opts.pairs, variant=config.variant, unique_persons=True)
    folders = output_folders(tom is not None, opts.extras)
    meta = {"checkpoints": checkpoint_records(paths), "variant": config.variant, "split": opts.split,
            "pairs": opts.pairs, "pairs_sha256": hashlib.sha256(fm.pairs_text(dataset.pairs).encode()).hexdigest(),
            "precision": opts.precision, "jpeg_quality": opts.jpeg_quality, "folders": list(folders),
            "data": str(Path(data).resolve())}
    device = resolve_device(opts.device)
    if opts.precision != "fp32" and device.type != "cuda" and not opts.fast:
        raise ValueError("reduced precision is offered on CUDA only (or with --fast); on the CPU use --precision fp32")
    if opts.decode != "host" and not opts.fast:
        raise ValueError("--decode device is part of the fast path: add --fast")
    fast = fast_settings(device, opts.batch_size, opts.precision, opts.compile, opts.decode) if opts.fast else None
    for key in [k for k in _MODEL_CACHE if k[:2] == (paths, str(device))]:  # the files may have changed since
        del _MODEL_CACHE[key]
    _MODEL_CACHE[(paths, str(device))] = (gmm.to(device), tom.to(device) if tom is not None else None, config)
    first_batch_s = None
    if fast is not None:
        meta["fast"] = fast.to_dict()
    if fast is not None and len(dataset):  # an empty list: no image is written, none to measure
        meta["fast_deviation"] = recorded_deviation(out, meta)
        if meta["fast_deviation"] is None:  # a new folder, or another run's: measure before anything is written
            meta["fast_deviation"], first_batch_s = calibrate(
                dataset, paths, device, fast, folders, opts.allow_nonfinite
            )
        if not meta["fast_deviation"]["within_tolerance"]:
            raise ValueError(f"the fast path moves a score beyond tolerance on the first "
                             f"{describe(meta['fast_deviation'])}; run without --fast")
    out.mkdir(parents=True, exist_ok=True)
    check_meta(out, meta)
    indices = list(range(len(dataset)))
    if opts.workers <= 1 and not opts.scheduler:
        written = infer_partition(indices, str(data), paths, str(out), opts, dataset=dataset, fast=fast)
    else:
        n_gpus = torch.cuda.device_count() if device.type == "cuda" else 0
        per_part = -(-len(indices) // max(1, opts.workers * 4))
        size = -(-per_part // opts.batch_size) * opts.batch_size  # whole batches, aligned as in one process
        parts = [indices[i:i + size] for i in range(0, len(indices), size)]
        # One model per process (threads would share one GIL), each a fresh interpreter: never a fork of a process
        # that may hold CUDA state.
        runner = RunnerConfig(workers=opts.workers, scheduler=opts.scheduler, partition_size=1, progress=opts.progress,
                              local="processes", start_method="spawn")
        quiet = InferOptions(**{**asdict(opts), "progress": False})
        written = map_partitions(_partition_task, [(k, p) for k, p in enumerate(parts)], runner, str(data), paths,
                                 str(out), quiet, n_gpus, fast)
    write_manifest(out, dataset.pairs, folders, opts.jpeg_quality)
    return InferSummary(out=str(out), pairs=len(dataset), written=len(written), skipped=len(dataset) - len(written),
                        device=str(device), checkpoints=meta["checkpoints"], fast_deviation=meta.get("fast_deviation"),
                        first_fast_batch_s=first_batch_s)


def _partition_task(items: list[tuple[int, list[int]]], data: str, checkpoints: tuple[str, ...], out: str,
                    opts: InferOptions, n_gpus: int, fast: FastSettings | None = None) -> list[int]:
    """One Dask task: partitions spread over the GPUs by their number."""
    written: list[int] = []
    for k, indices in items:
        written += infer_partition(indices, data, checkpoints, out, opts, device_index=k if n_gpus else None,
                                   fast=fast)
    return written


# --- the fast path's deviation record -------------------------------------------------------------

def recorded_deviation(out: Path, meta: dict) -> dict | None:
    """The deviation record of ``out``'s infer.json when that run had ``meta``'s identity (a resume need not measure
    again), else None."""
    try:
        old = json.loads((out / fm.INFER_RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(old, dict) or not isinstance(old.get("fast_deviation"), dict) or meta_differences(old, meta):
        return None
    return old["fast_deviation"]


def calibrate(dataset: TryOnDataset, checkpoints: tuple[str, ...], device: torch.device, fast: FastSettings,
              folders: Sequence[str], allow_nonfinite: bool = False) -> tuple[dict, float]:
    """The deviation record of the fast path over ``folders`` on the list's first ``CALIBRATION_PAIRS`` pairs, run
    both ways in the run's own batches (so its fast images are the bytes the run writes for them), and the seconds
    of the first fast batch, which include the compilation."""
    exact_nets, fast_nets = (cached_models(checkpoints, device, allow_nonfinite, f)[:2] for f in (None, fast))
    exact: dict[str, list[np.ndarray]] = {folder: [] for folder in folders}
    fast_images: dict[str, list[np.ndarray]] = {folder: [] for folder in folders}
    persons, regions, seconds = [], [], []
    for chunk in chunked(range(min(len(dataset), CALIBRATION_PAIRS)), fast.batch_size):
        raw = collate_raw([dataset.load(i) for i in chunk])
        want = forward_batch(*exact_nets, dataset.assemble(raw, device), device, "fp32")
        # the fast side reads its inputs as the run will: the same pieces, or its JPEGs left for the device
        fast_raw = raw if fast.decode == "host" else collate_raw([dataset.load(i, keep_jpeg=True) for i in chunk])
        fast_raw = pad_batch(fast_raw, fast.batch_size)
        start = time.perf_counter()
        torch.compiler.cudagraph_mark_step_begin()
        got = forward_batch(*fast_nets, dataset.assemble(fast_raw, device), device, fast.precision)
        seconds.append(time.perf_counter() - start)
        for folder in folders:
            exact[folder].append(to_uint8(want[folder]))
            fast_images[folder].append(to_uint8(got[folder][:len(chunk)]))
        persons.append(raw["image"].permute(0, 2, 3, 1).cpu().numpy())
        regions.append(raw["parse_cloth_mask"][:, 0].bool().cpu().numpy())
    record = deviation_record({k: np.concatenate(v) for k, v in exact.items()},
                              {k: np.concatenate(v) for k, v in fast_images.items()},
                              np.concatenate(persons), np.concatenate(regions))
    return {"sample": f"the first {record['pairs']} pairs of the list, run both ways", **record}, seconds[0]

"""Run openpifpaf on person images and write CP-VTON pose JSON files (the conversion lives in ``keypoints.py``).

Weights: openpifpaf's default COCO keypoint model, shufflenetv2k16, is looked up where openpifpaf itself caches it,
``$TORCH_HOME/hub/checkpoints/<file name of its download URL>`` (``torch.hub.get_dir()``), or given as a path. Nothing is
ever downloaded: a missing file is a clear error naming it.

Trust: openpifpaf checkpoints are whole pickled ``nn.Module`` objects, which ``torch.load(weights_only=True)`` refuses
and which can run arbitrary code when unpickled. They are loaded with ``weights_only=False`` in that one call only, and
only when the caller says it trusts the file (``trust_checkpoint``); the global guard is never touched.

Scale: the model is loaded once per process (cached), images of one shape are batched, the GPU is used when there is
one, and ``run_keypoints(workers=N)`` spreads chunks of images over N Dask worker processes.
"""
from __future__ import annotations

import functools
import os
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Sequence

import numpy as np
from PIL import Image

from vton.pipelines.io import atomic_write_json
from vton.pipelines.keypoints import DEFAULT_THRESHOLD, pose_file_name, pose_from_people

CHECKPOINT_NAME: Final = "shufflenetv2k16"
IMAGE_SUFFIXES: Final = (".jpg", ".jpeg", ".png")
INSTALL_HINT: Final = ("openpifpaf is not installed: run `scripts/install_openpifpaf.sh .venv/bin/python` "
                       "(see the README section 'Keypoints with openpifpaf')")


class KeypointsError(RuntimeError):
    """openpifpaf cannot run: not installed, weights missing or not trusted."""


@dataclass(frozen=True)
class PifpafOptions:
    """How to run openpifpaf. ``checkpoint`` None means the default shufflenetv2k16 file where openpifpaf caches it;
    ``device`` "auto" means CUDA when available; ``long_edge`` rescales images (None: their own size)."""

    checkpoint: Path | None = None
    trust_checkpoint: bool = False
    threshold: float = DEFAULT_THRESHOLD
    device: str = "auto"
    batch_size: int = 8
    long_edge: int | None = None


def import_openpifpaf() -> Any:
    try:
        import openpifpaf
    except ImportError as exc:
        raise KeypointsError(INSTALL_HINT) from exc
    return openpifpaf


def default_checkpoint_path() -> Path:
    """Where openpifpaf caches its default model: torch hub's checkpoints folder, named as in its download URL."""
    import torch

    url = import_openpifpaf().CHECKPOINT_URLS[CHECKPOINT_NAME]
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def resolve_checkpoint(checkpoint: Path | None) -> Path:
    """The checkpoint file to load; a clear error when it is not there (weights cannot be downloaded here)."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint_path()
    if not path.is_file():
        where = ("given with --pose-checkpoint" if checkpoint is not None else
                 f"openpifpaf's default {CHECKPOINT_NAME} model, looked up in torch hub's checkpoint folder "
                 "($TORCH_HOME/hub/checkpoints)")
        raise KeypointsError(
            f"openpifpaf weights not found: {path} ({where}). Put the file {path.name} there "
            "(openpifpaf's release asset of that name) or pass --pose-checkpoint PATH; nothing is downloaded.")
    return path


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def trusted_checkpoint(options: PifpafOptions) -> Path:
    """The checkpoint file, once it is known to exist and the user has said it may be unpickled."""
    path = resolve_checkpoint(options.checkpoint)
    if not options.trust_checkpoint:
        raise KeypointsError(
            f"{path} is an openpifpaf checkpoint: a whole pickled network, which torch.load(weights_only=True) refuses "
            "and which can run arbitrary code while it is loaded. Load it only if you trust where it came from, by "
            "passing --trust-checkpoint.")
    return path.resolve()


def load_model(options: PifpafOptions) -> tuple[Any, Any, str]:
    """(network, decoder, device) for ``options``, loaded once per process and checkpoint."""
    device = resolve_device(options.device)
    return (*_load_trusted(str(trusted_checkpoint(options)), device), device)


@functools.lru_cache(maxsize=2)
def _load_trusted(path: str, device: str) -> tuple[Any, Any]:
    import torch

    openpifpaf = import_openpifpaf()
    # As openpifpaf's own CLI does at log level WARNING: its C++ decoder then stops printing "UserInfo" lines to stdout
    # (which also crashed with a segfault in one environment, torch 2.11 on Python 3.12).
    torch.ops.openpifpaf.set_quiet(True)
    # weights_only=False for this one file only, which the user has declared trusted (see module docstring).
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    net = checkpoint["model"]
    openpifpaf.network.model_migration.model_migration(net)
    net = net.eval().to(device)
    return net, openpifpaf.decoder.factory(net.head_metas)


def _preprocess(long_edge: int | None) -> Any:
    """openpifpaf's own eval preprocessing (as its Predictor): optional rescale, pad to 16k+1, normalise."""
    t = import_openpifpaf().transforms
    rescale = t.RescaleAbsolute(long_edge) if long_edge else None
    return t.Compose([t.NormalizeAnnotations(), rescale, t.CenterPadTight(16), t.EVAL_TRANSFORM])


def detect_people(images: Sequence[Image.Image], options: PifpafOptions) -> list[list[tuple[np.ndarray, float]]]:
    """For each image, every person openpifpaf finds: COCO-17 (x, y, c) in the image's own pixels, and a score.

    Images whose processed size is the same go through the network together, ``batch_size`` at a time.
    """
    import torch

    net, decoder, device = load_model(options)
    preprocess = _preprocess(options.long_edge)
    processed = [preprocess(im.convert("RGB"), [], {"dataset_index": i}) for i, im in enumerate(images)]
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (tensor, _, _) in enumerate(processed):
        by_shape[tuple(tensor.shape)].append(i)
    people: list[list[tuple[np.ndarray, float]]] = [[] for _ in images]
    for indices in by_shape.values():
        for start in range(0, len(indices), options.batch_size):
            chunk = indices[start:start + options.batch_size]
            batch = torch.stack([processed[i][0] for i in chunk])
            for i, annotations in zip(chunk, decoder.batch(net, batch, device=device)):
                meta = processed[i][2]
                people[i] = [(ann.inverse_transform(meta).data.copy(), float(ann.score)) for ann in annotations]
    return people


def estimate_poses(image_paths: Sequence[Path], options: PifpafOptions) -> list[dict | str]:
    """CP-VTON pose JSON (main person, 192x256 pixels) for each image, or an error message for an unreadable one."""
    images: list[Image.Image | None] = []
    errors: list[str] = []
    for path in image_paths:
        try:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
            errors.append("")
        except (OSError, ValueError) as exc:
            images.append(None)
            errors.append(f"unreadable image: {exc}")
    readable = [im for im in images if im is not None]
    found = iter(detect_people(readable, options) if readable else [])
    results: list[dict | str] = []
    for im, error in zip(images, errors):
        if im is None:
            results.append(error)
            continue
        people = next(found)
        results.append(pose_from_people([p for p, _ in people], [s for _, s in people], im.size, options.threshold))
    return results


def write_poses(image_paths: Sequence[Path], out_dir: Path, options: PifpafOptions,
                torch_threads: int | None = None) -> list[tuple[str, str]]:
    """Write ``<stem>_keypoints.json`` for each image into ``out_dir``; (image name, "person" | "none" | error)."""
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    statuses = []
    for path, result in zip(image_paths, estimate_poses(image_paths, options)):
        if isinstance(result, str):
            statuses.append((path.name, result))
            continue
        atomic_write_json(Path(out_dir) / pose_file_name(path.name), result)
        found = any(v != 0 for v in result["people"][0]["pose_keypoints"])
        statuses.append((path.name, "person" if found else "none"))
    return statuses


def list_images(images_dir: Path) -> list[Path]:
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise KeypointsError(f"not a folder of images: {images_dir}")
    return sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def run_keypoints(image_paths: Sequence[Path], out_dir: Path, options: PifpafOptions, workers: int = 1,
                  chunk_size: int | None = None) -> dict:
    """Pose JSON files for ``image_paths`` into ``out_dir``, in chunks of images; with ``workers`` > 1 the chunks run
    on a local Dask cluster of that many processes, each loading the model once. Returns a summary."""
    from tqdm import tqdm

    # Fail fast (missing, untrusted) before any worker starts; workers get the resolved path.
    options = replace(options, checkpoint=trusted_checkpoint(options))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = chunk_size or max(1, options.batch_size) * 4
    chunks = [list(image_paths[i:i + size]) for i in range(0, len(image_paths), size)]
    statuses: list[tuple[str, str]] = []
    progress = tqdm(total=len(image_paths), desc="keypoints", unit="img")
    if workers <= 1:
        for chunk in chunks:
            statuses += write_poses(chunk, out_dir, options)
            progress.update(len(chunk))
    else:
        from distributed import Client, LocalCluster, as_completed

        threads = max(1, (os.cpu_count() or 1) // workers)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            futures = client.map(write_poses, chunks, out_dir=out_dir, options=options, torch_threads=threads,
                                 pure=False)
            for future in as_completed(futures):
                done = future.result()
                statuses += done
                progress.update(len(done))
    progress.close()
    counts = {"person": 0, "none": 0}
    failed = {}
    for name, status in sorted(statuses):
        if status in counts:
            counts[status] += 1
        else:
            failed[name] = status
    return {"images": len(image_paths), "with_person": counts["person"], "no_person": counts["none"],
            "failed": failed, "out": str(out_dir), "checkpoint": str(options.checkpoint), "device": resolve_device(options.device)}

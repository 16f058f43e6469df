"""Run openpifpaf on person images and write CP-VTON pose JSON files (the conversion lives in ``keypoints.py``).

Weights: openpifpaf's default COCO keypoint model, shufflenetv2k16, is looked up where openpifpaf itself caches it,
``$TORCH_HOME/hub/checkpoints/<file name of its download URL>`` (``torch.hub.get_dir()``), or given as a path.
Nothing is ever downloaded: a missing file is a clear error naming it.

Trust: openpifpaf checkpoints are whole pickled ``nn.Module`` objects, which ``torch.load(weights_only=True)`` refuses
and which can run arbitrary code when unpickled. They are loaded with ``weights_only=False`` in that one call only, and
only when the caller says it trusts the file (``trust_checkpoint``); the global guard is never touched.

Scale: the model is loaded once per process (cached), images of one shape are batched, the GPU is used when there is
one, and ``run_keypoints`` spreads partitions of images over Dask workers (``vton.core.runner``).
"""
from __future__ import annotations

import functools
import os
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.devices import resolve_device
from vton.core.formats import IMAGE_SUFFIXES, NUM_JOINTS
from vton.core.io import atomic_write_bytes
from vton.core.runner import RunnerConfig, map_partitions
from vton.core.weight_files import OPENPIFPAF, using
from vton.pipelines.keypoints.coco import DEFAULT_THRESHOLD, main_pose
from vton.pipelines.keypoints.schema import KeypointError, parse_pose_json, pose_json

CHECKPOINT_NAME: Final = "shufflenetv2k16"
INSTALL_HINT: Final = ("openpifpaf is not installed: run `scripts/install_openpifpaf.sh .venv/bin/python` "
                       "(see the README section 'Keypoints with openpifpaf')")


# openpifpaf's decoder keeps working buffers in its instance, so one process's model serves one thread at a time
# (prepare's default local workers are threads); processes run in parallel, each with its own model.
_MODEL_LOCK = threading.Lock()


class PoseModelError(ValueError):
    """openpifpaf cannot run: not installed, weights missing or not trusted (bad input: one line, exit 1)."""


@dataclass(frozen=True)
class PifpafOptions:
    """How to run openpifpaf. ``checkpoint`` None means the default shufflenetv2k16 file where openpifpaf caches it;
    ``device`` "auto" means CUDA when available; ``long_edge`` rescales images (None: their own size)."""

    checkpoint: str | None = None  # a str, so the options stay JSON-able in prepare's recorded configuration
    trust_checkpoint: bool = False
    threshold: float = DEFAULT_THRESHOLD
    device: str = "auto"
    batch_size: int = 8
    long_edge: int | None = None


def import_openpifpaf() -> Any:
    try:
        import openpifpaf
    except ImportError as exc:
        raise PoseModelError(INSTALL_HINT) from exc
    return openpifpaf


def default_checkpoint_path() -> Path:
    """Where openpifpaf caches its default model: torch hub's checkpoints folder, under the name of its download URL
    (the table's row, `vton.core.weight_files`)."""
    from vton.core.weights import hub_checkpoints_dir

    return hub_checkpoints_dir() / using(OPENPIFPAF).filename


def resolve_checkpoint(checkpoint: str | os.PathLike | None) -> Path:
    """The checkpoint file to load; a clear error when it is not there (weights cannot be downloaded here)."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint_path()
    if not path.is_file():
        where = ("given with --pose-checkpoint" if checkpoint is not None else
                 f"openpifpaf's default {CHECKPOINT_NAME} model, looked up in torch hub's checkpoint folder "
                 "($TORCH_HOME/hub/checkpoints)")
        fetch = "" if checkpoint is not None else f", run `{using(OPENPIFPAF).download_command}`"
        raise PoseModelError(
            f"openpifpaf weights not found: {path} ({where}). Put the file {path.name} there "
            f"(openpifpaf's release asset of that name){fetch} or pass --pose-checkpoint PATH; nothing is downloaded "
            "unless asked.")
    return path


def trusted_checkpoint(options: PifpafOptions) -> Path:
    """The checkpoint file, once it is known to exist and the user has said it may be unpickled."""
    path = resolve_checkpoint(options.checkpoint)
    if not options.trust_checkpoint:
        raise PoseModelError(
            f"{path} is an openpifpaf checkpoint: a whole pickled network, which torch.load(weights_only=True) refuses "
            "and which can run arbitrary code while it is loaded. Load it only if you trust where it came from, by "
            "passing --trust-checkpoint.")
    return path.resolve()


def load_model(options: PifpafOptions) -> tuple[Any, Any, str]:
    """(network, decoder, device) for ``options``, loaded once per process and checkpoint."""
    device = str(resolve_device(options.device))
    return (*_load_trusted(str(trusted_checkpoint(options)), device), device)


@functools.lru_cache(maxsize=2)
def _load_trusted(path: str, device: str) -> tuple[Any, Any]:
    import torch

    openpifpaf = import_openpifpaf()
    # As openpifpaf's own CLI does at log level WARNING: its C++ decoder stops printing "UserInfo" lines to stdout.
    torch.ops.openpifpaf.set_quiet(True)
    # weights_only=False for this one file only, which the user has declared trusted (see module docstring).
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    net = checkpoint["model"]
    openpifpaf.network.model_migration.model_migration(net)
    net = net.eval().to(device)
    return net, openpifpaf.decoder.factory(net.head_metas)


def save_random_checkpoint(path: str | os.PathLike, seed: int = 0) -> None:
    """A shufflenetv2k16 with random weights, built by openpifpaf's factory for the COCO keypoint heads as for
    training from scratch, and saved as its trainer saves checkpoints: for tests and benchmarks, since pretrained
    weights cannot be downloaded here."""
    import torch

    openpifpaf = import_openpifpaf()
    from openpifpaf.plugins.coco import CocoKp

    torch.manual_seed(seed)
    net, _ = openpifpaf.network.Factory(base_name=CHECKPOINT_NAME).factory(head_metas=CocoKp().head_metas)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net, "epoch": 0, "meta": None}, path)


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

    preprocess = _preprocess(options.long_edge)
    processed = [preprocess(im.convert("RGB"), [], {"dataset_index": i}) for i, im in enumerate(images)]
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (tensor, _, _) in enumerate(processed):
        by_shape[tuple(tensor.shape)].append(i)
    people: list[list[tuple[np.ndarray, float]]] = [[] for _ in images]
    with _MODEL_LOCK:
        net, decoder, device = load_model(options)
        for indices in by_shape.values():
            for start in range(0, len(indices), options.batch_size):
                chunk = indices[start:start + options.batch_size]
                batch = torch.stack([processed[i][0] for i in chunk])
                for i, annotations in zip(chunk, decoder.batch(net, batch, device=device)):
                    meta = processed[i][2]
                    people[i] = [(ann.inverse_transform(meta).data.copy(), float(ann.score)) for ann in annotations]
    return people


def estimate_keypoints(images: Sequence[Image.Image], options: PifpafOptions) -> list[np.ndarray | None]:
    """OpenPose-18 keypoints (192x256 pixels) of each image's main person; None where openpifpaf finds nobody."""
    return [main_pose([p for p, _ in people], [s for _, s in people], im.size, options.threshold)
            for im, people in zip(images, detect_people(images, options))]


def write_poses(image_paths: Sequence[Path], out_dir: Path, options: PifpafOptions,
                torch_threads: int | None = None) -> list[tuple[str, str]]:
    """Write ``<stem>_keypoints.json`` for each image into ``out_dir`` (all joints 0, 0, 0 when nobody is found);
    returns (image name, "person" | "none" | why the image was skipped)."""
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)
    statuses, readable = [], []
    for path in image_paths:
        try:
            with Image.open(path) as im:
                readable.append((path, im.convert("RGB")))
        except (OSError, ValueError) as exc:
            statuses.append((path.name, f"unreadable image: {exc}"))
    found = estimate_keypoints([im for _, im in readable], options) if readable else []
    for (path, _), kps in zip(readable, found):
        joints = np.zeros((NUM_JOINTS, 3)) if kps is None else kps
        atomic_write_bytes(Path(out_dir) / fm.pose_name(path.name), pose_json(joints))
        statuses.append((path.name, "none" if kps is None else "person"))
    return statuses


@dataclass(frozen=True)
class PifpafKeypoints:
    """``vton prepare --keypoints openpifpaf``: a keypoint loader (see ``keypoints.schema``) that keeps the dataset's
    keypoints where its pose file exists and runs openpifpaf on the person image where it does not (or on every
    person with ``overwrite``). A person in whom openpifpaf finds nobody is rejected (stage ``keypoints``)."""

    options: PifpafOptions
    overwrite: bool = False
    needs_pose_file: ClassVar[bool] = False  # prepare calls it with None when the pose file is missing
    needs_image: ClassVar[bool] = True  # prepare hands it the fully decoded person image

    def __call__(self, pose_file: bytes | None, image: Image.Image) -> np.ndarray:
        if pose_file is not None and not self.overwrite:
            return parse_pose_json(pose_file)
        kps = estimate_keypoints([image], self.options)[0]
        if kps is None:
            raise KeypointError("openpifpaf found no person in the image")
        return kps


def keypoint_source(name: str, options: PifpafOptions, overwrite: bool = False) -> str | PifpafKeypoints:
    """``PrepareOptions.keypoints`` for ``vton prepare --keypoints NAME``: a registered name as it is, or for
    "openpifpaf" the loader, checked up front (weights there and trusted, so prepare fails before any work instead of
    rejecting every person) and with the checkpoint path resolved for the workers."""
    if name == "openpifpaf":
        return PifpafKeypoints(replace(options, checkpoint=str(trusted_checkpoint(options))), overwrite)
    if overwrite:
        raise PoseModelError("--overwrite-keypoints needs --keypoints openpifpaf")
    return name


def list_images(images_dir: Path) -> list[Path]:
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise PoseModelError(f"not a folder of images: {images_dir}")
    return sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def run_keypoints(image_paths: Sequence[Path], out_dir: Path, options: PifpafOptions,
                  runner: RunnerConfig = RunnerConfig()) -> dict:
    """Pose JSON files for ``image_paths`` into ``out_dir``. Partitions of ``runner.partition_size`` images run as
    Dask tasks on ``runner.workers`` local processes (never threads: the model runs one thread at a time per process)
    or a cluster, each process loading the model once. Returns a summary."""
    # Fail fast (missing, untrusted) before any worker starts; the workers get the resolved path.
    options = replace(options, checkpoint=str(trusted_checkpoint(options)))
    runner = replace(runner, local="processes")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // runner.workers) if runner.workers > 1 else None
    statuses = map_partitions(write_poses, list(image_paths), runner, out_dir, options, threads)
    counts = {"person": 0, "none": 0}
    failed = {}
    for name, status in sorted(statuses):
        if status in counts:
            counts[status] += 1
        else:
            failed[name] = status
    return {"images": len(image_paths), "with_person": counts["person"], "no_person": counts["none"],
            "failed": failed, "out": str(out_dir), "checkpoint": options.checkpoint,
            "device": str(resolve_device(options.device))}

"""Locate pretrained weight files offline: a user folder first, then where torch.hub caches them (TORCH_HOME).

Nothing here downloads: every loader checks the file exists and fails with a message naming the file, the folders
it was looked for in and the `vton weights download` command, so an offline machine never hangs on a download.
"""
from __future__ import annotations

from pathlib import Path

import torch

from vton.core import weight_files
from vton.core.io import sha256_file
from vton.core.weights import MissingWeightsError, hub_checkpoints_dir, locate, missing_message, require, search_dirs  # noqa: F401

# The file names the metric rows and protocols load, from the one table of weight files (`vton.core.weight_files`:
# URLs, hashes, what needs each).
ALEXNET_FILE = weight_files.BY_KEY["alexnet"].filename  # LPIPS backbone; lpips ships the linear layers
SQUEEZENET_FILE = weight_files.BY_KEY["squeezenet1_1"].filename
VGG16_FILE = weight_files.BY_KEY["vgg16"].filename  # DISTS backbone
IMAGENET_INCEPTION_FILE = weight_files.BY_KEY["inception-imagenet"].filename  # HR-VITON's IS
INCEPTION_FILE = weight_files.BY_KEY["inception-fidelity"].filename  # torch-fidelity's TF-2015 port
CLEANFID_INCEPTION_FILE = weight_files.BY_KEY["inception-cleanfid"].filename
PYTORCH_FID_INCEPTION_FILE = weight_files.BY_KEY["inception-pytorch-fid"].filename
LPIPS_LIN_RESOURCE = "weights/v0.1/{backbone}.pth"


def lpips_lin_path(backbone: str = "alex") -> Path:
    """The LPIPS v0.1 linear-layer weights of ``backbone`` ("alex", "squeeze") shipped inside the ``lpips`` package."""
    from importlib.resources import files

    try:
        path = Path(str(files("lpips") / LPIPS_LIN_RESOURCE.format(backbone=backbone)))
    except ModuleNotFoundError as exc:
        raise MissingWeightsError("the lpips package is not installed (it ships the LPIPS linear layers)") from exc
    if not path.is_file():
        raise MissingWeightsError(f"missing {path} (the lpips package ships it; reinstall lpips)")
    return path


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A plain tensor state dict, loaded safely (``weights_only``) onto the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def official_hash(path: Path) -> bool | None:
    """Whether the file is the published one by its SHA-256 (False e.g. for random test weights saved under the
    official name); None when no hash is published for it (or it is not a file of the table)."""
    row = weight_files.BY_FILENAME.get(path.name)
    return None if row is None or row.sha256 is None else row.verdict(sha256_file(path))


def file_record(path: Path) -> dict[str, object]:
    """What the summary records about a weight file: where it was and whether it is the official one."""
    return {"file": str(path), "official_hash": official_hash(path)}

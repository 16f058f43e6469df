"""Locate pretrained weight files offline: a user folder first, then where torch.hub caches them (TORCH_HOME).

Nothing here downloads: every loader checks the file exists and fails with a message naming the file, the folders
it was looked for in and the `vton weights download` command that fetches it, so an offline machine never hangs on
a download. Shared by the losses (VGG19), the metrics (AlexNet, Inception) and the keypoint detector (openpifpaf);
the files are the rows of `vton.core.weight_files`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from vton.core import weight_files


class MissingWeightsError(FileNotFoundError):
    """A pretrained weight file is not on this machine (and will not be downloaded)."""


def hub_checkpoints_dir() -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` caches files: $TORCH_HOME/hub/checkpoints (read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def search_dirs(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    dirs = [Path(weights_dir)] if weights_dir else []
    return dirs + [hub_checkpoints_dir()]


def locate(filename: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    for folder in search_dirs(weights_dir):
        if (folder / filename).is_file():
            return folder / filename
    return None


def fetch_hint(filename: str) -> str:
    """How to get the file: the exact `vton weights download` command for a file of the table."""
    row = weight_files.BY_FILENAME.get(filename)
    return f", or run `{row.download_command}`" if row else ""


def missing_message(filename: str, weights_dir: str | os.PathLike | None = None) -> str:
    where = " or ".join(str(d) for d in search_dirs(weights_dir))
    return (f"missing weights file {filename}: put it in {where}{fetch_hint(filename)} (nothing is downloaded unless "
            "asked)")


def require(filename: str, weights_dir: str | os.PathLike | None = None, hint: str = "") -> Path:
    """The file's path; else `MissingWeightsError` naming it, the folders searched and ``hint`` (what else to do)."""
    path = locate(filename, weights_dir)
    if path is None:
        raise MissingWeightsError(missing_message(filename, weights_dir) + hint)
    return path

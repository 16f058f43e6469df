"""The device rule every command's ``--device`` follows."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | None = "auto") -> torch.device:
    """``auto`` (or None) is CUDA when a GPU is visible, else the CPU; anything else is taken as torch spells it.

    torch is imported here, not at module level: modules that only need this rule (keypoints, prepare) must not pay
    torch's import (about 700 MB of RSS and a second of start-up) in every prepare worker.
    """
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)

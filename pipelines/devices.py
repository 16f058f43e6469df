"""The device rule every command's ``--device`` follows."""
from __future__ import annotations

import torch


def resolve_device(device: str | None = "auto") -> torch.device:
    """``auto`` (or None) is CUDA when a GPU is visible, else the CPU; anything else is taken as torch spells it."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)

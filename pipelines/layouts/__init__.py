"""The registry of dataset layouts: one adapter per layout (`base.Layout`), found by name or detected from a root.

A new layout (VITON-HD, DressCode) is one module with a `Layout` subclass, added to `_ADAPTERS`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from vton.pipelines.layouts.base import Layout
from vton.pipelines.layouts.cpvton import CPVTON
from vton.pipelines.layouts.dresscode import DRESSCODE_LAYOUT
from vton.pipelines.layouts.viton_hd import VITON_HD
from vton.pipelines.layouts.viton_raw import VITON_RAW

# detection order: the more specific marker first (a VITON-HD tree also has {split}/image/, CP-VTON's marker)
_ADAPTERS: Final = (VITON_RAW, DRESSCODE_LAYOUT, VITON_HD, CPVTON)
LAYOUTS: Final[dict[str, Layout]] = {adapter.name: adapter for adapter in sorted(_ADAPTERS, key=lambda a: a.name)}
PREPARED: Final[Layout] = CPVTON  # the layout `vton prepare` writes, which the Dataset and evaluate read


def detect(root: str | os.PathLike) -> Layout:
    """The adapter of the first layout (in `_ADAPTERS` order) that ``root`` holds; a ValueError naming what was
    looked for when none does."""
    path = Path(root)
    for adapter in _ADAPTERS:
        if adapter.detect(path):
            return adapter
    looked = "; ".join(f"{a.name}: {a.marker}" for a in LAYOUTS.values())
    raise ValueError(f"{path} holds no known dataset layout (looked for {looked})")


def layout(name: str) -> Layout:
    """The adapter registered under ``name``."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}") from None

"""Cleaning rules: each check either passes or raises `Rejection(stage, reason)`; nothing is dropped silently.

Stages, in the order a pair meets them (stable names, they appear in rejected.csv and prepare.json):
``discover`` malformed pairs line (also a NUL byte or bytes that are not UTF-8 in it, or in a listed file name);
``path`` a name that would leave SRC; ``missing`` a file that does not exist; ``file`` a file that is not a regular
file (a FIFO, a device) or is larger than `io.DATA_FILE_LIMIT`, refused before it is read; ``decode`` a file that does
not decode, has the wrong mode or size (or a .mat declaring an array larger than the limit); ``labels`` a parse that
is not a label image or holds labels outside 0..19; ``content`` a person without a cloth region or without a head;
``keypoints`` a pose file without 18 finite joints (or nested too deeply to parse); ``mask`` an empty cloth mask;
``leak`` a train pair using an ID of the test split; ``duplicate`` a person listed again in its split, or an image
identical to one an earlier pair keeps; ``split`` a clean pair left over by the requested split sizes.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image

from vton.core.formats import CLOTH_LABELS, HEAD_LABELS, NUM_LABELS

STAGES = ("discover", "path", "missing", "file", "decode", "labels", "content", "keypoints", "mask", "leak",
          "duplicate", "split")


class Rejection(Exception):
    """Why a pair cannot be used; ``stage`` is one of `STAGES`."""

    def __init__(self, stage: str, reason: str) -> None:
        assert stage in STAGES, stage
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


def decode_image(data: bytes, what: str, modes: Sequence[str], size: tuple[int, int] | None,
                 check_only: bool = False) -> Image.Image:
    """Decode ``data``; its mode must be one of ``modes`` and its (width, height) ``size`` unless None.

    ``check_only`` (for files that are copied, never looked at): a JPEG is decoded at 1/8 scale, which still
    entropy-decodes every coefficient, so truncated or broken streams fail as in a full decode, at about half the cost.
    The returned image is then that reduced one.
    """
    try:
        img = Image.open(io.BytesIO(data))
    except Exception as exc:  # Pillow raises many types for broken files
        raise Rejection("decode", f"{what} does not decode ({type(exc).__name__})") from None
    if img.mode not in modes:
        stage = "labels" if what == "parse" else "decode"
        raise Rejection(stage, f"{what} has mode {img.mode}, expected {'/'.join(modes)}")
    if size is not None and img.size != size:
        raise Rejection("decode", f"{what} is {img.size[0]}x{img.size[1]}, expected {size[0]}x{size[1]}")
    try:
        if check_only:
            img.draft(img.mode, (img.size[0] // 8, img.size[1] // 8))
        img.load()
    except Exception as exc:
        raise Rejection("decode", f"{what} does not decode ({type(exc).__name__})") from None
    return img


def _any_label(parse: np.ndarray, labels: tuple[int, ...]) -> bool:
    """Comparisons on uint8 are several times faster than a histogram or np.isin on a 256x192 parse."""
    return any(bool((parse == label).any()) for label in labels)


def check_parse(parse: np.ndarray) -> None:
    """Labels in 0..19, a cloth region (5, 6, 7) and a head (1, 2, 4, 13)."""
    if parse.size and int(parse.max()) >= NUM_LABELS:
        raise Rejection("labels", f"parse holds labels outside 0..{NUM_LABELS - 1}")
    if not _any_label(parse, CLOTH_LABELS):
        raise Rejection("content", "no cloth region (labels 5, 6, 7) in the parse")
    if not _any_label(parse, HEAD_LABELS):
        raise Rejection("content", "no head (labels 1, 2, 4, 13) in the parse")


def check_mask(mask: np.ndarray) -> None:
    if not (mask >= 128).any():
        raise Rejection("mask", "cloth mask is empty")


def duplicate_of(names: Iterable[str], keys: Iterable[bytes | None]) -> Iterator[str | None]:
    """For each (name, content key) in order: the earlier name with the same content, or None (first or no key)."""
    first: dict[bytes, str] = {}
    for name, key in zip(names, keys):
        earlier = None if key is None else first.setdefault(key, name)
        yield earlier if earlier not in (None, name) else None

"""Safe file I/O: atomic writes and paths that never leave their root."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vton.pipelines.formats import IMAGE_SUFFIXES


class UnsafePathError(ValueError):
    """A path read from a data file points outside the dataset root."""


def safe_join(root: str | os.PathLike, relative: str) -> Path:
    """Join ``relative`` (taken from a data file) under ``root``; refuse anything that escapes it.

    The check is lexical (``..`` and absolute paths), not through symlinks: a dataset owner may link folders in from
    elsewhere, a pairs line may not climb out.
    """
    root_path = Path(os.path.abspath(root))
    if not relative or os.path.isabs(relative) or "\x00" in relative:
        raise UnsafePathError(f"path {relative!r} is not a relative path inside {root_path}")
    candidate = Path(os.path.normpath(root_path / relative))
    if candidate != root_path and root_path not in candidate.parents:
        raise UnsafePathError(f"path {relative!r} leaves the dataset root {root_path}")
    return candidate


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files private (0600)


def find_image(root: str | os.PathLike | None, stem: str) -> Path | None:
    """The first existing ``root/stem.{png,jpg,jpeg}`` (results of any method, named by person); None when there
    is none, or when ``stem`` (read from a data file) would leave ``root``."""
    if root is None:
        return None
    for suffix in IMAGE_SUFFIXES:
        try:
            candidate = safe_join(root, stem + suffix)
        except UnsafePathError:
            return None
        if candidate.is_file():
            return candidate
    return None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` and rename it into place, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def encode_image(img: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def atomic_save_image(img: Image.Image, path: str | os.PathLike, **params: Any) -> None:
    """Save a PIL image atomically; the format follows the file suffix (JPEG quality 75 is PIL's default)."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}[Path(path).suffix.lower()]
    atomic_write_bytes(path, encode_image(img, fmt, **params))


def save_uint8_image(array: np.ndarray, path: str | os.PathLike, jpeg_quality: int | None = None) -> None:
    """An H x W x C (C = 1 or 3) uint8 array to PNG (lossless) or, with a quality, JPEG, atomically."""
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    atomic_save_image(img, path, **({"quality": jpeg_quality} if jpeg_quality is not None else {}))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()

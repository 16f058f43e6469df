"""Safe file I/O: atomic writes, paths that never leave their root, checked reads of data files, a folder lock."""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vton.core.formats import IMAGE_SUFFIXES


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


def save_uint8_image(array: np.ndarray, path: str | os.PathLike, jpeg_quality: int | None = None,
                     png_compress_level: int | None = None) -> None:
    """An H x W x C (C = 1 or 3) uint8 array to PNG (lossless) or, with a quality, JPEG, atomically.
    ``png_compress_level``: zlib's level (None: PIL's default, 6); 1 encodes about 2x faster, files ~13% larger."""
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if jpeg_quality is not None:
        atomic_save_image(img, path, quality=jpeg_quality)
    else:
        atomic_save_image(img, path, **({"compress_level": png_compress_level} if png_compress_level is not None
                                        else {}))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


DATA_FILE_LIMIT = 64 << 20  # bytes: far above any VITON file (a raw segment .mat is under 4 MB), far below memory
_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class DataFileError(OSError):
    """A data file refused before its bytes are read: not a regular file, or larger than the limit."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(f"{path} {problem}")
        self.problem = problem


def _regular_size(info: os.stat_result, path: str | os.PathLike, limit: int) -> int:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(info.st_mode)), "a special file")
        raise DataFileError(path, f"is not a regular file ({kind})")
    if info.st_size > limit:
        raise DataFileError(path, f"holds {info.st_size} bytes, more than the {limit} allowed")
    return info.st_size


def read_data_file(path: str | os.PathLike, limit: int = DATA_FILE_LIMIT) -> bytes:
    """The bytes of the regular file ``path`` (links followed), at most ``limit`` of them; else `DataFileError`.

    Checked before any read, so one hostile file cannot stall or sink a run: opening a FIFO waits for a writer, a
    device such as /dev/zero never ends, a huge file fills memory. The stat spares opening devices at all; the open is
    non-blocking and fstat'ed again, in case the path changed in between. One read for a file that keeps its size.
    """
    _regular_size(os.stat(path), path, limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        size = _regular_size(os.fstat(fd), path, limit)
        data = os.read(fd, size + 1)
        while len(data) > size:  # it grew since the fstat: read on to its end, within the limit
            if len(data) > limit:
                raise DataFileError(path, f"grew past the {limit} bytes allowed while read")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            data += chunk
        return data
    finally:
        os.close(fd)


class LockedError(OSError):
    """Another process holds the lock."""


@contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (created) for the block, or raise `LockedError` at once.

    The lock dies with its process, so the file a killed holder leaves blocks nobody; it is removed on exit. A lock
    won on a file that its holder removed meanwhile is no lock (a newcomer may lock the new file): then try again.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"another process is using {Path(path).parent} (it holds {path}); wait for it to "
                              "finish or use another folder") from None
        try:
            if os.path.samestat(os.stat(path), os.fstat(fd)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)

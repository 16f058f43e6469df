"""Ingest helpers the adapters share: checked reads under the source root, and the common end of a person's ingest
(parse checks, keypoints, the precomputed shape)."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.io import DataFileError, UnsafePathError, encode_image, read_data_file, safe_join
from vton.pipelines.cleaning import Rejection, check_parse
from vton.pipelines.keypoints.schema import KeypointError, KeypointLoader, pose_json
from vton.pipelines.representation import shape_image


@functools.lru_cache(maxsize=256)
def _folder(src: Path, folder: str) -> str:
    """A source folder, checked once to lie inside SRC (names in it are plain file names, see `base.pair_of_line`)."""
    return str(safe_join(src, folder))


def read(src: Path, relative: str) -> bytes:
    """Bytes of ``SRC/relative``; a name that is not a plain file name is a ``path`` rejection (the check is lexical,
    as in `safe_join`: links an owner put inside SRC are followed), one that is no regular file or is too large a
    ``file`` rejection, refused before it is read (`io.read_data_file`)."""
    folder, _, name = relative.rpartition("/")
    try:
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise UnsafePathError(f"{relative!r} is not a plain file name")
        path = os.path.join(_folder(src, folder), name)
    except UnsafePathError as exc:
        raise Rejection("path", str(exc)) from None
    try:
        return read_data_file(path)
    except DataFileError as exc:
        raise Rejection("file", f"{relative} {exc.problem}") from None
    except FileNotFoundError:
        raise Rejection("missing", f"{relative} does not exist") from None
    except OSError as exc:
        raise Rejection("missing", f"{relative} cannot be read ({exc.strerror})") from None


def read_pose(src: Path, relative: str, loader: KeypointLoader) -> bytes | None:
    """The pose file; a missing one is a rejection only if the keypoint source needs it (see `KeypointLoader`)."""
    try:
        return read(src, relative)
    except Rejection as rej:
        if rej.stage == "missing" and not getattr(loader, "needs_pose_file", True):
            return None
        raise


def shape_png(parse: np.ndarray, labels: fm.LabelSpace = fm.LIP) -> bytes:
    """The precomputed body shape as a PNG; zlib level 1 (2x faster than the default, ~35% larger files)."""
    return encode_image(Image.fromarray(shape_image(parse, labels), "L"), "PNG", compress_level=1)


def finish_person(image: Image.Image, parse: np.ndarray, data: tuple[bytes, bytes, bytes | None],
                  keypoints: str | KeypointLoader, loader: KeypointLoader, labels: fm.LabelSpace
                  ) -> tuple[tuple[bytes, ...], np.ndarray]:
    """Check the parse, get the keypoints from ``loader`` and return (the bytes of `Item.files`, keypoints (18, 3)):
    ``data`` is the image, parse and pose file bytes; the pose file is rewritten from the loader's keypoints unless
    they are the dataset's own."""
    image_bytes, parse_bytes, pose_bytes = data
    check_parse(parse)
    try:
        kps = loader(pose_bytes, image)
    except KeypointError as exc:
        raise Rejection("keypoints", str(exc)) from None
    if keypoints != "dataset":
        pose_bytes = pose_json(kps)
    return (image_bytes, parse_bytes, pose_bytes, shape_png(parse, labels)), kps

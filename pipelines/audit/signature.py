"""Per-image signatures: imagehash's pHash (reported) and a blurred thumbnail (its shift-probed embedding finds
candidates, `search`; its pixels align them, `confirm`), both from one decode at a fixed working size.

Why not search on the hash: on try-on photos (one centred figure on a plain background) pHash's bits are decided by
DCT coefficients close to their median, so a 4% crop or a shift of a few pixels flips 15-30 of its 64 bits, as many
as separate two unrelated persons.
"""
from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

WORK_WH = (96, 128)  # every image is first brought to this size (the aspect of 192x256 and 768x1024)
THUMB_WH = (48, 64)  # the common size of the pixel confirmation
THUMB_BLUR = 0.01
MODES = ("RGB", "RGBA", "L", "P")  # decoded then converted to RGB; other modes (CMYK, I, F) are refused


class Signature(NamedTuple):
    """``thumb``: uint8 (THUMB_WH[1], THUMB_WH[0], 3), for the search and the coarse alignment."""
    phash: int
    thumb: bytes


class Unreadable(NamedTuple):
    """A file the audit could not read, and why (one line)."""
    reason: str


def decode(data: bytes) -> Image.Image:
    """RGB pixels of an image file; a JPEG is decoded at the smallest DCT scale still twice the working size (a
    fraction of a full decode's cost; the scale depends only on the file's size, so equal files give equal pixels)."""
    try:
        img = Image.open(io.BytesIO(data))
        if img.mode not in MODES:
            raise ValueError(f"mode {img.mode} (expected {'/'.join(MODES)})")
        img.draft("RGB", (2 * WORK_WH[0], 2 * WORK_WH[1]))
        return img.convert("RGB")
    except ValueError as exc:
        raise ValueError(f"does not decode: {exc}") from None
    except Exception as exc:  # Pillow raises many types for broken files
        raise ValueError(f"does not decode ({type(exc).__name__})") from None


def thumbnail(work: Image.Image) -> np.ndarray:
    """The working-size image blurred (against JPEG noise) and box-reduced to `THUMB_WH` (uint8 (H, W, 3))."""
    blurred = work.filter(ImageFilter.GaussianBlur(THUMB_BLUR * WORK_WH[0]))
    return np.asarray(blurred.resize(THUMB_WH, Image.Resampling.BOX))


def work_image(img: Image.Image) -> Image.Image:
    """The image at the working size, where the confirmation compares pixels (`confirm.pixel_score`)."""
    return img.convert("RGB").resize(WORK_WH, Image.Resampling.BILINEAR)


def signature(img: Image.Image) -> Signature:
    import imagehash  # only where images are audited

    rgb = img.convert("RGB")
    work = work_image(rgb)
    phash = int(str(imagehash.phash(rgb)), 16)
    return Signature(phash, thumbnail(work).tobytes())


def thumb_array(sig: Signature) -> np.ndarray:
    return np.frombuffer(sig.thumb, np.uint8).reshape(THUMB_WH[1], THUMB_WH[0], 3)


def sign_files(paths: list[str], root: str) -> list[Signature | Unreadable]:
    """Runner task: the signature of each file (relative to ``root``, read with the layouts' checked reads: a name
    leaving the root, a FIFO or a huge file is refused before it is read), or why it has none."""
    from pathlib import Path

    from vton.pipelines.cleaning import Rejection
    from vton.pipelines.layouts.files import read

    out: list[Signature | Unreadable] = []
    for rel in paths:
        try:
            out.append(signature(decode(read(Path(root), rel))))
        except Rejection as rej:
            out.append(Unreadable(rej.reason))
        except ValueError as exc:
            out.append(Unreadable(f"{rel} {exc}"))
    return out

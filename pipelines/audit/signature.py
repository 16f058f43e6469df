"""Per-image signatures: imagehash's pHash (reported), a small colour embedding (finds candidates) and a blurred
thumbnail (confirms them), all from one decode at a fixed working size.

Why an embedding beside the hash: on try-on photos (one centred figure on a plain background) pHash's bits are
decided by DCT coefficients close to their median, so a 4% crop or a shift of a few pixels flips 15-30 of its 64
bits, as many as separate two unrelated persons; a blurred 9x12 colour thumbnail (blur 3% of the width, brightness
and contrast normalised away) moves little under those edits and keeps the clothes' colours apart.
"""
from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

WORK_WH = (96, 128)  # every image is first brought to this size (the aspect of 192x256 and 768x1024)
EMBED_WH = (9, 12)
EMBED_DIM = EMBED_WH[0] * EMBED_WH[1] * 3
EMBED_BLUR = 0.03  # Gaussian sigma as a share of the width: a shift or crop of a few per cent moves little
THUMB_WH = (48, 64)  # the common size of the pixel confirmation
THUMB_BLUR = 0.01
MODES = ("RGB", "RGBA", "L", "P")  # decoded then converted to RGB; other modes (CMYK, I, F) are refused


class Signature(NamedTuple):
    """``embedding``: float32 (EMBED_DIM,); ``thumb``: uint8 (THUMB_WH[1], THUMB_WH[0], 3), for the coarse alignment."""
    phash: int
    embedding: bytes
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


def _blurred(work: Image.Image, share: float, size_wh: tuple[int, int]) -> np.ndarray:
    blurred = work.filter(ImageFilter.GaussianBlur(share * WORK_WH[0]))
    return np.asarray(blurred.resize(size_wh, Image.Resampling.BOX))


def embedding(work: Image.Image) -> np.ndarray:
    """The blurred colour thumbnail minus its mean, in units that make the Euclidean distance of two embeddings the
    root-mean-square difference of their pixels (0..1 of the full range): a brightness change moves it by its
    offset's share only, and shades of a colour stay apart (float32)."""
    vec = _blurred(work, EMBED_BLUR, EMBED_WH).astype(np.float64).ravel()
    return ((vec - vec.mean()) / (255.0 * np.sqrt(vec.size))).astype(np.float32)


def work_image(img: Image.Image) -> Image.Image:
    """The image at the working size, where the confirmation compares pixels (`confirm.pixel_score`)."""
    return img.convert("RGB").resize(WORK_WH, Image.Resampling.BILINEAR)


def signature(img: Image.Image) -> Signature:
    import imagehash  # only where images are audited

    rgb = img.convert("RGB")
    work = work_image(rgb)
    phash = int(str(imagehash.phash(rgb)), 16)
    return Signature(phash, embedding(work).tobytes(), _blurred(work, THUMB_BLUR, THUMB_WH).tobytes())


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

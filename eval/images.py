"""Exact decoding of the images evaluate scores: every pixel gets a defined 8-bit value, or the file is refused.

``Image.convert("RGB")`` is not exact for every mode PIL opens: it clips 16-bit grey to white, reads float images
in [0, 1] as black and drops alpha without a word, so a wrong file would be scored quietly. The rules here:

- ``1``, ``L``: the grey level in R, G and B (``1``: 0 or 255). ``RGB``: as stored.
- ``P``: the palette's colours (its transparent entries follow the alpha rule).
- ``LA``, ``PA``, ``RGBA`` (the alpha rule): a pixel with alpha < 255 has no colour of its own (its score would depend
  on the background it is composited on), so such a file is refused; a fully opaque one drops its alpha.
- ``I;16``, ``I;16B``, ``I;16L``, ``I;16N``: the high byte ``v >> 8``, as PIL itself decodes 16-bit RGB PNGs and as
  OpenCV and scikit-image reduce 16 bits to 8; exact for 8-bit data stored in 16 bits (``257 k -> k``).
- ``I``, ``F``: the values are 8-bit levels; refused unless each is an integer in 0..255 (a float image in [0, 1]
  would otherwise score as black).
- ``YCbCr``: the JPEG (JFIF, BT.601 full-range) equations, rounded to nearest: R = Y + 1.402 (Cr - 128),
  G = Y - 0.344136 (Cb - 128) - 0.714136 (Cr - 128), B = Y + 1.772 (Cb - 128).
- ``CMYK`` is refused: its RGB depends on a colour profile that PIL's conversion ignores. So is every other mode
  (``La``, ``RGBa``, ``RGBX``, ``LAB``, ``HSV``, ...), and a colour-key transparency on a non-palette image (PNG
  ``tRNS``), whose meaning depends on the file's bit depth.

Masks are read with the same rules and must be grey (a colour mask, its channels differing, is refused). Parse maps
hold label indices: a single-channel integer image (``1``, ``L``, ``P`` (indices, palette ignored), ``I``, the
``I;16`` modes), values taken as they are; any other mode is refused.

Opening refuses, naming the file, a decompression bomb (more than ``MAX_PIXELS`` pixels, checked on the header
before any decoding), a truncated file and anything PIL cannot decode.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

MAX_PIXELS = 1 << 24  # 4096 x 4096: far above any try-on result or dataset photo, far below memory trouble
GREY16_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
LABEL_MODES = ("1", "L", "P", "I", *GREY16_MODES)
ALPHA_MODES = ("LA", "PA", "RGBA")
T = TypeVar("T")


class ImageError(ValueError):
    """An image that cannot be decoded exactly; the message is one line naming the file."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_image(path: str | Path, decode: Callable[[Image.Image, str], T]) -> T:
    """``decode(image, name)`` of the whole, loaded image at ``path``; ImageError naming the file otherwise."""
    name = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageError(f"{name}: {im.width} x {im.height} pixels, more than the {MAX_PIXELS} "
                                     "an image may have (a decompression bomb?)")
                im.load()
                return decode(im, name)
    except ImageError:
        raise
    except Exception as exc:  # PIL's decoders raise many types: OSError (truncated), SyntaxError, zlib.error, ...
        raise ImageError(f"{name}: cannot decode the image: {_one_line(str(exc)) or type(exc).__name__}") from exc


def _opaque(levels: np.ndarray, name: str) -> np.ndarray:
    """Drop the alpha channel (the last) when every pixel is opaque; refuse the file otherwise."""
    transparent = int((levels[..., -1] < 255).sum())
    if transparent:
        raise ImageError(f"{name}: {transparent} pixels are transparent (alpha < 255) and have no defined colour; "
                         "save the image without transparency")
    return levels[..., :-1]


def _integral_levels(values: np.ndarray, name: str, mode: str) -> np.ndarray:
    bad = ~(np.isfinite(values) & (values >= 0) & (values <= 255) & (values == np.round(values)))
    if bad.any():
        v = values[bad][0]
        raise ImageError(f"{name}: mode {mode} holds {int(bad.sum())} values that are not integer levels 0..255 "
                         f"(e.g. {v}); save it as 8-bit")
    return values.astype(np.uint8)


def _ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = (ycc[..., i].astype(np.float64) for i in range(3))
    rgb = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                    y + 1.772 * (cb - 128)], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def levels(im: Image.Image, name: str) -> np.ndarray:
    """H x W x C uint8 (C = 1 grey or 3 RGB) by the rules of this module."""
    mode = im.mode
    if "transparency" in im.info and mode not in ("P", "PA"):
        raise ImageError(f"{name}: mode {mode} with a transparency key is not supported; save it without one")
    if mode == "1":
        out = np.asarray(im, dtype=np.uint8)[..., None] * 255
    elif mode in ("L", "RGB"):
        out = np.asarray(im).reshape(im.height, im.width, -1)
    elif mode in ("P", "PA"):
        out = _opaque(np.asarray(im.convert("RGBA")), name)
    elif mode in ("LA", "RGBA"):
        out = _opaque(np.asarray(im), name)
    elif mode in GREY16_MODES:
        out = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)[..., None]
    elif mode in ("I", "F"):
        out = _integral_levels(np.asarray(im), name, mode)[..., None]
    elif mode == "YCbCr":
        out = _ycbcr_to_rgb(np.asarray(im))
    else:
        why = "its RGB depends on a colour profile" if mode == "CMYK" else "no exact 8-bit reading is defined"
        raise ImageError(f"{name}: image mode {mode} is not supported ({why}); save it as RGB")
    return np.ascontiguousarray(out)


def rgb(im: Image.Image, name: str) -> np.ndarray:
    """H x W x 3 uint8: grey replicated into the three channels."""
    out = levels(im, name)
    return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out


def grey(im: Image.Image, name: str) -> np.ndarray:
    """H x W uint8 of a mask; a colour image (channels not all equal) is refused."""
    out = levels(im, name)
    if out.shape[-1] == 3 and not ((out[..., 0] == out[..., 1]) & (out[..., 1] == out[..., 2])).all():
        raise ImageError(f"{name}: a mask must be grey, but its colour channels differ")
    return out[..., 0]


def labels(im: Image.Image, name: str) -> np.ndarray:
    """H x W int64 label indices of a parse map."""
    if im.mode not in LABEL_MODES:
        raise ImageError(f"{name}: a parse map must hold label indices (mode {', '.join(LABEL_MODES)}), "
                         f"got mode {im.mode}")
    return np.asarray(im).astype(np.int64)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header, without decoding the pixels. What `vton.eval.images.read_image` refuses
    before decoding (a file PIL cannot open, more than ``MAX_PIXELS`` pixels) is refused here too, in one line
    naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
    except Exception as exc:  # PIL raises many types: OSError, DecompressionBombError, SyntaxError, ...
        raise ImageError(f"{path}: cannot decode the image: {' '.join(str(exc).split()) or type(exc).__name__}"
                                ) from exc
    if width * height > MAX_PIXELS:
        raise ImageError(f"{path}: {width} x {height} pixels, more than the {MAX_PIXELS} an image may "
                                "have (a decompression bomb?)")
    return width, height

"""Images and charts inlined into self-contained HTML: thumbnails as data URIs, histograms as SVG."""
from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from vton.core.io import encode_image
from vton.eval.images import read_image

THUMB_SIZE = (96, 128)  # width, height: 256x192 try-on images at half size
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def open_rgb(path: Path) -> Image.Image:
    """The image at ``path`` as RGB, opened by evaluation's guarded reader (pixel limit checked on the header, PIL's
    many error types turned into one `ImageError` naming the file)."""
    return read_image(path, lambda im, _name: im.convert("RGB"))


@lru_cache(maxsize=4096)
def thumbnail_uri(path: Path, size: tuple[int, int] = THUMB_SIZE) -> str:
    """A small JPEG thumbnail of ``path`` as a ``data:`` URI (ImageError when unreadable); each file encoded once."""
    img = open_rgb(path)
    img.thumbnail(size)
    data = encode_image(img, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")

SVG_NS = "http://www.w3.org/2000/svg"


def histogram_svg(
    series: Sequence[tuple[str, np.ndarray]], title: str, bins: int = 20, width: int = 360, height: int = 180,
) -> str:
    """Overlaid histograms (one colour per run, shared bins) as a standalone inline SVG; labels are escaped."""
    values = [np.asarray(v, dtype=np.float64) for _, v in series]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
    esc = html.escape
    if finite.size == 0:
        return (f'<svg xmlns="{SVG_NS}" width="{width}" height="40">'
                f'<text x="4" y="20">{esc(title)}: no values</text></svg>')
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts = [np.histogram(v[np.isfinite(v)], bins=edges)[0] for v in values]
    top = max(int(c.max()) for c in counts) or 1
    left, right, top_pad, bottom = 36, 8, 22, 34
    pw, ph = width - left - right, height - top_pad - bottom
    bw = pw / bins
    parts = [
        f'<svg xmlns="{SVG_NS}" width="{width}" height="{height}" role="img" aria-label="{esc(title)}">',
        f'<text x="{left}" y="14" font-size="12">{esc(title)}</text>',
        f'<line x1="{left}" y1="{top_pad + ph}" x2="{left + pw}" y2="{top_pad + ph}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + ph}" stroke="#333"/>',
        f'<text x="{left - 4}" y="{top_pad + 8}" font-size="10" text-anchor="end">{top}</text>',
        f'<text x="{left}" y="{height - 20}" font-size="10">{lo:.4g}</text>',
        f'<text x="{left + pw}" y="{height - 20}" font-size="10" text-anchor="end">{hi:.4g}</text>',
    ]
    for k, c in enumerate(counts):
        colour = PALETTE[k % len(PALETTE)]
        for j, n in enumerate(c):
            if n:
                h = ph * n / top
                parts.append(
                    f'<rect x="{left + j * bw:.1f}" y="{top_pad + ph - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                    f'fill="{colour}" fill-opacity="0.45" stroke="{colour}"/>'
                )
    for k, (label, _) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        x = left + k * (pw / max(1, len(series)))
        parts.append(f'<rect x="{x:.1f}" y="{height - 12}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 13:.1f}" y="{height - 3}" font-size="10">{esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)

"""Near-duplicates planted by ``vton synth --defects``: extra train pairs that copy a test pair with one edit of a
known kind, the leaks `vton audit` and ``vton prepare --dedupe near`` must find.

No mirrored garment is planted: the synthetic garments are symmetric in cut and their prints symmetric or periodic,
so a mirror image is the same picture up to a shift of the print by less than its period, which no pixel measure can
tell from a shifted copy (a flip is not among the edits searched for either: the confirmation never flips).

Every file synth wrote before stays byte-identical: a plant is a new id (after the highest), its files copies of the
source pair's with the person and cloth images edited, and one line appended to the train pairs list(s). Each plant
is a record of ``defects.json``: ``fault`` `NEAR_DUPLICATE`, ``kind``, ``detail`` (the edit's
numbers), ``file`` / ``cloth_file`` (the planted images) and ``source`` / ``source_cloth`` (the test images copied).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
from PIL import Image, ImageEnhance

from vton.core.io import atomic_write_bytes, encode_image

if TYPE_CHECKING:
    from vton.pipelines.synth.generate import Generator

NEAR_DUPLICATE: Final = "near_duplicate"
KINDS: Final = ("jpeg", "crop", "pad", "resize", "brightness", "contrast", "shift")
PLANT_QUALITY: Final = 95  # the edited images' JPEG quality (the `jpeg` kind's own is drawn in 60..90)


def _fraction(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.01, 0.04))


def _split(total: int, rng: np.random.Generator) -> tuple[int, int]:
    first = int(rng.integers(0, total + 1))
    return first, total - first


def edit(kind: str, img: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
    """The JPEG bytes of ``img`` edited by ``kind`` (one of `KINDS`), at its own size, and the edit's numbers."""
    width, height = img.size
    if kind == "jpeg":
        quality = int(rng.integers(60, 91))
        return encode_image(img, "JPEG", quality=quality), f"re-encoded at JPEG quality {quality}"
    if kind in ("crop", "pad"):
        share = _fraction(rng)
        (left, right), (top, bottom) = _split(round(width * share), rng), _split(round(height * share), rng)
        if kind == "crop":
            out = img.crop((left, top, width - right, height - bottom))
        else:
            out = Image.new("RGB", (width + left + right, height + top + bottom), (255, 255, 255))
            out.paste(img, (left, top))
        detail = f"{kind} of {share:.1%} (left {left}, right {right}, top {top}, bottom {bottom} px), resized back"
        out = out.resize((width, height), Image.Resampling.BILINEAR)
    elif kind == "resize":
        factor = float(rng.uniform(0.5, 0.8))
        small = img.resize((round(width * factor), round(height * factor)), Image.Resampling.BILINEAR)
        out, detail = small.resize((width, height), Image.Resampling.BILINEAR), f"resized by {factor:.2f} and back"
    elif kind in ("brightness", "contrast"):
        factor = 1.0 + float(rng.choice((-1, 1)) * rng.uniform(0.02, 0.05))
        enhancer = ImageEnhance.Brightness(img) if kind == "brightness" else ImageEnhance.Contrast(img)
        out, detail = enhancer.enhance(factor), f"{kind} x {factor:.3f}"
    elif kind == "shift":
        dx, dy = (int(rng.choice((-1, 1)) * max(1, round(size * rng.uniform(0.01, 0.03)))) for size in (width, height))
        padded = np.pad(np.asarray(img), ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0)), mode="edge")
        y0, x0 = max(-dy, 0), max(-dx, 0)
        out = Image.fromarray(padded[y0:y0 + height, x0:x0 + width])
        detail = f"shifted by ({dx}, {dy}) px, edges repeated"
    else:
        raise ValueError(f"unknown near-duplicate kind {kind!r}; known: {', '.join(KINDS)}")
    return encode_image(out, "JPEG", quality=PLANT_QUALITY), detail


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


class _Pair:
    """A pair's names and image files, as the generator's layout keeps them."""

    def __init__(self, generator: Generator, folder: str, pid: str) -> None:
        self.folder, self.pid = folder, pid
        self.person, self.cloth = generator.person_name(pid), generator.cloth_name(pid)
        self.image = generator.layout.person_files(folder, self.person).image
        cloth = generator.layout.cloth_files(folder, self.cloth)
        self.cloth_image, self.mask = cloth.cloth, cloth.mask


def _append_train_line(root: Path, generator: Generator, pair: _Pair) -> str:
    """Append the pair to the train list (a layout with categories: the root list with the category code, and the
    category's own list); return the root line."""
    layout = generator.layout
    line = f"{pair.person} {pair.cloth}"
    files = [(layout.pairs_file(root, "train"), line)]
    if layout.categories:
        line = f"{pair.person}\t{pair.cloth}\t{layout.categories.index(pair.folder)}"
        files = [(layout.pairs_file(root, "train"), line),
                 (layout.category_pairs_file(root, pair.folder, "train"), f"{pair.person}\t{pair.cloth}")]
    for path, text in files:
        atomic_write_bytes(path, path.read_bytes() + f"{text}\n".encode())
    return line


def plant_near_duplicates(root: Path, all_ids: list[str], test_ids: list[str], rng: np.random.Generator,
                          generator: Generator, folders: dict[str, str] | None = None) -> list[dict]:
    """Plant one near-duplicate train pair per kind of `KINDS` (person and cloth of a seeded test pair, each edited),
    with ids after the highest of ``all_ids``; return their records. ``folders``: each id's folder where the layout
    has categories (DressCode), where a plant joins its source's."""
    if not test_ids:
        raise ValueError("near-duplicates need a test pair to copy")
    layout = generator.layout
    ids = (f"{n:0{generator.id_digits}d}" for n in range(max(int(pid) for pid in all_ids) + 1, 10**generator.id_digits))
    sources = [_Pair(generator, (folders or {}).get(pid, layout.src_split("test")), pid) for pid in sorted(test_ids)]

    def plant(source: _Pair) -> _Pair:
        return _Pair(generator, source.folder if layout.categories else layout.src_split("train"), next(ids))

    records = []
    for kind, index in zip(KINDS, rng.permutation(len(KINDS)) % len(sources)):
        source = sources[index]
        target = plant(source)
        for old, new in zip(generator.pair_files(source.folder, source.pid),
                            generator.pair_files(target.folder, target.pid)):
            atomic_write_bytes(root / new, (root / old).read_bytes())
        person_bytes, person_detail = edit(kind, _rgb(root / source.image), rng)
        cloth_bytes, cloth_detail = edit(kind, _rgb(root / source.cloth_image), rng)
        atomic_write_bytes(root / target.image, person_bytes)
        atomic_write_bytes(root / target.cloth_image, cloth_bytes)
        records.append(_record(_append_train_line(root, generator, target), NEAR_DUPLICATE, kind, target, source,
                               f"person: {person_detail}; cloth: {cloth_detail}"))
    return records


def _record(line: str, fault: str, kind: str, target: _Pair, source: _Pair, detail: str) -> dict:
    return {"pair": line, "split": "train", "file": target.image, "fault": fault, "detail": detail, "kind": kind,
            "cloth_file": target.cloth_image, "source": source.image, "source_cloth": source.cloth_image}

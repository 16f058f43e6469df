"""What an evaluation reads: the dataset's test files (found in one function, `dataset_test_files`), the result files
matched to them, and their exact decoding (`vton.eval.images`) into batches in DataLoader workers."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm import tqdm

from vton.core import formats as fm
from vton.core.io import find_image, safe_join
from vton.eval import images
from vton.eval.matching import Matched, match_results, scan
from vton.eval.registry import MASK_THRESHOLD
from vton.eval.settings import Settings
from vton.pipelines.layouts import PREPARED

SETTINGS_PAIRS = {s: PREPARED.pairs_names[s] for s in ("paired", "unpaired")}  # the prepared layout's test lists


# --- the dataset's test files ----------------------------------------------------------------------
@dataclass(frozen=True)
class TestFiles:
    """The dataset's side of an evaluation."""

    pairs: dict[str, list[tuple[str, str]]]  # setting -> (person, cloth) pairs, for each setting that has some
    absent: dict[str, str]  # setting -> why it has no pairs
    person_image: dict[str, Path]  # person -> the real photo
    person_parse: dict[str, Path]  # person -> the label-index parse map
    cloths: list[Path]  # the in-shop cloth images, sorted


def dataset_test_files(data: Path, settings: Iterable[str]) -> TestFiles:
    """The pairs of each of ``settings``, the photo and parse of each person they list, and the in-shop cloths.

    Every file evaluate reads from the dataset is found here (and only here); none is opened yet.
    """
    pairs: dict[str, list[tuple[str, str]]] = {}
    absent: dict[str, str] = {}
    for setting in settings:
        path = PREPARED.pairs_file(data, setting)
        if path is None or not path.is_file():
            absent[setting] = f"{data / SETTINGS_PAIRS[setting]} not found"
            continue
        listed = PREPARED.read_pairs(data, setting, unique_persons=True)
        if listed:
            pairs[setting] = listed
        else:
            absent[setting] = f"{path} lists no pairs"
    cloths = PREPARED.test_cloths(data)
    if not cloths:
        raise FileNotFoundError(f"no in-shop cloth images in {data / 'test' / fm.CLOTH_DIR}")
    persons = sorted({person for listed in pairs.values() for person, _ in listed})
    files = {p: PREPARED.person_files("test", p) for p in persons}
    return TestFiles(pairs, absent, {p: safe_join(data, f.image) for p, f in files.items()},
                     {p: safe_join(data, f.parse) for p, f in files.items()}, cloths)

# --- results matched to them -----------------------------------------------------------------------
@dataclass(frozen=True)
class PersonItem:
    """What is scored for one test person: which settings list them, and the files the chosen metrics read."""

    person: str
    in_paired: bool
    real: Path | None
    parse: Path | None
    paired: Path | None
    warp: Path | None
    unpaired: Path | None


def image_dir(folder: Path) -> Path:
    """Where a results folder keeps its images: DIR/try-on/ (vton's own layout) or DIR itself (flat or nested)."""
    return folder / fm.TRYON_DIR if (folder / fm.TRYON_DIR).is_dir() else folder


def warp_mask_dir(results: dict[str, Path | None]) -> Path | None:
    return results["paired"] / fm.WARP_MASK_DIR if results.get("paired") is not None else None


def missing_warp_masks(files: TestFiles, results: dict[str, Path | None]) -> list[str]:
    """The paired persons without a warp-mask (other methods' results may have none)."""
    return [p for p, _ in files.pairs.get("paired", []) if find_image(warp_mask_dir(results), Path(p).stem) is None]


def match_folders(pairs: dict[str, list[tuple[str, str]]], results: dict[str, Path | None]) -> dict[str, Matched]:
    """Each setting's result files matched to its test pairs by every name form the field writes
    (`vton.eval.matching`)."""
    out = {}
    for setting, folder in results.items():
        if folder is not None:
            images = image_dir(folder)
            out[setting] = match_results(scan(images), images, pairs.get(setting, []))
    return out


def matched_record(matched: Matched) -> dict[str, Any]:
    """What summary.json records of a setting's result files: nothing left out silently."""
    return {"found": len(matched.found), "name_forms": matched.form, "jpeg": [str(p) for p in matched.jpeg],
            "missing": matched.missing, "duplicates": {k: [str(p) for p in v] for k, v in matched.duplicates.items()},
            "ambiguous": {str(k): v for k, v in matched.ambiguous.items()}, "extra": [str(p) for p in matched.extra],
            "ignored": [str(p) for p in matched.ignored], "refused": {str(k): v for k, v in matched.refused.items()}}


def person_items(files: TestFiles, results: dict[str, Path | None], needs: dict[str, bool],
                 found: dict[str, dict[str, Path]]) -> list[PersonItem]:
    """One item per test person; checks every needed file exists before any decoding starts.

    ``needs``: which inputs the metrics to compute read: "real", "region", "fake" (paired try-on), "warp", "unpaired"
    (unpaired try-on). ``found``: per setting, the result file of each person (`match_folders`).
    """
    paired = dict(files.pairs.get("paired", []))
    unpaired = dict(files.pairs.get("unpaired", []))
    items, missing = [], []

    def need(path: Path | None, what: str, person: str) -> Path | None:
        if path is None or not path.is_file():
            missing.append(f"{what} for {person}" + (f": {path}" if path else ""))
        return path

    for person in sorted(set(paired) | set(unpaired)):
        stem = Path(person).stem
        real = need(files.person_image[person], "person image", person) if needs["real"] else None
        parse = need(files.person_parse[person], "parse", person) if needs["region"] else None
        in_paired = person in paired
        tryon_p = (need(found.get("paired", {}).get(person), "paired try-on", person)
                   if in_paired and needs["fake"] else None)
        warp = find_image(warp_mask_dir(results), stem) if in_paired and needs["warp"] else None
        tryon_u = (need(found.get("unpaired", {}).get(person), "unpaired try-on", person)
                   if person in unpaired and needs["unpaired"] else None)
        items.append(PersonItem(person, in_paired, real, parse, tryon_p, warp, tryon_u))
    if missing:
        raise FileNotFoundError(f"{len(missing)} input files missing, e.g. " + "; ".join(missing[:5]))
    return items


# --- decoding --------------------------------------------------------------------------------------
def _fit(array: np.ndarray, resample: Image.Resampling) -> tuple[np.ndarray, bool]:
    if array.shape[:2] == fm.FINE_SIZE_HW:
        return array, False
    return np.asarray(Image.fromarray(array).resize(fm.FINE_SIZE_WH, resample)), True


def load_rgb(path: Path) -> tuple[torch.Tensor, bool]:
    """uint8 3 x 256 x 192, decoded exactly (`vton.eval.images`); other sizes are resized with PIL bicubic (and
    counted)."""
    img, resized = _fit(images.read_image(path, images.rgb), Image.Resampling.BICUBIC)
    return torch.from_numpy(img.copy()).permute(2, 0, 1), resized


def load_mask(path: Path) -> tuple[torch.Tensor, bool]:
    """Boolean 256 x 192 mask of a grey image (level >= 128, levels as `vton.eval.images` decodes them)."""
    img, resized = _fit(images.read_image(path, images.grey), Image.Resampling.NEAREST)
    return torch.from_numpy(img >= MASK_THRESHOLD), resized


def load_cloth_region(path: Path) -> torch.Tensor:
    """Boolean mask of the person's cloth labels (5, 6, 7) from a label-index parse map (`vton.eval.images`)."""
    region = np.isin(images.read_image(path, images.labels), PREPARED.labels.cloth).astype(np.uint8)
    img, _ = _fit(region, Image.Resampling.NEAREST)  # nearest: the same pixels as resizing the labels first
    return torch.from_numpy(img.astype(bool))


def load_person(item: PersonItem) -> dict[str, Any]:
    """Everything scored for one person; absent parts are zeros with a False flag so batches collate."""
    h, w = fm.FINE_SIZE_HW
    out: dict[str, Any] = {"person": item.person, "in_paired": item.in_paired, "resized": 0}
    for key, path, loader, blank in (
        ("real", item.real, load_rgb, torch.zeros(3, h, w, dtype=torch.uint8)),
        ("paired", item.paired, load_rgb, torch.zeros(3, h, w, dtype=torch.uint8)),
        ("unpaired", item.unpaired, load_rgb, torch.zeros(3, h, w, dtype=torch.uint8)),
        ("warp", item.warp, load_mask, torch.zeros(h, w, dtype=torch.bool)),
    ):
        out[f"has_{key}"] = path is not None
        if path is None:
            out[key] = blank
        else:
            out[key], resized = loader(path)
            out["resized"] += int(resized)
    out["region"] = load_cloth_region(item.parse) if item.parse else torch.zeros(h, w, dtype=torch.bool)
    return out


def load_cloth(path: Path) -> dict[str, Any]:
    img, resized = load_rgb(path)
    return {"cloth": path.name, "image": img, "resized": int(resized)}


class Mapped(Dataset):
    """Items decoded by a module-level function (picklable for DataLoader workers).

    A file that cannot be decoded becomes an ``{"error": message}`` item rather than an exception: one raised in a
    worker process reaches the caller wrapped in a multi-line traceback, the message does so intact.
    """

    def __init__(self, items: Sequence[Any], load: Callable[[Any], dict[str, Any]]) -> None:
        self.items, self.load = list(items), load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            return self.load(self.items[i])
        except images.ImageError as exc:
            return {"error": str(exc)}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [item["error"] for item in items if "error" in item]
    return {"errors": errors} if errors else default_collate(items)


def batches(dataset: Dataset, settings: Settings, device: torch.device, desc: str) -> Iterator[dict[str, Any]]:
    """The decoded batches in order; the first undecodable file ends the run with its one-line ImageError."""
    workers = min(4, os.cpu_count() or 1) if settings.workers is None else settings.workers
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda", collate_fn=_collate)
    for batch in tqdm(loader, desc=desc, disable=not settings.progress):
        if "errors" in batch:
            raise images.ImageError(batch["errors"][0])
        yield batch

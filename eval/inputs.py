"""What an evaluation reads: the dataset's test files (found in one function, `dataset_test_files`, through the
dataset's layout adapter), the result files matched to them, and their exact decoding (`vton.eval.images`) at the
scoring size (`Scale`) into batches in DataLoader workers."""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

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
from vton.pipelines.cleaning import Rejection
from vton.pipelines.layouts import PREPARED, detect
from vton.pipelines.layouts.base import Layout

SETTINGS_PAIRS = {s: PREPARED.pairs_names[s] for s in ("paired", "unpaired")}  # the prepared layout's test lists
FILTERS: Final = {"rgb": "bicubic", "labels": "nearest"}  # PIL filters to the scoring size: photos; masks, labels
_RESAMPLE: Final = {"bicubic": Image.Resampling.BICUBIC, "nearest": Image.Resampling.NEAREST}


# --- the dataset's test files ----------------------------------------------------------------------
@dataclass(frozen=True)
class ParseFile:
    """A person's parse, read through its layout adapter (`Layout.person_parse`) when decoded; ``path`` names it."""

    path: Path
    layout: Layout
    root: Path
    split: str
    person: str
    space: fm.LabelSpace  # the person's label space (`Layout.person_labels`): its cloth labels make the region

    def labels(self) -> np.ndarray:
        """Label indices at the parse's own size; an unreadable file is an ImageError naming it."""
        try:
            return self.layout.person_parse(self.root, self.split, self.person)
        except Rejection as exc:
            raise images.ImageError(f"{self.path}: {exc.reason}") from None


@dataclass(frozen=True)
class TestFiles:
    """The dataset's side of an evaluation."""

    layout: Layout
    pairs: dict[str, list[tuple[str, str]]]  # setting -> (person, cloth) pairs, for each setting that has some
    lists: dict[str, str]  # setting -> the pairs file its list is read from, and how (recorded)
    absent: dict[str, str]  # setting -> why it has no pairs
    person_image: dict[str, Path]  # person -> the real photo
    person_parse: dict[str, ParseFile]  # person -> the parse
    cloths: list[Path]  # the in-shop cloth images, sorted
    categories: dict[str, str]  # person -> garment category, for a layout that has them (DressCode); else empty


def dataset_test_files(data: Path, settings: Iterable[str], categories: dict[str, str]) -> TestFiles:
    """The pairs of each of ``settings``, the photo and parse of each person they list, and the in-shop cloths, all
    through the layout adapter of ``data`` (`vton.pipelines.layouts.detect`). ``categories``: the persons' garment
    categories (`Layout.person_categories`, read once per evaluation by the caller).

    Every file evaluate reads from the dataset is found here (and only here); none is opened yet.
    """
    layout = detect(data)
    pairs: dict[str, list[tuple[str, str]]] = {}
    lists: dict[str, str] = {}
    absent: dict[str, str] = {}
    for setting in settings:
        path = layout.test_pairs_file(data, setting)
        derived = layout.pairs_file(data, setting) is None
        lists[setting] = path.name + (" (each person with their own cloth)" if derived else "")
        if not path.is_file():
            absent[setting] = f"{path} not found"
            continue
        listed = layout.read_test_pairs(data, setting)
        if listed:
            pairs[setting] = listed
        else:
            absent[setting] = f"{path} lists no pairs"
    cloths = layout.test_cloths(data)
    if not cloths:
        raise FileNotFoundError(f"{data} holds no in-shop test cloth images (read as the {layout.name} layout)")
    folder_of, labels_of = layout.test_folders(data, categories), layout.person_labels(data, categories)
    persons = sorted({person for listed in pairs.values() for person, _ in listed})
    files = {p: layout.person_files(folder_of(p), p) for p in persons}
    return TestFiles(layout, pairs, lists, absent, {p: safe_join(data, f.image) for p, f in files.items()},
                     {p: ParseFile(safe_join(data, f.parse), layout, data, folder_of(p), p, labels_of(p))
                      for p, f in files.items()},
                     cloths, {p: categories[p] for p in persons if p in categories})

# --- results matched to them -----------------------------------------------------------------------
@dataclass(frozen=True)
class PersonItem:
    """What is scored for one test person: which settings list them, and the files the chosen metrics read."""

    person: str
    in_paired: bool
    real: Path | None
    parse: ParseFile | None
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
        parse = files.person_parse[person] if needs["region"] else None
        if parse is not None:
            need(parse.path, "parse", person)
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
@dataclass(frozen=True)
class Scale:
    """The scoring size (height, width). Ground truth (photos, parse maps, in-shop cloths) of another size is resized
    to it with `FILTERS`; a prediction (try-on, warp-mask) of another size is refused, or, with
    ``resize_predictions``, resized with the same filters."""

    size_hw: tuple[int, int]
    resize_predictions: bool = False

    def off_size(self, path: Path, size_hw: tuple[int, int]) -> str:
        """The refusal of a prediction of another size, naming it."""
        h, w = size_hw
        return (f"{path}: the prediction is {h}x{w} (HxW), not the scoring size {self.size_hw[0]}x{self.size_hw[1]}; "
                "every prediction of a run must share it (choose it with --eval-size, or resize the predictions with "
                "--resize-predictions)")


def _fit(array: np.ndarray, size_hw: tuple[int, int], kind: str) -> tuple[np.ndarray, bool]:
    """``array`` at ``size_hw``, resized with the PIL filter `FILTERS` names for ``kind``; whether it was."""
    if array.shape[:2] == tuple(size_hw):
        return array, False
    h, w = size_hw
    return np.asarray(Image.fromarray(array).resize((w, h), _RESAMPLE[FILTERS[kind]])), True


def _prediction(array: np.ndarray, path: Path, scale: Scale, kind: str) -> tuple[np.ndarray, bool]:
    if array.shape[:2] != tuple(scale.size_hw) and not scale.resize_predictions:
        raise images.ImageError(scale.off_size(path, array.shape[:2]))
    return _fit(array, scale.size_hw, kind)


def load_rgb(path: Path, scale: Scale, truth: bool) -> tuple[torch.Tensor, bool]:
    """uint8 3 x H x W at the scoring size, decoded exactly (`vton.eval.images`); whether it was resized."""
    img = images.read_image(path, images.rgb)
    img, resized = _fit(img, scale.size_hw, "rgb") if truth else _prediction(img, path, scale, "rgb")
    return torch.from_numpy(img.copy()).permute(2, 0, 1), resized


def load_mask(path: Path, scale: Scale) -> tuple[torch.Tensor, bool]:
    """Boolean H x W warp-mask (a prediction) of a grey image (level >= 128, levels as `vton.eval.images` decodes
    them)."""
    img, resized = _prediction(images.read_image(path, images.grey), path, scale, "labels")
    return torch.from_numpy(img >= MASK_THRESHOLD), resized


def load_cloth_region(parse: ParseFile, scale: Scale) -> tuple[torch.Tensor, bool]:
    """Boolean mask of the person's cloth labels (`Layout.person_labels`) at the scoring size."""
    region = np.isin(parse.labels(), parse.space.cloth).astype(np.uint8)
    img, resized = _fit(region, scale.size_hw, "labels")  # nearest: the same pixels as resizing the labels first
    return torch.from_numpy(img.astype(bool)), resized


def load_person(item: PersonItem, scale: Scale) -> dict[str, Any]:
    """Everything scored for one person; absent parts are zeros with a False flag so batches collate.
    ``resized``: how many of its ground-truth images (photo, parse) and of its predictions were resized."""
    h, w = scale.size_hw
    out: dict[str, Any] = {"person": item.person, "in_paired": item.in_paired, "resized_truth": 0,
                           "resized_pred": 0}
    rgb_blank = torch.zeros(3, h, w, dtype=torch.uint8)
    mask_blank = torch.zeros(h, w, dtype=torch.bool)
    for key, path, load, blank, counter in (
        ("real", item.real, functools.partial(load_rgb, truth=True), rgb_blank, "resized_truth"),
        ("paired", item.paired, functools.partial(load_rgb, truth=False), rgb_blank, "resized_pred"),
        ("unpaired", item.unpaired, functools.partial(load_rgb, truth=False), rgb_blank, "resized_pred"),
        ("warp", item.warp, load_mask, mask_blank, "resized_pred"),
        ("region", item.parse, load_cloth_region, mask_blank, "resized_truth"),
    ):
        out[f"has_{key}"] = path is not None
        if path is None:
            out[key] = blank
        else:
            out[key], resized = load(path, scale)
            out[counter] += int(resized)
    return out


def load_cloth(path: Path, scale: Scale) -> dict[str, Any]:
    img, resized = load_rgb(path, scale, truth=True)
    return {"cloth": path.name, "image": img, "resized": int(resized)}


def predictions(items: Sequence[PersonItem]) -> list[Path]:
    """The prediction files the items score: paired try-ons, then unpaired ones, then warp-masks, by person."""
    return [path for key in ("paired", "unpaired", "warp") for item in items
            if (path := getattr(item, key)) is not None]


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

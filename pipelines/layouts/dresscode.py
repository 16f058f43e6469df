"""DressCode's tree (aimagelab/dress-code ``data/dataset.py``, its ``readme.txt``; miccunifi/ladi-vton
``src/dataset/dresscode.py``): a folder per garment category (``upper_body/``, ``lower_body/``, ``dresses/``), each with
``images/`` (``{id}_0.jpg`` model, ``{id}_1.jpg`` garment: RGB JPEG 768x1024), ``label_maps/{id}_4.png`` (P PNG, ATR-18
indices), ``keypoints/{id}_2.json`` (OpenPose-18 in a 384x512 frame), ``skeletons/`` and ``dense/`` (not read here),
and TAB-separated pairs files: per category 2 columns, at the root 3 (the third the category code, 0 upper_body,
1 lower_body, 2 dresses).

There are no train/test folders: an item's source folder is its category, so `Item.src_split` holds the category
(`Layout.categories`); the split comes from the root pairs files (``train_pairs.txt`` train, ``test_pairs_unpaired.txt``
the unpaired test, ``test_pairs_paired.txt`` the paired test, each test model with their own garment).

Ingest at the requested size: images BILINEAR, label map NEAREST, keypoints scaled by width / 384 and height / 512.
DressCode ships no garment mask: it is computed from the resized garment as raw VITON's ``convert_data.m`` does
(`viton_raw.cloth_mask_from_rgb`: every channel <= 250, holes filled, 3x3 median), the garments being shot on white.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.io import encode_image, read_data_file
from vton.pipelines.cleaning import Rejection, check_mask
from vton.pipelines.keypoints.schema import (
    DRESSCODE,
    KeypointError,
    KeypointLoader,
    keypoint_loader,
    parse_dresscode_json,
    pose_json,
)
from vton.pipelines.layouts.base import ClothFiles, Item, Layout, Pair, PersonFiles, folder_images, pair_of_line
from vton.pipelines.layouts.files import finish_person, read
from vton.pipelines.layouts.viton_hd import parse_labels, resize_rgb
from vton.pipelines.layouts.viton_raw import cloth_mask_from_rgb


def dresscode_keypoints(data: bytes, size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> np.ndarray:
    """A ``keypoints/{id}_2.json`` file as OpenPose-18 (18, 3) in the pixels of ``size_hw`` (x by W / 384, y by
    H / 512, as dress-code's loader scales them); a missing joint stays 0, 0, 0."""
    try:
        kps = parse_dresscode_json(data)
    except KeypointError as exc:
        raise Rejection("keypoints", str(exc)) from None
    width, height = fm.DC_POSE_SIZE_WH
    kps[:, 0] *= size_hw[1] / width
    kps[:, 1] *= size_hw[0] / height
    return kps


def root_pair(line: str, split: str) -> Pair:
    """A root pairs line ``<model>\\t<garment>\\t<code>``: the code names the category, which is the items' folder."""
    parts = line.split()
    if len(parts) == 3 and parts[2] in fm.CATEGORY_CODES:
        return pair_of_line(f"{parts[0]} {parts[1]}", split, fm.DC_CATEGORIES[int(parts[2])])
    if len(parts) == 2:
        return Pair(line, split, None, None, ("discover", "root pairs line without its category code (0, 1 or 2)"))
    return pair_of_line(line, split, "")  # refused there: malformed, a path, or bytes that are not UTF-8


class DressCodeLayout(Layout):
    name = "dresscode"
    summary = "DressCode (768x1024, ATR label maps, 384x512 OpenPose-18 keypoints, a folder per category)"
    marker = f"{'|'.join(fm.DC_CATEGORIES)}/{fm.DC_IMAGE_DIR}/ and {fm.DC_LABEL_DIR}/"
    native_size_hw = fm.HD_SIZE_HW
    labels = fm.ATR
    keypoints = DRESSCODE
    pairs_names = {"train": fm.DC_TRAIN_PAIRS, "paired": fm.DC_TEST_PAIRS_PAIRED,
                   "unpaired": fm.DC_TEST_PAIRS_UNPAIRED}
    split_folders = True  # the folders are categories, not splits: `discover` sets each item's
    categories = fm.DC_CATEGORIES

    def detect(self, root: Path) -> bool:
        return any((root / c / fm.DC_IMAGE_DIR).is_dir() and (root / c / fm.DC_LABEL_DIR).is_dir()
                   for c in fm.DC_CATEGORIES)

    def person_files(self, split: str, name: str) -> PersonFiles:
        """``split`` is the category (the item's folder)."""
        pid = fm.dc_id(name)
        return PersonFiles(f"{split}/{fm.DC_IMAGE_DIR}/{name}",
                           f"{split}/{fm.DC_LABEL_DIR}/{fm.dc_name(pid, 4, 'png')}",
                           f"{split}/{fm.DC_KEYPOINT_DIR}/{fm.dc_name(pid, 2, 'json')}")

    def cloth_files(self, split: str, name: str) -> ClothFiles:
        return ClothFiles(f"{split}/{fm.DC_IMAGE_DIR}/{name}", None)

    def category_pairs_file(self, root: Path, category: str, which: str) -> Path:
        """A category's own 2-column list ``which`` (one of PAIR_LISTS)."""
        return Path(root) / category / self.pairs_names[which]

    def folder_persons(self, root: Path) -> list[tuple[str, str]]:
        """(category, model image name) of every ``{id}_0.jpg`` in the category folders."""
        return folder_images(root, fm.DC_CATEGORIES, fm.DC_IMAGE_DIR, "_0.jpg")

    def test_cloths(self, root: Path) -> list[Path]:
        """The garments of the unpaired test list, sorted."""
        path = self.pairs_file(root, "unpaired")
        if not path.is_file():
            return []
        pairs = [root_pair(line, "test") for _, line in fm.pairs_lines(read_data_file(path), "surrogateescape")]
        return sorted({Path(root) / self.cloth_files(p.cloth.src_split, p.cloth.name).cloth
                       for p in pairs if p.cloth is not None})

    def discover(self, root: Path, resplit: bool) -> tuple[list[Pair], bool]:
        """The root pairs files' lines (train first), each item in its line's category; without them (or with
        ``resplit``) each model once with their own garment, from the files or else the category folders, split
        ``""`` (drawn later)."""
        files = self.split_pairs_files(root)
        listed = [root_pair(line, split) for split in fm.SPLITS if split in files
                  for _, line in fm.pairs_lines(read_data_file(files[split]), "surrogateescape")]
        if files and not resplit:
            return listed, True
        persons = ([(p.person.src_split, p.person.name) for p in listed if p.person is not None] if files
                   else self.folder_persons(root))
        return [pair_of_line(f"{name} {self.own_cloth(name)}", "", category)
                for category, name in dict.fromkeys(persons)], False

    def person_categories(self, root: Path) -> dict[str, str]:
        """Each test model's category, from the root test lists' third column."""
        found: dict[str, str] = {}
        for which in ("paired", "unpaired"):
            path = self.pairs_file(root, which)
            if path is not None and path.is_file():
                for _, line in fm.pairs_lines(read_data_file(path), "surrogateescape"):
                    pair = root_pair(line, "test")
                    if pair.person is not None:
                        found.setdefault(pair.person.name, pair.person.src_split)
        return found

    def test_folders(self, root: Path, categories: dict[str, str] | None = None) -> Callable[[str], str]:
        """A test model's folder is their category (the root test lists' third column)."""
        categories = self.person_categories(root) if categories is None else categories

        def folder(person: str) -> str:
            if person not in categories:
                raise ValueError(f"{root}: the test lists give no category for {person}")
            return categories[person]
        return folder

    def person_parse(self, root: Path, split: str, name: str) -> np.ndarray:
        """The ATR labels at 1024x768, checked as ingest checks them; ``split`` is the category."""
        return np.asarray(parse_labels(read(root, self.person_files(split, name).parse), self.labels))

    def ingest_person(self, root: Path, item: Item, keypoints: str | KeypointLoader = "dataset",
                      size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[tuple[bytes, ...], np.ndarray]:
        loader = keypoint_loader(keypoints)
        files = self.person_files(item.src_split, item.name)
        raw_image, raw_parse, raw_pose = read(root, files.image), read(root, files.parse), read(root, files.pose)
        image = resize_rgb(raw_image, "person image", size_hw)
        parse = np.asarray(parse_labels(raw_parse, self.labels).resize(size_hw[::-1], Image.Resampling.NEAREST))
        kps = dresscode_keypoints(raw_pose, size_hw)
        data = (encode_image(image, "JPEG"), encode_image(fm.palette_image(parse), "PNG"), pose_json(kps))
        return finish_person(image, parse, data, keypoints, loader, self.labels)

    def ingest_cloth(self, root: Path, item: Item, size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[bytes, ...]:
        cloth = resize_rgb(read(root, self.cloth_files(item.src_split, item.name).cloth), "cloth", size_hw)
        mask = cloth_mask_from_rgb(np.asarray(cloth))
        check_mask(mask)
        return encode_image(cloth, "JPEG"), encode_image(Image.fromarray(mask, "L"), "JPEG")


DRESSCODE_LAYOUT = DressCodeLayout()

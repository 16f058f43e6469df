"""CP-VTON's converted folders (``{train,test}/{image,image-parse,pose,cloth,cloth-mask}`` and the pairs files), which
is also the layout `vton prepare` writes, with its ``shape/`` folder: inputs are checked and copied byte for byte.

A tree has one size: the one its prepare.json records (``size_hw``), else that of its first person image (CP-VTON's own
folders: 256x192); every image is checked against it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.io import read_data_file
from vton.pipelines.cleaning import check_mask, decode_image
from vton.pipelines.keypoints.schema import OPENPOSE_18, KeypointLoader, keypoint_loader
from vton.pipelines.layouts.base import CLOTH, PERSON, ClothFiles, Item, Layout, PersonFiles, folder_images, image_files
from vton.pipelines.layouts.files import finish_person, read, read_pose


class CpvtonLayout(Layout):
    name = "cpvton"
    summary = "CP-VTON's converted folders (also what prepare writes)"
    marker = f"{'/'.join(fm.SPLITS)}/{fm.IMAGE_DIR}/ or {' or '.join(fm.PAIRS_FILES.values())}"
    native_size_hw = fm.FINE_SIZE_HW  # CP-VTON's; a prepared tree may hold another (`source_size_hw`)
    resizes = False
    labels = fm.LIP
    keypoints = OPENPOSE_18
    pairs_names = {"train": fm.TRAIN_PAIRS, "paired": fm.TEST_PAIRS_SAME, "unpaired": fm.TEST_PAIRS}
    split_folders = True

    def detect(self, root: Path) -> bool:
        return (any((root / s / fm.IMAGE_DIR).is_dir() for s in fm.SPLITS)
                or any((root / n).is_file() for n in fm.PAIRS_FILES.values()))

    def person_files(self, split: str, name: str) -> PersonFiles:
        return PersonFiles(*(f"{split}/{folder}/{file}" for folder, file in Item(PERSON, name, split).files()))

    def cloth_files(self, split: str, name: str) -> ClothFiles:
        return ClothFiles(*(f"{split}/{folder}/{file}" for folder, file in Item(CLOTH, name, split).files()))

    def folder_persons(self, root: Path) -> list[tuple[str, str]]:
        return folder_images(root, fm.SPLITS, fm.IMAGE_DIR, "_0.jpg")

    def test_cloths(self, root: Path) -> list[Path]:
        return image_files(Path(root) / "test" / fm.CLOTH_DIR)

    def label_space(self, root: Path) -> fm.LabelSpace:
        """What prepare recorded: its source's label space (prepare.json's ``label_space``: LIP, CIHP or ATR). A tree
        without prepare.json is CP-VTON's own: LIP."""
        report = Path(root) / fm.PREPARE_FILE
        recorded = json.loads(read_data_file(report)).get("label_space") if report.is_file() else None
        return fm.LABEL_SPACES.get(recorded, self.labels)

    def person_categories(self, root: Path) -> dict[str, str]:
        """Each person's category from the manifest's ``category`` column (a prepared DressCode); empty without one."""
        manifest = Path(root) / fm.MANIFEST_FILE
        if not manifest.is_file():
            return {}
        import pyarrow.parquet as pq  # only where a manifest is read

        if "category" not in pq.read_schema(manifest).names:  # written before DressCode, or by hand
            return {}
        frame = pq.read_table(manifest, columns=["person", "category"]).to_pandas().dropna()
        return dict(zip(frame["person"], frame["category"]))

    def source_size_hw(self, root: Path) -> tuple[int, int]:
        """The tree's one size: prepare.json's ``size_hw`` where it records one, else the (height, width) of the first
        person image (train before test, by name), else CP-VTON's 256x192."""
        report = Path(root) / fm.PREPARE_FILE
        if report.is_file():
            recorded = json.loads(read_data_file(report)).get("size_hw")
            if recorded is not None:
                return int(recorded[0]), int(recorded[1])
        for split in fm.SPLITS:
            folder = Path(root) / split / fm.IMAGE_DIR
            first = min((p for p in folder.iterdir() if p.suffix.lower() in fm.IMAGE_SUFFIXES), default=None
                        ) if folder.is_dir() else None
            if first is not None:
                with Image.open(first) as img:
                    return img.height, img.width
        return fm.FINE_SIZE_HW

    def ingest_person(self, root: Path, item: Item, keypoints: str | KeypointLoader = "dataset",
                      size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[tuple[bytes, ...], np.ndarray]:
        """The files unchanged, checked to be ``size_hw`` (the tree's size, `source_size_hw`: nothing is resized)."""
        loader = keypoint_loader(keypoints)
        files = self.person_files(item.src_split, item.name)
        data = (read(root, files.image), read(root, files.parse), read_pose(root, files.pose, loader))
        image = decode_image(data[0], "person image", ("RGB",), size_hw[::-1],
                             check_only=not getattr(loader, "needs_image", True))
        parse = np.asarray(decode_image(data[1], "parse", ("P", "L"), size_hw[::-1]))
        return finish_person(image, parse, data, keypoints, loader, self.labels)

    def ingest_cloth(self, root: Path, item: Item, size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[bytes, ...]:
        files = self.cloth_files(item.src_split, item.name)
        cloth_bytes, mask_bytes = read(root, files.cloth), read(root, files.mask)
        decode_image(cloth_bytes, "cloth", ("RGB",), size_hw[::-1], check_only=True)
        check_mask(np.asarray(decode_image(mask_bytes, "cloth mask", ("L",), size_hw[::-1])))
        return cloth_bytes, mask_bytes


CPVTON = CpvtonLayout()

"""`TryOnDataset`: the torch Dataset over a prepared folder, item for item what CP-VTON's CPDataset returns.

Pieces come from `vton.pipelines.representation` as uint8 images and go through CP-VTON's transform
``T = ToTensor + Normalize(0.5, 0.5)`` (mapped to [-1, 1]), so values equal the reference bit for bit
(sergeywong/cp-vton cp_dataset.py, CPDataset.__getitem__).
The body shape is read from the precomputed ``shape/`` folder when present, else computed. A prepared folder has one
size (`vton prepare --size`: 256x192, 512x384 or 1024x768), every piece is that size, and an image of another size is
an error naming it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vton.core import formats as fm
from vton.core.io import safe_join
from vton.pipelines import representation as rep
from vton.pipelines.keypoints.schema import parse_pose_json
from vton.pipelines.layouts import PREPARED
from vton.pipelines.layouts.base import PAIR_LISTS, Layout

VARIANTS = ("cpvton", "cpvton+")


# Pieces that go through CP-VTON's transform T, and {0, 1} masks that are used as they are.
UNIT_KEYS = ("cloth", "image", "shape", "head", "parse_cloth", "pose", "pose_image")
MASK_KEYS = ("cloth_mask", "parse_cloth_mask", "shape_ori")
NAME_KEYS = ("c_name", "im_name")


def channels_first(array: np.ndarray) -> np.ndarray:
    """H x W (x C) uint8 -> C x H x W, contiguous."""
    return np.ascontiguousarray(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))


def unit(tensor: torch.Tensor) -> torch.Tensor:
    """CP-VTON's ``T`` (ToTensor + Normalize(0.5, 0.5)) on uint8 (N x) C x H x W, on any device: the same
    correctly rounded ops as torchvision, so the values are the reference's bit for bit."""
    return tensor.float().div(255).sub_(0.5).div_(0.5)


def to_unit(array: np.ndarray) -> torch.Tensor:
    """``T`` on a uint8 H x W (x C) array: C x H x W float32 in [-1, 1]."""
    return unit(torch.from_numpy(channels_first(np.asarray(array, np.uint8))))


def collate_raw(items: list[dict]) -> dict:
    """Stack ``TryOnDataset.load`` items: uint8 N x C x H x W tensors and lists of names."""
    return {
        k: [item[k] for item in items] if k in NAME_KEYS else torch.from_numpy(np.stack([item[k] for item in items]))
        for k in items[0]
    }


class TryOnDataset(Dataset):
    """Pairs of a prepared (or plain CP-VTON layout) folder; ``layout`` names its files and label groups.

    ``pairs``: "train", "unpaired", "paired" (the layout's lists) or the path of a pairs file.
    ``variant="cpvton+"`` adds ``shape_ori`` (the unblurred body mask, 1 x H x W in {0, 1}) for CP-VTON+ style
    models. ``size_hw``: the folder's one (height, width) (`Layout.source_size_hw`: prepare.json's, else its first
    person image's).
    ``unique_persons`` refuses a pairs file listing a person twice (inference names its outputs by the person).
    """

    def __init__(self, root: str | os.PathLike, split: str = "test", pairs: str = "unpaired",
                 variant: str = "cpvton", unique_persons: bool = False, layout: Layout = PREPARED) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.root = Path(root)
        self.split = split
        self.layout = layout
        self.variant = variant
        if pairs in PAIR_LISTS:
            self.pairs = layout.read_pairs(self.root, pairs, unique_persons)
        else:
            self.pairs = fm.read_pairs(pairs, unique_persons)
        self.size_hw = layout.source_size_hw(self.root)
        self.labels_of = layout.person_labels(self.root)  # e.g. DressCode's cloth labels by the pair's category
        self.grid = to_unit(rep.grid_image(*self.size_hw))

    def __len__(self) -> int:
        return len(self.pairs)

    def _path(self, relative: str) -> Path:
        return safe_join(self.root, relative)

    def _image(self, relative: str, mode: str | None) -> np.ndarray:
        """The image as an array (``mode`` None: as stored, a palette parse's values are its label ids), checked to be
        the folder's size."""
        with Image.open(self._path(relative)) as img:
            if img.size != self.size_hw[::-1]:
                raise ValueError(f"{self.root / relative} is {img.width}x{img.height} (WxH), but this dataset's "
                                 f"images are {self.size_hw[1]}x{self.size_hw[0]}: one size per prepared folder")
            return np.asarray(img.convert(mode) if mode is not None and img.mode != mode else img)

    def load(self, index: int) -> dict:
        """The pair's pieces as uint8 C x H x W arrays, before the transform: cheap to decode in worker threads and a
        quarter of the bytes to move to a GPU, where ``assemble`` finishes them."""
        im_name, c_name = self.pairs[index]
        person = self.layout.person_files(self.split, im_name)
        cloth_files = self.layout.cloth_files(self.split, c_name)
        labels = self.labels_of(im_name)
        cloth = self._image(cloth_files.cloth, "RGB")
        cloth_mask = self._image(cloth_files.mask, "L")
        image = self._image(person.image, "RGB")
        parse = self._image(person.parse, None)  # palette or 'L': the values are the label ids
        if person.shape is not None and self._path(person.shape).exists():
            shape = self._image(person.shape, "L")
        else:
            shape = rep.shape_image(parse, labels)
        keypoints = parse_pose_json(self._path(person.pose).read_bytes())
        maps = rep.pose_squares(keypoints, *parse.shape)
        raw = {
            "cloth": cloth,
            "cloth_mask": (cloth_mask >= 128).astype(np.uint8),
            "image": image,
            "shape": shape,
            "head": rep.head_image(image, parse, labels),
            "parse_cloth": rep.cloth_target(image, parse, labels),
            "parse_cloth_mask": rep.label_mask(parse, labels.cloth).astype(np.uint8),
            "pose": maps.transpose(1, 2, 0),
            "pose_image": rep.pose_image(maps),
        }
        if self.variant == "cpvton+":
            raw["shape_ori"] = rep.body_mask(parse, labels).astype(np.uint8)
        return {"c_name": c_name, "im_name": im_name, **{k: channels_first(v) for k, v in raw.items()}}

    def assemble(self, raw: dict) -> dict:
        """A batch of ``load`` items (``collate_raw``, on any device) -> the reference's tensors (as cp-vton's
        CPDataset.__getitem__ builds them)."""
        batch = {k: raw[k] for k in NAME_KEYS}
        batch.update({k: unit(raw[k]) for k in UNIT_KEYS})
        batch.update({k: raw[k].float() for k in MASK_KEYS if k in raw})
        batch["agnostic"] = torch.cat([batch["shape"], batch["head"], batch.pop("pose")], 1)
        batch["grid_image"] = self.grid.to(batch["image"].device).expand(len(raw["im_name"]), -1, -1, -1)
        return batch

    def __getitem__(self, index: int) -> dict:
        batch = self.assemble(collate_raw([self.load(index)]))
        return {k: v[0] if k in NAME_KEYS else v[0].clone() for k, v in batch.items()}

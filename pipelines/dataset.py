"""`TryOnDataset`: the torch Dataset over a prepared folder, item for item what CP-VTON's CPDataset returns.

Pieces come from `vton.pipelines.representation` as uint8 images and go through CP-VTON's transform
``T = ToTensor + Normalize(0.5, 0.5)`` (mapped to [-1, 1]), so values equal the reference bit for bit (cpvton.md §1.3).
The body shape is read from the precomputed ``shape/`` folder when present, else computed.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vton.pipelines import formats as F
from vton.pipelines import representation as rep
from vton.pipelines.io import safe_join
from vton.pipelines.pose import parse_pose_json

PAIRS = {"train": F.TRAIN_PAIRS, "unpaired": F.TEST_PAIRS, "paired": F.TEST_PAIRS_SAME}
VARIANTS = ("cpvton", "cpvton+")


def to_unit(array: np.ndarray) -> torch.Tensor:
    """CP-VTON's ``T`` on a uint8 H x W (x C) array: C x H x W float32 in [-1, 1], the same ops as torchvision."""
    tensor = torch.from_numpy(np.array(array, np.uint8))  # a writable copy
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
    return tensor.float().div(255).sub_(0.5).div_(0.5)


def read_pairs_file(path: str | os.PathLike) -> list[tuple[str, str]]:
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise ValueError(f"{path}:{n}: expected '<person> <cloth>', got {line.strip()!r}")
            pairs.append((parts[0], parts[1]))
    return pairs


class TryOnDataset(Dataset):
    """Pairs of a prepared (or plain CP-VTON layout) folder.

    ``pairs``: "train", "unpaired", "paired" or the path of a pairs file. ``variant="cpvton+"`` adds
    ``shape_ori`` (the unblurred body mask, 1 x 256 x 192 in {0, 1}) for CP-VTON+ style models.
    """

    def __init__(self, root: str | os.PathLike, split: str = "test", pairs: str = "unpaired",
                 variant: str = "cpvton") -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.root = Path(root)
        self.data = self.root / split
        self.variant = variant
        pairs_path = self.root / PAIRS[pairs] if pairs in PAIRS else Path(pairs)
        self.pairs = read_pairs_file(pairs_path)
        self.grid = to_unit(rep.grid_image())

    def __len__(self) -> int:
        return len(self.pairs)

    def _path(self, folder: str, name: str) -> Path:
        return safe_join(self.data, f"{folder}/{name}")

    def _image(self, folder: str, name: str, mode: str) -> np.ndarray:
        with Image.open(self._path(folder, name)) as img:
            return np.asarray(img.convert(mode) if img.mode != mode else img)

    def __getitem__(self, index: int) -> dict:
        im_name, c_name = self.pairs[index]
        cloth = self._image(F.CLOTH_DIR, c_name, "RGB")
        cloth_mask = self._image(F.CLOTH_MASK_DIR, c_name, "L")
        image = self._image(F.IMAGE_DIR, im_name, "RGB")
        with Image.open(self._path(F.PARSE_DIR, F.parse_name(im_name))) as img:
            parse = np.asarray(img)  # palette or 'L': the values are the label ids
        shape_path = self._path(F.SHAPE_DIR, F.shape_name(im_name))
        if shape_path.exists():
            shape = self._image(F.SHAPE_DIR, F.shape_name(im_name), "L")
        else:
            shape = rep.shape_image(parse)
        keypoints = parse_pose_json(self._path(F.POSE_DIR, F.pose_name(im_name)).read_bytes())
        maps = rep.pose_squares(keypoints, *parse.shape)
        shape_t, head_t = to_unit(shape), to_unit(rep.head_image(image, parse))
        pose_t = to_unit(maps.transpose(1, 2, 0))
        item = {
            "c_name": c_name,
            "im_name": im_name,
            "cloth": to_unit(cloth),
            "cloth_mask": torch.from_numpy((cloth_mask >= 128).astype(np.float32)).unsqueeze(0),
            "image": to_unit(image),
            "agnostic": torch.cat([shape_t, head_t, pose_t], 0),
            "parse_cloth": to_unit(rep.cloth_target(image, parse)),
            "parse_cloth_mask": torch.from_numpy(rep.label_mask(parse, F.CLOTH_LABELS).astype(np.float32))
            .unsqueeze(0),
            "shape": shape_t,
            "head": head_t,
            "pose_image": to_unit(rep.pose_image(maps)),
            "grid_image": self.grid.clone(),
        }
        if self.variant == "cpvton+":
            item["shape_ori"] = torch.from_numpy(rep.body_mask(parse).astype(np.float32)).unsqueeze(0)
        return item

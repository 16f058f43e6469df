"""`TryOnDataset`: the torch Dataset over a prepared folder, item for item what CP-VTON's CPDataset returns.

Pieces come from `vton.pipelines.representation` as uint8 images and go through CP-VTON's transform
``T = ToTensor + Normalize(0.5, 0.5)`` (mapped to [-1, 1]), so values equal the reference bit for bit
(sergeywong/cp-vton cp_dataset.py, CPDataset.__getitem__).
``load`` gives the uint8 pieces (the JPEG person, cloth and cloth mask still encoded with ``keep_jpeg``, for a
batched decode on the GPU) and ``assemble`` finishes a batch of them on any device: decoding, the cloth mask's
threshold, the head and worn-cloth crops, the transform.
The body shape is read from the precomputed ``shape/`` folder when present, else computed. A prepared folder has one
size (`vton prepare --size`: 256x192, 512x384 or 1024x768), every piece is that size, and an image of another size is
an error naming it.
"""
from __future__ import annotations

import io
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
# The JPEG pieces ``load(keep_jpeg=True)`` may leave encoded, and the PIL mode each is read in.
JPEG_MODES = {"cloth": "RGB", "cloth_mask": "L", "image": "RGB"}
CLOTH_MASK_THRESHOLD = 128  # CP-VTON: (cloth_mask >= 128)


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
    """Stack ``TryOnDataset.load`` items: uint8 N x C x H x W tensors and lists of names; a piece some item left
    encoded (a 1-D array of JPEG bytes) stays a list of tensors, decoded by ``assemble``."""
    def gather(key: str) -> list | torch.Tensor:
        values = [item[key] for item in items]
        if key in NAME_KEYS:
            return values
        if any(v.ndim == 1 for v in values):
            return [torch.from_numpy(np.require(v, requirements="W")) for v in values]  # PIL's are read-only
        return torch.from_numpy(np.stack(values))

    return {k: gather(k) for k in items[0]}


def decoded(pieces: list[torch.Tensor] | torch.Tensor, mode: str, device: torch.device) -> torch.Tensor:
    """A collated piece as uint8 N x C x H x W on ``device``: the encoded items (1-D JPEG bytes) decoded in one
    ``torchvision.io.decode_jpeg`` call there (nvjpeg on CUDA; on the CPU the libjpeg-turbo decode that PIL runs, so
    the same pixels), the decoded ones as they are. torchvision.io's decoders are deprecated since 0.29 for
    TorchCodec's, but each TorchCodec release works with one torch release only, and vton supports torch from 2.2."""
    if isinstance(pieces, torch.Tensor):
        return pieces.to(device)
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = [i for i, p in enumerate(pieces) if p.ndim == 1]
    out = [p.to(device) for p in pieces]
    read_mode = {"RGB": ImageReadMode.RGB, "L": ImageReadMode.GRAY}[mode]
    for i, image in zip(encoded, decode_jpeg([pieces[i] for i in encoded], mode=read_mode, device=device)):
        out[i] = image
    return torch.stack(out)


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

    def _image(self, relative: str, mode: str | None, keep_jpeg: bool = False) -> np.ndarray:
        """The image as an array (``mode`` None: as stored, a palette parse's values are its label ids), checked to be
        the folder's size; with ``keep_jpeg``, a JPEG already in ``mode`` as its bytes (1-D), decoded later."""
        path = self._path(relative)
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as img:
            if img.size != self.size_hw[::-1]:
                raise ValueError(f"{self.root / relative} is {img.width}x{img.height} (WxH), but this dataset's "
                                 f"images are {self.size_hw[1]}x{self.size_hw[0]}: one size per prepared folder")
            if keep_jpeg and img.format == "JPEG" and img.mode == mode:
                return np.frombuffer(data, np.uint8).copy()  # writable, as torch.from_numpy wants
            return channels_first(np.asarray(img.convert(mode) if mode is not None and img.mode != mode else img))

    def load(self, index: int, keep_jpeg: bool = False) -> dict:
        """The pair's pieces as uint8 C x H x W arrays, before the transform: cheap to decode in worker processes and
        a quarter of the bytes to move to a GPU, where ``assemble`` finishes them. ``keep_jpeg``: the JPEG pieces of
        `JPEG_MODES` stay encoded (1-D bytes) for ``assemble`` to decode on its device."""
        im_name, c_name = self.pairs[index]
        person = self.layout.person_files(self.split, im_name)
        cloth_files = self.layout.cloth_files(self.split, c_name)
        labels = self.labels_of(im_name)
        parse = self._image(person.parse, None)[0]  # palette or 'L': the values are the label ids
        if person.shape is not None and self._path(person.shape).exists():
            shape = self._image(person.shape, "L")
        else:
            shape = channels_first(rep.shape_image(parse, labels))
        keypoints = parse_pose_json(self._path(person.pose).read_bytes())
        maps = rep.pose_squares(keypoints, *parse.shape)
        raw = {
            "cloth": self._image(cloth_files.cloth, JPEG_MODES["cloth"], keep_jpeg),
            "cloth_mask": self._image(cloth_files.mask, JPEG_MODES["cloth_mask"], keep_jpeg),
            "image": self._image(person.image, JPEG_MODES["image"], keep_jpeg),
            "shape": shape,
            "head_mask": channels_first(rep.label_mask(parse, labels.head).astype(np.uint8)),
            "parse_cloth_mask": channels_first(rep.label_mask(parse, labels.cloth).astype(np.uint8)),
            "pose": np.ascontiguousarray(maps),
            "pose_image": channels_first(rep.pose_image(maps)),
        }
        if self.variant == "cpvton+":
            raw["shape_ori"] = channels_first(rep.body_mask(parse, labels).astype(np.uint8))
        return {"c_name": c_name, "im_name": im_name, **raw}

    def assemble(self, raw: dict, device: torch.device | str = "cpu") -> dict:
        """A batch of ``load`` items (``collate_raw``; its tensors on ``device`` or the CPU, its encoded pieces
        decoded on ``device``) -> the reference's tensors (as cp-vton's CPDataset.__getitem__ builds them, the
        head and worn cloth cut from the decoded person as `representation.head_image` / `cloth_target` do)."""
        device = torch.device(device)
        pieces = {k: decoded(v, JPEG_MODES[k], device) if k in JPEG_MODES else v.to(device)
                  for k, v in raw.items() if k not in NAME_KEYS}
        image = pieces["image"]
        pieces["cloth_mask"] = (pieces["cloth_mask"] >= CLOTH_MASK_THRESHOLD).to(torch.uint8)
        pieces["head"] = torch.where(pieces.pop("head_mask").bool(), image, torch.zeros_like(image))
        pieces["parse_cloth"] = torch.where(pieces["parse_cloth_mask"].bool(), image, torch.full_like(image, 255))
        batch = {k: raw[k] for k in NAME_KEYS}
        batch.update({k: unit(pieces[k]) for k in UNIT_KEYS})
        batch.update({k: pieces[k].float() for k in MASK_KEYS if k in pieces})
        batch["agnostic"] = torch.cat([batch["shape"], batch["head"], batch.pop("pose")], 1)
        batch["grid_image"] = self.grid.to(device).expand(len(raw["im_name"]), -1, -1, -1)
        return batch

    def __getitem__(self, index: int) -> dict:
        batch = self.assemble(collate_raw([self.load(index)]))
        return {k: v[0] if k in NAME_KEYS else v[0].clone() for k, v in batch.items()}

"""The original raw VITON files: ``women_top/`` (person ``<ID>_0.jpg`` and cloth ``<ID>_1.jpg``, 762x1100),
``segment/<ID>_0.mat`` (a transposed, padded 641x641 LIP label map), ``pose/<ID>_0.mat`` (``subset``/``candidate`` of
the Realtime Multi-Person pose estimator, OpenPose-18 order) and ``viton_{train,test}_pairs.txt``. Ingest converts
them as CP-VTON's convert_data.m did, at the requested size (convert_data.m's 256x192 by default)."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.io import DATA_FILE_LIMIT, encode_image
from vton.pipelines.cleaning import Rejection, check_mask, decode_image
from vton.pipelines.keypoints.schema import (
    OPENPOSE_18,
    KeypointError,
    KeypointLoader,
    keypoint_loader,
    keypoints_from_mat,
    pose_json,
)
from vton.pipelines.layouts.base import ClothFiles, Item, Layout, PersonFiles
from vton.pipelines.layouts.files import finish_person, read

MASK_WHITE = 250  # convert_data.m: a cloth pixel has all of R, G, B <= 250
_MAT_ITEMSIZE = {"double": 8, "single": 4, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4,
                "int64": 8, "uint64": 8, "logical": 1}  # the numeric classes scipy's whosmat names


def _load_mat(data: bytes, what: str) -> dict:
    """The numeric arrays of a .mat file. Their declared sizes are read from the headers first (a compressed array
    of zeros inflates a thousandfold): one above `io.DATA_FILE_LIMIT` is refused before it is inflated. Other
    variables (cells, structs) are never loaded."""
    from scipy.io import loadmat, whosmat  # raw layout only: keeps worker start-up light

    try:
        listed = whosmat(io.BytesIO(data))
    except Exception as exc:  # scipy raises several types for broken files
        raise Rejection("decode", f"{what} .mat does not load ({type(exc).__name__})") from None
    for _name, shape, kind in listed:
        declared = math.prod(shape) * _MAT_ITEMSIZE.get(kind, 0)
        if declared > DATA_FILE_LIMIT:
            raise Rejection("decode", f"{what} .mat declares a {'x'.join(map(str, shape))} {kind} array "
                                      f"({declared} bytes), more than the {DATA_FILE_LIMIT} allowed")
    try:
        return loadmat(io.BytesIO(data), variable_names=[name for name, _, kind in listed if kind in _MAT_ITEMSIZE])
    except Exception as exc:
        raise Rejection("decode", f"{what} .mat does not load ({type(exc).__name__})") from None


def _matlab_round(x: float) -> int:
    """MATLAB int32(): round half away from zero (x >= 0 here)."""
    return int(np.floor(x + 0.5))


def segment_labels(segment: np.ndarray, raw_height: int, raw_width: int) -> np.ndarray:
    """convert_data.m up to the photo's size: transpose the 641x641 parse, crop it to the image aspect, nearest-resize
    to the raw size (uint8 labels, raw_height x raw_width)."""
    seg = np.asarray(segment).T
    if raw_height > raw_width:
        seg = seg[:, : _matlab_round(fm.RAW_PARSE_SIZE * raw_width / raw_height)]
    else:
        seg = seg[: _matlab_round(641.8 * raw_height / raw_width), :]  # sic: 641.8 in convert_data.m
    if seg.size == 0 or seg.min() < 0 or seg.max() > 255:
        raise Rejection("labels", "segment .mat holds no labels or labels outside 0..255")
    img = Image.fromarray(seg.astype(np.uint8), "L").resize((raw_width, raw_height), Image.Resampling.NEAREST)
    return np.asarray(img)


def convert_segment(segment: np.ndarray, raw_height: int, raw_width: int,
                    size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> np.ndarray:
    """convert_data.m: `segment_labels`, then nearest-resize to ``size_hw`` (256x192 in convert_data.m)."""
    labels = Image.fromarray(segment_labels(segment, raw_height, raw_width), "L")
    return np.asarray(labels.resize(size_hw[::-1], Image.Resampling.NEAREST))


def _segment(data: bytes) -> np.ndarray:
    """The one 2-D label array of a segment .mat file."""
    segment = _load_mat(data, "segment")
    arrays = [v for k, v in segment.items() if not k.startswith("__") and isinstance(v, np.ndarray)]
    if len(arrays) != 1 or arrays[0].ndim != 2:
        raise Rejection("labels", "segment .mat does not hold exactly one 2-D label array")
    return arrays[0]


def _image_size(data: bytes, what: str) -> tuple[int, int]:
    """(width, height) from the header, without decoding the pixels."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception as exc:  # Pillow raises many types for broken files
        raise Rejection("decode", f"{what} does not decode ({type(exc).__name__})") from None


def cloth_mask_from_rgb(cloth: np.ndarray) -> np.ndarray:
    """convert_data.m: all channels <= 250, holes filled, 3x3 median filter (zero padding); uint8 0/255."""
    from scipy import ndimage

    mask = (cloth <= MASK_WHITE).all(axis=2)
    mask = ndimage.binary_fill_holes(mask)
    mask = ndimage.median_filter(mask.astype(np.uint8), size=3, mode="constant", cval=0)
    return mask * np.uint8(255)


def _resize_rgb(data: bytes, what: str, size_hw: tuple[int, int]) -> tuple[Image.Image, tuple[int, int]]:
    """The image at ``size_hw`` and its own (width, height)."""
    img = decode_image(data, what, ("RGB",), None)
    return img.resize(size_hw[::-1], Image.Resampling.BILINEAR), img.size


class VitonRawLayout(Layout):
    name = "viton"
    summary = "the original raw VITON files (women_top/, segment/ and pose/ .mat)"
    marker = f"{fm.RAW_IMAGE_DIR}/"
    native_size_hw = fm.RAW_SIZE_HW
    labels = fm.LIP  # LIP_SSL's label map
    keypoints = OPENPOSE_18
    pairs_names = {"train": fm.RAW_TRAIN_PAIRS, "unpaired": fm.RAW_TEST_PAIRS}
    split_folders = False

    def detect(self, root: Path) -> bool:
        return (root / fm.RAW_IMAGE_DIR).is_dir()

    def person_files(self, split: str, name: str) -> PersonFiles:
        stem = name[: -len(".jpg")]
        return PersonFiles(f"{fm.RAW_IMAGE_DIR}/{name}", f"{fm.RAW_SEGMENT_DIR}/{stem}.mat",
                           f"{fm.RAW_POSE_DIR}/{stem}.mat")

    def cloth_files(self, split: str, name: str) -> ClothFiles:
        return ClothFiles(f"{fm.RAW_IMAGE_DIR}/{name}", None)

    def folder_persons(self, root: Path) -> list[tuple[str, str]]:
        return [("", n) for n in sorted(os.listdir(root / fm.RAW_IMAGE_DIR)) if n.endswith("_0.jpg")]

    def test_cloths(self, root: Path) -> list[Path]:
        """The cloths the test pairs name (persons and cloths share women_top/)."""
        path = self.pairs_file(root, "unpaired")
        if path is None or not path.is_file():
            return []
        return sorted({Path(root) / self.cloth_files("", cloth).cloth for _, cloth in fm.read_pairs(path)})

    def person_parse(self, root: Path, split: str, name: str) -> np.ndarray:
        """The segment .mat as convert_data.m reads it, up to the person photo's own size (`segment_labels`): at
        256x192 after a nearest resize, exactly the parse `ingest_person` writes."""
        files = self.person_files(split, name)
        raw_w, raw_h = _image_size(read(root, files.image), "person image")
        return segment_labels(_segment(read(root, files.parse)), raw_h, raw_w)

    def ingest_person(self, root: Path, item: Item, keypoints: str | KeypointLoader = "dataset",
                      size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[tuple[bytes, ...], np.ndarray]:
        loader = keypoint_loader(keypoints)
        files = self.person_files(item.src_split, item.name)
        raw_image, raw_segment, raw_pose = read(root, files.image), read(root, files.parse), read(root, files.pose)
        image, (raw_w, raw_h) = _resize_rgb(raw_image, "person image", size_hw)
        parse = convert_segment(_segment(raw_segment), raw_h, raw_w, size_hw)
        pose = _load_mat(raw_pose, "pose")
        if "subset" not in pose or "candidate" not in pose:
            raise Rejection("keypoints", "pose .mat lacks subset/candidate")
        try:
            kps = self.keypoints.to_openpose18(
                keypoints_from_mat(pose["subset"], pose["candidate"], raw_w, raw_h, *size_hw[::-1]))
        except KeypointError as exc:
            raise Rejection("keypoints", str(exc)) from None
        data = (encode_image(image, "JPEG"), encode_image(fm.palette_image(parse), "PNG"), pose_json(kps))
        return finish_person(image, parse, data, keypoints, loader, self.labels)

    def ingest_cloth(self, root: Path, item: Item, size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[bytes, ...]:
        cloth, _ = _resize_rgb(read(root, self.cloth_files(item.src_split, item.name).cloth), "cloth", size_hw)
        mask = cloth_mask_from_rgb(np.asarray(cloth))
        check_mask(mask)
        return encode_image(cloth, "JPEG"), encode_image(Image.fromarray(mask, "L"), "JPEG")


VITON_RAW = VitonRawLayout()

"""Reading a VITON dataset in either layout: layout detection, pair discovery and per-item ingest.

An *item* is one person (image, parse, pose, + the precomputed shape) or one cloth (cloth, cloth mask) of a pair.
`ingest_person` / `ingest_cloth` return the files the prepared dataset holds for it, in the CP-VTON layout, as
bytes: CP-VTON layout inputs are copied byte for byte; raw VITON inputs are converted as convert_data.m did.
"""
from __future__ import annotations

import functools
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vton.core import formats as F
from vton.core.io import DATA_FILE_LIMIT, DataFileError, UnsafePathError, encode_image, read_data_file, safe_join
from vton.pipelines.cleaning import Rejection, check_mask, check_parse, decode_image
from vton.pipelines.keypoints.schema import (
    KeypointError,
    KeypointLoader,
    keypoint_loader,
    keypoints_from_mat,
    pose_json,
)
from vton.pipelines.representation import shape_image

SIZE = (F.FINE_WIDTH, F.FINE_HEIGHT)  # PIL order
MASK_WHITE = 250  # convert_data.m: a cloth pixel has all of R, G, B <= 250
PERSON = "person"
CLOTH = "cloth"


@dataclass(frozen=True, slots=True)
class Item:
    """One side of a pair; ``src_split`` is the source folder (``""`` for raw VITON, where all lie in women_top)."""
    kind: str
    name: str
    src_split: str

    def files(self) -> tuple[tuple[str, str], ...]:
        """(folder, file name) of every file the prepared dataset holds for this item, in a fixed order."""
        if self.kind == PERSON:
            return ((F.IMAGE_DIR, self.name), (F.PARSE_DIR, F.parse_name(self.name)),
                    (F.POSE_DIR, F.pose_name(self.name)), (F.SHAPE_DIR, F.shape_name(self.name)))
        return ((F.CLOTH_DIR, self.name), (F.CLOTH_MASK_DIR, self.name))


@dataclass(frozen=True, slots=True)
class Pair:
    """A line of a pairs file (or a person with its own cloth); ``problem`` is a rejection found at discovery."""
    line: str
    split: str
    person: Item | None
    cloth: Item | None
    problem: tuple[str, str] | None = None


def detect_layout(src: str | os.PathLike) -> str:
    root = Path(src)
    if (root / F.RAW_IMAGE_DIR).is_dir():
        return "viton"
    if any((root / s / F.IMAGE_DIR).is_dir() for s in F.SPLITS) or any((root / n).is_file()
                                                                        for n in F.PAIRS_FILES.values()):
        return "cpvton"
    raise ValueError(f"{root} holds neither the CP-VTON layout ({'/'.join(F.SPLITS)}/{F.IMAGE_DIR}/) "
                     f"nor the raw VITON layout ({F.RAW_IMAGE_DIR}/)")


def _pairs_names(layout: str) -> dict[str, str]:
    return F.PAIRS_FILES if layout == "cpvton" else {"train": F.RAW_TRAIN_PAIRS, "test": F.RAW_TEST_PAIRS}


def pairs_files(src: Path, layout: str) -> dict[str, Path]:
    return {split: src / name for split, name in _pairs_names(layout).items() if (src / name).is_file()}


def _pair(line: str, split: str, src_split: str) -> Pair:
    """One pairs line. Names arrive decoded with surrogateescape: bytes that are not UTF-8, and NUL bytes, are rejected
    here, before they reach a file call or an output file; the recorded line shows them as ``\\xNN``."""
    shown = line.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").replace("\0", "\\x00")
    if shown != line:
        reason = "pairs line holds a NUL byte" if "\0" in line else "pairs line is not valid UTF-8"
        return Pair(shown, split, None, None, ("discover", reason))
    parts = line.split()
    if any(os.path.basename(p) != p or p in (".", "..") for p in parts):
        return Pair(line, split, None, None, ("path", "a name in the pairs line leaves its folder"))
    if len(parts) != 2 or not all(p.endswith(".jpg") for p in parts):
        return Pair(line, split, None, None, ("discover", "malformed pairs line (want '<person>.jpg <cloth>.jpg')"))
    return Pair(f"{parts[0]} {parts[1]}", split, Item(PERSON, parts[0], src_split), Item(CLOTH, parts[1], src_split))


def read_pairs(path: Path, split: str, src_split: str) -> list[Pair]:
    """The pairs of a pairs file; a file that is no regular file or is huge is an error (`io.read_data_file`)."""
    text = io.TextIOWrapper(io.BytesIO(read_data_file(path)), encoding="utf-8", errors="surrogateescape")
    return [_pair(line.strip(), split, src_split) for line in text if line.strip()]


def split_warnings(src: Path, layout: str, pairs: list[Pair]) -> list[str]:
    """A split that gets no pairs because its pairs file is missing or empty while the other exists (without any
    pairs file, the pairs come from the image folders by design)."""
    files = pairs_files(src, layout)
    if not files:
        return []
    return [f"{src / name} {'lists no pairs' if split in files else 'does not exist'}: no {split} pairs are read"
            for split, name in _pairs_names(layout).items() if not any(p.split == split for p in pairs)]


def own_cloth(person: str) -> str:
    """``000001_0.jpg`` -> ``000001_1.jpg``."""
    stem = person[: -len("_0.jpg")] if person.endswith("_0.jpg") else person[: -len(".jpg")]
    return F.cloth_name(stem)


def discover(src: str | os.PathLike, layout: str, resplit: bool) -> tuple[list[Pair], bool]:
    """All candidate pairs and whether they carry the official split.

    Official: the pairs files' lines, in file order (train first). Otherwise (no pairs files, or ``resplit``): each
    person once with its own cloth, from the pairs files when there are any, else from the image folders; the pair's
    ``split`` is then its source folder (``""`` for raw VITON).
    """
    root = Path(src)
    files = pairs_files(root, layout)
    src_split_of = (lambda split: split) if layout == "cpvton" else (lambda split: "")
    if files and not resplit:
        return [p for split in F.SPLITS if split in files
                for p in read_pairs(files[split], split, src_split_of(split))], True
    persons: list[tuple[str, str]] = []
    if files:
        persons = [(p.split, p.person.name) for split in F.SPLITS if split in files
                   for p in read_pairs(files[split], split, src_split_of(split)) if p.person is not None]
    elif layout == "cpvton":
        persons = [(s, n) for s in F.SPLITS if (root / s / F.IMAGE_DIR).is_dir()
                   for n in sorted(os.listdir(root / s / F.IMAGE_DIR)) if n.endswith("_0.jpg")]
    else:
        persons = [("", n) for n in sorted(os.listdir(root / F.RAW_IMAGE_DIR)) if n.endswith("_0.jpg")]
    seen: set[tuple[str, str]] = set()
    pairs = []
    for split, name in persons:
        if (split, name) not in seen:
            seen.add((split, name))
            pairs.append(_pair(f"{name} {own_cloth(name)}", split, src_split_of(split)))
    return pairs, False


# --- ingest ----------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _folder(src: Path, folder: str) -> str:
    """A source folder, checked once to lie inside SRC (names in it are plain file names, see `_pair`)."""
    return str(safe_join(src, folder))


def _read(src: Path, relative: str) -> bytes:
    """Bytes of ``SRC/relative``; a name that is not a plain file name is a ``path`` rejection (the check is lexical,
    as in `safe_join`: links an owner put inside SRC are followed), one that is no regular file or is too large a
    ``file`` rejection, refused before it is read (`io.read_data_file`)."""
    folder, _, name = relative.rpartition("/")
    try:
        if os.path.basename(name) != name or name in ("", ".", ".."):
            raise UnsafePathError(f"{relative!r} is not a plain file name")
        path = os.path.join(_folder(src, folder), name)
    except UnsafePathError as exc:
        raise Rejection("path", str(exc)) from None
    try:
        return read_data_file(path)
    except DataFileError as exc:
        raise Rejection("file", f"{relative} {exc.problem}") from None
    except FileNotFoundError:
        raise Rejection("missing", f"{relative} does not exist") from None
    except OSError as exc:
        raise Rejection("missing", f"{relative} cannot be read ({exc.strerror})") from None


def _cpvton_path(item: Item, folder: str, name: str) -> str:
    return f"{item.src_split}/{folder}/{name}"


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


def convert_segment(segment: np.ndarray, raw_height: int, raw_width: int) -> np.ndarray:
    """convert_data.m: transpose the 641x641 parse, crop it to the image aspect, nearest-resize to the raw size,
    then nearest-resize to 256x192."""
    seg = np.asarray(segment).T
    if raw_height > raw_width:
        seg = seg[:, : _matlab_round(F.RAW_PARSE_SIZE * raw_width / raw_height)]
    else:
        seg = seg[: _matlab_round(641.8 * raw_height / raw_width), :]  # sic: 641.8 in convert_data.m
    if seg.size == 0 or seg.min() < 0 or seg.max() > 255:
        raise Rejection("labels", "segment .mat holds no labels or labels outside 0..255")
    img = Image.fromarray(seg.astype(np.uint8), "L").resize((raw_width, raw_height), Image.Resampling.NEAREST)
    return np.asarray(img.resize(SIZE, Image.Resampling.NEAREST))


def cloth_mask_from_rgb(cloth: np.ndarray) -> np.ndarray:
    """convert_data.m: all channels <= 250, holes filled, 3x3 median filter (zero padding); uint8 0/255."""
    from scipy import ndimage

    mask = (cloth <= MASK_WHITE).all(axis=2)
    mask = ndimage.binary_fill_holes(mask)
    mask = ndimage.median_filter(mask.astype(np.uint8), size=3, mode="constant", cval=0)
    return mask * np.uint8(255)


def _resize_rgb(data: bytes, what: str) -> tuple[Image.Image, tuple[int, int]]:
    img = decode_image(data, what, ("RGB",), None)
    return img.resize(SIZE, Image.Resampling.BILINEAR), img.size


def shape_png(parse: np.ndarray) -> bytes:
    """The precomputed body shape as a PNG; zlib level 1 (2x faster than the default, ~35% larger files)."""
    return encode_image(Image.fromarray(shape_image(parse), "L"), "PNG", compress_level=1)


def _read_pose(src: Path, relative: str, loader: KeypointLoader) -> bytes | None:
    """The pose file; a missing one is a rejection only if the keypoint source needs it (see `pose.KeypointLoader`)."""
    try:
        return _read(src, relative)
    except Rejection as rej:
        if rej.stage == "missing" and not getattr(loader, "needs_pose_file", True):
            return None
        raise


def ingest_person(src: Path, layout: str, item: Item, keypoints: str | KeypointLoader = "dataset"
                  ) -> tuple[tuple[bytes, ...], np.ndarray]:
    """Validate one person and return (the bytes of `Item.files`, keypoints (18, 3)); raise `Rejection`."""
    loader = keypoint_loader(keypoints)
    if layout == "cpvton":
        image_bytes = _read(src, _cpvton_path(item, F.IMAGE_DIR, item.name))
        parse_bytes = _read(src, _cpvton_path(item, F.PARSE_DIR, F.parse_name(item.name)))
        pose_bytes = _read_pose(src, _cpvton_path(item, F.POSE_DIR, F.pose_name(item.name)), loader)
        image = decode_image(image_bytes, "person image", ("RGB",), SIZE,
                             check_only=not getattr(loader, "needs_image", True))
        parse = np.asarray(decode_image(parse_bytes, "parse", ("P", "L"), SIZE))
    else:
        stem = item.name[: -len(".jpg")]
        raw_image = _read(src, f"{F.RAW_IMAGE_DIR}/{item.name}")
        raw_segment = _read(src, f"{F.RAW_SEGMENT_DIR}/{stem}.mat")
        raw_pose = _read(src, f"{F.RAW_POSE_DIR}/{stem}.mat")
        image, (raw_w, raw_h) = _resize_rgb(raw_image, "person image")
        image_bytes = encode_image(image, "JPEG")
        segment = _load_mat(raw_segment, "segment")
        arrays = [v for k, v in segment.items() if not k.startswith("__") and isinstance(v, np.ndarray)]
        if len(arrays) != 1 or arrays[0].ndim != 2:
            raise Rejection("labels", "segment .mat does not hold exactly one 2-D label array")
        parse = convert_segment(arrays[0], raw_h, raw_w)
        parse_bytes = encode_image(F.palette_image(parse), "PNG")
        pose = _load_mat(raw_pose, "pose")
        if "subset" not in pose or "candidate" not in pose:
            raise Rejection("keypoints", "pose .mat lacks subset/candidate")
        try:
            kps = keypoints_from_mat(pose["subset"], pose["candidate"], raw_w, raw_h, *SIZE)
        except KeypointError as exc:
            raise Rejection("keypoints", str(exc)) from None
        pose_bytes = pose_json(kps)
    check_parse(parse)
    try:
        kps = loader(pose_bytes, image)
    except KeypointError as exc:
        raise Rejection("keypoints", str(exc)) from None
    if keypoints != "dataset":
        pose_bytes = pose_json(kps)
    return (image_bytes, parse_bytes, pose_bytes, shape_png(parse)), kps


def ingest_cloth(src: Path, layout: str, item: Item) -> tuple[bytes, ...]:
    """Validate one cloth and return the bytes of `Item.files`; raise `Rejection`."""
    if layout == "cpvton":
        cloth_bytes = _read(src, _cpvton_path(item, F.CLOTH_DIR, item.name))
        mask_bytes = _read(src, _cpvton_path(item, F.CLOTH_MASK_DIR, item.name))
        decode_image(cloth_bytes, "cloth", ("RGB",), SIZE, check_only=True)
        mask = np.asarray(decode_image(mask_bytes, "cloth mask", ("L",), SIZE))
    else:
        cloth, _ = _resize_rgb(_read(src, f"{F.RAW_IMAGE_DIR}/{item.name}"), "cloth")
        cloth_bytes = encode_image(cloth, "JPEG")
        mask = cloth_mask_from_rgb(np.asarray(cloth))
        mask_bytes = encode_image(Image.fromarray(mask, "L"), "JPEG")
    check_mask(mask)
    return cloth_bytes, mask_bytes

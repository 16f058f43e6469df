"""VITON-HD's ``zalando-hd-resized`` tree (shadow2496/VITON-HD, sangyun884/HR-VITON): ``{train,test}/`` with ``image/``
and ``cloth/`` (RGB JPEG 768x1024, person and cloth both ``{id}_00.jpg``), ``cloth-mask/`` (L JPEG),
``image-parse-v3/`` (P PNG, CIHP-20 indices), ``openpose_json/`` (OpenPose BODY_25), and ``train_pairs.txt`` /
``test_pairs.txt`` (the unpaired setting) at the root. The VITON-HD repository's own sample tree (``image-parse/``,
``openpose-json/``, hyphens) is read too, never written.

Ingest brings a pair to the prepared CP-VTON dataset at the requested size (192x256 by default, as HR-VITON's 256x192
loader sees it, ``cp_dataset.py``; also 384x512 and the native 768x1024): images BILINEAR, parse and mask NEAREST,
keypoints mapped to OpenPose-18 and scaled by width / 768 and height / 1024.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.io import encode_image
from vton.pipelines.cleaning import Rejection, check_mask, decode_image
from vton.pipelines.keypoints.schema import (
    BODY_25,
    BODY_25_AGNOSTIC_JOINTS,
    KeypointError,
    KeypointLoader,
    keypoint_loader,
    parse_body25_json,
    pose_json,
)
from vton.pipelines.layouts.base import ClothFiles, Item, Layout, PersonFiles, folder_images, image_files
from vton.pipelines.layouts.files import finish_person, read

MASK_THRESHOLD = 128  # VITON-HD and HR-VITON: cloth-mask >= 128 after the NEAREST resize
# (parse folder, pose folder) of the official tree and of the VITON-HD repository's sample tree
_OFFICIAL = (fm.HD_PARSE_DIR, fm.HD_POSE_DIR)
_SAMPLE = (fm.HD_SAMPLE_PARSE_DIR, fm.HD_SAMPLE_POSE_DIR)


def _has(root: Path, folders: tuple[str, str]) -> bool:
    return any(all((root / split / folder).is_dir() for folder in folders) for split in fm.SPLITS)


def resize_rgb(data: bytes, what: str, size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> Image.Image:
    """A 768x1024 RGB JPEG at ``size_hw``. HR-VITON's loader at 256x192 applies torchvision ``Resize(192)`` with
    interpolation 2, which on a PIL image is ``Image.resize`` BILINEAR: Pillow's resampling filters are antialiased
    (the kernel widens with the reduction factor), so this is exactly that (at 1024x768 Pillow returns a copy)."""
    img = decode_image(data, what, ("RGB",), fm.HD_SIZE_WH)
    return img.resize(size_hw[::-1], Image.Resampling.BILINEAR)


def parse_labels(data: bytes, labels: fm.LabelSpace = fm.CIHP) -> Image.Image:
    """The parse (CIHP; DressCode's ATR label map), checked: a palette (P) image of 768x1024 whose indices are labels
    of ``labels`` (0..19 for CIHP). The loaders read the
    indices of the P image (``np.array`` after a NEAREST resize); an RGB or L parse would give them colours or greys,
    so it is refused rather than guessed."""
    try:
        img = decode_image(data, "parse", ("P",), fm.HD_SIZE_WH)
    except Rejection as rej:
        if rej.stage == "labels":  # decode_image's mode check
            raise Rejection("labels", f"parse is not a palette (P) image ({rej.reason})") from None
        raise
    if int(np.asarray(img).max()) >= len(labels.labels):  # at full size: the resize may drop a few pixels
        raise Rejection("labels", f"parse holds labels outside 0..{len(labels.labels) - 1}")
    return img


def body25_keypoints(data: bytes, size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> np.ndarray:
    """The BODY_25 joints of an ``openpose_json`` file as OpenPose-18 (18, 3) in the pixels of ``size_hw``. A person
    without any of joints 1, 2, 5, 9, 12 (neck, shoulders, hips: missing = x and y both 0, the loaders' test) is
    refused: VITON-HD's agnostics need them (HR-VITON's ``get_agnostic`` divides by the hip width)."""
    try:
        body = parse_body25_json(data)
    except KeypointError as exc:
        raise Rejection("keypoints", str(exc)) from None
    missing = [j for j in BODY_25_AGNOSTIC_JOINTS if body[j, 0] == 0 and body[j, 1] == 0]
    if missing:
        names = ", ".join(f"{j} ({BODY_25.joints[j]})" for j in missing)
        raise Rejection("keypoints", f"BODY_25 joint {names} missing; VITON-HD's agnostic needs joints "
                                     f"{', '.join(map(str, BODY_25_AGNOSTIC_JOINTS))}")
    kps = BODY_25.to_openpose18(body)
    kps[:, 0] *= size_hw[1] / fm.HD_WIDTH
    kps[:, 1] *= size_hw[0] / fm.HD_HEIGHT
    return kps


class VitonHdLayout(Layout):
    name = "viton-hd"
    summary = "VITON-HD's zalando-hd-resized tree (768x1024, CIHP parse, BODY_25 openpose_json)"
    marker = (f"{'/'.join(fm.SPLITS)}/{fm.HD_PARSE_DIR}/ and {fm.HD_POSE_DIR}/ (or the VITON-HD repository's "
              f"{fm.HD_SAMPLE_PARSE_DIR}/ and {fm.HD_SAMPLE_POSE_DIR}/)")
    native_size_hw = fm.HD_SIZE_HW
    labels = fm.CIHP
    keypoints = BODY_25
    pairs_names = {"train": fm.HD_TRAIN_PAIRS, "unpaired": fm.HD_TEST_PAIRS}  # paired: each test person's own cloth
    split_folders = True

    def detect(self, root: Path) -> bool:
        return _has(root, _OFFICIAL) or _has(root, _SAMPLE)

    def own_cloth(self, person: str) -> str:
        """A person's own cloth has the person's name (``cloth/00067_00.jpg``)."""
        return person

    def person_files(self, split: str, name: str) -> PersonFiles:
        """The official tree's files (what synth writes); `source_person_files` resolves the sample tree's."""
        return self._person_files(split, name, _OFFICIAL)

    def source_person_files(self, root: Path, split: str, name: str) -> PersonFiles:
        """The person's files under ``root``: the sample tree's folders where the split has them and not the official
        ones."""
        official = (root / split / fm.HD_PARSE_DIR).is_dir() or not (root / split / fm.HD_SAMPLE_PARSE_DIR).is_dir()
        return self._person_files(split, name, _OFFICIAL if official else _SAMPLE)

    def person_parse(self, root: Path, split: str, name: str) -> np.ndarray:
        """The CIHP labels at 1024x768, checked as ingest checks them (`parse_labels`), from either tree."""
        return np.asarray(parse_labels(read(root, self.source_person_files(root, split, name).parse)))

    @staticmethod
    def _person_files(split: str, name: str, folders: tuple[str, str]) -> PersonFiles:
        parse_dir, pose_dir = folders
        return PersonFiles(f"{split}/{fm.HD_IMAGE_DIR}/{name}", f"{split}/{parse_dir}/{fm.parse_name(name)}",
                           f"{split}/{pose_dir}/{fm.hd_pose_name(name)}")

    def cloth_files(self, split: str, name: str) -> ClothFiles:
        return ClothFiles(f"{split}/{fm.HD_CLOTH_DIR}/{name}", f"{split}/{fm.HD_CLOTH_MASK_DIR}/{name}")

    def folder_persons(self, root: Path) -> list[tuple[str, str]]:
        return folder_images(root, fm.SPLITS, fm.HD_IMAGE_DIR, ".jpg")

    def test_cloths(self, root: Path) -> list[Path]:
        return image_files(Path(root) / "test" / fm.HD_CLOTH_DIR)

    def ingest_person(self, root: Path, item: Item, keypoints: str | KeypointLoader = "dataset",
                      size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[tuple[bytes, ...], np.ndarray]:
        loader = keypoint_loader(keypoints)
        files = self.source_person_files(root, item.src_split, item.name)
        raw_image, raw_parse, raw_pose = read(root, files.image), read(root, files.parse), read(root, files.pose)
        image = resize_rgb(raw_image, "person image", size_hw)
        parse = np.asarray(parse_labels(raw_parse).resize(size_hw[::-1], Image.Resampling.NEAREST))
        kps = body25_keypoints(raw_pose, size_hw)
        data = (encode_image(image, "JPEG"), encode_image(fm.palette_image(parse), "PNG"), pose_json(kps))
        return finish_person(image, parse, data, keypoints, loader, self.labels)

    def ingest_cloth(self, root: Path, item: Item, size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[bytes, ...]:
        files = self.cloth_files(item.src_split, item.name)
        raw_cloth, raw_mask = read(root, files.cloth), read(root, files.mask)
        cloth = resize_rgb(raw_cloth, "cloth", size_hw)
        small = decode_image(raw_mask, "cloth mask", ("L",), fm.HD_SIZE_WH).resize(size_hw[::-1],
                                                                                  Image.Resampling.NEAREST)
        mask = np.where(np.asarray(small) >= MASK_THRESHOLD, 255, 0).astype(np.uint8)
        check_mask(mask)
        return encode_image(cloth, "JPEG"), encode_image(Image.fromarray(mask, "L"), "JPEG")


VITON_HD = VitonHdLayout()

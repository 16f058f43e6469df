"""File formats and label conventions of VITON / CP-VTON, defined once for every stage.

Facts from the reference code (sergeywong/cp-vton ``cp_dataset.py``, ``test.py``) and the LIP dataset.
"""
from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# --- sizes (a pair of sizes says its order in its name: _HW numpy's, _WH PIL's) ----------------
FINE_HEIGHT: Final = 256
FINE_WIDTH: Final = 192
FINE_SIZE_HW: Final = (FINE_HEIGHT, FINE_WIDTH)
FINE_SIZE_WH: Final = (FINE_WIDTH, FINE_HEIGHT)
RAW_HEIGHT: Final = 1100  # original VITON women_top images
RAW_WIDTH: Final = 762
RAW_SIZE_HW: Final = (RAW_HEIGHT, RAW_WIDTH)
RAW_PARSE_SIZE: Final = 641  # original VITON segment/*.mat, square and padded
POSE_RADIUS: Final = 5  # train.py / test.py default: 11x11 squares

# --- LIP human parsing (20 labels) -------------------------------------------------------------
LIP_LABELS: Final = (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks",
    "Pants", "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg",
    "Left-shoe", "Right-shoe",
)
LIP_PALETTE: Final = (
    (0, 0, 0), (128, 0, 0), (255, 0, 0), (0, 85, 0), (170, 0, 51), (255, 85, 0), (0, 0, 85),
    (0, 119, 221), (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 255),
    (51, 170, 221), (0, 255, 255), (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0),
)
NUM_LABELS: Final = len(LIP_LABELS)
LABEL = {name: i for i, name in enumerate(LIP_LABELS)}
HEAD_LABELS: Final = (1, 2, 4, 13)  # reserved region kept by CP-VTON: hat, hair, sunglasses, face
CLOTH_LABELS: Final = (5, 6, 7)  # upper clothes, dress, coat: the GMM target region


@dataclass(frozen=True)
class LabelSpace:
    """A human parser's labels mapped to the groups CP-VTON's representation needs: the reserved head, the worn cloth
    (the GMM target) and the background (the body shape is every other label). Another parser (CIHP for VITON-HD,
    ATR for DressCode) is one more instance, data only."""
    name: str
    labels: tuple[str, ...]
    head: tuple[int, ...]
    cloth: tuple[int, ...]
    background: int = 0
    # a layout whose garment label depends on the pair's category (DressCode): category -> its cloth labels; `cloth`
    # is then their union (what is read without a category)
    cloth_by_category: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def for_category(self, category: str) -> LabelSpace:
        """This space with the cloth labels of ``category`` (a ValueError for a category it does not know)."""
        known = dict(self.cloth_by_category)
        if category not in known:
            raise ValueError(f"the {self.name} labels know no category {category!r}; known: {', '.join(known)}")
        return LabelSpace(self.name, self.labels, self.head, known[category], self.background, self.cloth_by_category)


LIP: Final = LabelSpace("LIP", LIP_LABELS, HEAD_LABELS, CLOTH_LABELS)


def palette_bytes() -> list[int]:
    """The LIP palette flattened for ``PIL.Image.putpalette`` (padded to 256 entries)."""
    flat = [c for rgb in LIP_PALETTE for c in rgb]
    return flat + [0] * (768 - len(flat))


def grey_padded_palette(colours: Sequence[tuple[int, int, int]]) -> list[int]:
    """A full 256-entry palette flattened for ``PIL.Image.putpalette``: ``colours``, then (i, i, i) for every later
    entry i, as VITON-HD's and DressCode's parse files hold it."""
    return [c for rgb in colours for c in rgb] + [i for i in range(len(colours), 256) for _ in range(3)]


def palette_image(labels: np.ndarray, palette: list[int] | None = None) -> Image.Image:
    """A label map as an 8-bit palette image, pixel values = label ids; ``palette`` flattened (default: the LIP
    colours VITON stores, `palette_bytes`)."""
    from PIL import Image

    image = Image.fromarray(labels.astype("uint8"), "P")
    image.putpalette(palette_bytes() if palette is None else palette)
    return image


# --- OpenPose COCO-18 keypoints ----------------------------------------------------------------
OPENPOSE18: Final = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NUM_JOINTS: Final = len(OPENPOSE18)

# --- CP-VTON dataset layout ("viton_resize") ---------------------------------------------------
SPLITS: Final = ("train", "test")
IMAGE_DIR: Final = "image"
CLOTH_DIR: Final = "cloth"
CLOTH_MASK_DIR: Final = "cloth-mask"
PARSE_DIR: Final = "image-parse"
POSE_DIR: Final = "pose"
SOURCE_DIRS: Final = (IMAGE_DIR, CLOTH_DIR, CLOTH_MASK_DIR, PARSE_DIR, POSE_DIR)
TRAIN_PAIRS: Final = "train_pairs.txt"
TEST_PAIRS: Final = "test_pairs.txt"
TEST_PAIRS_SAME: Final = "test_pairs_same.txt"
# `vton prepare --clean-test`: the test lists without the test pairs whose person or cloth has a near copy in train
CLEAN_TEST_FILES: Final = {TEST_PAIRS: "test_pairs_clean.txt", TEST_PAIRS_SAME: "test_pairs_same_clean.txt"}
PAIRS_FILES: Final = {"train": TRAIN_PAIRS, "test": TEST_PAIRS}

# --- original VITON raw layout ------------------------------------------------------------------
RAW_IMAGE_DIR: Final = "women_top"
RAW_SEGMENT_DIR: Final = "segment"
RAW_POSE_DIR: Final = "pose"
RAW_TRAIN_PAIRS: Final = "viton_train_pairs.txt"
RAW_TEST_PAIRS: Final = "viton_test_pairs.txt"

# --- VITON-HD ("zalando-hd-resized", shadow2496/VITON-HD and sangyun884/HR-VITON's loaders) ----------------
HD_HEIGHT: Final = 1024
HD_WIDTH: Final = 768
HD_SIZE_HW: Final = (HD_HEIGHT, HD_WIDTH)
HD_SIZE_WH: Final = (HD_WIDTH, HD_HEIGHT)
HD_ID_DIGITS: Final = 5  # 00000-14684 with gaps; person and cloth share the name {id}_00.jpg
HD_IMAGE_DIR: Final = "image"  # RGB JPEG 768x1024, quality 95, 4:2:0, {5 digits}_00.jpg
HD_CLOTH_DIR: Final = "cloth"
HD_CLOTH_MASK_DIR: Final = "cloth-mask"  # L JPEG, same name as the cloth
HD_PARSE_DIR: Final = "image-parse-v3"  # P PNG, CIHP-20 indices, the 256-entry palette `HD_PALETTE`
HD_PARSE_AGNOSTIC_DIR: Final = "image-parse-agnostic-v3.2"
HD_AGNOSTIC_DIR: Final = "agnostic-v3.2"
HD_DENSEPOSE_DIR: Final = "image-densepose"
HD_POSE_IMG_DIR: Final = "openpose_img"  # {id}_00_rendered.png
HD_POSE_DIR: Final = "openpose_json"  # {id}_00_keypoints.json, BODY_25
HD_TRAIN_PAIRS: Final = "train_pairs.txt"
HD_TEST_PAIRS: Final = "test_pairs.txt"  # the unpaired setting; paired = each test person with its own cloth
# the VITON-HD repository's own sample tree: hyphens, image-parse without -v3
HD_SAMPLE_PARSE_DIR: Final = "image-parse"
HD_SAMPLE_POSE_IMG_DIR: Final = "openpose-img"
HD_SAMPLE_POSE_DIR: Final = "openpose-json"
HD_OFFICIAL_TRAIN_PAIRS: Final = 11_647
HD_OFFICIAL_TEST_PAIRS: Final = 2_032

# --- the sizes `vton prepare --size` writes: CP-VTON's, twice it, and VITON-HD's own (same 4:3 aspect) ---------------
PREPARE_SIZES_HW: Final = (FINE_SIZE_HW, (2 * FINE_HEIGHT, 2 * FINE_WIDTH), HD_SIZE_HW)


def size_text(size_hw: Sequence[int]) -> str:
    """(H, W) -> ``"HxW"``, the spelling of ``--size`` and of prepare.json."""
    return "x".join(str(v) for v in size_hw)


def prepare_size(size_hw: Sequence[int] | str) -> tuple[int, int]:
    """(H, W) or ``"HxW"`` -> (H, W), one of `PREPARE_SIZES_HW`; a ValueError naming the allowed sizes otherwise."""
    size: tuple[int, ...] | None = tuple(size_hw) if not isinstance(size_hw, str) else None
    if isinstance(size_hw, str):
        height, sep, width = size_hw.strip().lower().partition("x")
        size = (int(height), int(width)) if sep and height.isdigit() and width.isdigit() else None
    if size not in PREPARE_SIZES_HW:
        shown = size_hw if isinstance(size_hw, str) else size_text(size_hw)
        raise ValueError(f"size {shown!r} is not supported; allowed (HxW): "
                         f"{', '.join(size_text(s) for s in PREPARE_SIZES_HW)}")
    return size  # type: ignore[return-value]

# --- CIHP human parsing (20 labels; VITON-HD's image-parse-v3) -----------------------------------------------
CIHP_LABELS: Final = (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants",
    "Torso-skin", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
    "Right-shoe",
)
# VITON-HD's parse palette (= HR-VITON's visualize_segmap, the rounded LIP colormap); entries 20-255 are (i, i, i)
HD_PALETTE: Final = (
    (0, 0, 0), (128, 0, 0), (254, 0, 0), (0, 85, 0), (169, 0, 51), (254, 85, 0), (0, 0, 85), (0, 119, 220),
    (85, 85, 0), (0, 85, 85), (85, 51, 0), (52, 86, 128), (0, 128, 0), (0, 0, 254), (51, 169, 220), (0, 254, 254),
    (85, 254, 169), (169, 254, 85), (254, 254, 0), (254, 169, 0),
)
# Every label CP-VTON's representation reads (head, cloth, body = label > 0) has the same index as in LIP; only 10
# differs (CIHP's neck skin, LIP's jumpsuit), which the representation counts as body in both.
CIHP: Final = LabelSpace("CIHP", CIHP_LABELS, HEAD_LABELS, CLOTH_LABELS)


# image-densepose/: DensePose part index I (1-24) as uint8(I * 255 / 24) through cv2.COLORMAP_PARULA, background black
# (yisol/IDM-VTON gradio_demo/apply_net.py and densepose/vis); entry I - 1 is part I's colour
HD_DENSEPOSE_COLORS: Final = (
    (37, 60, 163), (20, 80, 194), (4, 97, 223), (8, 110, 221), (14, 122, 216), (20, 132, 212), (15, 144, 208),
    (11, 156, 203), (6, 166, 198), (22, 173, 185), (38, 179, 172), (55, 185, 159), (86, 187, 144), (114, 189, 130),
    (145, 191, 116), (170, 189, 105), (192, 188, 96), (216, 186, 86), (228, 192, 74), (240, 199, 60), (252, 206, 46),
    (251, 220, 36), (250, 235, 25), (249, 251, 14),
)


def hd_name(pid: str) -> str:
    """``00067`` -> ``00067_00.jpg``: a VITON-HD person and their cloth have the same name (in image/ and cloth/)."""
    return f"{pid}_00.jpg"


def hd_pose_name(image_name: str) -> str:
    """``00067_00.jpg`` -> ``00067_00_keypoints.json``."""
    return image_name.replace(".jpg", "_keypoints.json")


def hd_pose_img_name(image_name: str) -> str:
    """``00067_00.jpg`` -> ``00067_00_rendered.png``."""
    return image_name.replace(".jpg", "_rendered.png")


# --- DressCode (aimagelab/dress-code data/dataset.py, its readme.txt; miccunifi/ladi-vton src/dataset/dresscode.py) --
DC_CATEGORIES: Final = ("upper_body", "lower_body", "dresses")  # root pairs files' 3rd column: the index here
DC_IMAGE_DIR: Final = "images"  # {id}_0.jpg model, {id}_1.jpg garment: RGB JPEG 768x1024
DC_KEYPOINT_DIR: Final = "keypoints"  # {id}_2.json, OpenPose-18 in a 384x512 frame
DC_LABEL_DIR: Final = "label_maps"  # {id}_4.png, P PNG, ATR-18 indices
DC_SKELETON_DIR: Final = "skeletons"  # {id}_5.jpg
DC_DENSE_DIR: Final = "dense"  # {id}_5.png (L, DensePose part index), {id}_5_uv.npz (key uv, 2 x H x W float32)
DC_TRAIN_PAIRS: Final = "train_pairs.txt"  # root: 3 TAB-separated columns; per category: 2
DC_TEST_PAIRS_PAIRED: Final = "test_pairs_paired.txt"
DC_TEST_PAIRS_UNPAIRED: Final = "test_pairs_unpaired.txt"
DC_POSE_SIZE_WH: Final = (384, 512)  # the keypoints' frame
DC_ID_DIGITS: Final = 6
ATR_LABELS: Final = (
    "background", "hat", "hair", "sunglasses", "upper_clothes", "skirt", "pants", "dress", "belt", "left_shoe",
    "right_shoe", "head", "left_leg", "right_leg", "left_arm", "right_arm", "bag", "scarf",
)
# label_maps palette 0-17 (SCHP's get_palette(18), the VOC colour map); entries 18-255 are (i, i, i)
ATR_PALETTE: Final = (
    (0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128), (128, 128, 128),
    (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128), (192, 0, 128), (64, 128, 128),
    (192, 128, 128), (0, 64, 0), (128, 64, 0),
)
# The garment of each category. Skirts (5) count as lower_body cloth with pants (6): CP-VTON's GMM target is the worn
# garment, and lower_body garments include skirts (dress-code's and LaDI-VTON's loaders take 6 only).
DC_CLOTH_LABELS: Final = (("upper_body", (4,)), ("lower_body", (5, 6)), ("dresses", (7,)))
DC_SKIRT_RULE: Final = "skirt (5) counts as lower_body cloth with pants (6)"
ATR: Final = LabelSpace("ATR", ATR_LABELS, (1, 2, 3, 11), (4, 5, 6, 7), 0, DC_CLOTH_LABELS)


LABEL_SPACES: Final = {space.name: space for space in (LIP, CIHP, ATR)}  # by the name prepare.json records


def dc_name(pid: str, suffix: int, ext: str) -> str:
    """``("048392", 4, "png")`` -> ``048392_4.png``: DressCode's files of id ``pid`` differ by suffix (0 model,
    1 garment, 2 keypoints, 4 label map, 5 skeleton and dense)."""
    return f"{pid}_{suffix}.{ext}"


def dc_id(name: str) -> str:
    """``048392_0.jpg`` -> ``048392``."""
    return name.split("_")[0]


# --- results of inference (names of the original test.py) --------------------------------------
WARP_CLOTH_DIR: Final = "warp-cloth"
WARP_MASK_DIR: Final = "warp-mask"
TRYON_DIR: Final = "try-on"
RENDERED_DIR: Final = "p_rendered"
COMPOSITE_MASK_DIR: Final = "m_composite"
# What `vton infer` writes beside the images: the settings and weights that made them, and one row per pair (a CSV,
# unlike the prepared dataset's manifest.parquet).
INFER_RECORD_FILE: Final = "infer.json"
INFER_MANIFEST_FILE: Final = "manifest.csv"

IMAGE_SUFFIXES: Final = (".png", ".jpg", ".jpeg")  # image files we read, e.g. another method's results

OFFICIAL_TRAIN_PAIRS: Final = 14_221
OFFICIAL_TEST_PAIRS: Final = 2_032


def person_name(pid: str) -> str:
    return f"{pid}_0.jpg"


def cloth_name(pid: str) -> str:
    return f"{pid}_1.jpg"


def parse_name(image_name: str) -> str:
    """``000001_0.jpg`` -> ``000001_0.png`` as the reference loader derives it."""
    return image_name.replace(".jpg", ".png")


def pose_name(image_name: str) -> str:
    """``000001_0.jpg`` -> ``000001_0_keypoints.json`` as the reference loader derives it, for any image suffix."""
    stem = image_name.rsplit(".", 1)[0] if "." in image_name else image_name
    return f"{stem}_keypoints.json"

# --- prepared dataset (what `vton prepare` writes on top of the CP-VTON layout) -------------------
SHAPE_DIR: Final = "shape"  # uint8 'L' PNG of the blurred body shape, one per person (<ID>_0.png)
MANIFEST_FILE: Final = "manifest.parquet"
REJECTED_FILE: Final = "rejected.csv"
PREPARE_FILE: Final = "prepare.json"
SAMPLES_DIR: Final = "samples"

# --- evaluation run (what `vton evaluate` writes; the reports and the AMT export read it) ---------
METRICS_FILE: Final = "metrics.parquet"
SUMMARY_FILE: Final = "summary.json"
METRIC_COLUMNS: Final = ("setting", "person", "cloth", "metric", "value", "large", "small", "protocol", "category")


def shape_name(image_name: str) -> str:
    """``000001_0.jpg`` -> ``000001_0.png`` (the precomputed body shape)."""
    return parse_name(image_name)


def pairs_text(pairs: Iterable[Sequence[str]]) -> str:
    """The text of a pairs file: ``<person> <cloth>`` per line."""
    return "".join(f"{person} {cloth}\n" for person, cloth in pairs)


def pairs_lines(data: bytes, errors: str = "strict") -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of each non-blank line of a pairs file's bytes: the one reader of pairs files.
    ``errors="surrogateescape"`` keeps bytes that are not UTF-8 (as surrogates) for a caller that rejects the line
    rather than the file."""
    for n, line in enumerate(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors=errors), 1):
        if line.strip():
            yield n, line.strip()


CATEGORY_CODES: Final = tuple(str(i) for i in range(len(DC_CATEGORIES)))


def category_order(categories: dict[str, str]) -> list[str]:
    """The garment categories of ``categories`` (person -> category), in order of their first person by name: the
    same for a released tree and its prepared copy (DressCode's ID ranges give upper_body, lower_body, dresses)."""
    return list(dict.fromkeys(categories[p] for p in sorted(categories)))


def read_pairs(path: str | os.PathLike, unique_persons: bool = False) -> list[tuple[str, str]]:
    """A pairs file: ``<person> <cloth>`` per line, split on any whitespace (DressCode's are TAB-separated; its root
    files add a third column, the category code, accepted and dropped); blank lines skipped; a malformed line is an
    error naming it.
    A file that is no regular file or is huge is refused unread (`io.read_data_file`).

    ``unique_persons``: refuse a person listed twice, where outputs are named by the person.
    """
    from vton.core.io import read_data_file  # core.io imports this module

    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for n, line in pairs_lines(read_data_file(path)):
        parts = line.split()
        if len(parts) == 3 and parts[2] in CATEGORY_CODES:
            parts = parts[:2]
        if len(parts) != 2:
            raise ValueError(f"{path}:{n}: expected '<person> <cloth>', got {line!r}")
        if unique_persons and parts[0] in seen:
            raise ValueError(f"{path}:{n}: person {parts[0]} listed twice; try-on files are named by person")
        seen.add(parts[0])
        pairs.append((parts[0], parts[1]))
    return pairs

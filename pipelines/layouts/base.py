"""A dataset layout is an adapter: `Layout` is its one small interface, and prepare, the Dataset, synth and evaluate
ask it instead of testing a layout's name.

An *item* is one person (image, parse, pose, + the precomputed shape) or one cloth (cloth, cloth mask) of a pair.
An adapter detects its root, lists the pairs of each list (train, paired test, unpaired test), names each item's
files, ingests an item into the bytes the prepared dataset holds for it (the CP-VTON layout), reads a person's parse
as labels at its own size (what evaluation scores against), and states its native size, its label space
(`formats.LabelSpace`) and its keypoint schema (`keypoints.schema.KeypointSchema`).
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from vton.core import formats as fm
from vton.core.io import read_data_file
from vton.pipelines.cleaning import decode_image
from vton.pipelines.keypoints.schema import KeypointLoader, KeypointSchema
from vton.pipelines.layouts.files import read

PERSON = "person"
CLOTH = "cloth"
PAIR_LISTS = ("train", "paired", "unpaired")  # the train pairs; test persons with their own / with other cloths
SPLIT_LIST = {"train": "train", "test": "unpaired"}  # the list whose lines are each split's pairs
TEST_LISTS = ("paired", "unpaired")
LABEL_IMAGE_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N")  # one channel of label indices


@dataclass(frozen=True, slots=True)
class Item:
    """One side of a pair; ``src_split`` is the source folder (``""`` for a layout without split folders)."""
    kind: str
    name: str
    src_split: str

    def files(self) -> tuple[tuple[str, str], ...]:
        """(folder, file name) of every file the prepared dataset holds for this item, in a fixed order."""
        if self.kind == PERSON:
            return ((fm.IMAGE_DIR, self.name), (fm.PARSE_DIR, fm.parse_name(self.name)),
                    (fm.POSE_DIR, fm.pose_name(self.name)), (fm.SHAPE_DIR, fm.shape_name(self.name)))
        return ((fm.CLOTH_DIR, self.name), (fm.CLOTH_MASK_DIR, self.name))


@dataclass(frozen=True, slots=True)
class Pair:
    """A line of a pairs file (or a person with its own cloth); ``problem`` is a rejection found at discovery."""
    line: str
    split: str
    person: Item | None
    cloth: Item | None
    problem: tuple[str, str] | None = None


class PersonFiles(NamedTuple):
    """A person's files, relative to the layout's root; ``shape`` is None where the layout has no shape folder."""
    image: str
    parse: str
    pose: str
    shape: str | None = None


class ClothFiles(NamedTuple):
    """A cloth's files, relative to the layout's root; ``mask`` is None where the layout computes it."""
    cloth: str
    mask: str | None


def pair_of_line(line: str, split: str, src_split: str) -> Pair:
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


def listed_pairs(path: Path, split: str, src_split: str) -> list[Pair]:
    """The pairs of a pairs file, each line judged alone (`pair_of_line`); a file that is no regular file or is huge
    is an error (`io.read_data_file`)."""
    return [pair_of_line(line, split, src_split) for _, line in fm.pairs_lines(read_data_file(path), "surrogateescape")]


def folder_images(root: Path, folders: tuple[str, ...], image_dir: str, ending: str) -> list[tuple[str, str]]:
    """(folder, name) of every file ending in ``ending`` in each folder's ``image_dir``, by name within a folder; a
    folder without one gives none. The `Layout.folder_persons` of the layouts with a folder per split or category."""
    return [(f, n) for f in folders if (root / f / image_dir).is_dir()
            for n in sorted(os.listdir(root / f / image_dir)) if n.endswith(ending)]


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder``, sorted; none when it is absent."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in fm.IMAGE_SUFFIXES) if folder.is_dir() else []


def own_cloth(person: str) -> str:
    """``000001_0.jpg`` -> ``000001_1.jpg``."""
    stem = person[: -len("_0.jpg")] if person.endswith("_0.jpg") else person[: -len(".jpg")]
    return fm.cloth_name(stem)


@dataclass(frozen=True)
class PersonLabels:
    """The label space of each person's parse, by person name: ``by_person``'s where it names one (DressCode's cloth
    by category), else ``default``; a plain picklable object, as the Dataset's worker processes need. ``missing``:
    when set, a name ``by_person`` lacks is an error with that text instead of ``default``."""
    default: fm.LabelSpace
    by_person: Mapping[str, fm.LabelSpace] = field(default_factory=dict)
    missing: str = ""

    def __call__(self, person: str) -> fm.LabelSpace:
        if person in self.by_person:
            return self.by_person[person]
        if self.missing:
            raise ValueError(f"{self.missing} {person}")
        return self.default


class Layout(ABC):
    """A dataset layout. Adapters are stateless; the registry (`vton.pipelines.layouts`) holds one of each."""

    name: ClassVar[str]  # the --layout choice, recorded in prepare.json
    summary: ClassVar[str]  # one line for --help
    marker: ClassVar[str]  # what `detect` looks for, for the refusal of an unknown tree
    native_size_hw: ClassVar[tuple[int, int]]  # (height, width) of its person images
    resizes: ClassVar[bool] = True  # ingest resizes to any size up to the source's (else: copies, at its one size)
    labels: ClassVar[fm.LabelSpace]
    keypoints: ClassVar[KeypointSchema]
    pairs_names: ClassVar[Mapping[str, str]]  # a name in PAIR_LISTS -> its file in the root (only those it has)
    split_folders: ClassVar[bool]  # items lie in a folder per split (else all in one, and src_split is "")
    # garment categories, each a folder of its items (DressCode): there, an item's src_split is its category
    categories: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def detect(self, root: Path) -> bool:
        """Whether ``root`` holds this layout."""

    @abstractmethod
    def person_files(self, split: str, name: str) -> PersonFiles:
        """The files of person ``name`` of ``split`` (its source folder), relative to the root."""

    @abstractmethod
    def cloth_files(self, split: str, name: str) -> ClothFiles:
        """The files of cloth ``name`` of ``split``, relative to the root."""

    @abstractmethod
    def folder_persons(self, root: Path) -> list[tuple[str, str]]:
        """(source split, person name) of every person in the image folders, for a root without pairs files."""

    @abstractmethod
    def test_cloths(self, root: Path) -> list[Path]:
        """The in-shop cloth images of the test split, sorted (evaluation's cloth set)."""

    @abstractmethod
    def ingest_person(self, root: Path, item: Item, keypoints: str | KeypointLoader = "dataset",
                      size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[tuple[bytes, ...], np.ndarray]:
        """Validate one person and return (the bytes of `Item.files` at ``size_hw``, keypoints (18, 3) in its pixels);
        raise `Rejection`."""

    @abstractmethod
    def ingest_cloth(self, root: Path, item: Item, size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> tuple[bytes, ...]:
        """Validate one cloth and return the bytes of `Item.files` at ``size_hw``; raise `Rejection`."""

    def source_size_hw(self, root: Path) -> tuple[int, int]:
        """(height, width) of the person images under ``root``: the layout's native size unless it varies by tree."""
        return self.native_size_hw

    def src_split(self, split: str) -> str:
        return split if self.split_folders else ""

    def own_cloth(self, person: str) -> str:
        """The name of the cloth person ``person`` wears (the paired test setting); VITON's ``<ID>_0.jpg`` ->
        ``<ID>_1.jpg``."""
        return own_cloth(person)

    def pairs_file(self, root: Path, which: str) -> Path | None:
        """Where the root keeps pairs list ``which`` (one of PAIR_LISTS), existing or not; None if the layout has
        no such file (raw VITON has no paired test list: each test person's own cloth is derived)."""
        if which not in PAIR_LISTS:
            raise ValueError(f"unknown pairs list {which!r}; known: {', '.join(PAIR_LISTS)}")
        name = self.pairs_names.get(which)
        return None if name is None else Path(root) / name

    def read_pairs(self, root: Path, which: str, unique_persons: bool = False) -> list[tuple[str, str]]:
        """The pairs of list ``which`` (`formats.read_pairs`: a malformed line is an error)."""
        path = self.pairs_file(root, which)
        if path is None:
            raise FileNotFoundError(f"the {self.name} layout keeps no {which} pairs file")
        return fm.read_pairs(path, unique_persons)

    def test_pairs_file(self, root: Path, which: str) -> Path:
        """The file test list ``which`` ("paired" or "unpaired") is read from: its own, or for a layout without a
        paired file the unpaired one, whose persons `read_test_pairs` pairs with their own cloths."""
        if which not in TEST_LISTS:
            raise ValueError(f"unknown test list {which!r}; known: {', '.join(TEST_LISTS)}")
        path = self.pairs_file(root, which) or self.pairs_file(root, "unpaired")
        if path is None:
            raise ValueError(f"the {self.name} layout keeps no test pairs file")
        return path

    def read_test_pairs(self, root: Path, which: str) -> list[tuple[str, str]]:
        """The (person, cloth) pairs of test list ``which``, each person once (outputs are named by the person). A
        layout without a paired file (raw VITON, VITON-HD) pairs each person of its unpaired list with their own cloth
        (`own_cloth`), the list `vton prepare` writes as test_pairs_same.txt."""
        listed = fm.read_pairs(self.test_pairs_file(root, which), unique_persons=True)
        if self.pairs_file(root, which) is None:
            return [(person, self.own_cloth(person)) for person, _ in listed]
        return listed

    def test_folders(self, root: Path, categories: dict[str, str] | None = None) -> Callable[[str], str]:
        """The source folder (`Item.src_split`) of each test person, by name: the test split's here; DressCode, whose
        folders are categories, overrides (``categories``: `person_categories` when the caller has read them)."""
        return lambda person: self.src_split("test")

    def person_categories(self, root: Path) -> dict[str, str]:
        """Each person's garment category, by name, where the tree records one (DressCode's test lists, a prepared
        DressCode's manifest); empty for a tree without categories."""
        return {}

    def label_space(self, root: Path) -> fm.LabelSpace:
        """The label space of the tree's parses: this layout's; a prepared tree records its source's."""
        return self.labels

    def person_labels(self, root: Path, categories: dict[str, str] | None = None) -> PersonLabels:
        """The label space of each person's parse (by person name): `label_space`, whose cloth labels follow each
        person's category (``categories``, else `person_categories`) where that space's cloth depends on it (ATR's)."""
        space = self.label_space(root)
        if not space.cloth_by_category:
            return PersonLabels(space)
        categories = self.person_categories(root) if categories is None else categories
        return PersonLabels(space, {p: space.for_category(c) for p, c in categories.items()},
                            f"{root}: {space.name}'s cloth labels follow the garment category; no category for")

    def person_parse(self, root: Path, split: str, name: str) -> np.ndarray:
        """The parse of person ``name`` of ``split`` as a 2-D integer array of label indices in `labels`, at its file's
        own size (the person image's, for every layout here), read as the layout's loaders read it. Here: the parse
        file (`person_files`) is a one-channel label-index image taken as stored (mode P: the indices, the palette
        ignored, never ``convert('L')``); a layout storing it otherwise overrides this. Raises `Rejection`."""
        data = read(root, self.person_files(split, name).parse)
        return np.asarray(decode_image(data, "parse", LABEL_IMAGE_MODES, None))

    def split_pairs_files(self, root: Path) -> dict[str, Path]:
        """The existing pairs file of each split (see SPLIT_LIST)."""
        files = {split: self.pairs_file(root, which) for split, which in SPLIT_LIST.items()}
        return {split: path for split, path in files.items() if path is not None and path.is_file()}

    def discover(self, root: Path, resplit: bool) -> tuple[list[Pair], bool]:
        """All candidate pairs and whether they carry the official split.

        Official: the pairs files' lines, in file order (train first). Otherwise (no pairs files, or ``resplit``): each
        person once with its own cloth, from the pairs files when there are any, else from the image folders; the
        pair's ``split`` is then its source folder (``""`` without split folders).
        """
        files = self.split_pairs_files(root)
        listed = [p for split in fm.SPLITS if split in files
                  for p in listed_pairs(files[split], split, self.src_split(split))]
        if files and not resplit:
            return listed, True
        if files:
            persons = [(p.split, p.person.name) for p in listed if p.person is not None]
        else:
            persons = self.folder_persons(root)
        seen: set[tuple[str, str]] = set()
        pairs = []
        for split, name in persons:
            if (split, name) not in seen:
                seen.add((split, name))
                pairs.append(pair_of_line(f"{name} {self.own_cloth(name)}", split, self.src_split(split)))
        return pairs, False

    def split_warnings(self, root: Path, pairs: list[Pair]) -> list[str]:
        """A split that gets no pairs because its pairs file is missing or empty while the other exists (without any
        pairs file, the pairs come from the image folders by design)."""
        files = self.split_pairs_files(root)
        if not files:
            return []
        return [f"{self.pairs_file(root, which)} {'lists no pairs' if split in files else 'does not exist'}: "
                f"no {split} pairs are read"
                for split, which in SPLIT_LIST.items() if not any(p.split == split for p in pairs)]

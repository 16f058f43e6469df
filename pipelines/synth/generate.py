"""``vton synth``: a procedural dataset in the real VITON / CP-VTON file formats, so every stage is tested on them.

One generator per layout (`GENERATORS`, keyed by the layout registry's names): ``cpvton`` writes what CP-VTON's
``convert_data.m`` produced (`vton.pipelines.synth.cpvton`), ``viton`` the original raw VITON files
(`vton.pipelines.synth.viton_raw`), ``viton-hd`` VITON-HD's release tree (`vton.pipelines.synth.viton_hd`). They share
the people (`draw`), the ids, the split and the pairs lists, written where the layout's adapter keeps them.

Everything is seeded: the same arguments give byte-identical files.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, cast

import numpy as np
from tqdm import tqdm

from vton.core import formats as fm
from vton.core.io import atomic_write_text
from vton.pipelines.layouts import layout as layout_named
from vton.pipelines.layouts.base import Layout
from vton.pipelines.split import official_share
from vton.pipelines.synth.cpvton import CPVTON_SYNTH
from vton.pipelines.synth.defects import DEFECT_TRAIN_PAIRS, inject_defects
from vton.pipelines.synth.draw import Person, make_person
from vton.pipelines.synth.dresscode import DRESSCODE_SYNTH
from vton.pipelines.synth.dresscode import plan as dresscode_plan
from vton.pipelines.synth.viton_hd import VITON_HD_SYNTH
from vton.pipelines.synth.viton_raw import VITON_RAW_SYNTH


class Generator(Protocol):
    """Writes one layout's files of a person and their cloth."""
    layout: Layout
    faults: tuple[str, ...]  # the `synth.defects` faults this layout gets with --defects (none: written clean)
    id_digits: int  # ids are zero-padded to this many digits
    distinct_unpaired: bool  # the unpaired test list never gives a person their own cloth

    def person_name(self, pid: str) -> str: ...

    def cloth_name(self, pid: str) -> str: ...

    def pair_files(self, split: str, pid: str) -> list[str]:
        """Every file of the pair ``pid``, relative to the root, in a fixed order (renamed together by a fault)."""
        ...

    def write_person(self, root: Path, split: str, pid: str, person: Person, rng: np.random.Generator) -> None: ...

    def present(self, root: Path, ids: dict[str, list[str]]) -> dict[str, list[str]]: ...


class CategoryGenerator(Generator, Protocol):
    """The generator of a layout with category folders (`Layout.categories`, DressCode): ids, splits and pairs lists
    are per category, so it plans and writes the whole tree itself (arguments checked by `synthesize`)."""

    def synthesize(self, out: Path, pairs: int, seed: int, with_defects: bool, progress: bool) -> dict: ...


GENERATORS: dict[str, Generator] = {g.layout.name: g for g in (CPVTON_SYNTH, VITON_RAW_SYNTH, VITON_HD_SYNTH,
                                                                 DRESSCODE_SYNTH)}


def split_counts(pairs: int) -> tuple[int, int]:
    """(train, test) counts: the official test share, at least one test pair once there are two."""
    test = official_share(pairs)
    if pairs >= 2:
        test = min(max(test, 1), pairs - 1)
    return pairs - test, test


def train_count(pairs: int, layout: str = "cpvton") -> int:
    """The train pairs of ``pairs`` synthetic pairs of ``layout`` (a layout with categories splits each one)."""
    if GENERATORS[layout].layout.categories:
        return sum(len(ids["train"]) for ids in dresscode_plan(pairs).values())
    return split_counts(pairs)[0]


def min_defect_pairs(layout: str = "cpvton") -> int:
    """The fewest pairs whose split leaves a train pair per fault (plus a duplicate source) and a test pair."""
    pairs = 2
    while train_count(pairs, layout) < DEFECT_TRAIN_PAIRS:
        pairs += 1
    return pairs


def make_ids(rng: np.random.Generator, count: int, digits: int = 6) -> list[str]:
    """Ids from 1 upwards with seeded gaps, zero-padded to ``digits``, like VITON's (16,253 six-digit ids up to
    019595) and VITON-HD's (13,679 five-digit ids up to 14684)."""
    steps = 1 + np.where(rng.random(count) < 0.2, rng.integers(1, 4, count), 0)
    numbers = np.cumsum(steps)
    if count and numbers[-1] >= 10**digits:
        raise ValueError(f"{count} pairs do not fit in {digits}-digit ids")
    return [f"{n:0{digits}d}" for n in numbers]


def other_cloths(order: list[str]) -> dict[str, str]:
    """Each id of a shuffled ``order`` gets the next one's cloth (the last the first's): nobody keeps their own once
    there are two."""
    return {pid: order[(k + 1) % len(order)] for k, pid in enumerate(order)}


def _generator(layout: str) -> Generator:
    try:
        return GENERATORS[layout]
    except KeyError:
        layout_named(layout)  # an unknown name: the registry's error
        raise ValueError(f"vton synth cannot write the {layout} layout") from None


def synthesize(out: Path, pairs: int, seed: int, layout: str = "cpvton", defects: bool = False,
               progress: bool = False) -> dict:
    """Write ``pairs`` synthetic person/cloth pairs under ``out`` in ``layout`` and return a summary.

    The summary holds ``root``, ``layout``, ``seed``, ``pairs``, ``splits`` (counts), ``ids`` (person ids per split
    whose files exist) and ``defects`` (the records also written to ``defects.json``, see ``synth_defects``).
    """
    generator = _generator(layout)
    if pairs < 1 or seed < 0:
        raise ValueError("pairs must be >= 1 and seed >= 0")
    if defects:
        if not generator.faults:
            *others, last = [name for name, g in GENERATORS.items() if g.faults]
            faulted = f"{', '.join(others)} and {last}" if others else last
            raise ValueError(f"--defects applies to the {faulted} layouts only; the {layout} layout is written clean")
        if pairs < min_defect_pairs(layout):
            raise ValueError(f"--defects needs at least {min_defect_pairs(layout)} pairs, got {pairs}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; synth writes into a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    if generator.layout.categories:  # folders per category, not per split: the generator plans ids and lists itself
        return cast(CategoryGenerator, generator).synthesize(out, pairs, seed, defects, progress)
    rng = np.random.default_rng(seed)
    ids = make_ids(rng, pairs, generator.id_digits)
    n_train, n_test = split_counts(pairs)
    test_ids = sorted(str(i) for i in rng.choice(ids, n_test, replace=False))
    test_set = set(test_ids)
    split_of = {pid: ("test" if pid in test_set else "train") for pid in ids}
    train_ids = [pid for pid in ids if split_of[pid] == "train"]
    test_cloths = [str(c) for c in rng.permutation(test_ids)]
    if generator.distinct_unpaired:
        test_cloths = [other_cloths(test_cloths)[p] for p in test_ids]
    person, cloth = generator.person_name, generator.cloth_name
    unpaired = [(person(p), cloth(c)) for p, c in zip(test_ids, test_cloths)]
    for index, pid in enumerate(tqdm(ids, desc="synth", unit="pair", disable=not progress)):
        person_rng = np.random.default_rng([seed, index])  # one stream per person: independent of the others
        generator.write_person(out, generator.layout.src_split(split_of[pid]), pid, make_person(person_rng),
                               person_rng)
    lists = {"train": [(person(p), cloth(p)) for p in train_ids], "unpaired": unpaired,
             "paired": [(person(p), cloth(p)) for p in test_ids]}
    for which, listed in lists.items():
        path = generator.layout.pairs_file(out, which)
        if path is not None:  # raw VITON keeps no paired test list
            atomic_write_text(path, fm.pairs_text(listed))
    records = (inject_defects(out, train_ids, test_ids, np.random.default_rng([seed, pairs, 1]), generator)
               if defects else [])
    return {"root": str(out), "layout": layout, "seed": seed, "pairs": pairs,
            "splits": {"train": n_train, "test": n_test},
            "ids": generator.present(out, {"train": train_ids, "test": test_ids}), "defects": records}

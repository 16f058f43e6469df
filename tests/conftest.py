"""Session-wide synthetic datasets (``vton synth``) for every stage's tests; small so the suite stays fast."""
from __future__ import annotations

from pathlib import Path

import pytest

from vton.pipelines.synth.generate import synthesize

CPVTON_PAIRS, CPVTON_SEED = 24, 0
DEFECT_PAIRS, DEFECT_SEED = 24, 1
VITON_PAIRS, VITON_SEED = 8, 0
VITON_HD_PAIRS, VITON_HD_SEED = 12, 0
DRESSCODE_PAIRS, DRESSCODE_SEED = 12, 0


def _synth(factory: pytest.TempPathFactory, name: str, pairs: int, seed: int, **options: object) -> Path:
    """``vton synth`` into a fresh session folder ``name``/data."""
    root = factory.mktemp(name) / "data"
    synthesize(root, pairs, seed, **options)
    return root


@pytest.fixture(scope="session")
def synth_cpvton(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean CP-VTON-layout dataset: 24 pairs (21 train, 3 test), seed 0."""
    return _synth(tmp_path_factory, "synth_cpvton", CPVTON_PAIRS, CPVTON_SEED)


@pytest.fixture(scope="session")
def synth_defects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CP-VTON-layout dataset with every fault of ``synth_defects.FAULTS`` once; ground truth in defects.json."""
    return _synth(tmp_path_factory, "synth_defects", DEFECT_PAIRS, DEFECT_SEED, defects=True)


@pytest.fixture(scope="session")
def synth_viton_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw VITON layout (women_top 762x1100, segment/pose .mat): 8 pairs, seed 0."""
    return _synth(tmp_path_factory, "synth_viton_raw", VITON_PAIRS, VITON_SEED, layout="viton")


@pytest.fixture(scope="session")
def synth_viton_hd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VITON-HD's release tree (768x1024, every folder): 12 pairs, seed 0."""
    return _synth(tmp_path_factory, "synth_viton_hd", VITON_HD_PAIRS, VITON_HD_SEED, layout="viton-hd")


@pytest.fixture(scope="session")
def synth_dresscode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DressCode's tree (768x1024, three category folders, TAB pairs files): 12 pairs, 4 per category, seed 0."""
    return _synth(tmp_path_factory, "synth_dresscode", DRESSCODE_PAIRS, DRESSCODE_SEED, layout="dresscode")

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


@pytest.fixture(scope="session")
def synth_cpvton(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean CP-VTON-layout dataset: 24 pairs (21 train, 3 test), seed 0."""
    root = tmp_path_factory.mktemp("synth_cpvton") / "data"
    synthesize(root, CPVTON_PAIRS, CPVTON_SEED)
    return root


@pytest.fixture(scope="session")
def synth_defects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CP-VTON-layout dataset with every fault of ``synth_defects.FAULTS`` once; ground truth in defects.json."""
    root = tmp_path_factory.mktemp("synth_defects") / "data"
    synthesize(root, DEFECT_PAIRS, DEFECT_SEED, defects=True)
    return root


@pytest.fixture(scope="session")
def synth_viton_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw VITON layout (women_top 762x1100, segment/pose .mat): 8 pairs, seed 0."""
    root = tmp_path_factory.mktemp("synth_viton_raw") / "data"
    synthesize(root, VITON_PAIRS, VITON_SEED, layout="viton")
    return root


@pytest.fixture(scope="session")
def synth_viton_hd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """VITON-HD's release tree (768x1024, every folder): 12 pairs, seed 0."""
    root = tmp_path_factory.mktemp("synth_viton_hd") / "data"
    synthesize(root, VITON_HD_PAIRS, VITON_HD_SEED, layout="viton-hd")
    return root


@pytest.fixture(scope="session")
def synth_dresscode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DressCode's tree (768x1024, three category folders, TAB pairs files): 12 pairs, 4 per category, seed 0."""
    root = tmp_path_factory.mktemp("synth_dresscode") / "data"
    synthesize(root, DRESSCODE_PAIRS, DRESSCODE_SEED, layout="dresscode")
    return root

"""The layout registry: detection, the pairs and files each adapter lists, and the label/keypoint maps as data."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vton.cli import main
from vton.core import formats as fm
from vton.pipelines import representation as rep
from vton.pipelines.keypoints.schema import OPENPOSE_18, KeypointSchema
from vton.pipelines.layouts import LAYOUTS, PREPARED, detect
from vton.pipelines.layouts.base import PAIR_LISTS, SPLIT_LIST


@pytest.fixture(scope="module")
def roots(synth_cpvton: Path, synth_viton_raw: Path, synth_viton_hd: Path, synth_dresscode: Path
          ) -> dict[str, Path]:
    """A synthetic root per registered layout (a new adapter must add its synth generator and a fixture here)."""
    found = {"cpvton": synth_cpvton, "viton": synth_viton_raw, "viton-hd": synth_viton_hd,
             "dresscode": synth_dresscode}
    assert set(found) == set(LAYOUTS)
    return found


def test_detect_picks_each_layouts_adapter(roots: dict[str, Path]) -> None:
    for name, root in roots.items():
        assert detect(root) is LAYOUTS[name]
        detected = {a.name for a in LAYOUTS.values() if a.detect(root)}
        # CP-VTON's marker ({split}/image/ or a train_pairs.txt) also fits VITON-HD's and DressCode's trees: detect
        # tries the more specific marker first
        assert detected == ({name, PREPARED.name} if name in ("viton-hd", "dresscode") else {name})


def test_detect_refuses_an_unknown_tree_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="holds no known dataset layout") as info:
        detect(tmp_path)
    assert "\n" not in str(info.value) and all(name in str(info.value) for name in LAYOUTS)
    result = CliRunner().invoke(main, ["prepare", str(tmp_path), str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0
    assert "holds no known dataset layout" in result.output


def test_the_more_specific_marker_wins(synth_cpvton: Path, synth_viton_raw: Path, tmp_path: Path) -> None:
    """A raw VITON root that also holds a train/ folder stays raw VITON, as before adapters."""
    root = tmp_path / "both"
    shutil.copytree(synth_viton_raw, root)
    (root / "train" / fm.IMAGE_DIR).mkdir(parents=True)
    assert detect(root) is LAYOUTS["viton"]


def _lines(path: Path) -> list[tuple[str, str]]:
    """(person, cloth) per line; DressCode's root files add a third column, the category code."""
    return [tuple(line.split()[:2]) for line in path.read_text().splitlines() if line.strip()]


def test_every_adapter_lists_the_pairs_and_files_on_disk(roots: dict[str, Path]) -> None:
    for name, root in roots.items():
        adapter = LAYOUTS[name]
        on_disk = {p.name for p in root.iterdir() if p.suffix == ".txt"}
        assert {adapter.pairs_file(root, w).name for w in PAIR_LISTS if adapter.pairs_file(root, w)} == on_disk
        pairs, official = adapter.discover(root, resplit=False)
        assert official
        for split, which in SPLIT_LIST.items():
            listed = [(p.person.name, p.cloth.name) for p in pairs if p.split == split]
            assert listed == _lines(adapter.pairs_file(root, which)) == adapter.read_pairs(root, which), (name, split)
        for pair in pairs:
            person = adapter.person_files(pair.person.src_split, pair.person.name)
            cloth = adapter.cloth_files(pair.cloth.src_split, pair.cloth.name)
            for relative in (person.image, person.parse, person.pose, cloth.cloth, cloth.mask):
                assert relative is None or (root / relative).is_file(), (name, relative)
        test_cloths = {c for _, c in adapter.read_pairs(root, "unpaired")}
        assert {p.name for p in adapter.test_cloths(root)} >= test_cloths
        assert adapter.native_size_hw[0] > adapter.native_size_hw[1]  # portrait, (height, width)


def test_raw_viton_derives_the_paired_list(synth_viton_raw: Path) -> None:
    adapter = LAYOUTS["viton"]
    assert adapter.pairs_file(synth_viton_raw, "paired") is None
    with pytest.raises(FileNotFoundError, match="no paired pairs file"):
        adapter.read_pairs(synth_viton_raw, "paired")
    with pytest.raises(ValueError, match="unknown pairs list"):
        adapter.pairs_file(synth_viton_raw, "val")


def test_cli_layout_choices_come_from_the_registry() -> None:
    text = CliRunner().invoke(main, ["synth", "--help"], terminal_width=400).output
    assert all(name in text for name in LAYOUTS) and PREPARED.name in LAYOUTS


def test_a_keypoint_schema_maps_to_openpose18_as_data() -> None:
    """OpenPose BODY_25 (VITON-HD's pose files) is OpenPose-18 plus the mid-hip (8) and six foot points."""
    body25 = tuple(fm.OPENPOSE18[:8]) + ("mid_hip",) + tuple(fm.OPENPOSE18[8:]) + tuple(f"foot{i}" for i in range(6))
    schema = KeypointSchema("BODY_25", body25, tuple(body25.index(j) for j in fm.OPENPOSE18))
    kps = np.arange(25 * 3, dtype=np.float64).reshape(25, 3)
    out = schema.to_openpose18(kps)
    assert out.shape == (18, 3) and np.array_equal(out[:8], kps[:8]) and np.array_equal(out[8:], kps[9:19])
    assert np.array_equal(OPENPOSE_18.to_openpose18(kps[:18]), kps[:18])
    missing = KeypointSchema("no-neck", fm.OPENPOSE18, (0, -1, *range(2, 18)))
    assert not missing.to_openpose18(kps[:18])[1].any()


def test_a_label_space_drives_the_representation_groups() -> None:
    """Another parser's ids (here: head 3, cloth 4, background 7) pick the regions instead of LIP's."""
    other = fm.LabelSpace("other", tuple(f"l{i}" for i in range(8)), head=(3,), cloth=(4,), background=7)
    parse = np.full((16, 16), 7, np.uint8)
    parse[:4], parse[4:8], parse[8:12] = 3, 4, 13
    image = np.full((16, 16, 3), 100, np.uint8)
    assert (rep.head_image(image, parse, other)[:4] == 100).all() and not rep.head_image(image, parse, other)[4:].any()
    assert (rep.cloth_target(image, parse, other)[4:8] == 100).all()
    assert rep.body_mask(parse, other)[:12].all() and not rep.body_mask(parse, other)[12:].any()
    assert not rep.head_image(image, parse)[:4].any() and (rep.head_image(image, parse)[8:12] == 100).all()  # LIP

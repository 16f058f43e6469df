"""Finding and matching another method's outputs (vton.eval.matching): our rule, and each evaluation script's own,
on tiny hand-built folders whose expected outcome is written out from the scripts' source."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from vton.core.io import UnsafePathError
from vton.eval import matching as m

VITON = ("000001_0.jpg", "001744_1.jpg")
VITON_HD = ("00001_00.jpg", "00002_00.jpg")
DRESSCODE = ("048392_0.jpg", "048392_1.jpg")


def _image_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 6), (200, 30, 90)).save(buf, format=fmt)
    return buf.getvalue()


PNG, JPEG = _image_bytes("PNG"), _image_bytes("JPEG")


def _write(root: Path, rel: str, data: bytes | None = None) -> Path:
    """A file at ``root/rel``; PNG or JPEG bytes by its extension unless given."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if data is not None else (JPEG if path.suffix.lower() in (".jpg", ".jpeg") else PNG))
    return path


def _rel(paths, root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


# --- scan ----------------------------------------------------------------------------------------------------------
def test_scan_is_recursive_and_sorted_by_relative_path(tmp_path: Path) -> None:
    root = tmp_path / "res"
    for rel in ("upper_body/048392_0.jpg", "b.png", "try-on/000001_0.png", ".hidden", "a-b/x.png", "a/x.png"):
        _write(root, rel)
    (root / "empty").mkdir()
    assert _rel(m.scan(root), root) == [".hidden", "a-b/x.png", "a/x.png", "b.png", "try-on/000001_0.png",
                                        "upper_body/048392_0.jpg"]


def test_scan_lists_links_without_following_folder_links(tmp_path: Path) -> None:
    root, outside = tmp_path / "res", tmp_path / "outside"
    _write(outside, "000001_0.png")
    _write(root, "000002_0.png")
    (root / "far").symlink_to(outside, target_is_directory=True)
    (root / "000001_0.png").symlink_to(outside / "000001_0.png")
    (root / "loop").symlink_to(root, target_is_directory=True)
    assert _rel(m.scan(root), root) == ["000001_0.png", "000002_0.png", "far", "loop"]
    with pytest.raises(NotADirectoryError):
        m.scan(root / "000002_0.png")


# --- match_results -------------------------------------------------------------------------------------------------
def test_every_name_form_in_any_subfolder_and_case(tmp_path: Path) -> None:
    root = tmp_path / "res"
    files = [_write(root, "try-on/000001_0.png"),  # {person stem}
             _write(root, "00001_00_00002_00.PNG"),  # {person stem}_{cloth stem} (HR-VITON), upper-case extension
             _write(root, "upper_body/result_048392_0.jpeg")]  # CatVTON's id: 8 characters from the first digit
    pairs = [VITON, VITON_HD, DRESSCODE, ("000005_0.jpg", "000009_1.jpg")]
    got = m.match_results(m.scan(root), root, pairs)
    assert got.found == {"000001_0.jpg": files[0], "00001_00.jpg": files[1], "048392_0.jpg": files[2]}
    assert got.form == {"person": 1, "person_cloth": 1, "catvton_id": 1}
    assert got.missing == ["000005_0.jpg"]
    assert (got.duplicates, got.ambiguous, got.extra, got.ignored, got.refused) == ({}, {}, [], [], {})


def test_dresscode_category_folders(tmp_path: Path) -> None:
    root = tmp_path / "unpaired"
    pairs = [("048392_0.jpg", "048393_1.jpg"), ("013563_0.jpg", "013564_1.jpg"), ("020714_0.jpg", "020715_1.jpg")]
    files = [_write(root, f"{cat}/{person}") for cat, (person, _) in zip(("upper_body", "lower_body", "dresses"),
                                                                         pairs)]
    got = m.match_results(m.scan(root), root, pairs)
    assert got.found == {person: path for (person, _), path in zip(pairs, files)}
    assert got.form["person"] == 3 and got.missing == []


def test_jpeg_bytes_flagged_whatever_the_extension(tmp_path: Path) -> None:
    root = tmp_path / "res"
    disguised = _write(root, "000001_0.png", JPEG)  # HR-VITON writes JPEG bytes under .png
    _write(root, "000002_0.png", PNG)
    real_jpeg = _write(root, "000003_0.jpg", JPEG)
    _write(root, "000004_0.jpg", PNG)
    pairs = [(f"00000{i}_0.jpg", f"00000{i}_1.jpg") for i in range(1, 5)]
    got = m.match_results(m.scan(root), root, pairs)
    assert len(got.found) == 4
    assert got.jpeg == [disguised, real_jpeg]


def test_duplicates_are_listed_not_picked(tmp_path: Path) -> None:
    root = tmp_path / "res"
    a, b = _write(root, "000001_0.png"), _write(root, "try-on/000001_0.jpg")
    c = _write(root, "000001_0_001744_1.png")  # another form of the same pair
    got = m.match_results(m.scan(root), root, [VITON])
    assert got.duplicates == {"000001_0.jpg": [a, c, b]}
    assert got.found == {} and got.missing == [] and got.jpeg == []
    assert got.form == {"person": 0, "person_cloth": 0, "catvton_id": 0}


def test_extra_images_and_non_images_are_listed(tmp_path: Path) -> None:
    root = tmp_path / "res"
    found = _write(root, "000001_0.png")
    extra = [_write(root, "999999_0.jpg"), _write(root, "sub/cloth.png")]
    ignored = [_write(root, "eval.txt", b"SSIM"), _write(root, "000001_0.webp", b"x"), _write(root, "sub/.DS_Store")]
    files = m.scan(root)
    got = m.match_results(files, root, [VITON])
    assert got.found == {"000001_0.jpg": found}
    assert sorted(got.extra) == sorted(extra) and sorted(got.ignored) == sorted(ignored)
    assert len(files) == 1 + len(extra) + len(ignored)


def test_links_leaving_the_folder_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "res", tmp_path / "outside"
    target = _write(outside, "000001_0.png")
    _write(outside, "deep/000003_0.png")
    inside = _write(root, "real/000002_0.png")
    (root / "000001_0.png").symlink_to(target)
    (root / "000002_0.png").symlink_to(inside)  # a link that stays inside is read: it duplicates its target
    (root / "far").symlink_to(outside / "deep", target_is_directory=True)
    (root / "broken.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(root / "000004_0.png")
    pairs = [(f"00000{i}_0.jpg", f"00000{i}_1.jpg") for i in range(1, 5)]
    got = m.match_results(m.scan(root), root, pairs)
    assert {p.name: r.split(" (")[0] for p, r in got.refused.items()} == {
        "000001_0.png": "leaves the folder through a link", "far": "leaves the folder through a link",
        "broken.png": "leaves the folder through a link", "000004_0.png": "is not a regular file"}
    assert got.duplicates == {"000002_0.jpg": [root / "000002_0.png", inside]}
    assert got.missing == ["000001_0.jpg", "000003_0.jpg", "000004_0.jpg"] and got.found == {}
    assert m.refusal(tmp_path / "elsewhere.png", root) == "is outside the folder"


def test_links_inside_the_folder_broken_or_to_folders(tmp_path: Path) -> None:
    root = tmp_path / "res"
    (root / "sub").mkdir(parents=True)
    (root / "to_sub").symlink_to(root / "sub", target_is_directory=True)
    (root / "gone.png").symlink_to(root / "missing.png")
    assert m.refusal(root / "to_sub", root) == "is a link to a folder (not followed)"
    assert m.refusal(root / "gone.png", root) == "is a broken link"


def test_a_name_fitting_two_pairs_is_ambiguous(tmp_path: Path) -> None:
    root = tmp_path / "res"
    pairs = [("12345678_0.jpg", "1_1.jpg"), ("12345678_1.jpg", "2_1.jpg")]  # both persons have the id 12345678
    both = _write(root, "x12345678_9.png")
    exact = _write(root, "12345678_1.png")  # the person form decides before the id
    got = m.match_results(m.scan(root), root, pairs)
    assert got.ambiguous == {both: ["12345678_0.jpg", "12345678_1.jpg"]}
    assert got.found == {"12345678_1.jpg": exact} and got.missing == ["12345678_0.jpg"]


def test_every_file_lands_in_exactly_one_place(tmp_path: Path) -> None:
    root = tmp_path / "res"
    for rel in ("000001_0.png", "try-on/000001_0.jpg", "000002_0_x.jpg", "00000345.png", "note.md", "z.png"):
        _write(root, rel)
    (root / "out.png").symlink_to(tmp_path)
    pairs = [VITON, ("000002_0.jpg", "000009_1.jpg"), ("00000345_0.jpg", "a.jpg"), ("00000345_1.jpg", "b.jpg")]
    files = m.scan(root)
    got = m.match_results(files, root, pairs)
    places = (list(got.found.values()) + [p for ps in got.duplicates.values() for p in ps] + list(got.ambiguous)
              + got.extra + got.ignored + list(got.refused))
    assert sorted(places) == sorted(files)
    assert [len(x) for x in (got.found, got.duplicates, got.ambiguous, got.extra, got.ignored, got.refused)] == \
        [1, 1, 1, 1, 1, 1]


# --- CatVTON and VtonEval ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "expected"), [
    ("00006_00.jpg", "00006_00"), ("048392_0.jpg", "048392_0"), ("000001_0_001744_1.png", "000001_0"),
    ("img_00006_00.png", "00006_00"), ("a1_0.png", "1_0.png"), ("sub/a1_0.png", "1_0.png"), ("cloth.png", None)])
def test_catvton_id(name: str, expected: str | None) -> None:
    assert m.catvton_id(name) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("inshop_00001.jpg", "inshop_00001"), ("a.inshop.jpg", "a"), ("00001_00_inshop.png", "00001_00_inshop"),
    ("00001_00.jpg", "00001_00"), ("INSHOP_7.jpg", "7.jpg")])
def test_vtoneval_id(name: str, expected: str) -> None:
    assert m.vtoneval_id(name) == expected


def test_catvton_scan_exact_suffixes_recursively(tmp_path: Path) -> None:
    root = tmp_path / "pred"
    for rel in ("a.jpg", "b.JPG", "c.jpeg", "d.png", "e.PNG", "upper_body/f.png", "g.txt", ".png"):
        _write(root, rel)
    assert _rel(m.catvton_scan(root), root) == ["a.jpg", "d.png", "upper_body/f.png"]
    (root / "out.png").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="out.png"):
        m.catvton_scan(root)


def test_catvton_pairs_last_gt_wins_and_unmatched_dropped() -> None:
    gt = [Path("gt/00001_00.jpg"), Path("gt/00002_00.jpg"), Path("gt/sub/x00001_00.png")]
    pred = [Path("p/00002_00.png"), Path("p/99999_00.png"), Path("p/00001_00_00007_00.jpg")]
    pairs, dropped = m.catvton_pairs(gt, pred)
    assert pairs == [(gt[1], pred[0]), (gt[2], pred[2])]
    assert dropped == [pred[1]]
    with pytest.raises(ValueError, match="AssertionError.*cloth.png"):
        m.catvton_pairs(gt, [Path("p/cloth.png")])


def test_vtoneval_pairs_inshop_by_whole_stem() -> None:
    gt, pred = [Path("gt/inshop_1.jpg")], [Path("p/inshop_1.png")]
    assert m.catvton_pairs(gt, pred, id_of=m.vtoneval_id) == ([(gt[0], pred[0])], [])
    assert m.catvton_pairs(gt, pred) == ([], pred)  # CatVTON's ids: '1.jpg' vs '1.png'


def test_catvton_gt_size_and_resize_check() -> None:
    assert m.catvton_gt_size((384, 512), (768, 1024)) == (384, 512)
    assert m.catvton_gt_size((384, 512), (767, 1024)) == (383, 512)  # int(383.5): truncated
    assert m.catvton_gt_size((100, 300), (200, 700)) == (85, 300)  # 200 * 300 / 700 = 85.71
    assert m.catvton_gt_size((400, 512), (768, 1024), exact=True) == (400, 512)  # VtonEval: the prediction's size
    assert m.catvton_needs_resize((384, 512), (768, 1024))
    assert not m.catvton_needs_resize((384, 512), (500, 512))  # same height, other width: no copy


# --- LaDI-VTON -----------------------------------------------------------------------------------------------------
def test_ladi_vton_sorts_full_path_strings() -> None:
    # as strings 'r/d-e/...' < 'r/d/...' ('-' < '/'); Path order would put r/d/2.jpg first and fail the assertion
    gt = [Path("r/d/2.jpg"), Path("r/d-e/1.jpg")]
    gen = [Path("g/2.png"), Path("g/1.png")]
    assert m.ladi_vton_pairs(gt, gen) == [(gt[1], gen[1]), (gt[0], gen[0])]


def test_ladi_vton_assertion_on_a_mismatched_stem() -> None:
    gt = [Path(f"r/{i:05d}_00.jpg") for i in range(1, 4)]
    gen = [Path("g/00001_00.jpg"), Path("g/00002_00.jpg"), Path("g/00004_00.jpg")]
    with pytest.raises(ValueError, match=r"AssertionError in batch 0: generated g/00004_00.jpg .* r/00003_00.jpg"):
        m.ladi_vton_pairs(gt, gen)
    with pytest.raises(ValueError, match=r"batch 1: generated g/00004_00.jpg"):
        m.ladi_vton_pairs(gt, gen, batch_size=2)


def test_ladi_vton_differing_counts_follow_zip() -> None:
    gt = [Path(f"r/{i}.jpg") for i in range(1, 4)]
    gen = gt[:2]
    with pytest.raises(ValueError, match="2 generated against 3 ground-truth images"):
        m.ladi_vton_pairs(gt, gen)
    # the shorter list ends on a batch boundary: zip stops there, the script scores 2 pairs without a word
    assert m.ladi_vton_pairs(gt, gen, batch_size=2) == [(gt[0], gen[0]), (gt[1], gen[1])]
    assert m.ladi_vton_pairs(gt, [], batch_size=2) == []


# --- HR-VITON ------------------------------------------------------------------------------------------------------
def test_hrviton_gt_name() -> None:
    assert m.hrviton_gt_name("00001_00_00002_00.png") == "00001_00.jpg"
    assert m.hrviton_gt_name("00001_00.png") == "00001_00.jpg"
    assert m.hrviton_gt_name("lpips.txt") == "lpips.txt_00.jpg"


def test_hrviton_pairs_order_and_divisor() -> None:
    gt = ["00003_00.jpg", "00001_00.jpg", "00002_00.jpg", "00009_00.jpg"]
    pred = ["00002_00_00005_00.png", "00001_00_00004_00.png"]
    assert m.hrviton_pairs(pred, gt) == ([("00001_00_00004_00.png", "00001_00.jpg"),
                                          ("00002_00_00005_00.png", "00002_00.jpg")], 4)
    with pytest.raises(ValueError, match="FileNotFoundError.*lpips.txt_00.jpg"):
        m.hrviton_pairs([*pred, "lpips.txt"], gt)
    with pytest.raises(ValueError, match="IndexError at prediction 00001_00_b.png.*1 images"):
        m.hrviton_pairs(["00001_00_a.png", "00001_00_b.png"], ["00001_00.jpg"])


# --- CIT -----------------------------------------------------------------------------------------------------------
def test_cit_pairs_by_name_intersection() -> None:
    assert m.cit_pairs(["c.jpg", "b.jpg", "a.jpg", "e.jpg"], ["a.jpg", "d.jpg", "b.jpg", "c.png"]) == ["a.jpg", "b.jpg"]


def test_hrviton_rule_takes_the_layouts_person_ending():
    """VITON persons end in ``_0.jpg``: the same prefix rule finds them when given that ending."""
    assert m.hrviton_gt_name("000001_001744_1.png", "_0.jpg") == "000001_0.jpg"
    pairs, divisor = m.hrviton_pairs(["000002_x.png", "000001_y.png"], ["000001_0.jpg", "000002_0.jpg"],
                                     "_0.jpg")
    assert pairs == [("000001_y.png", "000001_0.jpg"), ("000002_x.png", "000002_0.jpg")] and divisor == 2

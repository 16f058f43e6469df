"""The dataset audit (`vton audit`, prepare's --dedupe near / --clean-test) against planted ground truth: every
planted near-duplicate found, nothing else; distinct synthetic persons sharing poses and backgrounds never merged."""
from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy.spatial.distance import cdist

from vton.cli import main
from vton.core.formats import read_pairs
from vton.core.runner import Runner, RunnerConfig
from vton.pipelines.audit import search
from vton.pipelines.audit.confirm import pixel_score
from vton.pipelines.audit.dataset import audit_dataset, dataset_nodes
from vton.pipelines.audit.duplicates import Duplicate, DuplicateSet, NearSettings, Node, find_duplicates
from vton.pipelines.audit.search import CELL, CONTRAST_WEIGHT, MIN_CONTRAST, SHIFTS, candidate_pairs, hamming
from vton.pipelines.audit.signature import decode, signature, thumb_array, work_image
from vton.pipelines.layouts.base import CLOTH, PERSON, Item, Pair
from vton.pipelines.prepare import Decision, PrepareOptions, _write_clean_test, prepare
from vton.pipelines.synth.draw import _make_texture, draw_labels, make_person, paint_person
from vton.pipelines.synth.generate import synthesize
from vton.pipelines.synth.near import NEAR_DUPLICATE, plant_near_duplicates
from vton.pipelines.synth.viton_raw import VITON_RAW_SYNTH

QUIET = RunnerConfig(workers=1, progress=False)


def planted_edges(root: Path, leaked=lambda r: []) -> set[frozenset[tuple[str, str]]]:
    """The copies defects.json makes, as pairs of (split, file): each plant with its source, byte copies
    (duplicate_image) with their source, and the files ``leaked(record)`` of a train line naming a test model
    (DressCode's test_id_in_train: the same files in both splits)."""
    edges = []
    for r in json.loads((root / "defects.json").read_text()):
        if r["fault"] == NEAR_DUPLICATE:
            edges += [(("test", r["source"]), ("train", r["file"])),
                      (("test", r["source_cloth"]), ("train", r["cloth_file"]))]
        elif r["fault"] == "duplicate_image":
            edges.append((("train", r["detail"].removeprefix("byte copy of ")), ("train", r["file"])))
        elif r["fault"] == "test_id_in_train":
            edges += [(("test", path), ("train", path)) for path in leaked(r)]
    return {frozenset(e) for e in edges}


def groups(edges: set[frozenset]) -> set[frozenset]:
    """Connected components of ``edges``."""
    group: dict = {}
    for a, b in (tuple(e) for e in edges):
        merged = group.get(a, {a}) | group.get(b, {b})
        for node in merged:
            group[node] = merged
    return {frozenset(g) for g in group.values()}


def check_found(out: Path, edges: set[frozenset]) -> set[frozenset]:
    """Every planted copy found, every pair found lies within one group of copies, and the clusters are the groups
    (two edited copies of one picture may differ by more than the threshold: they join through their source)."""
    found = found_pairs(out)
    expected = groups(edges)
    assert edges <= found
    assert all(any(pair <= g for g in expected) for pair in found)
    frame = pd.read_parquet(out / "duplicates.parquet")
    clusters = {}
    for r in frame.itertuples():
        clusters.setdefault(r.cluster, set()).update({(r.a_split, r.a), (r.b_split, r.b)})
    assert {frozenset(c) for c in clusters.values()} == expected
    return found


def found_pairs(out: Path) -> set[frozenset[tuple[str, str]]]:
    frame = pd.read_parquet(out / "duplicates.parquet")
    return {frozenset({(r.a_split, r.a), (r.b_split, r.b)}) for r in frame.itertuples()}


def test_every_planted_near_duplicate_is_found_and_nothing_else(synth_defects: Path, tmp_path: Path) -> None:
    record = audit_dataset(synth_defects, tmp_path / "audit", runner=QUIET)
    found = check_found(tmp_path / "audit", planted_edges(synth_defects))
    across = sum(1 for p in found if {s for s, _ in p} == {"test", "train"})
    assert record["pairs"]["across"] == across and record["pairs"]["within test"] == 0
    assert record["unreadable"] == 1  # the truncated JPEG, listed with its reason
    assert "does not decode" in record["unreadable_files"][0]["reason"]
    frame = pd.read_parquet(tmp_path / "audit" / "duplicates.parquet")
    first_within = frame.index[frame.splits != "across"].min()
    assert (frame.loc[: first_within - 1, "splits"] == "across").all()  # clusters spanning the splits come first
    assert record["settings"] == dataclasses.asdict(NearSettings()) and record["versions"]["imagehash"] != "absent"


def test_dresscode_planted_and_leaked_items_are_found(tmp_path: Path) -> None:
    root = tmp_path / "dc"
    synthesize(root, 18, 1, layout="dresscode", defects=True)
    records = {r["fault"]: r for r in json.loads((root / "defects.json").read_text())}
    leak = records["test_id_in_train"]

    def leaked(r: dict) -> list[str]:  # the train line now names a test model's files: the same files, twice
        person, cloth = r["pair"].split()
        folder = r["file"].split("/")[0]
        return [f"{folder}/images/{person}", f"{folder}/images/{cloth}"]

    audit_dataset(root, tmp_path / "audit", runner=QUIET)
    assert leak
    check_found(tmp_path / "audit", planted_edges(root, leaked))


def test_raw_viton_without_split_folders(synth_viton_raw: Path, tmp_path: Path) -> None:
    root = tmp_path / "raw"
    shutil.copytree(synth_viton_raw, root)
    train = [p[: -len("_0.jpg")] for p, _ in read_pairs(root / "viton_train_pairs.txt")]
    test = [p[: -len("_0.jpg")] for p, _ in read_pairs(root / "viton_test_pairs.txt")]
    plants = plant_near_duplicates(root, train + test, test, np.random.default_rng(0), VITON_RAW_SYNTH)
    (root / "defects.json").write_text(json.dumps(plants))
    record = audit_dataset(root, tmp_path / "audit", runner=QUIET)
    check_found(tmp_path / "audit", planted_edges(root))
    assert record["layout"] == "viton" and record["test_items_with_a_train_copy"]["person"] == len(
        {r["source"] for r in plants})


def _variant(base, rng: np.random.Generator):
    """Another person in ``base``'s pose and background: other clothes, colours, hair and hat."""
    other = make_person(rng)
    garment = dataclasses.replace(base.garment, texture=_make_texture(rng))
    return dataclasses.replace(base, garment=garment, hat=other.hat, long_hair=other.long_hair,
                               colors={**other.colors, "background": base.colors["background"]})


def _write_people(folder: Path, people: list) -> list[Node]:
    folder.mkdir(parents=True)
    nodes = []
    for k, person in enumerate(people):
        name = f"{k:06d}_0.jpg"
        Image.fromarray(paint_person(person, draw_labels(person))).save(folder / name, quality=75)
        nodes.append(Node(Item(PERSON, name, ""), "train" if k % 2 else "test", f"{folder.name}/{name}"))
    return nodes


def test_distinct_people_sharing_poses_and_backgrounds_are_never_merged(tmp_path: Path) -> None:
    people = []
    for pose in range(40):  # 160 people, four per pose and background
        base = make_person(np.random.default_rng([7, pose]))
        rng = np.random.default_rng([8, pose])
        people += [base, *(_variant(base, rng) for _ in range(3))]
    nodes = _write_people(tmp_path / "image", people)
    with Runner(QUIET) as workers:
        found = find_duplicates(str(tmp_path), nodes, NearSettings(), workers)
    assert found.duplicates == [] and not found.unreadable
    # the pixels alone keep them apart too: no two people of one pose and background reach the score of a copy
    images = [decode((tmp_path / n.path).read_bytes()) for n in nodes]
    thumbs = [thumb_array(signature(img)) for img in images]
    works = [work_image(img) for img in images]
    scores = [pixel_score(thumbs[i], thumbs[j], works[i], works[j])
              for first in range(0, len(nodes), 4) for i, j in combinations(range(first, first + 4), 2)]
    assert len(scores) == 240 and max(scores) < NearSettings().min_score


def test_two_people_in_the_same_pose_are_not_merged_but_a_copy_is(tmp_path: Path) -> None:
    base = make_person(np.random.default_rng([3, 3]))
    twin = _variant(base, np.random.default_rng(4))
    nodes = _write_people(tmp_path / "image", [base, twin, base])
    with Image.open(tmp_path / "image" / "000002_0.jpg") as img:  # the third: a re-encoded copy of the first
        img.save(tmp_path / "image" / "000002_0.jpg", quality=60)
    with Runner(QUIET) as workers:
        found = find_duplicates(str(tmp_path), nodes, NearSettings(), workers)
    assert [(d.a.path, d.b.path) for d in found.duplicates] == [("image/000000_0.jpg", "image/000002_0.jpg")]


def test_rescaled_and_moved_copies_are_confirmed() -> None:
    """A copy cropped, padded, resized or shifted and saved again (the plants of `vton synth --defects`, as JPEG at
    quality 95) scores as a copy, persons and cloths alike: with less blur against its softening, 1-2% of such cloth
    copies (a fine print rescaled loses its extremes) scored below the threshold and were missed."""
    from vton.core.io import encode_image
    from vton.pipelines.synth.draw import draw_cloth
    from vton.pipelines.synth.near import KINDS, edit

    scores = []
    for k in range(20):
        person = make_person(np.random.default_rng([7, k]))
        for drawn in (paint_person(person, draw_labels(person)), draw_cloth(person)):
            source = decode(encode_image(Image.fromarray(drawn), "JPEG", quality=95))
            for kind in ("crop", "pad", "resize", "shift"):
                data, _ = edit(kind, source, np.random.default_rng([k, KINDS.index(kind)]))
                a, b = work_image(source), work_image(decode(data))
                scores.append(pixel_score(thumb_array(signature(source)), thumb_array(signature(decode(data))), a, b))
    assert len(scores) == 160 and min(scores) >= NearSettings().min_score


def _reference_embedding(thumb: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The search's embedding by its definition: the thumbnail moved by (dy, dx) with its edges repeated, cell means
    by reshaping, less their mean, unit length, and the weighted log of the RMS contrast (floored)."""
    height, width = thumb.shape[:2]
    padded = np.pad(thumb.astype(np.float64) / 255, ((2, 2), (2, 2), (0, 0)), mode="edge")
    moved = padded[2 - dy:2 - dy + height, 2 - dx:2 - dx + width]
    cells = moved.reshape(height // CELL, CELL, width // CELL, CELL, 3).mean(axis=(1, 3)).ravel()
    centred = cells - cells.mean()
    rms = max(float(np.sqrt((centred ** 2).mean())), MIN_CONTRAST)
    return np.append(centred / (rms * np.sqrt(centred.size)), CONTRAST_WEIGHT * np.log(rms))


@pytest.mark.parametrize("chunk", [search.CHUNK, 16])  # one chunk of shifted probes, or ten
def test_candidate_search_equals_all_pairs_compared(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "CHUNK", chunk)
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (30, 8, 6, 3)).astype(np.uint8)
    bases = blocks.repeat(8, axis=1).repeat(8, axis=2)  # 30 blocky 48x64 images
    noisy = [np.clip(bases + rng.normal(scale=s, size=bases.shape), 0, 255).astype(np.uint8) for s in (3, 20, 60)]
    moved = np.pad(bases, ((0, 0), (1, 0), (0, 1), (0, 0)), mode="edge")[:, :-1, 1:]  # content 1 down, 1 left
    thumbs = np.concatenate([bases, *noisy, moved, np.full((2, 64, 48, 3), 128, np.uint8)])
    own = np.stack([_reference_embedding(t, 0, 0) for t in thumbs])
    probes = np.stack([_reference_embedding(t, dy, dx) for t in thumbs for dy in SHIFTS for dx in SHIFTS])
    one_way = cdist(probes, own).reshape(len(thumbs), len(SHIFTS) ** 2, len(thumbs)).min(axis=1)
    distances = np.minimum(one_way, one_way.T)  # i's shifts to j's own, or j's shifts to i's own
    for radius in (0.05, NearSettings().radius, 0.5, 2.0):
        brute = [(i, j) for i in range(len(thumbs)) for j in range(i + 1, len(thumbs)) if distances[i, j] <= radius]
        pairs, found = candidate_pairs(thumbs, radius)
        assert [tuple(p) for p in pairs.tolist()] == brute and len(brute) > 30
        np.testing.assert_allclose(found, [distances[i, j] for i, j in brute], atol=1e-9)
    assert distances[0, 4 * 30] == 0 < distances[0, 30]  # the moved copy is at distance 0 through its shift
    hashes = rng.integers(0, 2**63, 50, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    assert hamming(hashes[:-1], hashes[1:]).tolist() == [bin(int(a) ^ int(b)).count("1")
                                                        for a, b in zip(hashes[:-1], hashes[1:])]


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="radius"):
        NearSettings(radius=0)
    with pytest.raises(ValueError, match="min score"):
        NearSettings(min_score=1.5)
    with pytest.raises(ValueError, match="min score"):  # a share of pixels: below 0 every candidate would pass
        NearSettings(min_score=-0.5)


def test_nodes_come_from_the_layout_adapter(synth_cpvton: Path) -> None:
    adapter, nodes = dataset_nodes(synth_cpvton)
    assert adapter.name == "cpvton"
    persons = {(n.split, n.path) for n in nodes if n.item.kind == PERSON}
    listed = {(s, f"{s}/image/{p}") for s in ("train", "test") for p, _ in read_pairs(synth_cpvton / f"{s}_pairs.txt")}
    assert persons == listed


def test_prepare_dedupe_near_rejects_train_leaks_and_clean_test_lists_the_rest(synth_defects: Path,
                                                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = prepare(synth_defects, out, PrepareOptions(dedupe="near", clean_test=True), QUIET)
    truth = json.loads((synth_defects / "defects.json").read_text())
    plants = [d for d in truth if d["fault"] == NEAR_DUPLICATE]
    with open(out / "rejected.csv") as fh:
        rejected = {row["pair"]: row for row in csv.DictReader(fh)}
    assert set(rejected) == {d["pair"] for d in truth}  # the faults as before, and every plant
    for d in plants:
        row = rejected[d["pair"]]
        source = Path(d["source"]).name
        assert (row["split"], row["stage"]) == ("train", "leak") and f"near copy of test {source}" in row["reason"]
        assert "pHash distance" in row["reason"]
    assert (out / "test_pairs.txt").read_text() == (synth_defects / "test_pairs.txt").read_text()  # test stays whole
    copied = {Path(d["source"]).name for d in plants} | {Path(d["source_cloth"]).name for d in plants}
    for name in ("test_pairs.txt", "test_pairs_same.txt"):
        listed = read_pairs(out / name)
        clean = read_pairs(out / name.replace(".txt", "_clean.txt"))
        assert clean == [(p, c) for p, c in listed if p not in copied and c not in copied] and len(clean) < len(listed)
    report = json.loads((out / "prepare.json").read_text())
    assert report["options"]["dedupe"] == "near" and report["options"]["near"] == dataclasses.asdict(NearSettings())
    assert report["near_duplicates"]["pairs"]["across"] >= 2 * len(plants)
    assert summary.kept == summary.total - len(truth)


def test_prepare_records_nothing_new_by_default(synth_cpvton: Path, tmp_path: Path) -> None:
    prepare(synth_cpvton, tmp_path / "out", PrepareOptions(samples=0), QUIET)
    report = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert "near_duplicates" not in report and not {"dedupe", "clean_test", "near"} & set(report["options"])
    assert not (tmp_path / "out" / "test_pairs_clean.txt").exists()


def test_cli_audit_writes_the_files_and_the_page(synth_defects: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["audit", str(synth_defects), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert f"across train/test {record['pairs']['across']}" in result.output
    page = (tmp_path / "a" / "audit.html").read_text()
    assert page.count("<b>cluster ") == len(set(pd.read_parquet(tmp_path / "a" / "duplicates.parquet").cluster))
    assert page.rindex(", across)") < page.index(", within train)") and "data:image/jpeg;base64," in page
    bad = CliRunner().invoke(main, ["audit", str(synth_defects), "--near-radius", "3"])
    assert bad.exit_code == 2
    assert CliRunner().invoke(main, ["audit", str(synth_defects), "--near-min-score", "-0.5"]).exit_code == 2


def test_cli_audit_default_out_lies_beside_data_given_as_dot(synth_cpvton: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`vton audit .` inside the dataset: the default output is DATA-audit beside it (it was ./-audit, inside it)."""
    data = tmp_path / "data"
    shutil.copytree(synth_cpvton, data)
    monkeypatch.chdir(data)
    result = CliRunner().invoke(main, ["audit", "."])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data-audit" / "audit.json").is_file() and not (data / "-audit").exists()


def test_clean_test_drops_test_items_copied_in_train_not_namesakes_of_train_copies(tmp_path: Path) -> None:
    """Train and test folders may hold different photos under one name: a near copy within train of the train
    000010_0 says nothing of the test 000010_0, which stays in the clean lists; the test 000020_0 copied in train
    goes."""
    def person(name: str, split: str) -> Item:
        return Item(PERSON, name, split)

    def pair(p: str, c: str, split: str) -> Decision:
        return Decision(Pair(f"{p} {c}", split, person(p, split), Item(CLOTH, c, split)), split)

    decisions = [pair("000010_0.jpg", "000010_1.jpg", "train"), pair("000500_0.jpg", "000500_1.jpg", "train"),
                 pair("000600_0.jpg", "000600_1.jpg", "train"),
                 pair("000010_0.jpg", "000030_1.jpg", "test"), pair("000020_0.jpg", "000040_1.jpg", "test")]
    node = {(d.pair.person.name, d.split): Node(d.pair.person, d.split, f"{d.split}/image/{d.pair.person.name}")
            for d in decisions}
    near = DuplicateSet([*node.values()], [
        Duplicate(node["000010_0.jpg", "train"], node["000500_0.jpg", "train"], 2, 0.01, 0.99),  # within train
        Duplicate(node["000020_0.jpg", "test"], node["000600_0.jpg", "train"], 3, 0.02, 0.98),  # a leak
    ], {}, [])
    unpaired = [("000010_0.jpg", "000030_1.jpg"), ("000020_0.jpg", "000040_1.jpg")]
    written = _write_clean_test(tmp_path, near, decisions, unpaired, unpaired)
    assert read_pairs(tmp_path / "test_pairs_clean.txt") == [("000010_0.jpg", "000030_1.jpg")]
    assert written == {"test_pairs_clean.txt": 1, "test_pairs_same_clean.txt": 1}

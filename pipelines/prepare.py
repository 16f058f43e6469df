"""`vton prepare SRC OUT`: clean, split and precompute a VITON dataset (either layout) for training and evaluation.

Graph: discover pairs -> ingest every item (person, cloth) on Dask (validate, convert raw VITON, compute the body
shape, stage the files, return metadata) -> decide per pair (item faults, leaks, duplicates, split) -> move staged
files into ``OUT/{train,test}/`` -> pairs files, manifest, rejected.csv, prepare.json, samples.

Prepared layout (README, 'Preparing a dataset'): the CP-VTON layout, so the original code reads it, plus one
precomputed folder,
``{train,test}/shape/<ID>_0.png``: the blurred body shape as uint8 'L' (48 kB of float32 per person shrinks to a few
hundred bytes, and it is the only piece that depends on Pillow's resampler, so it is fixed once here). Head, cloth
target and the 18 pose squares are recomputed on load: they are exact masks of the stored image/parse and pure integer
geometry from the stored keypoints (pose/<ID>_0_keypoints.json, also in the manifest), cheaper to draw than to read.

Resumable: each partition's item metadata is recorded in ``OUT/.prepare/records`` after its files are staged in
``OUT/.prepare/stage``; a rerun skips recorded partitions and staged files already moved. ``prepare.json`` is written
last of the outputs and marks the run finished; ``.prepare`` is removed after it, so an interrupted run followed by a
rerun ends byte-identical to an uninterrupted one, and a rerun on a finished OUT changes nothing. One run at a time per
OUT: ``OUT/.prepare.lock`` is held (flock) for the run's life.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from vton.core import formats as fm
from vton.core.io import (
    atomic_save_image,
    atomic_write_json,
    atomic_write_text,
    exclusive_lock,
    read_data_file,
)
from vton.core.runner import Runner, RunnerConfig
from vton.core.versions import library_versions
from vton.pipelines.audit.dataset import audit_record, pair_nodes
from vton.pipelines.audit.duplicates import Duplicate, DuplicateSet, NearSettings, find_duplicates
from vton.pipelines.cleaning import Rejection, duplicate_of
from vton.pipelines.keypoints.schema import KeypointLoader, keypoint_loader, parse_pose_json
from vton.pipelines.layouts import LAYOUTS, PREPARED, detect
from vton.pipelines.layouts.base import CLOTH, PERSON, SPLIT_LIST, Item, Layout, Pair
from vton.pipelines.representation import pose_radius, visualise
from vton.pipelines.split import seeded_split, split_sizes, unpaired_cloths

STATE_DIR = ".prepare"
LOCK_FILE = ".prepare.lock"
EXIT_REJECTED = 3  # CLI exit status when data faults rejected pairs (without --allow-rejects)
MANIFEST_SIZE_KEY = "size_hw"  # the manifest's schema metadata: the prepared images' "HxW"
DEDUPE = ("exact", "near")


@dataclass(frozen=True)
class PrepareOptions:
    seed: int = 0
    resplit: bool = False
    train_size: int | None = None
    test_size: int | None = None
    # a name in vton.pipelines.keypoints.schema.KEYPOINT_LOADERS, or a loader dataclass carrying its options
    # (vton.pipelines.keypoints.pifpaf.PifpafKeypoints: JSON-able fields, so the recorded configuration holds them)
    keypoints: str | KeypointLoader = "dataset"
    samples: int = 4
    strict: bool = False  # refuse to run, writing nothing, where a warning would be given (see `PrepareSummary`)
    size: tuple[int, int] = fm.FINE_SIZE_HW  # (height, width) written: one of formats.PREPARE_SIZES_HW
    # the garment categories kept, for a layout that has them (DressCode; `Layout.categories`); None: all
    categories: tuple[str, ...] | None = None
    # "exact": only byte-identical images are duplicates; "near": also a train pair with a near copy of a test item
    # (`vton.pipelines.audit`) is a leak (the official split), or near copies are kept in one split (a drawn split)
    dedupe: str = "exact"
    clean_test: bool = False  # also write the test lists without the test pairs that have a near copy in train
    near: NearSettings = NearSettings()

    def __post_init__(self) -> None:
        if self.dedupe not in DEDUPE:
            raise ValueError(f"unknown dedupe {self.dedupe!r}; known: {', '.join(DEDUPE)}")

    @property
    def audits(self) -> bool:
        return self.dedupe == "near" or self.clean_test


@dataclass
class PrepareSummary:
    out: Path
    total: int
    kept: int
    splits: dict[str, int]
    rejections: list[dict] = field(default_factory=list)  # {"stage", "reason", "count"}, most frequent first
    warnings: list[str] = field(default_factory=list)  # e.g. a missing pairs file: a split left empty

    @classmethod
    def from_report(cls, out: Path, report: dict) -> PrepareSummary:
        """The summary of a finished run, from its prepare.json."""
        return cls(out, report["pairs"]["total"], report["pairs"]["kept"], report["splits"], report["rejections"],
                   report.get("warnings", []))

    @property
    def rejected(self) -> int:
        return self.total - self.kept

    @property
    def faults(self) -> int:
        """Rejections caused by bad data (all but the pairs left over by the requested split sizes)."""
        return sum(r["count"] for r in self.rejections if r["stage"] != "split")

    def text(self) -> str:
        lines = [f"prepared {self.kept} of {self.total} pairs into {self.out}: "
                 f"train {self.splits.get('train', 0)}, test {self.splits.get('test', 0)}; rejected {self.rejected}"]
        lines += [f"  {r['count']:>6}  {r['stage']}: {r['reason']}" for r in self.rejections]
        return "\n".join(lines)


class ItemResult(NamedTuple):
    """What an ingest task returns: small metadata only (the files are staged on disk)."""
    item: Item
    stage: str  # "" when the item is clean
    reason: str
    digests: bytes  # the 32-byte sha256 of each file in Item.files() order, concatenated (compact for large N)
    keypoints: bytes  # float64 (18, 3), persons only

    @property
    def ok(self) -> bool:
        return not self.stage

    def digest(self, index: int) -> bytes:
        return self.digests[32 * index: 32 * index + 32]


def _state(out: Path, *parts: str) -> Path:
    return out.joinpath(STATE_DIR, *parts)


def _item_key(item: Item) -> tuple[str, str, str]:
    return item.kind, item.name, item.src_split


def _record_path(out: Path, items: list[Item]) -> Path:
    """One record per partition, named by its items (partitions are the same on a rerun with the same options)."""
    digest = hashlib.sha256("\n".join("\t".join(_item_key(i)) for i in items).encode()).hexdigest()[:32]
    return _state(out, "records", digest + ".json")


def _stage_key(item: Item) -> str:
    return item.src_split or "_"


def _staged_folder(out: str | Path, key: str, folder: str) -> str:
    return f"{out}/{STATE_DIR}/stage/{key}/{folder}"


def _staged_path(out: str | Path, item: Item, folder: str, name: str) -> str:
    return f"{_staged_folder(out, _stage_key(item), folder)}/{name}"


def _write(path: str, data: bytes) -> None:
    """One create and one write (no buffered file object: six of these per pair add up)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _ingest(src: Path, layout: str, out: Path, keypoints: str | KeypointLoader, size_hw: tuple[int, int],
            item: Item) -> ItemResult:
    kps = np.zeros(0)
    adapter = LAYOUTS[layout]
    try:
        if item.kind == PERSON:
            data, kps = adapter.ingest_person(src, item, keypoints, size_hw)
        else:
            data = adapter.ingest_cloth(src, item, size_hw)
    except Rejection as rej:
        return ItemResult(item, rej.stage, rej.reason, b"", b"")
    for (folder, name), blob in zip(item.files(), data):
        # Plain writes suffice: staged files are private until the partition record exists, and are rewritten
        # whole when a killed partition reruns; they reach OUT/<split>/ by an atomic rename.
        _write(_staged_path(out, item, folder, name), blob)
    return ItemResult(item, "", "", b"".join(hashlib.sha256(b).digest() for b in data), kps.tobytes())


def ingest_items(items: list[Item], src: str, layout: str, out: str, keypoints: str | KeypointLoader,
                 size_hw: tuple[int, int] = fm.FINE_SIZE_HW) -> list[ItemResult]:
    """Dask task: ingest a partition of items of the layout named ``layout`` at ``size_hw``, staging their files, then
    record the partition's metadata.

    A recorded partition is not redone (resume); the returned metadata is small (no image data).
    """
    out_path = Path(out)
    record = _record_path(out_path, items)
    if record.exists():
        return [ItemResult(i, r["stage"], r["reason"], bytes.fromhex(r["digests"]), bytes.fromhex(r["keypoints"]))
                for i, r in zip(items, json.loads(record.read_text()))]
    for folder in {_staged_folder(out_path, _stage_key(i), f) for i in items for f, _ in i.files()}:
        os.makedirs(folder, exist_ok=True)
    results = [_ingest(Path(src), layout, out_path, keypoints, size_hw, item) for item in items]
    atomic_write_json(record, [{"stage": r.stage, "reason": r.reason, "digests": r.digests.hex(),
                                "keypoints": r.keypoints.hex()} for r in results])
    return results


@dataclass(slots=True)
class Decision:
    """The fate of one pair."""
    pair: Pair
    split: str
    stage: str = ""
    reason: str = ""


def _id(name: str) -> str:
    return name.split("_")[0]


def near_reason(kind: str, copy: Duplicate) -> str:
    """A near-leak rejection's reason: the test item and the distances."""
    return (f"{kind} is a near copy of test {copy.a.item.name} (pHash distance {copy.phash_distance}, embedding "
            f"{copy.embedding_distance:.3f}, pixel score {copy.pixel_score:.3f})")


def decide(pairs: list[Pair], results: dict[Item, ItemResult], official: bool,
           options: PrepareOptions, near: DuplicateSet | None = None) -> list[Decision]:
    """Apply, in order: item faults, IDs in both splits (the train pair goes), with ``near`` (--dedupe near) near
    copies of test items in train (the train pair goes), a person listed again in its split (the first listing stays:
    inference and evaluation name their outputs by the person, and refuse a person listed twice), exact duplicates
    (the first pair in order keeps the image), then the drawn split when there is no official one (before it, a person
    stays once in all: both listings would land in one split, their IDs being linked, as are near copies)."""
    decisions = [Decision(p, p.split) for p in pairs]
    for d in decisions:
        if d.pair.problem:
            d.stage, d.reason = d.pair.problem
            continue
        for item in (d.pair.person, d.pair.cloth):
            res = results[item]
            if not res.ok:
                d.stage, d.reason = res.stage, res.reason
                break
    test_ids = {_id(i.name) for d in decisions if d.split == "test" and not d.pair.problem
                for i in (d.pair.person, d.pair.cloth)}
    for d in decisions:  # the test set stays whole: a train pair using a test ID is the one rejected
        if not d.stage and d.split == "train" and {_id(d.pair.person.name), _id(d.pair.cloth.name)} & test_ids:
            d.stage, d.reason = "leak", "ID also used in test"
    copies = near.train_copies_of_test() if near is not None and official else {}
    for d in decisions:
        if not d.stage and d.split == "train":
            leaked = [(item.kind, copies[item]) for item in (d.pair.person, d.pair.cloth) if item in copies]
            if leaked:
                d.stage, d.reason = "leak", near_reason(*leaked[0])
    listed: set[tuple[str, str]] = set()
    for d in decisions:
        if not d.stage:
            key = (d.split if official else "", d.pair.person.name)
            if key in listed:
                d.stage, d.reason = "duplicate", "person listed twice; the first listing is kept"
            listed.add(key)
    for kind in (PERSON, CLOTH):
        live = [d for d in decisions if not d.stage]
        items = [d.pair.person if kind == PERSON else d.pair.cloth for d in live]
        dups = duplicate_of((i.name for i in items), (results[i].digest(0) for i in items))
        for d, earlier in zip(live, dups):
            if earlier is not None:
                d.stage, d.reason = "duplicate", f"{kind} image identical to an earlier kept one"
    if not official:
        live = [d for d in decisions if not d.stage]
        train, test = split_sizes(len(live), options.train_size, options.test_size)
        clusters = {n.item: f"near:{cid}" for n, cid in near.clusters().items()} if near is not None else {}
        links = [(_id(d.pair.person.name), _id(d.pair.cloth.name),
                  *(clusters[i] for i in (d.pair.person, d.pair.cloth) if i in clusters)) for d in live]
        for d, split in zip(live, seeded_split(links, options.seed, train, test)):
            d.split = split
            if not split:
                d.stage, d.reason = "split", "clean but beyond the requested split sizes"
    return decisions


OUT_DIRS = (*fm.SOURCE_DIRS, fm.SHAPE_DIR)


def move_folders(out: Path, placements: list[tuple[Item, str]], staged: list[Item]) -> set[str]:
    """Place whole staged folders with one rename each where a stage folder feeds exactly one split and that split
    only from it (the CP-VTON layout with its official split); the stage keys so placed.

    Staged files of items no kept pair uses are removed first. Resumable: a folder already renamed is left alone
    (see `_place_folder`).
    """
    targets: dict[str, set[str]] = {}
    for item, split in placements:
        targets.setdefault(_stage_key(item), set()).add(split)
    feeders = Counter(split for splits in targets.values() for split in splits)
    moves = {key: next(iter(splits)) for key, splits in targets.items()
             if len(splits) == 1 and feeders[next(iter(splits))] == 1}
    kept = {item for item, _ in placements}
    for item in staged:
        if _stage_key(item) in moves and item not in kept:
            for folder, name in item.files():
                Path(_staged_path(out, item, folder, name)).unlink(missing_ok=True)
    for key, split in moves.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        for folder in OUT_DIRS:
            _place_folder(_staged_folder(out, key, folder), out / split / folder)
    return set(moves)


def _place_folder(staged: str, final: Path) -> None:
    """Rename a staged folder into place. Idempotent: with nothing staged (never, or moved before a kill) the target
    is only made sure of; onto a target that holds files already, the staged files are moved in one by one
    (replacing: a rerun stages the same bytes), then the emptied staged folder is removed."""
    if not os.path.exists(staged):
        final.mkdir(exist_ok=True)
        return
    try:
        os.replace(staged, final)  # onto an absent or empty folder
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        for name in os.listdir(staged):
            os.replace(os.path.join(staged, name), final / name)
        os.rmdir(staged)


def place_items(placements: list[tuple[Item, str]], out: str) -> list[int]:
    """Dask task: move staged files into ``OUT/<split>/``; files already moved are left alone (resume)."""
    for item, split in placements:
        for folder, name in item.files():
            staged, final = _staged_path(out, item, folder, name), f"{out}/{split}/{folder}/{name}"
            try:
                os.replace(staged, final)
            except FileNotFoundError:
                if not os.path.exists(final):
                    raise RuntimeError(f"{final} is neither staged nor in place; remove {out}/{STATE_DIR} and rerun"
                                       ) from None
    return [len(placements)]


def _column(folder: str) -> str:
    return folder.replace("-", "_")


FILE_COLUMNS = tuple(_column(folder) for kind, name in ((PERSON, "x_0.jpg"), (CLOTH, "x_1.jpg"))
                     for folder, _ in Item(kind, name, "").files())


def _manifest_rows(decisions: list[Decision], results: dict, categorised: bool = False) -> Iterator[dict]:
    """One row per pair; ``categorised``: the layout keeps items in category folders, the pair's category is its
    person's source folder (else the column is empty)."""
    for d in decisions:
        kept = not d.stage
        person, cloth = d.pair.person, d.pair.cloth
        row: dict = {"pair": d.pair.line, "split": d.split,
                     "category": person.src_split if categorised and person else None,
                     "person": person and person.name,
                     "cloth": cloth and cloth.name, "person_id": person and _id(person.name),
                     "cloth_id": cloth and _id(cloth.name), "status": "kept" if kept else "rejected",
                     "stage": d.stage, "reason": d.reason, "keypoints": None}
        row.update({f"{c}_{suffix}": None for c in FILE_COLUMNS for suffix in ("path", "sha256")})
        for item in (person, cloth):
            res = results.get(item) if item else None
            if res is None or not res.ok:
                continue
            for index, (folder, name) in enumerate(item.files()):
                digest = res.digest(index)
                row[f"{_column(folder)}_sha256"] = digest.hex()
                row[f"{_column(folder)}_path"] = f"{d.split}/{folder}/{name}" if kept else None
            if item.kind == PERSON:
                row["keypoints"] = np.frombuffer(res.keypoints).tolist()
        yield row


def _warm_manifest_writer() -> None:
    import pyarrow as pa

    pa.array([""])


def _manifest_schema():
    import pyarrow as pa

    columns = ["pair", "split", "category", "person", "cloth", "person_id", "cloth_id", "status", "stage", "reason"]
    columns += [f"{c}_{suffix}" for c in FILE_COLUMNS for suffix in ("path", "sha256")]
    return pa.schema([(c, pa.string()) for c in columns] + [("keypoints", pa.list_(pa.float64()))])


def write_manifest(path: Path, rows: Iterator[dict], size_hw: tuple[int, int] = fm.FINE_SIZE_HW,
                   chunk: int = 256) -> None:
    """Stream rows into Parquet, ``chunk`` rows per row group (small groups keep the peak memory flat in the number
    of pairs), and rename into place; the schema's metadata records the images' size (``size_hw``: "HxW")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _manifest_schema().with_metadata({MANIFEST_SIZE_KEY: fm.size_text(size_hw)})
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            while block := [r for _, r in zip(range(chunk), rows)]:
                writer.write_table(pa.Table.from_pylist(block, schema=schema))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_size(size_hw: tuple[int, int], adapter: Layout, src: Path) -> None:
    """Refuse, in one line, a size `vton prepare` does not write (`formats.PREPARE_SIZES_HW`), one larger than the
    source's (nothing is upsampled), or, for a layout whose files are copied unchanged, any other than the source's."""
    fm.prepare_size(size_hw)
    native = adapter.source_size_hw(src)
    asked, own = fm.size_text(size_hw), fm.size_text(native)
    if not adapter.resizes and tuple(size_hw) != tuple(native):
        raise ValueError(f"{src} is a {adapter.name} tree of {own} images, which prepare copies unchanged: "
                         f"prepare it with --size {own}")
    fitting = [fm.size_text(s) for s in fm.PREPARE_SIZES_HW if s[0] <= native[0] and s[1] <= native[1]]
    if asked not in fitting:
        raise ValueError(f"size {asked} is larger than the {adapter.name} layout's {own} images (nothing is "
                         f"upsampled); allowed here: {', '.join(fitting)}")


def select_categories(adapter: Layout, pairs: list[Pair], categories: tuple[str, ...] | None) -> list[Pair]:
    """The pairs of ``categories`` (a refusal for a layout without categories, or a category it lacks); a line refused
    at discovery, whose category is unknown, stays, to be reported."""
    if categories is None:
        return pairs
    unknown = sorted(set(categories) - set(adapter.categories))
    if not adapter.categories or unknown:
        known = ", ".join(adapter.categories) or "none"
        raise ValueError(f"the {adapter.name} layout has no category {', '.join(unknown or categories)} "
                         f"(its categories: {known})")
    return [p for p in pairs if p.person is None or p.person.src_split in categories]


def _same_options(out: Path, previous: dict | None, config: dict) -> None:
    if previous is not None and "size" not in previous:  # prepared before --size existed: always 256x192
        previous = {**previous, "size": list(fm.FINE_SIZE_HW)}
    if previous != config:
        previous = previous or {}
        changed = ", ".join(f"{k} {previous.get(k)!r}, now {config.get(k)!r}" for k in sorted({*previous, *config})
                            if previous.get(k) != config.get(k))
        raise FileExistsError(f"{out} holds a preparation with other options ({changed}); use a new OUT folder")


def _check_out(out: Path, config: dict) -> dict | None:
    """The report (prepare.json) of the finished preparation with ``config`` that OUT holds; None for a new OUT (its
    state begun) or an interrupted one (resumed). Refuse an OUT holding anything else: files could sit in the wrong
    split. The lock file and a state folder without a configuration (a run killed as it began) count as nothing."""
    state = _state(out, "config.json")
    if (out / fm.PREPARE_FILE).exists():
        report = json.loads(read_data_file(out / fm.PREPARE_FILE))
        _same_options(out, report.get("options"), config)
        return report
    if state.exists():
        _same_options(out, json.loads(read_data_file(state)), config)
        return None
    if any(name not in (STATE_DIR, LOCK_FILE) for name in os.listdir(out)):
        raise FileExistsError(f"{out} is not empty and holds no preparation; choose a new folder")
    atomic_write_json(state, config)
    return None


def _remove_temporaries(out: Path) -> None:
    """Temp files of atomic writes interrupted by a kill (``.<name>.<random>.tmp``)."""
    for folder, _, files in os.walk(out):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                Path(folder, name).unlink()


def _clean_up(out: Path) -> None:
    """Remove what a run leaves beside its outputs: temp files of atomic writes cut short by a kill, then the state
    folder (last: while it exists, a rerun knows the clean-up is unfinished)."""
    _remove_temporaries(out)
    shutil.rmtree(_state(out), ignore_errors=True)


class Source(NamedTuple):
    """SRC as discovered: its layout, the candidate pairs, whether they carry the official split, and warnings."""
    path: Path
    layout: str
    pairs: list[Pair]
    official: bool
    warnings: list[str]


def prepare(src: str | os.PathLike, out: str | os.PathLike, options: PrepareOptions = PrepareOptions(),
            runner: RunnerConfig = RunnerConfig()) -> PrepareSummary:
    """Clean, split and precompute ``src`` (any layout of the registry, detected) into ``out``.

    A rerun resumes an interrupted run, and on a finished OUT returns its summary again, changing nothing; other
    options than OUT's are refused, as is a second run while one holds OUT's lock. ``options.strict`` turns warnings
    (a missing pairs file) into a refusal before anything is written.
    """
    src_path, out_path = Path(src).resolve(), Path(out).resolve()
    adapter = detect(src_path)
    keypoint_loader(options.keypoints)  # an unknown source fails here, not in every task
    check_size(options.size, adapter, src_path)
    config = {"source": str(src_path), "layout": adapter.name, **asdict(options), "size": list(options.size)}
    del config["samples"], config["strict"]
    if adapter.categories:
        config["categories"] = [c for c in adapter.categories if c in (options.categories or adapter.categories)]
    else:  # recorded only where a layout has categories: earlier preparations stay comparable
        del config["categories"]
    if not options.audits:  # recorded only when asked for, likewise
        del config["dedupe"], config["clean_test"], config["near"]
    pairs, official = adapter.discover(src_path, options.resplit)
    pairs = select_categories(adapter, pairs, options.categories)
    source = Source(src_path, adapter.name, pairs, official, adapter.split_warnings(src_path, pairs))
    if source.warnings and options.strict:
        raise ValueError(f"strict: {'; '.join(source.warnings)}; nothing written")
    out_path.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_path / LOCK_FILE):
        report = _check_out(out_path, config)
        if report is not None:
            if _state(out_path).exists():  # killed while cleaning up
                _clean_up(out_path)
            return PrepareSummary.from_report(out_path, report)
        return _run(source, out_path, options, runner, config)


def _run(source: Source, out_path: Path, options: PrepareOptions, runner: RunnerConfig, config: dict
         ) -> PrepareSummary:
    """The preparation proper, into an OUT that is new or holds the state of an interrupted run."""
    src_path, layout, pairs, official = source.path, source.layout, source.pairs, source.official
    items = {i for p in pairs for i in (p.person, p.cloth) if i is not None}
    if official:  # the paired test list needs each test person's own cloth
        items |= {Item(CLOTH, LAYOUTS[layout].own_cloth(p.person.name), p.person.src_split)
                  for p in pairs if p.split == "test" and p.person is not None}
    with Runner(runner, preload=__name__) as workers:  # one set of workers for both stages, started now
        # The manifest writer's first Arrow array imports pandas (a quarter of a second): done while workers ingest.
        threading.Thread(target=_warm_manifest_writer, daemon=True).start()
        results = {r.item: r for r in workers.map(ingest_items, sorted(items, key=_item_key), str(src_path), layout,
                                                  str(out_path), options.keypoints, tuple(options.size))}
        del items
        near = (find_duplicates(str(src_path), pair_nodes(LAYOUTS[layout], pairs, official), options.near, workers,
                                runner.progress) if options.audits else None)
        decisions = decide(pairs, results, official, options, near if options.dedupe == "near" else None)

        kept = [d for d in decisions if not d.stage]
        by_split = {s: [d for d in kept if d.split == s] for s in fm.SPLITS}
        placed: dict[str, set[Item]] = {s: {i for d in by_split[s] for i in (d.pair.person, d.pair.cloth)}
                                        for s in fm.SPLITS}
        same, extra_rejections = _paired_test(by_split["test"], results, official, LAYOUTS[layout])
        placed["test"].update(cloth for _, cloth in same if cloth is not None)
        placements = [(item, s) for s in fm.SPLITS for item in sorted(placed[s], key=_item_key)]
        moved = move_folders(out_path, placements, [i for i, r in results.items() if r.ok])
        rest = [(item, s) for item, s in placements if _stage_key(item) not in moved]
        for s in {s for _, s in rest}:
            for folder in OUT_DIRS:
                (out_path / s / folder).mkdir(parents=True, exist_ok=True)
        workers.map(place_items, rest, str(out_path))

    lines = {s: [(d.pair.person.name, d.pair.cloth.name) for d in by_split[s]] for s in fm.SPLITS}
    if not official:
        persons = [d.pair.person.name for d in by_split["test"]]
        cloths = unpaired_cloths([d.pair.cloth.name for d in by_split["test"]], options.seed)
        lines["test"] = list(zip(persons, cloths))
    for split, which in SPLIT_LIST.items():
        atomic_write_text(PREPARED.pairs_file(out_path, which), fm.pairs_text(lines[split]))
    atomic_write_text(PREPARED.pairs_file(out_path, "paired"), fm.pairs_text(pair for pair, _ in same))
    clean = _write_clean_test(out_path, near, decisions, lines["test"], [pair for pair, _ in same]
                              ) if options.clean_test and near is not None else {}

    rejected_rows = [(d.pair.line, d.split, d.stage, d.reason) for d in decisions if d.stage] + extra_rejections
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([("pair", "split", "stage", "reason"), *rejected_rows])
    atomic_write_text(out_path / fm.REJECTED_FILE, buf.getvalue())
    adapter = LAYOUTS[layout]
    write_manifest(out_path / fm.MANIFEST_FILE, _manifest_rows(decisions, results, bool(adapter.categories)),
                   options.size)

    counts = Counter((d.stage, d.reason) for d in decisions if d.stage)
    summary = PrepareSummary(out_path, len(decisions), len(kept), {s: len(by_split[s]) for s in fm.SPLITS},
                             [{"stage": s, "reason": r, "count": n}
                              for (s, r), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))],
                             source.warnings)
    _write_samples(out_path, (by_split["test"] or by_split["train"])[: options.samples])
    categories = ({"categories": config["categories"], "skirt_rule": fm.DC_SKIRT_RULE} if adapter.categories
                  else {})
    if near is not None:  # what the near-duplicate search found, with its thresholds and method
        categories["near_duplicates"] = {**audit_record(near, options.near), "clean_test": clean}
    atomic_write_json(out_path / fm.PREPARE_FILE, {  # last: it marks the run finished
        "source": str(src_path), "layout": layout, "seed": options.seed,
        # what the prepared files are: their one size, the pose squares' half-side there (representation.pose_radius),
        # the parse's label space (the source's ids, kept) and the source's keypoint schema (pose files: OpenPose-18)
        "size_hw": list(options.size), "pose_radius": pose_radius(options.size[0]),
        "label_space": adapter.labels.name, "keypoint_schema": adapter.keypoints.name,
        "pairs": {"total": summary.total, "kept": summary.kept, "rejected": summary.rejected},
        "splits": summary.splits, "rejections": summary.rejections, "warnings": summary.warnings, **categories,
        "versions": library_versions("numpy", "pillow", "scipy", "dask", "pyarrow"), "options": config})
    _clean_up(out_path)
    return summary


def _write_clean_test(out: Path, near: DuplicateSet, decisions: list[Decision], unpaired: list[tuple[str, str]],
                      paired: list[tuple[str, str]]) -> dict[str, int]:
    """test_pairs_clean.txt and test_pairs_same_clean.txt: the test lists less the pairs whose person or cloth has a
    near copy among the items of the train split as listed (kept or rejected: a model trained on the split as
    distributed saw them); the number of pairs each keeps."""
    train, test = ({i for d in decisions if d.split == s and d.pair.person is not None
                    for i in (d.pair.person, d.pair.cloth)} for s in ("train", "test"))
    test |= {n.item for n in near.nodes if n.split == "test"} - train  # with the own cloths of the paired list
    # only test items: a train item that merely shares a test item's name (a near copy within train) is no leak of it
    copied = {(n.item.kind, n.item.name) for dup in near.duplicates for n, other in ((dup.a, dup.b), (dup.b, dup.a))
              if other.item in train and n.item in test}
    written = {}
    for name, listed in ((fm.TEST_PAIRS, unpaired), (fm.TEST_PAIRS_SAME, paired)):
        kept = [(p, c) for p, c in listed if (PERSON, p) not in copied and (CLOTH, c) not in copied]
        atomic_write_text(out / fm.CLEAN_TEST_FILES[name], fm.pairs_text(kept))
        written[fm.CLEAN_TEST_FILES[name]] = len(kept)
    return written


def _paired_test(test: list[Decision], results: dict, official: bool, adapter: Layout
                 ) -> tuple[list[tuple[tuple[str, str], Item | None]], list[tuple[str, str, str, str]]]:
    """test_pairs_same.txt pairs (with the own-cloth item to place) and rejections of persons left out of it."""
    if not official:
        return [((d.pair.person.name, d.pair.cloth.name), None) for d in test], []
    same, rejected = [], []
    for d in test:  # each person once: `decide` rejects a person listed twice
        person = d.pair.person
        own = Item(CLOTH, adapter.own_cloth(person.name), person.src_split)
        res = results[own]
        if res.ok:
            same.append(((person.name, own.name), own))
        else:
            rejected.append((f"{person.name} {own.name}", "test_same", res.stage, res.reason))
    return same, rejected


def _read(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert(mode))


def _write_samples(out: Path, decisions: list[Decision]) -> None:
    """Representation strips (person | shape | head | pose | cloth target | cloth | mask) for the report."""
    for d in decisions:
        person = PREPARED.person_files(d.split, d.pair.person.name)
        cloth = PREPARED.cloth_files(d.split, d.pair.cloth.name)
        image, cloth_rgb, mask = (_read(out / rel, mode) for rel, mode in (
            (person.image, "RGB"), (cloth.cloth, "RGB"), (cloth.mask, "L")))
        with Image.open(out / person.parse) as img:
            parse = np.asarray(img)  # palette: the values are the label ids
        kps = parse_pose_json((out / person.pose).read_bytes())
        strip = visualise(image, parse, kps, cloth_rgb, mask)
        atomic_save_image(Image.fromarray(strip), out / fm.SAMPLES_DIR / fm.shape_name(d.pair.person.name),
                          compress_level=1)

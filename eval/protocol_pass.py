"""The field's protocols (`vton.eval.protocols`) scored in one pass: each file is decoded once, and every view any
protocol asks of it (its resizes, re-encodings, clean-fid's resize) is made from that one decoding, in DataLoader
workers. Per-image rows run batched on the device as soon as both views of a comparison are ready; feature rows
gather their network's features per file and score at the end.
"""
from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from vton.core.io import safe_join
from vton.core.versions import library_versions
from vton.eval import fid, images, stats, views
from vton.eval import metrics as M
from vton.eval.protocols import PROTOCOLS, Context, Plan, Protocol, Row
from vton.eval.settings import Settings
from vton.pipelines.layouts import detect

SETTINGS = ("paired", "unpaired")
# what ran here, beside what each script pinned: every library a protocol's number can depend on
VERSIONS: Final = library_versions("torch", "torchvision", "numpy", "scipy", "pillow", "scikit-image", "torchmetrics",
                                   "lpips", "torch-fidelity", "clean-fid", "pytorch-fid")


def context(data: Path, results: dict[str, Path | None]) -> Context:
    """The dataset's test lists and person photos through its layout adapter, and the results folders given."""
    layout = detect(data)
    pairs = {}
    for setting in SETTINGS:
        if layout.test_pairs_file(data, setting).is_file():
            pairs[setting] = layout.read_test_pairs(data, setting)
    categories = layout.person_categories(data)
    folder_of = layout.test_folders(data, categories)
    persons = sorted({p for listed in pairs.values() for p, _ in listed})
    person_image = {p: safe_join(data, layout.person_files(folder_of(p), p).image) for p in persons}
    gt_dirs = tuple(sorted({path.parent for path in person_image.values()}))
    return Context(pairs, person_image, gt_dirs, {s: Path(f) for s, f in results.items() if f is not None},
                   {p: categories[p] for p in persons if p in categories})


# --- decoding: one item per file, every view of it -------------------------------------------------------------
class FileViews(Dataset):
    """One item per file: its decoded pixels after each of the step lists asked of it."""

    def __init__(self, wanted: Sequence[tuple[Path, Sequence[views.Steps]]]) -> None:
        self.wanted = list(wanted)

    def __len__(self) -> int:
        return len(self.wanted)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, step_lists = self.wanted[i]
        try:
            img = images.read_image(path, images.rgb)
        except images.ImageError as exc:
            return {"error": str(exc)}
        return {"path": path, "views": {steps: views.apply(img, steps) for steps in step_lists}}


def _first(items: list[dict[str, Any]]) -> dict[str, Any]:
    return items[0]


# --- networks ---------------------------------------------------------------------------------------------------
def _features(name: str, net: Any, arrays: list[np.ndarray], device: torch.device) -> np.ndarray:
    """Features of one batch of views of one shape, as the library computes them."""
    if name in ("cleanfid", "pytorch-fid"):  # their own batching and devices, as their libraries
        return net.features_resized(arrays) if name == "cleanfid" else net.features(arrays)
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(device)
    if name == "fidelity":
        return net(batch)[1].double().cpu().numpy()  # logits_unbiased
    if name == "imagenet":
        return net((batch.float() / 255 - 0.5) / 0.5).double().cpu().numpy()
    raise ValueError(f"unknown feature network {name!r}")


def _stack_rows(values: list[np.ndarray]) -> np.ndarray:
    return np.stack(values) if values else np.empty((0, 0))


# --- aggregation ------------------------------------------------------------------------------------------------
def aggregate(row: Row, values: np.ndarray, divisor: int | None) -> float | None:
    """The script's reduction of the per-image values, in its order."""
    if values.size == 0:
        return None
    if row.aggregate == "psnr-batches-16":  # per-image MSE (data range 1) back from each PSNR, pooled per batch
        return M.psnr_of_batches(torch.from_numpy(10.0 ** (-values / 10)), 1.0, 16)
    return float(values.sum() / (divisor or values.size))


# --- the pass ---------------------------------------------------------------------------------------------------
def _plans(names: Sequence[str], ctx: Context) -> dict[tuple[str, str], Plan]:
    plans = {}
    for name in names:
        proto = PROTOCOLS[name]
        for setting in SETTINGS:
            if setting in ctx.results and proto.rows_of(setting) and proto.plan is not None:
                plans[(name, setting)] = proto.plan(ctx, setting)
    return plans


def run_protocols(names: Sequence[str], ctx: Context, settings: Settings, device: torch.device,
                  nets: dict[str, Any], why_not: dict[str, str]) -> tuple[list[tuple], dict[str, dict]]:
    """Per-image rows (setting, person, cloth, metric, value, protocol) and one block per protocol.

    ``nets``: the networks loaded; ``why_not``: network name -> why it is missing (its rows are skipped with that).
    """
    plans = _plans(names, ctx)
    image_views: dict[tuple, list[tuple[int, str, str]]] = defaultdict(list)  # view -> [(job id, side, name)]
    jobs: list[tuple[str, str, Any]] = []
    for (name, setting), plan in plans.items():
        for job in plan.jobs:
            jobs.append((name, setting, job))
    wanted: dict[Path, set] = defaultdict(set)
    for j, (_, _, job) in enumerate(jobs):
        for view_name, (gt, pred) in job.views.items():
            for side, (path, steps) in (("gt", gt), ("pred", pred)):
                wanted[path].add(steps)
                image_views[(path, steps)].append((j, side, view_name))
    feature_of: dict[tuple[str, Path, tuple], np.ndarray] = {}
    extractors_of: dict[tuple, set[str]] = defaultdict(set)  # view -> the networks that want its features
    for plan in plans.values():
        for extractor, vs in [v for sets in (plan.sets, *plan.by_category.values()) for v in sets.values()]:
            if extractor in nets:
                for path, steps in vs:
                    wanted[path].add(steps)
                    extractors_of[(path, steps)].add(extractor)
    # each person's files next to each other (the ground truth, then every prediction of that person in every
    # protocol and setting), so a decoded view waits only for its partner: memory stays bounded by the batches
    by_person = sorted(jobs, key=lambda job: job[2].person)
    order = list(dict.fromkeys([v[0] for _, _, job in by_person for pair in job.views.values() for v in pair]
                               + sorted(wanted)))
    workers = min(4, os.cpu_count() or 1) if settings.workers is None else settings.workers
    loader = DataLoader(FileViews([(p, sorted(wanted[p], key=repr)) for p in order]), batch_size=1, num_workers=workers,
                        collate_fn=_first)
    ready: dict[int, dict[str, dict[str, np.ndarray]]] = defaultdict(lambda: defaultdict(dict))
    queues: dict[tuple, list[tuple[int, np.ndarray, np.ndarray]]] = defaultdict(list)
    feature_queue: dict[tuple[str, tuple], list[tuple[tuple, np.ndarray]]] = defaultdict(list)
    values: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)

    def flush_images(key: tuple) -> None:
        name, setting, view_name = key[:3]
        items = queues.pop(key)
        gt = torch.from_numpy(np.stack([i[1] for i in items])).permute(0, 3, 1, 2).to(device)
        pred = torch.from_numpy(np.stack([i[2] for i in items])).permute(0, 3, 1, 2).to(device)
        for row in PROTOCOLS[name].rows_of(setting, "image"):
            if row.view != view_name or any(n not in nets for n in row.networks):
                continue
            for (j, _, _), v in zip(items, row.score(gt, pred, nets).cpu().tolist()):
                values[(name, setting, row.metric)][j] = v

    def flush_features(key: tuple) -> None:
        extractor = key[0]
        items = feature_queue.pop(key)
        feats = _features(extractor, nets[extractor], [a for _, a in items], device)
        for (fkey, _), f in zip(items, feats):
            feature_of[fkey] = f

    with torch.inference_mode():
        for item in tqdm(loader, desc="protocols", disable=not settings.progress):
            if "error" in item:
                raise images.ImageError(item["error"])
            path = item["path"]
            for steps, array in item["views"].items():
                for j, side, view_name in image_views.get((path, steps), ()):
                    slot = ready[j][view_name]
                    slot[side] = array
                    if len(slot) == 2:
                        name, setting, _ = jobs[j]
                        key = (name, setting, view_name, slot["gt"].shape, slot["pred"].shape)
                        queues[key].append((j, slot["gt"], slot["pred"]))
                        del ready[j][view_name]
                        if len(queues[key]) >= settings.batch_size:
                            flush_images(key)
                for extractor in sorted(extractors_of.get((path, steps), ())):
                    fkey = (extractor, path, steps)
                    qkey = (extractor, array.shape)
                    feature_queue[qkey].append((fkey, array))
                    if len(feature_queue[qkey]) >= settings.batch_size:
                        flush_features(qkey)
        for key in list(queues):
            flush_images(key)
        for key in list(feature_queue):
            flush_features(key)

    rows: list[tuple] = []
    blocks: dict[str, dict] = {}
    with fid.shared_scores():
        for name in names:
            proto = PROTOCOLS[name]
            if proto.plan is not None:
                blocks[name] = _block(proto, plans, jobs, values, feature_of, nets, why_not, settings, rows,
                                      ctx.categories)
    return rows, blocks


def _set_value(row: Row, sets: dict[str, tuple[str, list]], feature_of: dict, nets: dict,
               seed: int) -> tuple[float, dict[str, int]]:
    """A set row's number on the features of ``sets`` (set name -> extractor, views) and each set's size; raises the
    library's error where the script would."""
    feats = {name: _stack_rows([feature_of[(extractor, p, s)] for p, s in vs])
             for name, (extractor, vs) in sets.items() if extractor in nets}
    return float(row.score(feats, seed)), {k: int(v.shape[0]) for k, v in feats.items()}


def _by_category(row: Row, plan: Plan, vals: dict[int, float], jobs: list, categories: dict[str, str],
                 feature_of: dict, nets: dict, seed: int) -> dict[str, float | str]:
    """A row's number for each category the plan scores apart (`Plan.by_category`): per-image rows over that
    category's persons, set rows on its own sets; why not, where the script would stop."""
    out: dict[str, float | str] = {}
    for category, sets in plan.by_category.items():
        if row.level == "image":
            mine = np.array([v for j, v in vals.items() if categories.get(jobs[j][2].person) == category])
            value = aggregate(row, mine, None)
            out[category] = value if value is not None else "no image pairs matched"
            continue
        try:
            out[category] = _set_value(row, sets, feature_of, nets, seed)[0]
        except (ValueError, np.linalg.LinAlgError, KeyError) as exc:
            out[category] = f"cannot be computed: {exc}"
    return out


def _block(proto: Protocol, plans: dict, jobs: list, values: dict, feature_of: dict, nets: dict,
           why_not: dict[str, str], settings: Settings, rows: list[tuple], categories: dict[str, str]) -> dict:
    """One protocol's summary block; appends its per-image rows."""
    metrics: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    inputs: dict[str, Any] = {}
    for setting in SETTINGS:
        plan = plans.get((proto.name, setting))
        if plan is None:
            for row in proto.rows_of(setting):
                skipped[f"{setting}/{row.metric}"] = f"no {setting} results given"
            continue
        inputs[setting] = plan.inputs
        for row in proto.rows_of(setting):
            key = f"{setting}/{row.metric}"
            missing = [n for n in row.networks if n not in nets]
            if row.metric in plan.skipped or missing:
                skipped[key] = plan.skipped.get(row.metric) or why_not.get(missing[0], f"{missing[0]} not loaded")
                continue
            if row.level == "image":
                got = values.get((proto.name, setting, row.metric), {})
                order = [j for j, (n, s, _) in enumerate(jobs) if n == proto.name and s == setting and j in got]
                vals = np.array([got[j] for j in order], dtype=np.float64)
                for j in order:
                    job = jobs[j][2]
                    rows.append((setting, job.person, job.cloth, row.metric, got[j], proto.name))
                value = aggregate(row, vals, plan.divisor)
                if value is None:
                    skipped[key] = "no image pairs matched"
                    continue
                metrics[key] = {"value": value, **stats.describe(vals, settings.n_boot, settings.seed)}
            else:
                try:
                    value, sizes = _set_value(row, plan.sets, feature_of, nets, settings.seed)
                except (ValueError, np.linalg.LinAlgError, KeyError) as exc:
                    skipped[key] = f"cannot be computed: {exc}"
                    continue
                metrics[key] = {"value": value, "n": sizes}
            if plan.by_category:
                metrics[key]["categories"] = _by_category(row, plan, got if row.level == "image" else {}, jobs,
                                                          categories, feature_of, nets, settings.seed)
    return {"title": proto.title, "source": proto.source, "pins": proto.pins, "versions": VERSIONS,
            "notes": list(proto.notes),
            "seed": settings.seed, "settings": {r.metric: r.how for r in proto.rows}, "inputs": inputs,
            "metrics": metrics, "skipped": skipped}

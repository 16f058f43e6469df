"""The one pass over the images: every metric row left to compute, fed batch by batch, then the run's outputs.

One DataLoader item per test person decodes, in a worker, everything scored for that person (real photo, cloth
region from the parse, paired try-on and warp-mask, unpaired try-on); each batch then feeds every per-image row on the
device and gathers the Inception features the set-level rows score at the end. A second, small pass scores the
in-shop cloths (TV), which defines the LARGE / SMALL subsets.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from vton.core import formats as fm
from vton.core.devices import ieee_fp32, resolve_device
from vton.eval import images, inputs, protocol_pass
from vton.eval import metrics as M
from vton.eval.comparison import comparison, vton_block
from vton.eval.networks import inception_features, load_networks, load_protocol_networks
from vton.eval.protocols import DEFAULT, PROTOCOLS
from vton.eval.registry import SUBSET_METRIC, Tensors
from vton.eval.settings import Settings, Work
from vton.eval.summary import (
    categories_block,
    computed,
    dataset_block,
    per_image_summary,
    protocol,
    resize_block,
    row_categories,
    set_level_entry,
    tv_subsets,
    write_run,
)
from vton.pipelines.layouts.base import Layout


def cloth_scores(cloths: Sequence[Path], work: Work, settings: Settings, device: torch.device,
                 rows: list[tuple], scale: inputs.Scale) -> tuple[dict[str, float], int]:
    """The cloth rows of every in-shop cloth at the scoring size; returns the subset metric's values and the count
    of resized cloths."""
    specs = work.specs("cloth")
    values: dict[str, float] = {}
    resized = 0
    load = functools.partial(inputs.load_cloth, scale=scale)
    for batch in inputs.batches(inputs.Mapped(cloths, load), settings, device, "tv"):
        given = Tensors(cloth=batch["image"].to(device, non_blocking=True).float() / 255)
        for spec in specs:
            scores = spec.score(given).double().cpu().tolist()
            rows.extend(("cloth", "", c, spec.name, v) for c, v in zip(batch["cloth"], scores))
            if spec.name == SUBSET_METRIC:
                values.update(zip(batch["cloth"], scores))
        resized += int(batch["resized"].sum())
    return values, resized


def scoring_scale(settings: Settings, layout: Layout, preds: Sequence[Path]) -> tuple[inputs.Scale, dict[str, Any]]:
    """The scoring size and where it came from: ``settings.eval_size`` ("given"), else the size of the first
    prediction scored ("results"), else, when no prediction is scored, the layout's native size ("dataset"). Every
    prediction's size is read from its header before any decoding: one of another size is an error naming it (unless
    ``settings.resize_predictions``)."""
    sizes = {p: images.image_size(p)[::-1] for p in preds}
    first = None
    if settings.eval_size is not None:
        size, origin = settings.eval_size, "given"
    elif preds:
        first = preds[0]
        size, origin = sizes[first], "results"
    else:
        size, origin = layout.native_size_hw, "dataset"
    scale = inputs.Scale((int(size[0]), int(size[1])), settings.resize_predictions)
    off = [(p, hw) for p, hw in sizes.items() if hw != scale.size_hw]
    if off and not scale.resize_predictions:
        raise ValueError(f"{len(off)} of {len(preds)} predictions are not at the scoring size ({origin}"
                         f"{f' by {first}' if first else ''}), e.g. {scale.off_size(*off[0])}")
    return scale, {"origin": origin, "first_prediction": str(first) if first else None,
                   "predictions_at_another_size": len(off)}


def _score_batch(batch: dict[str, Any], pairs: dict[str, dict[str, str]], work: Work, nets: dict[str, Any],
                 device: torch.device, rows: list[tuple], banks: dict[str, M.FeatureBank]) -> None:
    real = batch["real"].to(device, non_blocking=True)
    sel = batch["in_paired"]
    specs = work.specs("paired", "image")
    if sel.any() and specs:
        names = [p for p, s in zip(batch["person"], sel.tolist()) if s]
        on = sel.to(device)
        given = Tensors(fake=batch["paired"][sel].to(device, non_blocking=True).float() / 255,
                        real=real[on].float() / 255, warp=batch["warp"][sel].to(device),
                        region=batch["region"][sel].to(device), **nets)  # shared: one SSIM map for all rows
        for spec in specs:
            rows.extend(("paired", p, pairs["paired"][p], spec.name, v)
                        for p, v in zip(names, spec.score(given).double().cpu().tolist()))
    if "inception" not in nets or not work.specs("unpaired"):
        return
    use_real = batch["has_real"] & work.needs("real", "unpaired")
    use_fake = batch["has_unpaired"]
    images = torch.cat([real[use_real.to(device)], batch["unpaired"][use_fake].to(device, non_blocking=True)])
    if images.shape[0] == 0:
        return
    pool, logits = inception_features(nets["inception"], images, device)
    n_real = int(use_real.sum())
    banks["real"].update([p for p, s in zip(batch["person"], use_real.tolist()) if s], pool[:n_real])
    fake_names = [p for p, s in zip(batch["person"], use_fake.tolist()) if s]
    banks["pool"].update(fake_names, pool[n_real:])
    banks["logits"].update(fake_names, logits[n_real:])


Group = tuple[list[str], list[str] | None]  # (generated images' persons, real images' persons; None: every one)


def _groups(banks: dict[str, M.FeatureBank], unpaired: dict[str, str], cloth_subsets: dict[str, set[str] | None],
            categories: dict[str, str], names: Sequence[str]) -> dict[str, Group]:
    """The images of each subset's set-level scores: "all"; LARGE / SMALL, the generated images whose target cloth is
    in it, against every real image; each garment category, its generated images against its own real images."""
    fakes, reals = banks["logits"].keys(), banks["real"].keys()
    groups: dict[str, Group] = {name: ([p for p in fakes if cloths is None or unpaired[p] in cloths], None)
                                for name, cloths in cloth_subsets.items()}
    for name in names:
        groups[name] = tuple([p for p in keys if categories.get(p) == name] for keys in (fakes, reals))
    return groups


def _set_metrics(work: Work, settings: Settings, banks: dict[str, M.FeatureBank], groups: dict[str, Group],
                 device: torch.device) -> tuple[dict[str, dict], dict[str, dict]]:
    """The set-level rows for every group (`_groups`). Also returns the parameter each row used per group (e.g. IS
    splits), for the protocol block."""
    out: dict[str, dict] = {}
    used: dict[str, dict] = {spec.name: {} for spec in work.specs(level="set")}
    for name, (fakes, reals) in groups.items():
        given = {"real": banks["real"].stack(reals).to(device), "fake": banks["pool"].stack(fakes).to(device),
                 "logits": banks["logits"].stack(fakes)}
        for spec in work.specs(level="set"):
            score = spec.score(Tensors(**given), settings)
            out.setdefault(f"{spec.setting}/{spec.name}", {})[name] = set_level_entry(score, len(fakes))
            if score.used is not None:
                used[spec.name][name] = score.used
    return out, used


def score_vton(data: Path, results: dict[str, Path | None], settings: Settings, made_by: dict[str, Any],
               device: torch.device, found: dict[str, inputs.Matched], categories: dict[str, str]
               ) -> tuple[pd.DataFrame, dict]:
    """The ``vton`` protocol on the dataset at ``data``, read through its layout adapter: per-image rows and its
    summary entries, scored at `scoring_scale`'s size. ``found``: per setting, each person's result file;
    ``categories``: the listed persons' garment categories (`Context.categories`)."""
    work = Work.of(settings)
    wanted = [s for s in inputs.SETTINGS_PAIRS if work.specs(s) and results.get(s) is not None]
    files = inputs.dataset_test_files(data, wanted, categories)
    for setting in inputs.SETTINGS_PAIRS:
        why = files.absent.get(setting) if setting in wanted else f"no {setting} try-on results"
        for spec in work.specs(setting) if why else ():
            work.skip(spec.name, why)
    nets, weight_files = load_networks(work, settings, device)
    absent = inputs.missing_warp_masks(files, results) if work.needs("warp") else []
    for spec in work.specs() if absent else ():
        if "warp" in spec.inputs:
            work.skip(spec.name, f"warp-mask missing for {len(absent)} of {len(files.pairs['paired'])} paired "
                                 f"persons (e.g. {absent[0]}) in {inputs.warp_mask_dir(results)}")
    items = inputs.person_items(files, results, {
        "real": work.needs("real", "paired") or work.needs("real", "unpaired"), "region": work.needs("region"),
        "fake": work.needs("fake", "paired"), "warp": work.needs("warp"), "unpaired": bool(work.specs("unpaired"))},
        {s: m.found for s, m in found.items()})
    score_person = bool(items) and bool(work.specs("paired") or "inception" in nets)
    scale, origin = scoring_scale(settings, files.layout, inputs.predictions(items) if score_person else [])
    with torch.inference_mode(), ieee_fp32():
        rows: list[tuple] = []
        tv, resized_cloths = cloth_scores(files.cloths, work, settings, device, rows, scale)
        large, small, k = tv_subsets(tv, settings.subset_size)
        banks = {name: M.FeatureBank() for name in ("real", "pool", "logits")}
        lookup = {setting: dict(p) for setting, p in files.pairs.items()}
        resized = {"ground_truth": 0, "cloths": resized_cloths, "predictions": 0}
        if score_person:
            load = functools.partial(inputs.load_person, scale=scale)
            for batch in inputs.batches(inputs.Mapped(items, load), settings, device, "evaluate"):
                _score_batch(batch, lookup, work, nets, device, rows, banks)
                resized["ground_truth"] += int(batch["resized_truth"].sum())
                resized["predictions"] += int(batch["resized_pred"].sum())
        categories = fm.category_order(files.categories)
        groups = _groups(banks, lookup.get("unpaired", {}), {"all": None, "large": large, "small": small},
                         files.categories, categories)
        set_scores, used = _set_metrics(work, settings, banks, groups, device) if "inception" in nets else ({}, {})

    frame = pd.DataFrame(rows, columns=list(fm.METRIC_COLUMNS[:5])).astype({"value": "float64"})
    frame["large"] = frame["cloth"].isin(large)
    frame["small"] = frame["cloth"].isin(small)
    frame["protocol"] = "vton"
    frame["category"] = row_categories(frame, files.categories, files.pairs)
    scores = computed({**per_image_summary(frame, settings, categories), **set_scores}, frame, work)
    return frame, {
        **({"categories": categories_block(categories, files)} if categories else {}),
        "checkpoints": made_by.get("checkpoints"),
        "inference": made_by.get("inference"),
        "protocol": protocol(settings, device, weight_files, k, len(tv), used, len(banks["real"]),
                             dataset_block(files), resize_block(scale, origin, resized)),
        "metrics": scores,
        "skipped": work.skipped,
        "missing_weights": work.missing_weights,
    }


def evaluate(data: Path, results: dict[str, Path | None], out: Path, settings: Settings = Settings(),
             made_by: dict[str, Any] | None = None, protocols: Sequence[str] = (DEFAULT,)) -> dict:
    """Score existing try-on results under each protocol named (`vton.eval.protocols`) and write metrics.parquet
    (one row per image, metric and protocol) + summary.json (one block per protocol, and their comparison).

    ``results``: per setting, a results folder (DIR/try-on/ + warp-mask/, or a flat or nested folder of images).
    ``made_by``: what made the results ("checkpoints", "inference"), recorded as given (`vton.workflows.evaluate`
    reads it from each folder's infer.json)."""
    data, out = Path(data).resolve(), Path(out).resolve()
    device = resolve_device(settings.device)
    made_by = made_by or {}
    frames = []
    summary: dict[str, Any] = {"run": out.name, "data": str(data),
                               "results": {s: str(Path(p).resolve()) for s, p in results.items() if p is not None},
                               "checkpoints": made_by.get("checkpoints"), "inference": made_by.get("inference"),
                               "protocol": None, "metrics": {}, "skipped": {}, "missing_weights": []}
    ctx = protocol_pass.context(data, {s: inputs.image_dir(p) for s, p in results.items() if p is not None})
    matched = inputs.match_folders(ctx.pairs, results)
    summary["results_files"] = {s: inputs.matched_record(m) for s, m in matched.items()}
    if DEFAULT in protocols:
        frame, vton = score_vton(data, results, settings, made_by, device, matched, ctx.categories)
        frames.append(frame)
        summary.update(vton)
    field = [p for p in protocols if p != DEFAULT]
    blocks: dict[str, dict] = {}
    if field:
        nets, why_not, files = load_protocol_networks(field, settings, device)
        with ieee_fp32():
            rows, blocks = protocol_pass.run_protocols(field, ctx, settings, device, nets, why_not)
        for name in field:
            blocks[name]["weights"] = {n: files[n] for n in files if any(n in r.networks
                                                                         for r in PROTOCOLS[name].rows)}
        summary["missing_weights"] += [w for w in why_not.values() if w not in summary["missing_weights"]]
        extra = pd.DataFrame(rows, columns=["setting", "person", "cloth", "metric", "value", "protocol"])
        frames.append(extra.assign(large=False, small=False, category=row_categories(extra, ctx.categories, ctx.pairs))
                      .astype({"value": "float64"}))
    summary["protocols"] = {**({DEFAULT: vton_block(summary)} if DEFAULT in protocols else {}), **blocks}
    summary["comparison"] = comparison(summary["protocols"])
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(fm.METRIC_COLUMNS))
    frame = frame.sort_values(["protocol", "setting", "metric", "person", "cloth"], kind="stable")
    write_run(out, frame.reset_index(drop=True), summary)
    return summary

"""The evaluation protocol: pairs, cloth subsets, one batched pass over the images, and the run's outputs.

One DataLoader item per test person decodes, in a worker, everything scored for that person (real photo, cloth
region from the parse, paired try-on and warp-mask, unpaired try-on); each batch then feeds every metric on the
device. A second, small pass scores the in-shop cloths (TV norm), which defines the LARGE / SMALL subsets.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm import tqdm

from vton.core import formats as fm
from vton.core.devices import ieee_fp32, resolve_device
from vton.core.io import atomic_write_bytes, atomic_write_json, find_image, safe_join
from vton.core.versions import library_versions
from vton.eval import images, stats, weights
from vton.eval import metrics as M
from vton.eval.registry import (
    ALL_METRICS,
    PAIRED_METRICS,
    SETTING_OF,
    SUBSETS,
    UNPAIRED_METRICS,
)

SETTINGS_PAIRS = {"paired": fm.TEST_PAIRS_SAME, "unpaired": fm.TEST_PAIRS}
DATA_RANGE = 1.0  # SSIM on [0, 1] floats (uint8 / 255)
MASK_THRESHOLD = 128  # warp-mask pixel >= 128 counts as cloth

EXIT_SKIPPED = 4  # CLI exit status when a metric named with --metrics could not be computed (without --allow-skips)
CPU_INCEPTION_BATCH = 8  # measured: ~95 ms/image at batch 1-16, ~130 ms/image at 64 on a 2-core CPU


@dataclass(frozen=True)
class Settings:
    """Every choice that can change a score; recorded in summary.json.

    ``metrics``: the metrics named by the user, or None for all of them. A named metric that cannot be computed is a
    failure the CLI reports (exit status ``EXIT_SKIPPED``); of the default set, what cannot run is skipped with a note.
    """

    metrics: tuple[str, ...] | None = None
    device: str | None = None  # None: cuda when available
    batch_size: int = 32
    workers: int | None = None  # None: min(4, cpu count)
    seed: int = 0  # IS shuffle, KID subsets, bootstrap
    n_boot: int = 1000
    is_splits: int = 10
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    subset_size: int = 50  # LARGE / SMALL: the top / bottom cloths by TV
    weights_dir: Path | None = None
    progress: bool = True

    @property
    def chosen(self) -> tuple[str, ...]:
        return ALL_METRICS if self.metrics is None else self.metrics

    def __post_init__(self) -> None:
        unknown = set(self.chosen) - set(ALL_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(ALL_METRICS)}")
        if self.batch_size < 1 or self.is_splits < 1 or self.kid_subsets < 1 or self.n_boot < 1:
            raise ValueError("batch size, IS splits, KID subsets and bootstrap resamples must be positive")


@dataclass
class _Work:
    """What this run computes after weights and inputs were checked."""

    metrics: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    missing_weights: list[str] = field(default_factory=list)  # why weight files were missing, once each

    def skip(self, metric: str, reason: str) -> None:
        if metric in self.metrics:
            self.metrics.remove(metric)
            self.skipped[metric] = reason

    def skip_for_weights(self, metrics: Sequence[str], error: Exception) -> None:
        """Skip ``metrics`` because a weight file (or the package holding the network) is missing."""
        if self.any(metrics) and str(error) not in self.missing_weights:
            self.missing_weights.append(str(error))
        for metric in metrics:
            self.skip(metric, str(error))

    def any(self, names: Sequence[str]) -> bool:
        return any(m in self.metrics for m in names)


# --- inputs --------------------------------------------------------------------------------------
def _fit(array: np.ndarray, resample: Image.Resampling) -> tuple[np.ndarray, bool]:
    if array.shape[:2] == fm.FINE_HW:
        return array, False
    return np.asarray(Image.fromarray(array).resize(fm.FINE_WH, resample)), True


def load_rgb(path: Path) -> tuple[torch.Tensor, bool]:
    """uint8 3 x 256 x 192, decoded exactly (`vton.eval.images`); other sizes are resized with PIL bicubic (and
    counted)."""
    img, resized = _fit(images.read_image(path, images.rgb), Image.Resampling.BICUBIC)
    return torch.from_numpy(img.copy()).permute(2, 0, 1), resized


def load_mask(path: Path) -> tuple[torch.Tensor, bool]:
    """Boolean 256 x 192 mask of a grey image (level >= 128, levels as `vton.eval.images` decodes them)."""
    img, resized = _fit(images.read_image(path, images.grey), Image.Resampling.NEAREST)
    return torch.from_numpy(img >= MASK_THRESHOLD), resized


def load_cloth_region(path: Path) -> torch.Tensor:
    """Boolean mask of the person's cloth labels (5, 6, 7) from a label-index parse map (`vton.eval.images`)."""
    region = np.isin(images.read_image(path, images.labels), fm.CLOTH_LABELS).astype(np.uint8)
    img, _ = _fit(region, Image.Resampling.NEAREST)  # nearest: the same pixels as resizing the labels first
    return torch.from_numpy(img.astype(bool))


@dataclass(frozen=True)
class PersonItem:
    person: str
    real: Path | None
    parse: Path | None
    paired: Path | None
    warp: Path | None
    unpaired: Path | None


def _load_person(item: PersonItem) -> dict[str, Any]:
    """Everything scored for one person; absent parts are zeros with a False flag so batches collate."""
    h, w = fm.FINE_HW
    out: dict[str, Any] = {"person": item.person, "resized": 0}
    for key, path, loader, blank in (
        ("real", item.real, load_rgb, torch.zeros(3, h, w, dtype=torch.uint8)),
        ("paired", item.paired, load_rgb, torch.zeros(3, h, w, dtype=torch.uint8)),
        ("unpaired", item.unpaired, load_rgb, torch.zeros(3, h, w, dtype=torch.uint8)),
        ("warp", item.warp, load_mask, torch.zeros(h, w, dtype=torch.bool)),
    ):
        out[f"has_{key}"] = path is not None
        if path is None:
            out[key] = blank
        else:
            out[key], resized = loader(path)
            out["resized"] += int(resized)
    out["region"] = load_cloth_region(item.parse) if item.parse else torch.zeros(h, w, dtype=torch.bool)
    return out


def _load_cloth(path: Path) -> dict[str, Any]:
    img, resized = load_rgb(path)
    return {"cloth": path.name, "image": img, "resized": int(resized)}


class _Mapped(Dataset):
    """Items decoded by a module-level function (picklable for DataLoader workers).

    A file that cannot be decoded becomes an ``{"error": message}`` item rather than an exception: one raised in a
    worker process reaches the caller wrapped in a multi-line traceback, the message does so intact.
    """

    def __init__(self, items: Sequence[Any], load: Callable[[Any], dict[str, Any]]) -> None:
        self.items, self.load = list(items), load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            return self.load(self.items[i])
        except images.ImageError as exc:
            return {"error": str(exc)}


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [item["error"] for item in items if "error" in item]
    return {"errors": errors} if errors else default_collate(items)


def _batches(dataset: Dataset, settings: Settings, device: torch.device, desc: str) -> Iterator[dict[str, Any]]:
    """The decoded batches in order; the first undecodable file ends the run with its one-line ImageError."""
    workers = min(4, os.cpu_count() or 1) if settings.workers is None else settings.workers
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda", collate_fn=_collate)
    for batch in tqdm(loader, desc=desc, disable=not settings.progress):
        if "errors" in batch:
            raise images.ImageError(batch["errors"][0])
        yield batch


# --- cloth subsets -------------------------------------------------------------------------------
def tv_subsets(tv: dict[str, float], size: int) -> tuple[set[str], set[str], int]:
    """LARGE / SMALL = the k cloths with the highest / lowest TV, k = min(size, N // 2) so they never overlap.

    Ties are broken by cloth name, so the choice is deterministic.
    """
    k = min(size, len(tv) // 2)
    ranked = sorted(tv, key=lambda c: (-tv[c], c))
    large = set(ranked[:k])
    small = set(sorted(tv, key=lambda c: (tv[c], c))[:k])
    return large, small, k


def cloth_tv(cloths: Sequence[Path], settings: Settings, device: torch.device) -> tuple[dict[str, float], int]:
    tv: dict[str, float] = {}
    resized = 0
    for batch in _batches(_Mapped(cloths, _load_cloth), settings, device, "tv"):
        x = batch["image"].to(device, non_blocking=True).float() / 255
        tv.update(zip(batch["cloth"], M.total_variation(x).double().cpu().tolist()))
        resized += int(batch["resized"].sum())
    return tv, resized


# --- the pass ------------------------------------------------------------------------------------
def _models(work: _Work, settings: Settings, device: torch.device) -> tuple[M.LPIPS | None, torch.nn.Module | None,
                                                                             dict[str, Any]]:
    """Load the networks the chosen metrics need; a missing file skips its metrics with the reason."""
    lpips_net = inception = None
    files: dict[str, Any] = {}
    if "lpips" in work.metrics:
        try:
            backbone = weights.require(weights.ALEXNET_FILE, settings.weights_dir)
            lin = weights.lpips_lin_path()
            lpips_net = M.LPIPS.from_files(backbone, lin).to(device)
            files["lpips"] = {"backbone": weights.file_record(backbone), "lin": str(lin)}
        except weights.MissingWeightsError as exc:
            work.skip_for_weights(["lpips"], exc)
    if work.any(UNPAIRED_METRICS):
        try:
            path = weights.require(weights.INCEPTION_FILE, settings.weights_dir)
            inception = M.inception_extractor(path).to(device)
            files["inception"] = weights.file_record(path)
        except (weights.MissingWeightsError, ModuleNotFoundError) as exc:
            work.skip_for_weights(UNPAIRED_METRICS, exc)
    return lpips_net, inception, files


def _person_items(data: Path, pairs: dict[str, list[tuple[str, str]]], results: dict[str, Path | None],
                  work: _Work) -> list[PersonItem]:
    """One item per test person; checks every needed file exists before any decoding starts."""
    test = data / "test"
    paired = dict(pairs.get("paired", []))
    unpaired = dict(pairs.get("unpaired", []))
    need_real = work.any(PAIRED_METRICS) or work.any(("fid", "kid"))
    need_parse = work.any(("iou", "ssim_cloth"))
    p_dir, u_dir = results.get("paired"), results.get("unpaired")
    warp_dir = p_dir / fm.WARP_MASK_DIR if p_dir is not None else None
    if "iou" in work.metrics and paired:
        absent = [p for p in paired if find_image(warp_dir, Path(p).stem) is None]
        if absent:
            work.skip("iou", f"warp-mask missing for {len(absent)} of {len(paired)} paired persons "
                             f"(e.g. {absent[0]}) in {warp_dir}")
    items, missing = [], []

    def need(path: Path | None, what: str, person: str) -> Path | None:
        if path is None or not path.is_file():
            missing.append(f"{what} for {person}" + (f": {path}" if path else ""))
        return path

    for person in sorted(set(paired) | set(unpaired)):
        stem = Path(person).stem
        real = need(safe_join(test, f"{fm.IMAGE_DIR}/{person}"), "person image", person) if need_real else None
        parse = (need(safe_join(test, f"{fm.PARSE_DIR}/{fm.parse_name(person)}"), "parse", person)
                 if need_parse else None)
        tryon_p = need(find_image(p_dir / fm.TRYON_DIR, stem), "paired try-on", person) if person in paired else None
        warp = find_image(warp_dir, stem) if person in paired and "iou" in work.metrics else None
        tryon_u = (need(find_image(u_dir / fm.TRYON_DIR, stem), "unpaired try-on", person)
                   if person in unpaired and work.any(UNPAIRED_METRICS) else None)
        items.append(PersonItem(person, real, parse, tryon_p, warp, tryon_u))
    if missing:
        raise FileNotFoundError(f"{len(missing)} input files missing, e.g. " + "; ".join(missing[:5]))
    return items


def _score_batch(batch: dict[str, Any], pairs: dict[str, dict[str, str]], work: _Work, nets: tuple,
                 device: torch.device, rows: list[tuple], banks: dict[str, M.FeatureBank]) -> None:
    lpips_net, inception = nets
    real = batch["real"].to(device, non_blocking=True)
    sel = batch["has_paired"]
    if sel.any() and work.any(PAIRED_METRICS):
        names = [p for p, s in zip(batch["person"], sel.tolist()) if s]
        fake = batch["paired"][sel].to(device, non_blocking=True).float() / 255
        gt = real[sel.to(device)].float() / 255
        scores: dict[str, torch.Tensor] = {}
        if work.any(("ssim", "ssim_cloth")):
            smap = M.ssim_map(fake, gt, DATA_RANGE)
            scores["ssim"] = smap.mean(dim=(1, 2))
            scores["ssim_cloth"] = M.masked_mean(smap, batch["region"][sel].to(device))
        if lpips_net is not None:
            scores["lpips"] = lpips_net(fake * 2 - 1, gt * 2 - 1)
        if "iou" in work.metrics:
            scores["iou"] = M.iou(batch["warp"][sel].to(device), batch["region"][sel].to(device))
        for metric in PAIRED_METRICS:
            if metric in work.metrics:
                for person, v in zip(names, scores[metric].double().cpu().tolist()):
                    rows.append(("paired", person, pairs["paired"][person], metric, v))
    if inception is None:
        return
    use_real = batch["has_real"] & work.any(("fid", "kid"))
    use_fake = batch["has_unpaired"]
    images = torch.cat([real[use_real.to(device)], batch["unpaired"][use_fake].to(device, non_blocking=True)])
    if images.shape[0] == 0:
        return
    # On the CPU Inception is fastest in small batches (cache-resident activations); on a GPU, in one.
    size = images.shape[0] if device.type == "cuda" else CPU_INCEPTION_BATCH
    parts = [inception(chunk) for chunk in images.split(size)]
    pool, logits = (torch.cat(outs) for outs in zip(*parts))
    n_real = int(use_real.sum())
    banks["real"].update([p for p, s in zip(batch["person"], use_real.tolist()) if s], pool[:n_real])
    fake_names = [p for p, s in zip(batch["person"], use_fake.tolist()) if s]
    banks["pool"].update(fake_names, pool[n_real:])
    banks["logits"].update(fake_names, logits[n_real:])


def _set_metrics(work: _Work, settings: Settings, banks: dict[str, M.FeatureBank], unpaired: dict[str, str],
                 subsets: dict[str, set[str] | None], device: torch.device) -> tuple[dict[str, dict], dict[str, dict]]:
    """IS / FID / KID for every subset; the generated images of a subset are those whose target cloth is in it."""
    out: dict[str, dict] = {}
    used: dict[str, dict] = {"is_splits": {}, "kid_subset_size": {}}
    real = banks["real"].stack().to(device)
    for subset, cloths in subsets.items():
        keys = [p for p in banks["logits"].keys() if cloths is None or unpaired[p] in cloths]
        n = len(keys)
        if "is" in work.metrics:
            splits = min(settings.is_splits, max(1, n // 2))  # at least 2 images per split
            mean, std = M.inception_score(banks["logits"].stack(keys), splits, settings.seed) if n else (None, None)
            out.setdefault("unpaired/is", {})[subset] = stats.set_level(mean, std, n)
            used["is_splits"][subset] = splits
        fake = banks["pool"].stack(keys).to(device)
        if "fid" in work.metrics:
            fid = M.frechet_distance(real, fake) if min(n, real.shape[0]) >= 2 else None
            out.setdefault("unpaired/fid", {})[subset] = stats.set_level(fid, None, n)
        if "kid" in work.metrics:
            size = min(settings.kid_subset_size, n, real.shape[0])
            mean, std = (M.kernel_inception_distance(real, fake, settings.kid_subsets, size, settings.seed)
                         if size >= 2 else (None, None))
            out.setdefault("unpaired/kid", {})[subset] = stats.set_level(mean, std, n)
            used["kid_subset_size"][subset] = size
    return out, used


def _protocol(settings: Settings, device: torch.device, files: dict[str, Any], k: int, n_cloths: int,
              resized: int, used: dict[str, dict], real_n: int) -> dict[str, Any]:
    r = M.ssim_radius()
    return {
        "versions": library_versions("torch", "torchvision", "torch-fidelity", "lpips", "numpy", "pillow", "pandas",
                                     "pyarrow"),
        "metrics_requested": list(settings.chosen),
        "metrics_named": settings.metrics is not None,
        "weights_dir": str(settings.weights_dir) if settings.weights_dir else None,
        "device": device.type,
        "precision": "float32 (IEEE: cuDNN TF32 off and deterministic, matmul precision highest); FID, KID and IS "
                     "in float64",
        "batch_size": settings.batch_size,
        "seed": settings.seed,
        "pairs": dict(SETTINGS_PAIRS),
        "resize": {"size": list(fm.FINE_HW), "rule": "images of another size are resized: RGB with PIL bicubic, masks "
                   "with nearest", "resized_images": resized},
        "ssim": {"data_range": DATA_RANGE, "input": "RGB uint8/255 in [0,1], channels averaged", "sigma": M.SSIM_SIGMA,
                 "window": 2 * r + 1, "k1": M.SSIM_K1, "k2": M.SSIM_K2, "covariance": "population",
                 "border": f"map averaged where the window fits ({r} px cropped per border, as skimage)"},
        "ssim_cloth": {"definition": "mean of the SSIM map over the pixels of the real person's cloth region "
                       f"(parse labels {list(fm.CLOTH_LABELS)}) inside the same cropped area; NaN (excluded) if empty"},
        "iou": {"definition": f"warp-mask >= {MASK_THRESHOLD} vs parse labels {list(fm.CLOTH_LABELS)}; 1.0 if both "
                "empty"},
        "lpips": {"version": "0.1", "net": "alex", "input": "[-1,1]", "resolution": "native", "reduction":
                  "spatial average", "weights": files.get("lpips")},
        "inception_score": {"extractor": "torch-fidelity inception-v3-compat", "feature": "logits_unbiased",
                            "resize": "torch-fidelity TF1.x-style bilinear to 299x299 (no antialias)",
                            "splits": settings.is_splits, "splits_used": used.get("is_splits", {}),
                            "splits_rule": "min(splits, max(1, N // 2)): at least 2 images per split",
                            "shuffle": "torch.randperm, generator seeded with seed", "std": "ddof=0",
                            "weights": files.get("inception")},
        "fid": {"feature": "2048 (pool3)", "reference": "real test person images of the pairs files", "n_real": real_n,
                "covariance": "ddof=1", "sqrt": "Tr((S1 S2)^1/2) = nuclear norm of D1 D2^T / sqrt((n1-1)(n2-1))"},
        "kid": {"feature": "2048 (pool3)", "subsets": settings.kid_subsets, "subset_size": settings.kid_subset_size,
                "subset_size_used": used.get("kid_subset_size", {}), "kernel": "(x.y/d + 1)^3", "std": "ddof=0"},
        "tv": {"definition": "anisotropic L1 on [0,1] RGB, sum of |vertical| + |horizontal| differences / (C*H*W)",
               "cloths": n_cloths, "subset_size": settings.subset_size, "subset_size_used": k,
               "subset_rule": "k = min(subset_size, N // 2) highest (LARGE) / lowest (SMALL) TV, ties by name"},
        "bootstrap": {"resamples": settings.n_boot, "seed": settings.seed, "level": 0.95, "kind": "percentile",
                      "std": "ddof=1"},
    }


def evaluate(data: Path, results: dict[str, Path | None], out: Path, settings: Settings = Settings()) -> dict:
    """Score existing try-on results (CONTRACTS §4 layout per setting) and write metrics.parquet + summary.json."""
    data, out = Path(data).resolve(), Path(out).resolve()
    device = resolve_device(settings.device)
    work = _Work([m for m in ALL_METRICS if m in settings.chosen or m == "tv"])
    inference = inference_records(results)
    pairs: dict[str, list[tuple[str, str]]] = {}
    for setting, filename in SETTINGS_PAIRS.items():
        names = [m for m in work.metrics if SETTING_OF[m] == setting]
        if not names:
            continue
        if results.get(setting) is None:
            for m in names:
                work.skip(m, f"no {setting} try-on results")
        elif not (data / filename).is_file():
            for m in names:
                work.skip(m, f"{data / filename} not found")
        else:
            pairs[setting] = fm.read_pairs(data / filename, unique_persons=True)
            if not pairs[setting]:
                for m in names:
                    work.skip(m, f"{data / filename} lists no pairs")

    cloth_dir = data / "test" / fm.CLOTH_DIR
    cloths = (
        sorted(p for p in cloth_dir.iterdir() if p.suffix.lower() in fm.IMAGE_SUFFIXES) if cloth_dir.is_dir() else []
    )
    if not cloths:
        raise FileNotFoundError(f"no in-shop cloth images in {cloth_dir}")
    lpips_net, inception, files = _models(work, settings, device)
    items = _person_items(data, pairs, results, work)
    with torch.inference_mode(), ieee_fp32():
        tv, resized = cloth_tv(cloths, settings, device)
        large, small, k = tv_subsets(tv, settings.subset_size)
        rows: list[tuple] = [("cloth", "", c, "tv", v) for c, v in sorted(tv.items())]
        banks = {name: M.FeatureBank() for name in ("real", "pool", "logits")}
        lookup = {setting: dict(p) for setting, p in pairs.items()}
        if items and (work.any(PAIRED_METRICS) or inception is not None):
            for batch in _batches(_Mapped(items, _load_person), settings, device, "evaluate"):
                _score_batch(batch, lookup, work, (lpips_net, inception), device, rows, banks)
                resized += int(batch["resized"].sum())
        set_scores, used = _set_metrics(work, settings, banks, lookup.get("unpaired", {}),
                                        {"all": None, "large": large, "small": small},
                                        device) if inception is not None else ({}, {})

    frame = pd.DataFrame(rows, columns=list(fm.METRIC_COLUMNS[:5])).astype({"value": "float64"})
    frame["large"] = frame["cloth"].isin(large)
    frame["small"] = frame["cloth"].isin(small)
    frame = frame.sort_values(["setting", "metric", "person", "cloth"], kind="stable").reset_index(drop=True)
    scores = _computed({**_per_image_summary(frame, settings), **set_scores}, frame, work)
    summary = {
        "run": out.name,
        "data": str(data),
        "results": {s: str(Path(p).resolve()) for s, p in results.items() if p is not None},
        "checkpoints": scored_checkpoints(inference),
        "inference": inference,
        "protocol": _protocol(settings, device, files, k, len(tv), resized, used, len(banks["real"])),
        "metrics": scores,
        "skipped": work.skipped,
        "missing_weights": work.missing_weights,
    }
    write_run(out, frame, summary)
    return summary


def _computed(scores: dict[str, dict], frame: pd.DataFrame, work: _Work) -> dict[str, dict]:
    """The scores of the metrics that have a value; every other chosen metric moves to the skipped ones with why,
    so each metric is either computed or explained (e.g. FID and KID of a single image, SSIM in an empty region)."""
    for metric in list(work.metrics):
        name = f"{SETTING_OF[metric]}/{metric}"
        entry = scores.get(name, {}).get("all")
        if entry is None or entry["mean"] is None:
            n = entry["n"] if metric in UNPAIRED_METRICS and entry else int((frame["metric"] == metric).sum())
            work.skip(metric, f"no value could be computed from the {n} images scored")
            scores.pop(name, None)
    return scores


def unmet(settings: Settings, summary: dict) -> dict[str, str]:
    """The metrics the user named that were not computed, with why (the CLI's exit status ``EXIT_SKIPPED``)."""
    return {m: summary["skipped"][m] for m in settings.metrics or () if m in summary["skipped"]}


def inference_records(results: dict[str, Path | None]) -> dict[str, dict | None]:
    """Each results folder's infer.json (what made its images; None for another method's outputs without one).

    A folder made for another split or pairs list than its setting is refused: its scores would belong to other
    pairs.
    """
    from vton.models.infer import META_FILE

    records: dict[str, dict | None] = {}
    for setting, folder in results.items():
        if folder is None:
            continue
        path = Path(folder) / META_FILE
        try:
            rec = records[setting] = json.loads(path.read_text()) if path.is_file() else None
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: unreadable ({exc})") from exc
        if rec is None:
            continue
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: not an infer.json (expected a JSON object)")
        if rec.get("split") != "test" or rec.get("pairs") in SETTINGS_PAIRS and rec["pairs"] != setting:
            raise ValueError(f"{folder} was made for split {rec.get('split')!r}, pairs {rec.get('pairs')!r} "
                             f"(by {path}), not the {setting} test pairs")
    return records


def scored_checkpoints(records: dict[str, dict | None]) -> list[dict[str, str]] | None:
    """The checkpoints (path and sha256) that made the scored images, from infer.json; None when unknown.

    Paired and unpaired results made by different weights are refused: one run's scores belong to one model.
    """
    from vton.models.infer import checkpoint_shas

    known = {s: r.get("checkpoints") or [] for s, r in records.items() if r is not None}
    if len({tuple(checkpoint_shas(c)) for c in known.values()}) > 1:
        raise ValueError("the results were made by different checkpoints: " + "; ".join(
            f"{s}: sha256 {' '.join(h[:12] for h in checkpoint_shas(c))}" for s, c in sorted(known.items())))
    return next(iter(known.values()), None)


def _per_image_summary(frame: pd.DataFrame, settings: Settings) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for (setting, metric), group in frame.groupby(["setting", "metric"], sort=True):
        out[f"{setting}/{metric}"] = {
            subset: stats.describe(group["value"] if subset == "all" else group.loc[group[subset], "value"],
                                   settings.n_boot, settings.seed)
            for subset in SUBSETS
        }
    return out


def write_run(out: Path, frame: pd.DataFrame, summary: dict) -> None:
    """metrics.parquet and summary.json, each written atomically."""
    import io

    buf = io.BytesIO()
    frame[list(fm.METRIC_COLUMNS)].to_parquet(buf, index=False)
    atomic_write_bytes(out / fm.METRICS_FILE, buf.getvalue())
    atomic_write_json(out / fm.SUMMARY_FILE, summary)


# --- runs with inference -------------------------------------------------------------------------
def resolve_results(data: Path, out: Path, results: Path | None = None, checkpoints: Sequence[Path] = (),
                    device: str | None = None, allow_nonfinite: bool = False) -> dict[str, Path | None]:
    """The results folder per setting: taken from ``results``, or produced by inference into RUN/results/<setting>.

    Inference always runs: it reuses a finished folder (writing nothing), resumes an interrupted one, and refuses
    one made by other checkpoints (by SHA-256) or settings, whose images must never be scored for these weights.
    """
    if (results is None) == (not checkpoints):
        raise ValueError("give either a results folder or checkpoints to run inference with")
    if results is not None:
        return {s: (Path(results) / s if (Path(results) / s / fm.TRYON_DIR).is_dir() else None)
                for s in SETTINGS_PAIRS}
    from vton.models.infer import InferOptions, run_inference

    found = {}
    for setting in SETTINGS_PAIRS:
        target = Path(out) / "results" / setting
        run_inference(Path(data), [Path(c) for c in checkpoints], target,
                      InferOptions(split="test", pairs=setting, device=device or "auto",
                                   allow_nonfinite=allow_nonfinite))
        found[setting] = target
    return found


def evaluate_run(data: Path, out: Path, results: Path | None = None, checkpoints: Sequence[Path] = (),
                 settings: Settings = Settings(), allow_nonfinite: bool = False) -> dict:
    """The ``vton evaluate`` entry point: find or make the results (inference loads non-finite weights only with
    ``allow_nonfinite``), then score them."""
    return evaluate(data, resolve_results(data, out, results, checkpoints, settings.device, allow_nonfinite), out,
                    settings)


def summary_table(summary: dict) -> str:
    """A plain-text table of mean ± std [95% CI] (n) per metric and subset, then what was skipped."""
    def cell(e: dict | None) -> str:
        if not e or e.get("mean") is None:
            return "-"
        text = f"{e['mean']:.4f}"
        if e.get("std") is not None:
            text += f" ± {e['std']:.4f}"
        if e.get("ci95"):
            text += f" [{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}]"
        return f"{text} (n={e['n']})"

    rows = [("metric", *SUBSETS)] + [(name, *(cell(entry.get(s)) for s in SUBSETS))
                                     for name, entry in sorted(summary["metrics"].items())]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines += [f"skipped {m}: {reason}" for m, reason in sorted(summary["skipped"].items())]
    return "\n".join(lines)


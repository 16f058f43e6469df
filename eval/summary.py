"""The run's outputs: statistics per metric and subset, the protocol block, the printed table, and the two files
(metrics.parquet, summary.json)."""
from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from vton.core import formats as fm
from vton.core.io import atomic_write_bytes, atomic_write_json
from vton.core.versions import library_versions
from vton.eval import metrics as M
from vton.eval import stats
from vton.eval.inputs import FILTERS, Scale, TestFiles
from vton.eval.registry import DATA_RANGE, SPECS, SUBSETS, SetScore
from vton.eval.settings import Settings, Work

EXIT_SKIPPED = 4  # CLI exit status when a metric named with --metrics could not be computed (without --allow-skips)
PROTOCOL_KEY = {"is": "inception_score"}  # a row's block in the protocol is named after it, but for this one


# --- statistics ----------------------------------------------------------------------------------
def tv_subsets(tv: dict[str, float], size: int) -> tuple[set[str], set[str], int]:
    """LARGE / SMALL = the k cloths with the highest / lowest TV, k = min(size, N // 2) so they never overlap.

    Ties are broken by cloth name, so the choice is deterministic.
    """
    k = min(size, len(tv) // 2)
    ranked = sorted(tv, key=lambda c: (-tv[c], c))
    large = set(ranked[:k])
    small = set(sorted(tv, key=lambda c: (tv[c], c))[:k])
    return large, small, k


def set_level_entry(score: SetScore, n: int) -> dict[str, object]:
    return stats.set_level(score.mean, score.std, n)


def subset_mask(frame: pd.DataFrame, subset: str) -> pd.Series:
    """The rows of ``subset``: every row ("all"), the LARGE / SMALL flags, else the garment category of that name."""
    if subset == "all":
        return pd.Series(True, index=frame.index)
    if subset in SUBSETS:
        return frame[subset].astype(bool)
    return frame["category"] == subset


def subsets_of(summary: dict) -> tuple[str, ...]:
    """The subsets a summary scores: all, LARGE, SMALL, then its garment categories (DressCode)."""
    return (*SUBSETS, *summary.get("categories", {}).get("names", ()))


def row_categories(frame: pd.DataFrame, categories: dict[str, str],
                   pairs: dict[str, list[tuple[str, str]]]) -> pd.Series:
    """Each row's garment category ("" without one): its person's (``categories``), for an in-shop cloth's row that
    of the persons it is paired with in ``pairs`` (DressCode pairs a garment only within its category)."""
    of_cloth = {c: categories[p] for listed in pairs.values() for p, c in listed if p in categories}
    return frame["person"].map(categories).astype(object).fillna(frame["cloth"].map(of_cloth)).fillna("").astype(str)


def categories_block(names: Sequence[str], files: TestFiles) -> dict[str, Any]:
    """What summary.json says of the per-category scores: the categories, their test persons, and the reference."""
    return {"names": list(names),
            "persons": {c: sum(1 for v in files.categories.values() if v == c) for c in names},
            "set_level_reference": "FID and KID of a category: its generated images against that category's own "
                                   "real test persons (of the unpaired list); 'all': every category's, together "
                                   "(as LaDI-VTON's dresscode_<category> and dresscode_all statistics)",
            "per_image": "each category's mean, std and bootstrap CI over its own images; 'all' over every image"}


def per_image_summary(frame: pd.DataFrame, settings: Settings, categories: Sequence[str] = ()) -> dict[str, dict]:
    """mean, std, bootstrap CI and n of each per-image metric, over all rows, LARGE, SMALL and each category."""
    out: dict[str, dict] = {}
    for (setting, metric), group in frame.groupby(["setting", "metric"], sort=True):
        out[f"{setting}/{metric}"] = {
            subset: stats.describe(group.loc[subset_mask(group, subset), "value"], settings.n_boot, settings.seed)
            for subset in (*SUBSETS, *categories)
        }
    return out


def computed(scores: dict[str, dict], frame: pd.DataFrame, work: Work) -> dict[str, dict]:
    """The scores of the metrics that have a value; every other chosen metric moves to the skipped ones with why,
    so each metric is either computed or explained (e.g. FID and KID of a single image, SSIM in an empty region)."""
    for spec in work.specs():
        name = f"{spec.setting}/{spec.name}"
        entry = scores.get(name, {}).get("all")
        if entry is None or entry["mean"] is None:
            n = entry["n"] if spec.level == "set" and entry else int((frame["metric"] == spec.name).sum())
            work.skip(spec.name, f"no value could be computed from the {n} images scored")
            scores.pop(name, None)
    return scores


def unmet(settings: Settings, summary: dict) -> dict[str, str]:
    """The metrics the user named that were not computed, with why (the CLI's exit status ``EXIT_SKIPPED``)."""
    return {m: summary["skipped"][m] for m in settings.metrics or () if m in summary["skipped"]}


# --- the protocol block --------------------------------------------------------------------------
def _details(settings: Settings, files: dict[str, Any], k: int, n_cloths: int, used: dict[str, dict],
             real_n: int) -> dict[str, dict]:
    """What the rows' definitions leave open, per metric: parameters, conventions, weights."""
    r = M.ssim_radius()
    return {
        "ssim": {"data_range": DATA_RANGE, "input": "RGB uint8/255 in [0,1], channels averaged", "sigma": M.SSIM_SIGMA,
                 "window": 2 * r + 1, "k1": M.SSIM_K1, "k2": M.SSIM_K2, "covariance": "population",
                 "border": f"map averaged where the window fits ({r} px cropped per border, as skimage)"},
        "lpips": {"version": "0.1", "net": "alex", "input": "[-1,1]", "resolution": "native", "reduction":
                  "spatial average", "weights": files.get("lpips")},
        "lpips_cloth": {"net": "alex", "map": "bilinear upsampling, align_corners=False",
                        "weights": files.get("lpips")},
        "dists": {"input": "[0,1]", "weights": files.get("dists")},
        "is": {"extractor": "torch-fidelity inception-v3-compat", "feature": "logits_unbiased",
               "resize": "torch-fidelity TF1.x-style bilinear to 299x299 (no antialias)",
               "splits": settings.is_splits, "splits_used": used.get("is", {}),
               "splits_rule": "min(splits, max(1, N // 2)): at least 2 images per split",
               "shuffle": "torch.randperm, generator seeded with seed", "std": "ddof=0",
               "weights": files.get("inception")},
        "fid": {"feature": "2048 (pool3)", "reference": "real test person images of the pairs files", "n_real": real_n,
                "covariance": "ddof=1", "sqrt": "Tr((S1 S2)^1/2) = nuclear norm of D1 D2^T / sqrt((n1-1)(n2-1))"},
        "kid": {"feature": "2048 (pool3)", "subsets": settings.kid_subsets, "subset_size": settings.kid_subset_size,
                "subset_size_used": used.get("kid", {}), "kernel": "(x.y/d + 1)^3", "std": "ddof=0"},
        "tv": {"cloths": n_cloths, "subset_size": settings.subset_size, "subset_size_used": k,
               "subset_rule": "k = min(subset_size, N // 2) highest (LARGE) / lowest (SMALL) TV, ties by name"},
    }


def dataset_block(files: TestFiles) -> dict[str, Any]:
    """How the dataset was read: its layout adapter, label space, cloth labels (the cloth region's) and the file
    each test list was read from."""
    spaces = {p.space for p in files.person_parse.values()} or {files.layout.labels}
    cloth = sorted({tuple(s.cloth) for s in spaces})
    return {"layout": files.layout.name, "labels": "/".join(sorted({s.name for s in spaces})),
            "cloth_labels": list(cloth[0]) if len(cloth) == 1 else [list(c) for c in cloth], "pairs": files.lists}


def resize_block(scale: Scale, origin: dict[str, Any], resized: dict[str, int]) -> dict[str, Any]:
    """The scoring size, where it came from (`vton.eval.run.scoring_scale`), the filters and what was resized."""
    filters = {"rgb": f"PIL {FILTERS['rgb']}", "masks_and_labels": f"PIL {FILTERS['labels']}"}
    predictions = ("resized to eval_size with the same filters (resize_predictions)" if scale.resize_predictions
                   else "must be at eval_size (another size is an error)")
    return {"eval_size": list(scale.size_hw), **origin, "ground_truth": filters, "predictions": predictions,
            "resized_images": resized}


def protocol(settings: Settings, device: torch.device, files: dict[str, Any], k: int, n_cloths: int,
             used: dict[str, dict], real_n: int, dataset: dict[str, Any], resize: dict[str, Any]) -> dict[str, Any]:
    """Every choice behind the scores: the settings, the dataset's reading and the scoring size, then one block per
    metric row (its definition from the table, then what the definition leaves open), then the bootstrap."""
    details = _details(settings, files, k, n_cloths, used, real_n)
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
        "dataset": dataset,
        "resize": resize,
        **{PROTOCOL_KEY.get(name, name): {"definition": spec.definition, **details.get(name, {})}
           for name, spec in SPECS.items()},
        "bootstrap": {"resamples": settings.n_boot, "seed": settings.seed, "level": 0.95, "kind": "percentile",
                      "std": "ddof=1"},
    }


# --- outputs -------------------------------------------------------------------------------------
def write_run(out: Any, frame: pd.DataFrame, summary: dict) -> None:
    """metrics.parquet and summary.json, each written atomically."""
    buf = io.BytesIO()
    frame[list(fm.METRIC_COLUMNS)].to_parquet(buf, index=False)
    atomic_write_bytes(out / fm.METRICS_FILE, buf.getvalue())
    atomic_write_json(out / fm.SUMMARY_FILE, summary)


def summary_table(summary: dict) -> str:
    """A plain-text table of mean ± std [95% CI] (n) per metric and subset, then per garment category where the
    dataset has them, then what was skipped."""
    def cell(e: dict | None) -> str:
        if not e or e.get("mean") is None:
            return "-"
        text = f"{e['mean']:.4f}"
        if e.get("std") is not None:
            text += f" ± {e['std']:.4f}"
        if e.get("ci95"):
            text += f" [{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}]"
        return f"{text} (n={e['n']})"

    def table(subsets: Sequence[str]) -> list[str]:
        rows = [("metric", *subsets)] + [(name, *(cell(entry.get(s)) for s in subsets))
                                         for name, entry in sorted(summary["metrics"].items())]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]

    lines = table(SUBSETS)
    categories = summary.get("categories", {}).get("names", ())
    if categories:
        lines += ["", "by garment category (FID/KID: each category's own real images as reference)",
                  *table(("all", *categories))]
    lines += [f"skipped {m}: {reason}" for m, reason in sorted(summary["skipped"].items())]
    return "\n".join(lines)

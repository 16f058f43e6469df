"""The field's evaluation protocols: one `Protocol` per paper's script, each reproducing that script exactly.

A protocol is rows (its metrics, each with every setting that can change its number, in words: the comparison table
shows the ones that differ) and a plan (which result files its script reads, how it pairs them with the ground
truth, and what it does to each image before scoring). Ground truth, pairs and person folders come from the dataset
layout adapter (`vton.pipelines.layouts`), never from one dataset's folder names: a script given "the ground-truth
folder" is given the folder(s) that hold the layout's test person images.

``vton`` (today's protocol, computed by `vton.eval.run`) is described here too, so the comparison can set it beside
the others. Sources, each read at the commit named:
- LaDI-VTON miccunifi/ladi-vton@b127ad9 src/utils/val_metrics.py, generate_fid_stats.py
- CatVTON Zheng-Chong/CatVTON@3b79536 eval.py
- HR-VITON sangyun884/HR-VITON@2715bdd evaluate.py
- CIT Amazingren/CIT@e7613e4 metrics/ (the CP-VTON+ lineage's Python metrics)
- VtonEval franciszzj/VtonEval@a4fdbef
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from vton.core.formats import category_order
from vton.eval import matching

if TYPE_CHECKING:  # the table is read where nothing is scored (the CLI's options, reports): no numpy, PIL at import
    import numpy as np

    from vton.eval.views import Step, Steps

    View = tuple[Path, Steps]  # a file and what the script does to it after decoding
    ImageScore = Callable[..., Any]  # (gt uint8 B x 3 x H x W, pred uint8 B x 3 x H x W, nets) -> (B,) values
    SetScore = Callable[[dict[str, np.ndarray], int], float]  # (features by set name, seed) -> the script's number

CLEANFID: Final[Step] = ("cleanfid",)  # clean-fid's resize, made where the file is decoded


@dataclass(frozen=True)
class Context:
    """The dataset's side, through the layout adapter, and the results folder of each setting."""

    pairs: dict[str, list[tuple[str, str]]]  # setting -> (person, cloth) of the layout's test lists
    person_image: dict[str, Path]  # person -> ground-truth photo
    gt_dirs: tuple[Path, ...]  # the folders holding the test person photos: what a script's "GT folder" is
    results: dict[str, Path]  # setting -> the folder of its outputs (flat, nested or try-on/)
    categories: dict[str, str] = field(default_factory=dict)  # person -> garment category (DressCode); else empty
    sizes: dict[Path, tuple[int, int]] = field(default_factory=dict, compare=False)  # read once per run

    def size(self, path: Path) -> tuple[int, int]:
        """(w, h) from the header, without decoding; a file no reader can open is an ImageError naming it."""
        if path not in self.sizes:
            from vton.eval.images import image_size

            self.sizes[path] = image_size(path)
        return self.sizes[path]


@dataclass
class Job:
    """One per-image comparison: the views (ground truth, prediction) each view name of the rows reads."""

    person: str
    cloth: str
    views: dict[str, tuple[View, View]]


@dataclass
class Plan:
    """What a protocol's script reads for one setting."""

    jobs: list[Job] = field(default_factory=list)
    sets: dict[str, tuple[str, list[View]]] = field(default_factory=dict)  # set name -> (extractor, views)
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why the script would give no number
    inputs: dict[str, Any] = field(default_factory=dict)  # what matching found, dropped, resized
    divisor: int | None = None  # per-image rows: the script divides their sum by this, not by the count
    # a script that also scores each garment category apart (LaDI-VTON on DressCode): category -> its own sets; its
    # per-image rows are the plan's jobs of that category's persons
    by_category: dict[str, dict[str, tuple[str, list[View]]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One metric of a protocol. Image rows: ``score`` per image on view ``view``, reduced by ``aggregate``; set
    rows: ``score`` on the plan's feature sets."""

    metric: str
    settings: tuple[str, ...]
    level: Literal["image", "set"]
    higher_is_better: bool
    networks: tuple[str, ...]
    score: Callable[..., Any] | None  # None: the row is computed by vton.eval.run
    how: dict[str, str]
    view: str = ""
    aggregate: str = "mean"  # "mean": sum / N (or / the plan's divisor); "psnr-batches-16": VtonEval's pooled PSNR


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    source: str
    pins: dict[str, str]
    rows: tuple[Row, ...]
    plan: Callable[[Context, str], Plan] | None  # None: computed by vton.eval.run
    notes: tuple[str, ...] = ()

    def rows_of(self, setting: str, level: str | None = None) -> list[Row]:
        return [r for r in self.rows if setting in r.settings and (level is None or r.level == level)]


# --- per-image scores (uint8 tensors in, float64 out) ---------------------------------------------------------
def _unit(x):
    return x.float() / 255


def ssim_rgb(g, p, nets):
    """RGB on [0, 1], data range 1, border cropped (torchmetrics <= 1.4.1 = skimage)."""
    from vton.eval import metrics as M

    return M.ssim_map(_unit(p), _unit(g), 1.0).mean(dim=(1, 2)).double()


def ssim_gray(g, p, nets):
    """PIL ``convert('L')`` of both, then skimage SSIM on 0..255 with data range 255 (HR-VITON)."""
    from vton.eval import metrics as M

    return M.ssim_map(M.pil_gray(p).float(), M.pil_gray(g).float(), 255.0).mean(dim=(1, 2)).double()


def ssim_pred_range(g, p, nets):
    """RGB uint8 values, data range = max - min of each generated image (CIT's ``compare_ssim`` call)."""
    from vton.eval import metrics as M

    return M.ssim_map(p.float(), g.float(), M.per_image_range(p.float())).mean(dim=(1, 2)).double()


def lpips_with(net: str) -> ImageScore:
    def score(g, p, nets):
        return nets[net](_unit(p) * 2 - 1, _unit(g) * 2 - 1).double()
    score.__name__ = f"lpips[{net}]"
    return score


def psnr(g, p, nets):
    from vton.eval import metrics as M

    return M.psnr(_unit(p), _unit(g), 1.0)


def mse(g, p, nets):
    return (_unit(p).double() - _unit(g).double()).square().mean(dim=(1, 2, 3))


# --- set scores -------------------------------------------------------------------------------------------------
def _cleanfid_fid(a: str, b: str) -> SetScore:
    def score(feats, seed):
        from vton.eval import fid

        return fid.cleanfid_fid(feats[a], feats[b])
    return score


def _cleanfid_kid(ref: str, gen: str, scale: float) -> SetScore:
    def score(feats, seed):
        from vton.eval import fid

        return fid.cleanfid_kid(feats[ref], feats[gen], seed) * scale
    return score


def _pytorch_fid(feats, seed):
    from vton.eval import fid

    return fid.pytorch_fid_fid(feats["pt_gt"], feats["pt_pred"])


def _inception_score(splits: int, shuffle: bool, softmax: bool, **how: Any) -> SetScore:
    """IS of the generated images' logits (``softmax``) or probabilities, ``how`` = chunking and std ddof."""
    def score(feats, seed):
        import torch

        from vton.eval import metrics as M

        mean, _ = M.inception_score(torch.from_numpy(feats["pred"]), splits, seed if shuffle else None,
                                    softmax=softmax, **how)
        return mean
    return score


# --- plans: which files each script reads, and how ---------------------------------------------------------------
def _listdir(folder: Path) -> list[Path]:
    """A script's ``os.listdir``: sorted here (the script's order is the filesystem's), regular files only."""
    return sorted(folder / n for n in os.listdir(folder) if (folder / n).is_file())


def _persons(ctx: Context) -> dict[str, str]:
    """Person name by stem: the scripts name ground truth and outputs after the person."""
    return {Path(p).stem: p for p in ctx.person_image}


def _cloth_lookup(ctx: Context, setting: str) -> dict[str, str]:
    return dict(ctx.pairs.get(setting, []))


def _resize_to(gt_wh: tuple[int, int], target_wh: tuple[int, int], filt: str) -> list[Step]:
    return [] if tuple(gt_wh) == tuple(target_wh) else [("resize", filt, tuple(target_wh))]


def _gt_files(ctx: Context, lister: Callable[[Path], list[Path]]) -> list[Path]:
    return [f for d in ctx.gt_dirs for f in lister(d)]


def plan_ladi(ctx: Context, setting: str) -> Plan:
    """val_metrics.py: GT = persons of the paired test list (also for unpaired runs), sorted by full path; generated =
    every file of the results folder, sorted; zipped with equal stems asserted. Both through ``Resize((512, 384))``:
    the GT is shrunk (PIL bilinear) to the prediction's size, the prediction is left as it is.

    FID/KID reference (generate_fid_stats.py): VITON-HD's every image of the GT folder; DressCode's the persons of the
    paired list, per category (``dresscode_<category>``, against the outputs in ``<results>/<category>/``) and all
    together (``dresscode_all``, against every output)."""
    plan = Plan()
    folder = ctx.results[setting]
    gen = sorted(matching.scan(folder))
    gt = sorted(ctx.person_image[p] for p, _ in ctx.pairs.get("paired", []))
    plan.inputs = {"generated": len(gen), "ground_truth": len(gt)}
    try:
        zipped = matching.ladi_vton_pairs(gt, gen)
    except ValueError as exc:
        plan.skipped.update({m: str(exc) for m in ("ssim", "lpips")})
        zipped = []
    person = _persons(ctx)
    cloths = _cloth_lookup(ctx, setting)
    for g, p in zipped:
        name = person[g.stem]
        steps = tuple(_resize_to(ctx.size(g), ctx.size(p), "bilinear"))
        plan.jobs.append(Job(name, cloths.get(name, ""), {"rgb": ((g, steps), (p, ()))}))
    from vton.eval import fid

    def sets(outputs: Path, generated: list[Path], reference: list[Path]) -> dict[str, tuple[str, list[View]]]:
        return {"gen": ("cleanfid", [(f, (CLEANFID,)) for f in fid.cleanfid_files(outputs)]),
                "ref": ("cleanfid", [(f, (CLEANFID,)) for f in reference]),
                "pred": ("fidelity", [(f, ()) for f in generated])}

    if not ctx.categories:
        plan.sets = sets(folder, gen, _gt_files(ctx, fid.cleanfid_files))
        return plan
    plan.sets = sets(folder, gen, gt)
    for category in category_order(ctx.categories):
        outputs = folder / category
        plan.by_category[category] = sets(outputs, sorted(matching.scan(outputs)) if outputs.is_dir() else [],
                                          [ctx.person_image[p] for p, _ in ctx.pairs.get("paired", [])
                                           if ctx.categories.get(p) == category])
    return plan


def _catvton_like(ctx: Context, setting: str, exact: bool) -> Plan:
    """CatVTON's eval.py (``exact=False``) and VtonEval's (``exact=True``): when the first prediction and the first
    GT differ in height, the GT folder is copied resized with LANCZOS (to the prediction's height keeping the aspect,
    or to its exact size) and every ``.jpg`` re-saved at PIL's default quality 75; FID/KID then read that copy."""
    from vton.eval import fid

    plan = Plan()
    folder = ctx.results[setting]
    preds = matching.catvton_scan(folder)
    gts = [f for d in ctx.gt_dirs for f in matching.catvton_scan(d)]
    if not preds or not gts:
        plan.skipped.update({r.metric: f"no .jpg/.png files in {folder if not preds else ctx.gt_dirs[0]}"
                             for r in (VTONEVAL if exact else CATVTON).rows})
        return plan
    first_pred = ctx.size((_listdir(folder) or preds)[0])
    first_gt = ctx.size((_listdir(ctx.gt_dirs[0]) or gts)[0])
    resize = matching.catvton_needs_resize(first_pred, first_gt)

    def gt_steps(path: Path) -> Steps:
        if not resize:
            return ()
        wh = matching.catvton_gt_size(first_pred, ctx.size(path), exact)
        steps: list[Step] = [("resize", "lanczos", tuple(wh))]
        if path.suffix.lower() in (".jpg", ".jpeg"):
            steps.append(("jpeg", 75))
        return tuple(steps)

    try:
        pairs, dropped = matching.catvton_pairs(gts, preds,
                                                id_of=matching.vtoneval_id if exact else matching.catvton_id)
    except ValueError as exc:  # where the script's own assertion stops it
        plan.skipped.update({r.metric: str(exc) for r in (VTONEVAL if exact else CATVTON).rows})
        return plan
    plan.inputs = {"predictions": len(preds), "ground_truth_files": len(gts), "matched": len(pairs),
                   "dropped_unmatched": [str(p) for p in dropped], "gt_resized": resize}
    person = _persons(ctx)
    cloths = _cloth_lookup(ctx, setting)
    for g, p in pairs:
        name = person.get(g.stem, g.name)
        pred_h = ctx.size(p)[1]
        g_steps = gt_steps(g)
        # the Dataset then LANCZOS-resizes both to the prediction's height: a no-op after the copy above
        if not g_steps and ctx.size(g)[1] != pred_h:
            g_steps = (("resize", "lanczos", tuple(matching.catvton_gt_size(ctx.size(p), ctx.size(g)))),)
        plan.jobs.append(Job(name, cloths.get(name, ""), {"rgb": ((g, g_steps), (p, ()))}))
    gt_fid = _gt_files(ctx, fid.cleanfid_files)
    plan.sets = {"gt": ("cleanfid", [(f, (*gt_steps(f), CLEANFID)) for f in gt_fid]),
                 "pred": ("cleanfid", [(f, (CLEANFID,)) for f in fid.cleanfid_files(folder)])}
    if exact:
        pt_pred = fid.pytorch_fid_files(folder)
        if pt_pred:
            plan.sets["pt_gt"] = ("pytorch-fid", [(f, gt_steps(f)) for f in _gt_files(ctx, fid.pytorch_fid_files)])
            plan.sets["pt_pred"] = ("pytorch-fid", [(f, ()) for f in pt_pred])
        else:
            plan.skipped["pytorch_fid"] = (f"pytorch-fid finds no files directly in {folder} (it does not look into "
                                           "subfolders, nor at upper-case extensions)")
    return plan


def plan_catvton(ctx: Context, setting: str) -> Plan:
    return _catvton_like(ctx, setting, exact=False)


def plan_vtoneval(ctx: Context, setting: str) -> Plan:
    return _catvton_like(ctx, setting, exact=True)


def plan_hrviton(ctx: Context, setting: str) -> Plan:
    """evaluate.py: ``sorted(os.listdir(pred))`` drives the loop, the GT of ``a_b.png`` is ``a`` + the persons' common
    name ending (VITON-HD's ``_00.jpg``); GT resized (PIL bilinear) to the prediction's size; every sum divided by the
    number of entries of the GT folder."""
    plan = Plan()
    folder = ctx.results[setting]
    gt_dir = ctx.gt_dirs[0]
    endings = {"_" + Path(p).name.split("_", 1)[-1] for p in ctx.person_image}
    try:
        if len(endings) != 1:
            raise ValueError(f"the test persons' names end in {len(endings)} ways; HR-VITON's GT rule needs one")
        pairs, divisor = matching.hrviton_pairs(os.listdir(folder), os.listdir(gt_dir), endings.pop())
    except ValueError as exc:
        plan.skipped.update({r.metric: str(exc) for r in HRVITON.rows})
        return plan
    plan.divisor = divisor
    plan.inputs = {"predictions": len(pairs), "divisor_gt_entries": divisor}
    person = _persons(ctx)
    cloths = _cloth_lookup(ctx, setting)
    small = ("resize", "bilinear", (128, 128))
    for p_name, g_name in pairs:
        p, g = folder / p_name, gt_dir / g_name
        name = person.get(g.stem, g.name)
        steps = tuple(_resize_to(ctx.size(g), ctx.size(p), "bilinear"))
        plan.jobs.append(Job(name, cloths.get(name, ""), {"rgb": ((g, steps), (p, ())),
                                                          "lpips128": ((g, (*steps, small)), (p, (small,)))}))
    if len(pairs) != divisor:
        plan.skipped["is"] = (f"the script fills {divisor} rows (one per GT entry) from {len(pairs)} predictions: the "
                              "rest stay zero and its IS is undefined")
    plan.sets = {"pred": ("imagenet", [(folder / p, (("resize", "bilinear", (299, 299)),)) for p, _ in pairs])}
    return plan


def plan_cit(ctx: Context, setting: str) -> Plan:
    """CIT's metrics/: the names found in both folders (by stem here, so PNG outputs meet JPEG photos), no resizing
    (sizes must agree); IS over every generated file."""
    plan = Plan()
    folder = ctx.results[setting]
    preds = {p.stem: p for p in _listdir(folder)}
    gts = {ctx.person_image[p].stem: ctx.person_image[p] for p, _ in ctx.pairs.get(setting, [])}
    pairs = [(gts[n], preds[n]) for n in matching.cit_pairs(list(gts), list(preds))]
    cloths = _cloth_lookup(ctx, setting)
    person = _persons(ctx)
    bad = [(g, p) for g, p in pairs if ctx.size(g) != ctx.size(p)]
    if bad:
        plan.skipped.update({m: f"{bad[0][1].name} is {ctx.size(bad[0][1])} but its ground truth is "
                                f"{ctx.size(bad[0][0])}: the script resizes nothing" for m in ("ssim", "lpips")})
        pairs = []
    plan.inputs = {"predictions": len(preds), "matched": len(pairs)}
    for g, p in pairs:
        name = person.get(g.stem, g.name)
        plan.jobs.append(Job(name, cloths.get(name, ""), {"rgb": ((g, ()), (p, ()))}))
    plan.sets = {"pred": ("fidelity", [(f, ()) for f in sorted(preds.values())])}
    return plan


# --- the table --------------------------------------------------------------------------------------------------
CROPPED = "5 px cropped (skimage; torchmetrics <= 1.4.1)"
_TM_SSIM = {"library": "torchmetrics SSIM, Gaussian 11x11 sigma 1.5", "colour": "RGB", "range": "1.0 on [0,1]",
            "border": CROPPED}
_ALEX = {"backbone": "AlexNet, LPIPS v0.1 lin", "normalisation": "f / (||f|| + 1e-10) (lpips 0.1.4)",
         "input": "[-1,1]"}
_SQUEEZE = {"backbone": "SqueezeNet 1.1, LPIPS v0.1 lin",
            "normalisation": "f / sqrt(||f||^2 + 1e-8) (torchmetrics >= 1.3.0)", "input": "[-1,1]"}
_CLEAN = {"library": "clean-fid 0.1.35, mode clean", "resize": "PIL bicubic on float channels to 299x299",
          "network": "inception-2015-12-05.pt (TorchScript)"}

# CatVTON's FID and KID, which VtonEval's script keeps as they are
_CATVTON_FID_KID: Final = (
    Row("fid", ("paired", "unpaired"), "set", False, ("cleanfid",), _cleanfid_fid("gt", "pred"),
        {**_CLEAN, "reference": "every image of the GT folder (the resized q75 copy when made)",
         "generated": "every image under the results folder, matched or not"}),
    Row("kid", ("paired", "unpaired"), "set", False, ("cleanfid",), _cleanfid_kid("gt", "pred", 1000.0),
        {**_CLEAN, "scale": "x1000", "subsets": "100 of min(N, 1000), np.random (unseeded in the original)",
         "reference": "every image of the GT folder (the resized q75 copy when made)"}))

_LADI_REFERENCE: Final = ("make_custom_stats at full resolution: VITON-HD every image of the GT folder; DressCode "
                          "the persons of the paired list, per category (dresscode_<category>) and together "
                          "(dresscode_all)")
LADI: Final = Protocol(
    "ladi-vton", "LaDI-VTON", "miccunifi/ladi-vton@b127ad9 src/utils/val_metrics.py",
    {"torchmetrics": "0.11.4", "clean-fid": "0.1.35", "torch-fidelity": "0.3.0", "lpips": "0.1.4", "pillow": "9.5.0"},
    (Row("ssim", ("paired", "unpaired"), "image", True, (), ssim_rgb,
         {**_TM_SSIM, "ground truth": "PIL bilinear to the prediction's size", "pairs": "sorted lists zipped; the "
          "paired GT also for unpaired runs", "aggregation": "sum / N"}, "rgb"),
     Row("lpips", ("paired", "unpaired"), "image", False, ("lpips-alex",), lpips_with("lpips-alex"),
         {**_ALEX, "resolution": "the prediction's", "ground truth": "PIL bilinear to the prediction's size",
          "aggregation": "mean"}, "rgb"),
     Row("fid", ("paired", "unpaired"), "set", False, ("cleanfid",), _cleanfid_fid("gen", "ref"),
         {**_CLEAN, "reference": _LADI_REFERENCE,
          "generated": "every image under the results folder (clean-fid's recursive scan); a DressCode category's "
                       "under <results>/<category>/"}),
     Row("kid", ("paired", "unpaired"), "set", False, ("cleanfid",), _cleanfid_kid("ref", "gen", 1.0),
         {**_CLEAN, "scale": "raw (the paper reports x1000)", "subsets": "100 of min(N, 1000), np.random",
          "reference": _LADI_REFERENCE}),
     Row("is", ("paired", "unpaired"), "set", True, ("fidelity",),
         _inception_score(10, True, True, chunks="torch_chunk", ddof=1),
         {"network": "torch-fidelity inception-v3-compat, logits_unbiased (1008, no bias)",
          "resize": "TF1-style bilinear to 299, no antialias (torchmetrics < 1.8.0)", "splits": "10 torch.chunk",
          "shuffle": "torch.randperm", "std": "unbiased"})),
    plan_ladi,
    ("KID subsets and the IS permutation: the original draws them from the RNG state left after generation "
     "(set_seed(1234) then sampling); here from --seed",))

CATVTON: Final = Protocol(
    "catvton", "CatVTON", "Zheng-Chong/CatVTON@3b79536 eval.py",
    {"torchmetrics": "unpinned (implemented as 1.4.1, current at the paper, July 2024)",
     "clean-fid": "unpinned (0.1.35)", "pillow": "10.3.0"},
    (Row("ssim", ("paired",), "image", True, (), ssim_rgb,
         {**_TM_SSIM, "ground truth": "LANCZOS to the prediction's height, .jpg re-saved at q75",
          "pairs": "8-character id from the first digit", "aggregation": "batch mean x size, summed / N"}, "rgb"),
     Row("lpips", ("paired",), "image", False, ("lpips-squeeze",), lpips_with("lpips-squeeze"),
         {**_SQUEEZE, "resolution": "the prediction's", "ground truth": "LANCZOS to the prediction's height, q75",
          "aggregation": "mean"}, "rgb"),
     *_CATVTON_FID_KID),
    plan_catvton,
    ("KID subsets: unseeded in the original; here from --seed",
     "the size check and the GT copy use the first file of os.listdir (filesystem order); here the first by name",
     "a stale resized GT copy left by an earlier run would be reused by the original; here it is always made fresh"))

VTONEVAL: Final = Protocol(
    "vtoneval", "VtonEval", "franciszzj/VtonEval@a4fdbef",
    {"torchmetrics": "unpinned (implemented as 1.4.1)", "clean-fid": "0.1.35", "pytorch-fid": "0.3.0"},
    (Row("psnr", ("paired",), "image", True, (), psnr,
         {"library": "torchmetrics PSNR, data range 1.0, dim=None", "pooling": "MSE pooled over each batch of 16 in "
          "scan order, x batch size, summed / N", "ground truth": "LANCZOS to the first prediction's exact size, q75"},
         "rgb", "psnr-batches-16"),
     Row("ssim", ("paired",), "image", True, (), ssim_rgb,
         {**_TM_SSIM, "ground truth": "LANCZOS to the first prediction's exact size, .jpg re-saved at q75",
          "pairs": "8-character id ('inshop' names: whole stem)", "aggregation": "batch mean x size, summed / N"},
         "rgb"),
     Row("lpips", ("paired",), "image", False, ("lpips-squeeze",), lpips_with("lpips-squeeze"),
         {**_SQUEEZE, "resolution": "the prediction's", "ground truth": "LANCZOS to the exact size, q75",
          "aggregation": "mean"}, "rgb"),
     Row("pytorch_fid", ("paired", "unpaired"), "set", False, ("pytorch-fid",), _pytorch_fid,
         {"library": "pytorch-fid 0.3.0, dims 2048, batch 16", "resize": "bilinear to 299 inside the network, no "
          "antialias", "network": "pt_inception-2015-12-05-6726825d.pth",
          "reference": "the GT folder's files, not recursive, lower-case extensions"}),
     *_CATVTON_FID_KID),
    plan_vtoneval,
    ("KID subsets: unseeded in the original; here from --seed",
     "PSNR depends on how the batches of 16 fall: scan order here is sorted by path"))

HRVITON: Final = Protocol(
    "hr-viton", "HR-VITON", "sangyun884/HR-VITON@2715bdd evaluate.py",
    {"scikit-image": "unpinned", "torchvision": "inception_v3 ImageNet weights"},
    (Row("ssim", ("paired",), "image", True, (), ssim_gray,
         {"library": "skimage structural_similarity, gaussian_weights, population covariance",
          "colour": "grey (PIL convert('L'))", "range": "255 on uint8", "border": CROPPED,
          "ground truth": "PIL bilinear to the prediction's size", "aggregation": "sum / number of GT files"}, "rgb"),
     Row("lpips", ("paired",), "image", False, ("lpips-alex",), lpips_with("lpips-alex"),
         {**_ALEX, "resolution": "128x128 (PIL bilinear, aspect squashed)",
          "ground truth": "PIL bilinear to the prediction's size, then to 128x128",
          "aggregation": "sum / number of GT files"}, "lpips128"),
     Row("mse", ("paired",), "image", False, (), mse,
         {"library": "F.mse_loss", "colour": "RGB [0,1]", "resolution": "the prediction's",
          "aggregation": "sum / number of GT files"}, "rgb"),
     Row("is", ("unpaired",), "set", True, ("imagenet",), _inception_score(1, False, False),
         {"network": "torchvision inception_v3 ImageNet (1000 classes, fc bias), transform_input=False",
          "resize": "PIL bilinear to 299x299, [-1,1]", "splits": "1", "shuffle": "none", "std": "none (one split)"})),
    plan_hrviton)

CIT: Final = Protocol(
    "cit", "CIT (CP-VTON+ lineage)", "Amazingren/CIT@e7613e4 metrics/",
    {"scikit-image": ">= 0.16 (structural_similarity, 11 taps)", "lpips": "0.1.4"},
    (Row("ssim", ("paired",), "image", True, (), ssim_pred_range,
         {"library": "skimage structural_similarity, gaussian_weights, sigma 1.5, population covariance",
          "colour": "RGB", "range": "max - min of each generated image (uint8)",
          "border": CROPPED, "ground truth": "as decoded (sizes must agree)", "aggregation": "mean"}, "rgb"),
     Row("lpips", ("paired",), "image", False, ("lpips-alex",), lpips_with("lpips-alex"),
         {**_ALEX, "resolution": "as stored (256x192)", "ground truth": "as decoded (cv2 in the original; PIL here, "
          "equal for PNG)", "aggregation": "mean"}, "rgb"),
     Row("is", ("unpaired",), "set", True, ("fidelity",), _inception_score(10, False, True, chunks="floor", ddof=0),
         {"network": "TF1 graph's pool_3 . W without bias (1008): torch-fidelity's port of the same graph",
          "resize": "TF1-style bilinear to 299", "splits": "10, rows [i N//10, (i+1) N//10)", "shuffle": "none",
          "std": "np.std (population)"})),
    plan_cit,
    ("IS: the original runs the TF1 graph classify_image_graph_def.pb; here torch-fidelity's port of its weights",
     "the original lists files with os.listdir (filesystem order); here sorted by name"))

VTON: Final = Protocol(
    "vton", "vton (this project)", "this repository, vton.eval.run",
    {},
    (Row("ssim", ("paired",), "image", True, (), None,
         {**_TM_SSIM, "library": "own (equal to skimage), Gaussian 11x11 sigma 1.5",
          "ground truth": "PIL bicubic to the scoring size (--eval-size, else the results')",
          "aggregation": "mean, bootstrap CI"}),
     Row("lpips", ("paired",), "image", False, ("lpips-alex",), None,
         {**_ALEX, "resolution": "the scoring size (--eval-size, else the results')",
          "ground truth": "PIL bicubic to the scoring size (--eval-size, else the results')",
          "aggregation": "mean, bootstrap CI"}),
     Row("psnr", ("paired",), "image", True, (), None,
         {"library": "own, float64", "pooling": "per image, then mean",
          "ground truth": "PIL bicubic to the scoring size (--eval-size, else the results')"}),
     Row("fid", ("unpaired",), "set", False, ("fidelity",), None,
         {"library": "own, on torch-fidelity inception-v3-compat pool3", "resize": "TF1-style bilinear to 299",
          "reference": "the persons of the unpaired test list", "generated": "the matched unpaired try-ons"}),
     Row("kid", ("unpaired",), "set", False, ("fidelity",), None,
         {"library": "own, on torch-fidelity pool3", "scale": "raw", "subsets": "100 of min(N, 1000), torch.randperm "
          "seeded with --seed", "reference": "the persons of the unpaired test list"}),
     Row("is", ("unpaired",), "set", True, ("fidelity",), None,
         {"network": "torch-fidelity inception-v3-compat, logits_unbiased", "resize": "TF1-style bilinear to 299",
          "splits": "10 (at least 2 images each)", "shuffle": "torch.randperm seeded with --seed", "std": "ddof 0"})),
    None)

PROTOCOLS: Final[dict[str, Protocol]] = {p.name: p for p in (VTON, LADI, CATVTON, HRVITON, CIT, VTONEVAL)}
DEFAULT: Final = "vton"


def resolve(names: Sequence[str]) -> list[str]:
    """The protocols named (``all``: every one), in table order; a ValueError naming the known ones otherwise."""
    chosen = set(PROTOCOLS) if "all" in names else set(names)
    unknown = chosen - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocol {sorted(unknown)[0]!r}; choose from {', '.join(PROTOCOLS)} or all")
    return [n for n in PROTOCOLS if n in chosen]

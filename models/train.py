"""Training of the GMM and TOM with the paper's losses and defaults, seeded, resumable, with periodic checkpoints.

Data: any torch Dataset whose items carry the keys of ``vton.pipelines.dataset.TryOnDataset``.
Batch order depends only on (seed, step), so a resumed run sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from vton.core.devices import resolve_device
from vton.core.io import atomic_write_text
from vton.models.checkpoint import (
    FINAL_NAMES,
    Bundle,
    CheckpointError,
    check_loadable,
    check_tensors,
    read_bundle,
    refuse_nonfinite,
    save_bundle,
    show,
)
from vton.models.config import ModelConfig
from vton.models.gmm import GMM, run_gmm
from vton.models.losses import VGGLoss, grid_regularizer
from vton.models.options import TrainOptions
from vton.models.tom import TOM, binarize_warped_mask, run_tom

STAGES = ("gmm", "tom")
LOG_NAME = "train_log.csv"
STEP_FILE = re.compile(r"^step_(\d{6,})\.pth$")

# The options that change what a step computes. A resumed run must train with the ones its checkpoint records, and is
# refused otherwise: the batch order is a function of (seed, batch size, step), and the restored optimizer would carry
# on at the recorded lr and betas whatever the new run records. steps may differ (raising it continues the run), and
# so may save_every, log_every, workers, device and vgg_weights (a path: the same file may have moved).
RESUME_KEYS = ("seed", "batch_size", "lr", "beta1", "beta2", "lambda_l1", "lambda_vgg", "lambda_mask", "lambda_gic")


@dataclass
class TrainResult:
    final: Path
    start_step: int
    steps: int
    losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


class StepBatchSampler(Sampler[list[int]]):
    """Index batches for steps [start, stop): one seeded permutation per epoch, batches running on across epochs."""

    def __init__(self, size: int, batch_size: int, seed: int, start: int, stop: int) -> None:
        if size < 1:
            raise ValueError("the training dataset is empty")
        self.size, self.batch_size, self.seed, self.start, self.stop = size, batch_size, seed, start, stop
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            self._perms = {
                epoch: torch.randperm(
                    self.size, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                ).tolist()
            }
        return self._perms[epoch]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            first = step * self.batch_size
            yield [self._perm(pos // self.size)[pos % self.size] for pos in range(first, first + self.batch_size)]

    def __len__(self) -> int:
        return self.stop - self.start


def loss_names(stage: str, variant: str) -> list[str]:
    if stage == "gmm":
        return ["l1"] + (["gic"] if variant == "cpvton+" else [])
    return ["l1", "vgg", "mask"]


def gmm_losses(gmm: GMM, batch: Mapping[str, torch.Tensor], opts: TrainOptions) -> dict[str, torch.Tensor]:
    """L1(warped cloth, parse_cloth); CP-VTON+ adds lambda_gic * L_gic / (B H W)."""
    warped_cloth, _, grid = run_gmm(gmm, batch["agnostic"], batch["cloth"], batch["cloth_mask"])
    losses = {"l1": F.l1_loss(warped_cloth, batch["parse_cloth"])}
    terms = [opts.lambda_l1 * losses["l1"]]
    if gmm.variant == "cpvton+":
        losses["gic"] = grid_regularizer(grid) / grid[..., 0].numel()
        terms.append(opts.lambda_gic * losses["gic"])
    losses["loss"] = sum(terms)
    return losses


def tom_losses(tom: TOM, gmm: GMM, vgg: VGGLoss | None, batch: Mapping[str, torch.Tensor], opts: TrainOptions
               ) -> dict[str, torch.Tensor]:
    """L1 + VGG between try-on and person, plus L1 of the composition mask against the warped cloth mask
    (CP-VTON) or the person's cloth region parse_cloth_mask (CP-VTON+). The frozen GMM warps the cloth on the fly."""
    with torch.no_grad():
        warped_cloth, warped_mask, _ = run_gmm(gmm, batch["agnostic"], batch["cloth"], batch["cloth_mask"])
        warped_mask = binarize_warped_mask(warped_mask)
    tryon, _, mask = run_tom(tom, batch["agnostic"], warped_cloth, warped_mask)
    image = batch["image"]
    target = batch["parse_cloth_mask"] if tom.variant == "cpvton+" else warped_mask
    losses = {"l1": F.l1_loss(tryon, image), "mask": F.l1_loss(mask, target),
              "vgg": vgg(tryon, image) if vgg is not None else torch.zeros((), device=image.device)}
    losses["loss"] = opts.lambda_l1 * losses["l1"] + opts.lambda_vgg * losses["vgg"] + opts.lambda_mask * losses["mask"]
    return losses


def latest_checkpoint(out: Path, stage: str) -> Path | None:
    """The newest of step_XXXXXX.pth and <stage>_final.pth, by the step recorded in the file."""
    candidates = [p for p in out.glob("step_*.pth") if STEP_FILE.match(p.name)]
    if (out / FINAL_NAMES[stage]).is_file():
        candidates.append(out / FINAL_NAMES[stage])
    best, best_step = None, -1
    for path in candidates:
        step = read_bundle(path).step
        if step > best_step:
            best, best_step = path, step
    return best


def trim_log(path: Path, step: int) -> None:
    """Drop log rows past the step a resumed run restarts from (they will be written again)."""
    if not path.is_file():
        return
    rows = list(csv.reader(path.read_text().splitlines()))
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(kept)
    atomic_write_text(path, buf.getvalue())


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def same_weights(model: torch.nn.Module, state: Mapping[str, torch.Tensor] | None) -> bool:
    own = model.state_dict()
    return (state is not None and own.keys() == state.keys()
            and all(torch.equal(v.cpu(), state[k]) for k, v in own.items()))


def resume_conflicts(bundle: Bundle, config: ModelConfig, opts: TrainOptions, gmm: GMM | None) -> list[str]:
    """'name old -> new' for each setting of the recorded run that this one would change (variant, widths, the
    RESUME_KEYS options, an unrecorded one counting as changed, and for the TOM the frozen GMM)."""
    record = bundle.train or {}
    old = {**bundle.config.to_dict(), **{k: record.get(k) for k in RESUME_KEYS}}
    new = {**config.to_dict(), **{k: getattr(opts, k) for k in RESUME_KEYS}}
    lines = [f"{k} {old[k]} -> {new[k]}" for k in new if old[k] != new[k]]
    if gmm is not None and not same_weights(gmm, bundle.states.get("gmm")):
        lines.append("GMM weights (--gmm) other than those the TOM was trained with")
    return lines


def load_optimizer(optimizer: torch.optim.Optimizer, saved: Mapping[str, Any], path: Path) -> None:
    """The per-parameter state (Adam's moments and step counts) from the file, checked to be finite tensors of the
    parameters' shapes; the hyperparameters stay the ones the optimizer was built with from the options, which
    resume_conflicts found equal to the run's record."""
    state = saved.get("state")
    if not isinstance(state, Mapping) or not all(isinstance(m, Mapping) for m in state.values()):
        raise CheckpointError(f"{path}: optimizer state is {show(state)}, not a mapping of parameters to tensors")
    moments = check_tensors({f"state.{i}.{k}": v for i, m in state.items() for k, v in m.items()}, path, "optimizer")
    refuse_nonfinite(moments, path, "optimizer")
    hyper = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(saved)
    except Exception as exc:  # torch's own format: a malformed one fails with any of several exception types
        raise CheckpointError(f"{path}: optimizer state that does not fit the network "
                              f"({type(exc).__name__}: {exc})") from exc
    for group, own in zip(optimizer.param_groups, hyper):
        group.update(own)
    for i, p in enumerate(p for group in optimizer.param_groups for p in group["params"]):
        for name, value in optimizer.state[p].items():
            if value.shape not in (p.shape, torch.Size()):
                raise CheckpointError(f"{path}: optimizer state.{i}.{name} has shape {list(value.shape)}, not its "
                                      f"parameter's {list(p.shape)}")


def restore(path: Path, stage: str, config: ModelConfig, opts: TrainOptions, net: torch.nn.Module,
            optimizer: torch.optim.Optimizer, gmm: GMM | None = None) -> tuple[int, float]:
    """Load network and optimizer state from one of our training checkpoints; (step, seconds so far).

    A resumed run trains with exactly the settings its checkpoint records: one that differs in any of them (see
    RESUME_KEYS) is refused with one line listing each difference, old -> new; so is a checkpoint holding NaN or
    infinite weights or optimizer moments, which would only train on to NaN.
    """
    bundle = read_bundle(path)
    saved_stage = (bundle.train or {}).get("stage")
    if saved_stage != stage or stage not in bundle.states or bundle.optimizer is None:
        raise CheckpointError(f"{path}: cannot resume {stage} training: not a checkpoint of {stage} training with its "
                              f"optimizer state (it records stage {saved_stage})")
    conflicts = resume_conflicts(bundle, config, opts, gmm)
    if conflicts:
        raise CheckpointError(f"{path}: cannot resume with other settings than the run's: {', '.join(conflicts)}")
    state = bundle.states[stage]
    refuse_nonfinite(state, path, stage.upper())
    check_loadable(net, state, path)
    net.load_state_dict(state, strict=True)
    load_optimizer(optimizer, bundle.optimizer, path)
    return bundle.step, bundle.elapsed


def train(stage: str, dataset: Dataset, out: str | Path, config: ModelConfig, opts: TrainOptions,
          gmm: GMM | None = None, resume: bool = False) -> TrainResult:
    """Train the GMM or the TOM (the latter with a frozen, given ``gmm``); write checkpoints and a CSV log to ``out``.

    ``resume`` continues from the latest checkpoint in ``out``, with the settings that run recorded (see restore).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if stage == "tom" and gmm is None:
        raise ValueError("training the TOM needs a trained GMM to warp the cloth (give --gmm CKPT)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(opts.device)
    torch.manual_seed(opts.seed)
    net: GMM | TOM = GMM(config.variant, config.gmm_width) if stage == "gmm" else TOM(config.variant, config.tom_width)
    net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=opts.lr, betas=(opts.beta1, opts.beta2))
    ckpt = latest_checkpoint(out, stage) if resume else None
    start, elapsed = (restore(ckpt, stage, config, opts, net, optimizer, gmm if stage == "tom" else None)
                      if ckpt is not None else (0, 0.0))
    frozen = None
    vgg = None
    if stage == "tom":
        # The frozen GMM warps each pair as `vton infer` does, whatever the batch (GMM.set_batch_invariant).
        frozen = gmm.set_batch_invariant().to(device).eval().requires_grad_(False)
        vgg = VGGLoss(opts.vgg_weights).to(device) if opts.lambda_vgg else None
    names = loss_names(stage, config.variant)
    log_path = out / LOG_NAME
    if start == 0 or not log_path.is_file():
        atomic_write_text(log_path, ",".join(["step", "loss", *names, "seconds"]) + "\n")
    else:
        trim_log(log_path, start)
    train_meta = {"stage": stage, **{k: v for k, v in asdict(opts).items() if k != "progress"}}

    def save(path: Path, step: int, seconds: float) -> None:
        save_bundle(path, config, gmm=net if stage == "gmm" else frozen, tom=net if stage == "tom" else None,
                    step=step, train=train_meta, optimizer=optimizer.state_dict(), elapsed=seconds)

    loader = DataLoader(
        dataset,
        batch_sampler=StepBatchSampler(len(dataset), opts.batch_size, opts.seed, start, opts.steps),
        num_workers=opts.workers,
        pin_memory=device.type == "cuda",
    )
    began = time.perf_counter()
    values: dict[str, float] = {}
    with open(log_path, "a", newline="") as log, tqdm(total=opts.steps, initial=start, desc=f"train {stage}",
                                                       disable=not opts.progress) as bar:
        writer = csv.writer(log, lineterminator="\n")
        for step, batch in enumerate(loader, start=start + 1):
            batch = to_device(batch, device)
            losses = gmm_losses(net, batch, opts) if stage == "gmm" else tom_losses(net, frozen, vgg, batch, opts)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            optimizer.step()
            seconds = elapsed + time.perf_counter() - began
            if step % opts.log_every == 0 or step == opts.steps:
                values = {k: float(losses[k].detach()) for k in ["loss", *names]}
                writer.writerow([step, *(f"{values[k]:.6g}" for k in ["loss", *names]), f"{seconds:.3f}"])
                log.flush()
                bar.set_postfix(loss=f"{values['loss']:.4f}")
            if opts.save_every and step % opts.save_every == 0:
                save(out / f"step_{step:06d}.pth", step, seconds)
            bar.update(1)
    seconds = elapsed + time.perf_counter() - began
    final = out / FINAL_NAMES[stage]
    save(final, max(start, opts.steps), seconds)
    return TrainResult(final, start, opts.steps, values, seconds)


def train_from_folder(
    stage: str,
    data: str | Path,
    out: str | Path,
    opts: TrainOptions,
    variant: str | None = None,
    width: int | None = None,
    gmm_path: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """``vton train``: the prepared dataset's train split; the TOM stage warps with the frozen GMM from ``gmm_path``."""
    from vton.models.checkpoint import load_models
    from vton.models.config import PAPER_WIDTH, check_input_size
    from vton.models.losses import vgg19_weights_path
    from vton.pipelines.layouts import PREPARED

    check_input_size(PREPARED.source_size_hw(Path(data)), data)  # before any checkpoint or weights are read
    gmm = None
    if stage == "tom":
        if gmm_path is None:
            raise ValueError(
                "vton train tom needs --gmm CKPT: the trained GMM (gmm_final.pth or a bundle) that warps the cloth"
            )
        gmm, _, gmm_config = load_models([gmm_path], "cpu")
        if gmm is None:
            raise CheckpointError(f"{gmm_path}: holds no GMM")
        if variant is not None and variant != gmm.variant:
            raise ValueError(f"--variant {variant} does not match the GMM checkpoint ({gmm.variant})")
        variant = gmm.variant
        config = ModelConfig(variant, gmm_config.gmm_width, width or PAPER_WIDTH)
        if opts.lambda_vgg:
            vgg19_weights_path(opts.vgg_weights)  # fail before any work when the weights are missing
    else:
        config = ModelConfig(variant or "cpvton", width or PAPER_WIDTH)
    from vton.pipelines.dataset import TryOnDataset

    dataset = TryOnDataset(data, split="train", pairs="train", variant=config.variant)
    return train(stage, dataset, out, config, opts, gmm=gmm, resume=resume)

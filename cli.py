"""The ``vton`` command line: one thin click command per verb; the work lives in the packages.

Each option's default is read from the options dataclass the command fills (``default``), so it lives once."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from vton.core import formats as fm
from vton.core.devices import PRECISIONS
from vton.core.runner import RunnerConfig
from vton.core.versions import VTON_VERSION as __version__
from vton.core.weight_files import MIRROR_ENV, VGG_LOSS, WeightFile, using
from vton.eval.protocols import DEFAULT as DEFAULT_PROTOCOL
from vton.eval.protocols import PROTOCOLS
from vton.eval.settings import Settings as EvalSettings
from vton.models.config import VARIANTS
from vton.models.options import DECODES, InferOptions, TrainOptions
from vton.pipelines.audit.duplicates import NearSettings
from vton.pipelines.keypoints.pifpaf import PifpafOptions
from vton.pipelines.layouts import LAYOUTS
from vton.pipelines.prepare import DEDUPE, PrepareOptions
from vton.studies.options import AnalyzeOptions, ExportOptions, ServeOptions
from vton.workflows.demo import DemoOptions

PROTOCOL_NAMES = tuple(PROTOCOLS)

# `vton prepare` runs its local workers as processes (no shared GIL), unlike RunnerConfig's threads.
PREPARE_RUNNER = RunnerConfig(local="processes")


def default(options: Any, name: str) -> Any:
    """The default of field ``name`` of an options dataclass (or the value in an instance of one)."""
    if not isinstance(options, type):
        return getattr(options, name)
    (found,) = (f for f in dataclasses.fields(options) if f.name == name)
    if found.default is dataclasses.MISSING:
        raise TypeError(f"{options.__name__}.{name} has no default")
    return found.default


class VtonGroup(click.Group):
    """Bad input ends in one clear line and exit status 1, not a traceback: the packages raise ValueError (and its
    subclasses: checkpoint, pairs-file, unsafe-path, study, pose-model errors) or OSError (a missing or existing file,
    missing weights) with a message meant for the user. Commands therefore catch nothing themselves."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (ValueError, OSError) as exc:
            raise click.ClickException(one_line(str(exc))) from exc


def one_line(message: str) -> str:
    """A message on one line, whatever library text it quotes: its lines joined with "; "."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())


@click.group(cls=VtonGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vton")
def main() -> None:
    """Reproduce, train and evaluate CP-VTON on VITON-format data.

    \b
    Exit statuses of every command:
      0  done
      1  bad input (one line on stderr: a missing or malformed file, a refused option value or checkpoint)
      2  usage error (an unknown option, a missing argument)
      3  prepare rejected pairs (see OUT/rejected.csv), unless --allow-rejects
      4  evaluate could not compute a metric named with --metrics, unless --allow-skips
    """


def pose_model_options(command):
    """openpifpaf's model flags, shared by `prepare --keypoints openpifpaf` and `keypoints`."""
    command = click.option("--trust-checkpoint", is_flag=True,
                           help="Allow unpickling the openpifpaf checkpoint (it holds a whole pickled network, which "
                                "can run code when loaded): only for a file you trust.")(command)
    return click.option(
        "--pose-checkpoint", type=click.Path(dir_okay=False), default=default(PifpafOptions, "checkpoint"),
        help="openpifpaf checkpoint [default: shufflenetv2k16 in $TORCH_HOME/hub/checkpoints].")(command)


THRESHOLD_HELP = "Joint confidence below which a joint counts as missing (openpifpaf's own default)."
DEVICE_HELP = "Device for openpifpaf: auto (CUDA when available), cpu, cuda, cuda:N."
DOWNLOAD_WEIGHTS_HELP = ("Download the pretrained files this run needs and lacks (from their publishers, or "
                         f"${MIRROR_ENV}), hash-checked, before it starts.")


def fetch_for_run(rows: list[WeightFile], weights_dir: Path | None = None) -> None:
    """``--download-weights``: fetch what the run needs, saying what was done on stderr."""
    from vton.workflows.weights import fetch

    for line in fetch(rows, weights_dir):
        click.echo(f"weights: {line}", err=True)


# --- synth -------------------------------------------------------------------------------------
@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pairs", "n_pairs", type=click.IntRange(min=1), required=True, help="Number of person/cloth pairs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--layout", type=click.Choice(list(LAYOUTS)), default="cpvton", show_default=True,
              help="; ".join(f"{name}: {adapter.summary}" for name, adapter in LAYOUTS.items()) + ".")
@click.option("--defects", is_flag=True, help="Inject realistic faults and write their ground truth to defects.json.")
def synth(out: Path, n_pairs: int, seed: int, layout: str, defects: bool) -> None:
    """Write a procedural dataset in the real VITON / CP-VTON file formats to OUT."""
    from vton.pipelines.synth.generate import synthesize

    summary = synthesize(out, n_pairs, seed, layout=layout, defects=defects, progress=True)
    splits = summary["splits"]
    click.echo(f"wrote {summary['pairs']} pairs ({splits['train']} train, {splits['test']} test, layout {layout}) "
               f"to {out}" + (f"; {len(summary['defects'])} defects in defects.json" if defects else ""))


# --- prepare -----------------------------------------------------------------------------------
class SizeType(click.ParamType):
    """``HxW`` -> (H, W), one of `formats.PREPARE_SIZES_HW`. Another is the package's ValueError, so one line and exit
    status 1 like every refused value (`VtonGroup`), before any worker starts."""
    name = "HxW"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        return fm.prepare_size(value)


def near_options(command):
    """The near-duplicate thresholds (`NearSettings`), shared by `vton audit` and `vton prepare`."""
    command = click.option("--near-min-score", type=click.FloatRange(0, 1), default=default(NearSettings, "min_score"),
                           show_default=True, help="Near duplicates: least share of agreeing pixels of the aligned "
                                                   "pair.")(command)
    return click.option("--near-radius", type=click.FloatRange(0, 2, min_open=True),
                        default=default(NearSettings, "radius"), show_default=True,
                        help="Near duplicates: largest embedding distance of a candidate pair.")(command)


@main.command("audit")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: DATA-audit beside DATA].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local worker processes that read and sign the images.")
@near_options
def audit_cmd(data: Path, out: Path | None, workers: int, near_radius: float, near_min_score: float) -> None:
    """Find near-duplicate person and cloth images within and across the splits of DATA (any layout prepare reads):
    OUT/duplicates.parquet, audit.json (thresholds, method, versions, counts) and audit.html (the clusters)."""
    from vton.workflows.audit import run_audit

    out = out or data.resolve().parent / f"{data.resolve().name}-audit"  # DATA "." has no name of its own
    runner = RunnerConfig(workers=workers, local="processes")
    record, page = run_audit(data, out, NearSettings(near_radius, near_min_score), runner)
    pairs, clusters = record["pairs"], record["clusters"]
    click.echo(f"audited {data} ({record['layout']}): near-duplicate pairs across train/test {pairs['across']}, "
               f"within train {pairs['within train']}, within test {pairs['within test']}; clusters across "
               f"{clusters['across']}; unreadable files {record['unreadable']}")
    click.echo(f"page: {page.resolve()}")


@main.command("prepare")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), default=default(PREPARE_RUNNER, "workers"), show_default=True,
              help="Local workers (1 runs in this process).")
@click.option("--local", "local", type=click.Choice(["threads", "processes"]), default=default(PREPARE_RUNNER, "local"),
              show_default=True, help="Kind of local workers (processes: no shared GIL, started once for all stages).")
@click.option("--scheduler", metavar="ADDR", default=default(PREPARE_RUNNER, "scheduler"),
              help="Run on an existing Dask cluster (tcp://host:port).")
@click.option("--resplit", is_flag=True, help="Ignore the pairs files' split and draw a seeded, leak-free one.")
@click.option("--seed", type=int, default=default(PrepareOptions, "seed"), show_default=True,
              help="Seed of the split and the unpaired test list.")
@click.option("--train-size", type=click.IntRange(min=0), default=default(PrepareOptions, "train_size"),
              help="Train pairs of a drawn split.")
@click.option("--test-size", type=click.IntRange(min=0), default=default(PrepareOptions, "test_size"),
              help="Test pairs of a drawn split.")
@click.option(
    "--keypoints",
    default=default(PrepareOptions, "keypoints"),
    show_default=True,
    help="Keypoint source: dataset (the pose files, see vton.pipelines.keypoints.schema) or openpifpaf (estimated from "
    "the person image where the pose file is missing; everywhere with --overwrite-keypoints).",
)
@click.option("--overwrite-keypoints", is_flag=True, help="With --keypoints openpifpaf: estimate every person's pose.")
@pose_model_options
@click.option("--pose-threshold", type=click.FloatRange(0, 1), default=default(PifpafOptions, "threshold"),
              show_default=True, help=THRESHOLD_HELP)
@click.option("--pose-device", default=default(PifpafOptions, "device"), show_default=True, help=DEVICE_HELP)
@click.option("--size", "size", type=SizeType(), metavar="HxW", default=default(PrepareOptions, "size"),
              help=f"Size of the prepared images, one of {', '.join(fm.size_text(s) for s in fm.PREPARE_SIZES_HW)} "
                   f"(CP-VTON's, twice it, VITON-HD's own) [default: {fm.size_text(default(PrepareOptions, 'size'))}];"
                   " at most the source's (exit 1 otherwise). The CP-VTON networks (train, infer, evaluate "
                   "--checkpoint) need 256x192.")
@click.option("--category", "categories", type=click.Choice(fm.DC_CATEGORIES), multiple=True,
              default=default(PrepareOptions, "categories"),
              help="DressCode: keep this garment category (repeatable) [default: all three]; exit 1 for another "
                   "layout.")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even when pairs were rejected (otherwise exit 3).")
@click.option("--strict", is_flag=True,
              help="Refuse (exit 1, nothing written) where a warning would be given, e.g. a missing pairs file.")
@near_options
@click.option("--dedupe", type=click.Choice(DEDUPE), default=default(PrepareOptions, "dedupe"), show_default=True,
              help="near: also reject the train pairs whose person or cloth is a near copy of a test item (stage "
                   "leak; a drawn split keeps near copies in one split), as `vton audit` finds them.")
@click.option("--clean-test", is_flag=True,
              help="Also write test_pairs_clean.txt and test_pairs_same_clean.txt: the test lists less the pairs "
                   "with a near copy in the train split as listed.")
def prepare_cmd(src: Path, out: Path, workers: int, local: str, scheduler: str | None, resplit: bool, seed: int,
                train_size: int | None, test_size: int | None, keypoints: str, overwrite_keypoints: bool,
                pose_checkpoint: str | None, trust_checkpoint: bool, pose_threshold: float,
                pose_device: str, size: tuple[int, int], categories: tuple[str, ...], allow_rejects: bool,
                strict: bool, near_radius: float, near_min_score: float, dedupe: str, clean_test: bool) -> None:
    """Clean, split and precompute the dataset SRC (CP-VTON, raw VITON, VITON-HD or DressCode layout, detected) into
    OUT.

    Exit status 3 when bad data made pairs be rejected (see OUT/rejected.csv), unless --allow-rejects; pairs left
    over by --train-size/--test-size do not count. Run again, the same command resumes an interrupted run, or on a
    finished OUT prints its summary again; other options are refused, as is a second run on an OUT in use.
    """
    from vton.core.runner import boot_workers

    runner = dataclasses.replace(PREPARE_RUNNER, workers=workers, scheduler=scheduler, local=local)
    boot_workers(runner, "vton.pipelines.prepare")  # the workers' interpreter starts while this one imports
    from vton.pipelines.keypoints.pifpaf import keypoint_source
    from vton.pipelines.prepare import EXIT_REJECTED, prepare

    pose = PifpafOptions(checkpoint=pose_checkpoint, trust_checkpoint=trust_checkpoint, threshold=pose_threshold,
                         device=pose_device)
    source = keypoint_source(keypoints, pose, overwrite_keypoints)
    summary = prepare(src, out, PrepareOptions(seed=seed, resplit=resplit, train_size=train_size,
                                               test_size=test_size, keypoints=source, strict=strict,
                                               size=size, categories=categories or None, dedupe=dedupe,
                                               clean_test=clean_test,
                                               near=NearSettings(near_radius, near_min_score)), runner)
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(summary.text())
    if summary.faults and not allow_rejects:
        sys.exit(EXIT_REJECTED)


# --- models: train, checkpoint -----------------------------------------------------------------

# The TrainOptions each stage reads from the command line (beta1, beta2 and progress keep their defaults), in --help
# order, with the help of those that need one.
TRAIN_FIELDS = {
    "both": ("steps", "batch_size", "lr", "save_every", "log_every", "seed", "workers", "device", "lambda_l1"),
    "gmm": ("lambda_gic",),
    "tom": ("lambda_vgg", "lambda_mask", "vgg_weights"),
}
TRAIN_HELP = {
    "save_every": "Write step_XXXXXX.pth every N steps.",
    "log_every": "CSV log row every N steps.",
    "device": "auto (CUDA when available), cpu, cuda or cuda:N.",
    "lambda_gic": "CP-VTON+ grid regulariser weight.",
    "lambda_vgg": "0 trains without the VGG19 loss.",
    "vgg_weights": f"{using(VGG_LOSS).filename} [default: TORCH_HOME/hub/checkpoints/].",
}


def train_options(stage: str):
    """The options of ``vton train STAGE``: data, --out, the network's variant and width, --resume, and the
    TrainOptions fields of TRAIN_FIELDS with their dataclass defaults."""
    def decorate(func):
        options = [
            click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path)),
            click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                         help="Checkpoint folder."),
            click.option("--variant", type=click.Choice(VARIANTS), default=None,
                         help="Network variant (gmm: default cpvton; tom: that of --gmm)."),
            click.option("--width", type=int, default=None,
                         help="Base channels ngf (paper: 64); small for a CPU demo."),
        ]
        if stage == "tom":
            options.append(click.option(
                "--gmm", type=click.Path(exists=True, path_type=Path), default=None,
                help="Trained GMM (gmm_final.pth, a bundle, or a folder) that warps the cloth on the fly; required."))
        for name in TRAIN_FIELDS["both"] + TRAIN_FIELDS[stage]:
            value = default(TrainOptions, name)
            kind = click.Path(dir_okay=False) if name == "vgg_weights" else type(value)
            options.append(click.option("--" + name.replace("_", "-"), type=kind, default=value,
                                        show_default=value is not None, help=TRAIN_HELP.get(name)))
        options.append(click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out."))
        options.append(click.option("--download-weights", is_flag=True, help=DOWNLOAD_WEIGHTS_HELP))
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def _run_training(stage: str, data: Path, out: Path, variant: str | None, width: int | None, resume: bool,
                  download_weights: bool, gmm: Path | None = None, **opts) -> None:
    from vton.models.train import train_from_folder

    options = TrainOptions(**opts)
    if download_weights:
        from vton.workflows.weights import rows_for_train

        fetch_for_run(rows_for_train(stage, options.lambda_vgg, options.vgg_weights))
    result = train_from_folder(stage, data, out, options, variant=variant, width=width, gmm_path=gmm, resume=resume)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.losses.items())
    click.echo(f"trained {stage} steps {result.start_step}..{result.steps} in {result.seconds:.1f} s; "
               f"{losses}; final checkpoint {result.final}")


@main.group()
def train() -> None:
    """Train the GMM, then the TOM (paper defaults: Adam 1e-4, batch 4, 200k steps)."""


@train.command("gmm")
@train_options("gmm")
def train_gmm(**kwargs) -> None:
    """Train the geometric matching module on DATA's train split."""
    _run_training("gmm", **kwargs)


@train.command("tom")
@train_options("tom")
def train_tom(**kwargs) -> None:
    """Train the try-on module on DATA's train split, warping with a frozen GMM."""
    _run_training("tom", **kwargs)


@main.group()
def checkpoint() -> None:
    """Inspect GMM/TOM checkpoints (original state dicts or vton bundles)."""


@checkpoint.command("inspect")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per network (a bundle gives one per module).")
def checkpoint_inspect(paths: tuple[Path, ...], as_json: bool) -> None:
    """What each file is: gmm or tom, cpvton or cpvton+, width, parameters, whether it loads strictly, how many of its
    tensors hold NaN or infinite values. Exit status 1 when any network does not load strictly or holds such values."""
    import json

    from vton.models.checkpoint import checkpoint_table, inspect_checkpoint

    infos = [info for path in paths for info in inspect_checkpoint(path)]
    click.echo(json.dumps([i.to_dict() for i in infos], indent=2) if as_json else checkpoint_table(infos))
    if not all(i.usable for i in infos):
        sys.exit(1)


# --- infer -------------------------------------------------------------------------------------
NONFINITE_HELP = ("Load checkpoints whose weights hold NaN or infinite values (refused by default: they make black or "
                  "white images).")


@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--checkpoint", "checkpoints", multiple=True, required=True, type=click.Path(exists=True, path_type=Path),
              help="Our bundle, a folder holding gmm_final.pth and tom_final.pth, or GMM and TOM files (repeat).")
@click.option("--split", default=default(InferOptions, "split"), show_default=True,
              type=click.Choice(["train", "test"]))
@click.option("--pairs", default=default(InferOptions, "pairs"), show_default=True,
              help="unpaired (test_pairs.txt), paired (test_pairs_same.txt), train, or a pairs file.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Results folder.")
@click.option("--batch-size", default=default(InferOptions, "batch_size"), show_default=True, type=click.IntRange(1))
@click.option("--device", default=default(InferOptions, "device"), show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", default=default(InferOptions, "precision"), show_default=True,
              type=click.Choice(PRECISIONS), help="Reduced precision: CUDA, or any device with --fast.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=default(InferOptions, "jpeg_quality"),
              help="Write JPEG at this quality (75 reproduces the original files) instead of lossless PNG.")
@click.option("--extras", is_flag=True, help="Also write the rendered person and the composition mask.")
@click.option("--workers", default=default(InferOptions, "workers"), show_default=True, type=click.IntRange(1),
              help="Local Dask processes.")
@click.option("--scheduler", default=default(InferOptions, "scheduler"),
              help="Address of an existing Dask scheduler (tcp://HOST:PORT).")
@click.option("--allow-nonfinite", is_flag=True, help=NONFINITE_HELP)
@click.option("--fast", is_flag=True, help="The fast path: bf16 where the hardware has it, compiled; not the exact "
              "path's bytes, its measured deviation is recorded in infer.json (refused beyond tolerance).")
@click.option("--no-compile", is_flag=True, help="With --fast: leave torch.compile out (it pays on large runs only).")
@click.option("--decode", default=default(InferOptions, "decode"), show_default=True, type=click.Choice(DECODES),
              help="With --fast: decode the JPEG inputs in the loader (host) or batched on the run's device "
              "(torchvision decode_jpeg; nvjpeg on CUDA).")
def infer(data: Path, checkpoints: tuple[Path, ...], split: str, pairs: str, out: Path, batch_size: int, device: str,
          precision: str, jpeg_quality: int | None, extras: bool, workers: int, scheduler: str | None,
          allow_nonfinite: bool, fast: bool, no_compile: bool, decode: str) -> None:
    """Run GMM and TOM over DATA and write warp-cloth/, warp-mask/ and try-on/ images named by person."""
    from vton.models.deviation import describe
    from vton.models.infer import run_inference

    opts = InferOptions(split=split, pairs=pairs, batch_size=batch_size, device=device, precision=precision,
                        jpeg_quality=jpeg_quality, extras=extras, workers=workers, scheduler=scheduler,
                        allow_nonfinite=allow_nonfinite, fast=fast, compile=not no_compile, decode=decode)
    summary = run_inference(data, checkpoints, out, opts)
    click.echo(f"infer: {summary.pairs} pairs ({summary.written} written, {summary.skipped} already there) "
               f"on {summary.device} -> {summary.out}")
    if summary.fast_deviation is not None:
        click.echo(f"fast path deviation on the first {describe(summary.fast_deviation)}")


# --- evaluate ----------------------------------------------------------------------------------
class MetricsOption(click.Option):
    """``--metrics``: its help names the metric table's rows, read when help is shown (not at every start)."""

    def get_help_record(self, ctx: click.Context):  # type: ignore[override]
        from vton.eval.registry import ALL_METRICS

        self.help = (f"Comma-separated subset of {','.join(ALL_METRICS)} [default: all; what cannot run is skipped "
                     "with a note]. A metric named here that cannot be computed gives exit status 4. tv is always "
                     "computed (it defines the LARGE/SMALL subsets).")
        return super().get_help_record(ctx)


class SizeParam(click.ParamType):
    """``HxW`` (e.g. 1024x768) -> (height, width)."""

    name = "HxW"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        h, sep, w = str(value).lower().partition("x")
        if not (sep and h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
            self.fail(f"{value!r} is not HEIGHTxWIDTH in pixels (e.g. 256x192)", param, ctx)
        return int(h), int(w)


@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--results", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Existing outputs: DIR/{paired,unpaired}/try-on/<person stem>.{png,jpg} (+ warp-mask/).")
@click.option("--paired", "paired_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Another method's paired outputs: a flat or nested folder ({person}, {person}_{cloth} or "
                   "CatVTON-style names).")
@click.option("--unpaired", "unpaired_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Another method's unpaired outputs, as --paired.")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Run inference with these checkpoints into OUT/results/{paired,unpaired} (repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder to write.")
@click.option("--protocol", "protocols", multiple=True, default=(DEFAULT_PROTOCOL,), show_default=True,
              type=click.Choice([*PROTOCOL_NAMES, "all"]),
              help="Score as this paper's evaluation script does (repeatable; all: every one); the summary compares "
                   "them side by side.")
@click.option("--metrics", cls=MetricsOption, default=EvalSettings.metrics)
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=EvalSettings.weights_dir,
              help="Folder with alexnet-owt-7be5be79.pth / weights-inception-2015-12-05-6726825d.pth "
                   "(else $TORCH_HOME/hub/checkpoints).")
@click.option("--device", default=EvalSettings.device, help="cuda / cpu (default: cuda when available).")
@click.option("--batch-size", default=EvalSettings.batch_size, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=EvalSettings.workers, type=click.IntRange(0),
              help="Decoding workers (default min(4, cpus)).")
@click.option("--seed", default=EvalSettings.seed, show_default=True, type=int,
              help="IS shuffle, KID subsets, bootstrap.")
@click.option("--bootstrap", "n_boot", default=EvalSettings.n_boot, show_default=True, type=click.IntRange(1))
@click.option("--is-splits", default=EvalSettings.is_splits, show_default=True, type=click.IntRange(1))
@click.option("--kid-subset-size", default=EvalSettings.kid_subset_size, show_default=True, type=click.IntRange(2))
@click.option("--subset-size", default=EvalSettings.subset_size, show_default=True, type=click.IntRange(1),
              help="Cloths in each of the LARGE / SMALL TV subsets.")
@click.option("--eval-size", type=SizeParam(), default=EvalSettings.eval_size,
              help="Score the vton protocol at HxW [default: the results' own size, that of the first prediction]. "
                   "Ground truth is resized to it (RGB PIL bicubic, parse labels nearest); every prediction must be "
                   "at it.")
@click.option("--resize-predictions", is_flag=True, default=EvalSettings.resize_predictions,
              help="Resize predictions of another size to the scoring size too (recorded) instead of refusing them.")
@click.option("--allow-skips", is_flag=True, help="Exit 0 even when a metric named with --metrics was not computed.")
@click.option("--allow-nonfinite", is_flag=True, help="With --checkpoint: " + NONFINITE_HELP)
@click.option("--download-weights", is_flag=True, help=DOWNLOAD_WEIGHTS_HELP + " Into --weights-dir when given.")
def evaluate(data: Path, results: Path | None, paired_dir: Path | None, unpaired_dir: Path | None,
             checkpoints: tuple[Path, ...], out: Path, protocols: tuple[str, ...], metrics: str | None,
             weights_dir: Path | None, device: str | None, batch_size: int, workers: int | None, seed: int,
             n_boot: int, is_splits: int, kid_subset_size: int, subset_size: int, eval_size: tuple[int, int] | None,
             resize_predictions: bool, allow_skips: bool, allow_nonfinite: bool, download_weights: bool) -> None:
    """Score try-on results on DATA (any layout `vton prepare --layout` reads) with the metrics of the table (see
    --metrics).

    With --checkpoint, OUT/results is reused or resumed only when it was made by the same checkpoints (SHA-256) and
    settings, else refused. Exit status 4 when a metric named with --metrics could not be computed (see
    summary.json's "skipped"), unless --allow-skips; 1 on bad input (e.g. an image that cannot be decoded exactly).
    """
    from vton.core import formats as fm
    from vton.eval.comparison import comparison_table
    from vton.eval.protocols import resolve
    from vton.eval.summary import EXIT_SKIPPED, summary_table, unmet
    from vton.workflows.evaluate import evaluate_run

    folders = {"paired": paired_dir, "unpaired": unpaired_dir}
    if sum((results is not None, bool(checkpoints), any(folders.values()))) != 1:
        raise click.UsageError("give exactly one of --results DIR, --paired/--unpaired DIR or --checkpoint CKPT")
    try:
        named = None if metrics is None else tuple(m.strip() for m in metrics.split(",") if m.strip())
        settings = EvalSettings(metrics=named, device=device, batch_size=batch_size, workers=workers, seed=seed,
                                n_boot=n_boot, is_splits=is_splits, kid_subset_size=kid_subset_size,
                                subset_size=subset_size, weights_dir=weights_dir, eval_size=eval_size,
                                resize_predictions=resize_predictions)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from exc
    if download_weights:
        from vton.workflows.weights import rows_for_evaluate

        fetch_for_run(rows_for_evaluate(resolve(protocols), named), weights_dir)
    try:
        summary = evaluate_run(data, out, results, checkpoints, settings, allow_nonfinite=allow_nonfinite,
                               folders=folders, protocols=resolve(protocols))
    except (ValueError, FileNotFoundError) as exc:  # bad pairs files, missing inputs: a message, not a traceback
        raise click.ClickException(str(exc)) from exc
    if summary["metrics"] or summary["skipped"]:
        click.echo(summary_table(summary))
    if set(summary["protocols"]) != {DEFAULT_PROTOCOL}:
        click.echo(comparison_table(summary))
    for setting, files in summary["results_files"].items():
        if files["jpeg"]:
            click.echo(f"note: {len(files['jpeg'])} {setting} predictions are JPEG (lossy: it moves FID/KID)",
                       err=True)
        left = {k: len(files[k]) for k in ("missing", "duplicates", "ambiguous", "extra", "refused") if files[k]}
        if left:
            click.echo(f"note: {setting} results: " + ", ".join(f"{n} {k}" for k, n in left.items())
                       + f" (listed in {fm.SUMMARY_FILE})", err=True)
    for reason in summary["missing_weights"]:
        click.echo(f"warning: {reason}", err=True)
    click.echo(f"wrote {out / fm.METRICS_FILE} and {out / fm.SUMMARY_FILE}")
    failed = unmet(settings, summary)
    if failed and not allow_skips:
        click.echo("error: named metrics not computed: " + "; ".join(f"{m} ({why})" for m, why in failed.items()),
                   err=True)
        sys.exit(EXIT_SKIPPED)



# --- keypoints ---------------------------------------------------------------------------------
@main.command()
@click.argument("images_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@pose_model_options
@click.option("--threshold", type=click.FloatRange(0, 1), default=default(PifpafOptions, "threshold"),
              show_default=True, help=THRESHOLD_HELP)
@click.option("--device", default=default(PifpafOptions, "device"), show_default=True, help=DEVICE_HELP)
@click.option("--batch-size", type=click.IntRange(1), default=default(PifpafOptions, "batch_size"), show_default=True,
              help="Images per network call.")
@click.option("--long-edge", type=click.IntRange(16), default=default(PifpafOptions, "long_edge"),
              help="Rescale images to this long edge before detection [default: their own size].")
@click.option("--workers", type=click.IntRange(1), default=default(RunnerConfig, "workers"), show_default=True,
              help="Local Dask worker processes, each loading the model once (1 runs in this process).")
@click.option("--scheduler", metavar="ADDR", default=default(RunnerConfig, "scheduler"),
              help="Run on an existing Dask cluster (tcp://host:port).")
@click.option("--download-weights", is_flag=True, help=DOWNLOAD_WEIGHTS_HELP)
def keypoints(images_dir: Path, out_dir: Path, pose_checkpoint: str | None, trust_checkpoint: bool,
              threshold: float, device: str, batch_size: int, long_edge: int | None,
              workers: int, scheduler: str | None, download_weights: bool) -> None:
    """Detect the main person's pose in each image of IMAGES_DIR with openpifpaf and write CP-VTON pose JSON
    (OpenPose-18, 192x256 pixels; all joints 0 when nobody is found) as OUT_DIR/<stem>_keypoints.json."""
    import json

    from vton.pipelines.keypoints.pifpaf import list_images, run_keypoints

    if download_weights:
        from vton.workflows.weights import rows_for_keypoints

        fetch_for_run(rows_for_keypoints(pose_checkpoint))
    options = PifpafOptions(checkpoint=pose_checkpoint, trust_checkpoint=trust_checkpoint, threshold=threshold,
                            device=device, batch_size=batch_size, long_edge=long_edge)
    runner = RunnerConfig(workers=workers, scheduler=scheduler, partition_size=4 * options.batch_size)
    summary = run_keypoints(list_images(images_dir), out_dir, options, runner)
    click.echo(json.dumps(summary, indent=2))


# --- report, amt, study ------------------------------------------------------------------------


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default: FIRST_RUN/report.html).")
def report(runs: tuple[Path, ...], out: Path | None) -> None:
    """Self-contained HTML report over evaluation runs and/or prepared datasets."""
    from vton.reports.html import write_report

    click.echo(f"report: {write_report(list(runs), out)}")


@main.group()
def amt() -> None:
    """Human A/B studies in MTurk's batch formats: export a study, analyze its results."""


@amt.command("export")
@click.option("--a", "run_a", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The first run (same as the first --run).")
@click.option("--b", "run_b", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The second run (same as the second --run).")
@click.option("--run", "more_runs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A run to compare (repeat: every pair of runs is compared on every shared item).")
@click.option("--subset", type=click.Choice(["all", "large", "small"]), default=default(ExportOptions, "subset"),
              show_default=True)
@click.option("--base-url", required=True, help="Where the images/ folder will be uploaded.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--trials-per-hit", default=default(ExportOptions, "trials_per_hit"), show_default=True,
              type=click.IntRange(1), help="Trials per HIT, catch trials included (at most 100: one page one worker "
              "answers).")
@click.option("--catch-rate", default=default(ExportOptions, "catch_rate"), show_default=True,
              type=click.FloatRange(0, 1, max_open=True),
              help="Share of each HIT's trials that are catch trials (real photo vs scrambled copy).")
@click.option("--cant-tell", is_flag=True, default=default(ExportOptions, "cant_tell"),
              help="Offer a \"can't tell\" answer (relaxed 2AFC; analysed as half a win each way).")
@click.option("--seed", default=default(ExportOptions, "seed"), show_default=True, type=int)
def amt_export(run_a: Path | None, run_b: Path | None, more_runs: tuple[Path, ...], subset: str, base_url: str,
               out: Path, trials_per_hit: int, catch_rate: float, cant_tell: bool, seed: int) -> None:
    """Batch CSV, HIT template, anonymous images and the unblinding key.csv for two or more runs."""
    from vton.studies.export import export_study

    runs = [r for r in (run_a, run_b) if r is not None] + list(more_runs)
    info = export_study(runs, out, base_url, subset, trials_per_hit, catch_rate, seed, cant_tell)
    click.echo(f"{info['hits']} HITs, {info['ab_trials']} pairwise + {info['catch_trials']} catch trials "
               f"({info['methods']} runs, {info['items']} items) -> {out}")


@amt.command("analyze")
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: RESULTS' folder/analysis).")
@click.option("--min-catch-accuracy", default=default(AnalyzeOptions, "min_catch_accuracy"), show_default=True,
              type=click.FloatRange(0, 1), help="Exclude workers whose share of correct catch trials is below this.")
@click.option("--max-attention-failures", default=default(AnalyzeOptions, "max_attention_failures"),
              show_default=True, type=click.IntRange(0),
              help="Exclude workers who failed more attention checks than this (column AttentionChecksFailed).")
@click.option("--bootstrap", "n_boot", default=default(AnalyzeOptions, "n_boot"), show_default=True,
              type=click.IntRange(1), help="Bootstrap replicates (at most 100000).")
@click.option("--seed", default=default(AnalyzeOptions, "seed"), show_default=True, type=click.IntRange(0))
def amt_analyze(results: Path, key: Path, out: Path | None, min_catch_accuracy: float, max_attention_failures: int,
                n_boot: int, seed: int) -> None:
    """Preferences between the runs (Wilson CI, binomial test, worker x item bootstrap); Bradley-Terry for 3+."""
    from vton.studies.analyze import analyze_results

    s = analyze_results(results, key, out, min_catch_accuracy, n_boot, seed, max_attention_failures)
    for warning in s["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"runs: {', '.join(s['runs'])}; excluded {s['workers_dropped']}/{s['workers']} workers")
    for r in s["preference"]:
        click.echo(f"  {r['a_run']} vs {r['b_run']} {r['subset']}: {r['prefer_a']}/{r['votes']} prefer A "
                   f"({r['ties']} ties) = {r['share_a']:.3f} [{r['bootstrap_lo']:.3f}, {r['bootstrap_hi']:.3f}] "
                   f"p={r['p_binomial']:.3g}")
    for r in (s["ranking"] or {}).get("strengths", []):
        click.echo(f"  #{r['rank']} {r['run']}: Bradley-Terry {r['log_strength']:+.3f} "
                   f"[{r['bootstrap_lo']:+.3f}, {r['bootstrap_hi']:+.3f}]")
    click.echo(f"-> {s['out']}")


@main.group()
def study() -> None:
    """Run an exported study: on Prolific (self-hosted) or in a lab; collect its results."""


study.add_command(amt_export, "export")


@study.command("serve")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default=default(ServeOptions, "host"), show_default=True,
              help="Interface to bind (loopback by default; put a TLS reverse proxy in front to go public).")
@click.option("--port", default=default(ServeOptions, "port"), show_default=True, type=click.IntRange(0, 65535),
              help="0 picks a free port.")
@click.option("--completion-code", default=default(ServeOptions, "completion_code"),
              help="Prolific: participants who finish go to app.prolific.com/submissions/complete?cc=CODE. Without "
                   "it, links with PROLIFIC_PID are refused.")
@click.option("--failed-check-code", default=default(ServeOptions, "failed_check_code"),
              help="Prolific: the code for a participant who failed an attention check (without it: a screen-out "
                   "page asking them to return the submission).")
@click.option("--hits-per-participant", default=default(ServeOptions, "hits_per_participant"), show_default=True,
              type=click.IntRange(0), help="HITs each participant answers (0: every HIT they have not done).")
@click.option("--attention-checks", default=default(ServeOptions, "attention_checks"), show_default=True,
              type=click.IntRange(0, 5), help="Instructed-response rows per page (Prolific: at least 1).")
@click.option("--lease-minutes", default=default(ServeOptions, "lease_minutes"), show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="A HIT shown but not submitted within this time stops counting towards its load, so others "
                   "get it (set it to the study's maximum time).")
def study_serve(folder: Path, host: str, port: int, completion_code: str | None, failed_check_code: str | None,
                hits_per_participant: int, attention_checks: int, lease_minutes: float) -> None:
    """Serve the study in FOLDER (from `vton amt export`); state in FOLDER/study.sqlite."""
    from vton.studies.app import Settings
    from vton.studies.db import DB_FILE
    from vton.studies.serve import StudyServer

    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}, not loopback: anyone who can reach it can take part", err=True)
    server = StudyServer(folder, host, port, Settings(completion_code, failed_check_code, hits_per_participant,
                                                      attention_checks, lease_minutes))
    click.echo(f"study at http://{host}:{server.port}/ (Ctrl-C stops); state -> {folder / DB_FILE}")
    server.serve()


@study.command("results")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: FOLDER).")
def study_results(folder: Path, out: Path | None) -> None:
    """FOLDER/study.sqlite as MTurk's results.csv and a tidy answers.parquet (the server may keep running)."""
    from vton.studies.results import export_results

    r = export_results(folder, out)
    click.echo(f"{r['assignments']} assignments, {r['answers']} answers of {r['participants']} participants -> "
               f"{r['results']}, {r['parquet']}")


# --- demo --------------------------------------------------------------------------------------


@main.command()
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for everything the demo makes (an earlier demo there is replaced).")
@click.option("--pairs", default=default(DemoOptions, "pairs"), show_default=True, type=click.IntRange(40),
              help="Synthetic pairs.")
@click.option("--steps", default=default(DemoOptions, "gmm_steps"), show_default=True, type=click.IntRange(1),
              help="Training steps per network.")
@click.option("--width", default=default(DemoOptions, "width"), show_default=True, type=click.IntRange(1),
              help="Network width (paper: 64).")
@click.option("--device", default=default(DemoOptions, "device"), show_default=True)
def demo(out: Path, pairs: int, steps: int, width: int, device: str) -> None:
    """The whole tool on built-in synthetic data: synth, prepare, train, evaluate against a baseline, report."""
    from vton.workflows.demo import run_demo

    result = run_demo(out, DemoOptions(pairs=pairs, width=width, gmm_steps=steps, tom_steps=steps, device=device),
                      say=click.echo)
    for metric, reason in sorted(result.skipped.items()):
        click.echo(f"note: {metric} not computed: {reason}")
    click.echo(f"\nreport: {result.report.resolve()}\nprepared dataset report: {result.prepare_report.resolve()}")


# --- weights -----------------------------------------------------------------------------------
def weights_selection(command):
    """NAME... and --for TARGET, and the folder, shared by list, download and verify."""
    for option in reversed([
        click.argument("names", nargs=-1),
        click.option("--for", "target", metavar="TARGET",
                     help="The files of a command (evaluate, train, keypoints), of a protocol "
                          f"({', '.join(PROTOCOL_NAMES)}) or all."),
        click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Look here first, and put files here [default: $TORCH_HOME/hub/checkpoints, where the "
                          "libraries look]."),
    ]):
        command = option(command)
    return command


@main.group()
def weights() -> None:
    """The pretrained files of the metrics, the VGG19 loss and openpifpaf: list, download, verify, import.

    NAME is a file's key (see `vton weights list`) or its file name. Nothing downloads unless asked."""


@weights.command("list")
@weights_selection
def weights_list(names: tuple[str, ...], target: str | None, weights_dir: Path | None) -> None:
    """Every file (or those named): status (verified, wrong hash, missing), what needs it, where it comes from."""
    from vton.workflows.weights import list_table, select

    click.echo(list_table(select(names, target, default_all=True), weights_dir))


@weights.command("download")
@weights_selection
@click.option("--mirror", metavar="URL", default=None,
              help=f"A plain http(s) folder holding the same file names (default: ${MIRROR_ENV}, else each file's "
                   "publisher).")
def weights_download(names: tuple[str, ...], target: str | None, weights_dir: Path | None,
                     mirror: str | None) -> None:
    """Fetch the files named or those of --for: resumable, hash-checked before they land (a wrong file is deleted,
    naming the expected and the received SHA-256); files already verified are kept."""
    from vton.workflows.weights import fetch, select

    for line in fetch(select(names, target), weights_dir, mirror):
        click.echo(line)


@weights.command("verify")
@weights_selection
def weights_verify(names: tuple[str, ...], target: str | None, weights_dir: Path | None) -> None:
    """Hash the files (those named or of --for; default: every file, missing ones allowed). Exit status 1 when one is
    not the published file, or a file named or of --for is missing."""
    from vton.workflows.weights import select, verify

    lines, ok = verify(select(names, target, default_all=True), weights_dir, missing_fails=bool(names or target))
    click.echo("\n".join(lines))
    if not ok:
        sys.exit(1)


@weights.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as", "name", metavar="NAME", default=None,
              help="Which file of the table it is [default: by its file name, else by its SHA-256].")
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Put it here [default: $TORCH_HOME/hub/checkpoints, where the libraries look].")
def weights_import(file: Path, name: str | None, weights_dir: Path | None) -> None:
    """Copy a weight file you already have into place under its official name, hash-checked before it lands."""
    from vton.workflows.weights import import_file

    click.echo(import_file(file, name, weights_dir))


if __name__ == "__main__":
    sys.exit(main())

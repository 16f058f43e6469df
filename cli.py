"""The ``vton`` command line: one thin click command per verb; the work lives in the packages."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from vton import __version__
from vton.pipelines.formats import LAYOUTS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vton")
def main() -> None:
    """Reproduce, train and evaluate CP-VTON on VITON-format data."""


def pose_model_options(command):
    """openpifpaf's model flags, shared by `prepare --keypoints openpifpaf` and `keypoints`."""
    command = click.option("--trust-checkpoint", is_flag=True,
                           help="Allow unpickling the openpifpaf checkpoint (it holds a whole pickled network, which "
                                "can run code when loaded): only for a file you trust.")(command)
    return click.option(
        "--pose-checkpoint", type=click.Path(dir_okay=False), default=None,
        help="openpifpaf checkpoint [default: shufflenetv2k16 in $TORCH_HOME/hub/checkpoints].")(command)


def pifpaf_options(**given):
    """`vton.pipelines.pifpaf.PifpafOptions` from a command's flags; the ones not given (None) keep their defaults."""
    from vton.pipelines.pifpaf import PifpafOptions

    return PifpafOptions(**{k: v for k, v in given.items() if v is not None})


THRESHOLD_HELP = "Joint confidence below which a joint counts as missing [default: openpifpaf's own, 0.15]."
DEVICE_HELP = "Device for openpifpaf: auto (CUDA when available), cpu, cuda, cuda:N [default: auto]."


# --- synth -------------------------------------------------------------------------------------
@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pairs", "n_pairs", type=click.IntRange(min=1), required=True, help="Number of person/cloth pairs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--layout", type=click.Choice(LAYOUTS), default="cpvton", show_default=True,
              help="cpvton: CP-VTON's converted folders; viton: the original raw VITON files.")
@click.option("--defects", is_flag=True, help="Inject realistic faults and write their ground truth to defects.json.")
def synth(out: Path, n_pairs: int, seed: int, layout: str, defects: bool) -> None:
    """Write a procedural dataset in the real VITON / CP-VTON file formats to OUT."""
    from vton.pipelines.synth import synthesize

    try:
        summary = synthesize(out, n_pairs, seed, layout=layout, defects=defects, progress=True)
    except (ValueError, FileExistsError) as err:
        raise click.UsageError(str(err)) from err
    splits = summary["splits"]
    click.echo(f"wrote {summary['pairs']} pairs ({splits['train']} train, {splits['test']} test, layout {layout}) "
               f"to {out}" + (f"; {len(summary['defects'])} defects in defects.json" if defects else ""))


# --- prepare -----------------------------------------------------------------------------------

@main.command("prepare")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local workers (1 runs in this process).")
@click.option("--local", "local", type=click.Choice(["threads", "processes"]), default="threads", show_default=True,
              help="Kind of local workers.")
@click.option("--scheduler", metavar="ADDR", default=None, help="Run on an existing Dask cluster (tcp://host:port).")
@click.option("--resplit", is_flag=True, help="Ignore the pairs files' split and draw a seeded, leak-free one.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split and the unpaired test list.")
@click.option("--train-size", type=click.IntRange(min=0), default=None, help="Train pairs of a drawn split.")
@click.option("--test-size", type=click.IntRange(min=0), default=None, help="Test pairs of a drawn split.")
@click.option("--keypoints", default="dataset", show_default=True,
              help="Keypoint source: dataset (the pose files, see vton.pipelines.pose) or openpifpaf (estimated from "
                   "the person image where the pose file is missing; everywhere with --overwrite-keypoints).")
@click.option("--overwrite-keypoints", is_flag=True, help="With --keypoints openpifpaf: estimate every person's pose.")
@pose_model_options
@click.option("--pose-threshold", type=click.FloatRange(0, 1), default=None, help=THRESHOLD_HELP)
@click.option("--pose-device", default=None, help=DEVICE_HELP)
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even when pairs were rejected (otherwise exit 3).")
def prepare_cmd(src: Path, out: Path, workers: int, local: str, scheduler: str | None, resplit: bool, seed: int,
                train_size: int | None, test_size: int | None, keypoints: str, overwrite_keypoints: bool,
                pose_checkpoint: str | None, trust_checkpoint: bool, pose_threshold: float | None,
                pose_device: str | None, allow_rejects: bool) -> None:
    """Clean, split and precompute the VITON dataset SRC (CP-VTON or raw layout) into OUT.

    Exit status 3 when bad data made pairs be rejected (see OUT/rejected.csv), unless --allow-rejects; pairs left
    over by --train-size/--test-size do not count.
    """
    from vton.pipelines.pifpaf import KeypointsError, keypoint_source
    from vton.pipelines.prepare import EXIT_REJECTED, PrepareOptions, prepare
    from vton.pipelines.runner import RunnerConfig

    pose = pifpaf_options(checkpoint=pose_checkpoint, trust_checkpoint=trust_checkpoint, threshold=pose_threshold,
                          device=pose_device)
    try:
        source = keypoint_source(keypoints, pose, overwrite_keypoints)
    except KeypointsError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = prepare(src, out, PrepareOptions(seed=seed, resplit=resplit, train_size=train_size,
                                               test_size=test_size, keypoints=source),
                      RunnerConfig(workers=workers, scheduler=scheduler, local=local))
    click.echo(summary.text())
    if summary.faults and not allow_rejects:
        sys.exit(EXIT_REJECTED)


# --- models: train, checkpoint -----------------------------------------------------------------


# --- infer -------------------------------------------------------------------------------------


# --- evaluate ----------------------------------------------------------------------------------


# --- keypoints ---------------------------------------------------------------------------------
@main.command()
@click.argument("images_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@pose_model_options
@click.option("--threshold", type=click.FloatRange(0, 1), default=None, help=THRESHOLD_HELP)
@click.option("--device", default=None, help=DEVICE_HELP)
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Images per network call [default: 8].")
@click.option("--long-edge", type=click.IntRange(16), default=None,
              help="Rescale images to this long edge before detection [default: their own size].")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Local Dask worker processes, each loading the model once (1 runs in this process).")
@click.option("--scheduler", metavar="ADDR", default=None, help="Run on an existing Dask cluster (tcp://host:port).")
def keypoints(images_dir: Path, out_dir: Path, pose_checkpoint: str | None, trust_checkpoint: bool,
              threshold: float | None, device: str | None, batch_size: int | None, long_edge: int | None,
              workers: int, scheduler: str | None) -> None:
    """Detect the main person's pose in each image of IMAGES_DIR with openpifpaf and write CP-VTON pose JSON
    (OpenPose-18, 192x256 pixels; all joints 0 when nobody is found) as OUT_DIR/<stem>_keypoints.json."""
    import json

    from vton.pipelines.pifpaf import KeypointsError, list_images, run_keypoints
    from vton.pipelines.runner import RunnerConfig

    options = pifpaf_options(checkpoint=pose_checkpoint, trust_checkpoint=trust_checkpoint, threshold=threshold,
                             device=device, batch_size=batch_size, long_edge=long_edge)
    runner = RunnerConfig(workers=workers, scheduler=scheduler, partition_size=4 * options.batch_size)
    try:
        summary = run_keypoints(list_images(images_dir), out_dir, options, runner)
    except KeypointsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary, indent=2))


# --- report, amt, study ------------------------------------------------------------------------


# --- demo --------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())

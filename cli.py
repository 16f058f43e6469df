"""The ``vton`` command line: one thin click command per verb; the work lives in the packages."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from vton import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vton")
def main() -> None:
    """Reproduce, train and evaluate CP-VTON on VITON-format data."""


# --- synth -------------------------------------------------------------------------------------


# --- prepare -----------------------------------------------------------------------------------


# --- models: train, checkpoint -----------------------------------------------------------------


# --- infer -------------------------------------------------------------------------------------


# --- evaluate ----------------------------------------------------------------------------------


# --- keypoints ---------------------------------------------------------------------------------
@main.command()
@click.argument("images_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--pose-checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="openpifpaf checkpoint file [default: shufflenetv2k16 in $TORCH_HOME/hub/checkpoints].")
@click.option("--trust-checkpoint", is_flag=True,
              help="Allow unpickling the checkpoint (openpifpaf saves whole modules; only for files you trust).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Joint confidence below which a joint counts as missing [default: openpifpaf's 0.15].")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when available), cpu, cuda, cuda:N.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--long-edge", type=click.IntRange(16), default=None,
              help="Rescale images to this long edge before detection [default: their own size].")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True, help="Dask worker processes.")
def keypoints(images_dir: Path, out_dir: Path, pose_checkpoint: Path | None, trust_checkpoint: bool,
              threshold: float | None, device: str, batch_size: int, long_edge: int | None, workers: int) -> None:
    """Detect the main person's pose in each image of IMAGES_DIR with openpifpaf and write CP-VTON pose JSON
    (OpenPose-18, 192x256 pixels) as OUT_DIR/<stem>_keypoints.json."""
    import json

    from vton.pipelines.pifpaf import KeypointsError, PifpafOptions, list_images, run_keypoints

    options = PifpafOptions(checkpoint=pose_checkpoint, trust_checkpoint=trust_checkpoint, device=device,
                            batch_size=batch_size, long_edge=long_edge,
                            **({} if threshold is None else {"threshold": threshold}))
    try:
        summary = run_keypoints(list_images(images_dir), out_dir, options, workers=workers)
    except KeypointsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary, indent=2))



# --- report, amt, study ------------------------------------------------------------------------


# --- demo --------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())

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
@click.option("--keypoints", default="dataset", show_default=True, help="Keypoint source (see vton.pipelines.pose).")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even when pairs were rejected (otherwise exit 3).")
def prepare_cmd(src: Path, out: Path, workers: int, local: str, scheduler: str | None, resplit: bool, seed: int,
                train_size: int | None, test_size: int | None, keypoints: str, allow_rejects: bool) -> None:
    """Clean, split and precompute the VITON dataset SRC (CP-VTON or raw layout) into OUT.

    Exit status 3 when bad data made pairs be rejected (see OUT/rejected.csv), unless --allow-rejects; pairs left
    over by --train-size/--test-size do not count.
    """
    from vton.pipelines.prepare import EXIT_REJECTED, PrepareOptions, prepare
    from vton.pipelines.runner import RunnerConfig

    summary = prepare(src, out, PrepareOptions(seed=seed, resplit=resplit, train_size=train_size,
                                               test_size=test_size, keypoints=keypoints),
                      RunnerConfig(workers=workers, scheduler=scheduler, local=local))
    click.echo(summary.text())
    if summary.faults and not allow_rejects:
        sys.exit(EXIT_REJECTED)


# --- models: train, checkpoint -----------------------------------------------------------------


# --- infer -------------------------------------------------------------------------------------


# --- evaluate ----------------------------------------------------------------------------------


# --- keypoints ---------------------------------------------------------------------------------


# --- report, amt, study ------------------------------------------------------------------------


# --- demo --------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())

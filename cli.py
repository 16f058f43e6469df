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


# --- models: train, checkpoint -----------------------------------------------------------------


# --- infer -------------------------------------------------------------------------------------


# --- evaluate ----------------------------------------------------------------------------------


# --- keypoints ---------------------------------------------------------------------------------


# --- report, amt, study ------------------------------------------------------------------------


# --- demo --------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())

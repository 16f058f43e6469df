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


# --- report, amt, study ------------------------------------------------------------------------


# --- demo --------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())

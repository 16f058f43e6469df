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


def _train_options(func):
    """Options shared by ``vton train gmm`` and ``vton train tom`` (defaults are the paper's)."""
    options = [
        click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path)),
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Checkpoint folder."),
        click.option("--variant", type=click.Choice(["cpvton", "cpvton+"]), default=None,
                     help="Network variant (gmm: default cpvton; tom: that of --gmm)."),
        click.option("--width", type=int, default=None, help="Base channels ngf (paper: 64); small for a CPU demo."),
        click.option("--steps", type=int, default=200_000, show_default=True),
        click.option("--batch-size", type=int, default=4, show_default=True),
        click.option("--lr", type=float, default=1e-4, show_default=True),
        click.option("--save-every", type=int, default=5000, show_default=True, help="Write step_XXXXXX.pth every N steps."),
        click.option("--log-every", type=int, default=10, show_default=True, help="CSV log row every N steps."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--workers", type=int, default=2, show_default=True),
        click.option("--device", default="cpu", show_default=True),
        click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --out."),
        click.option("--lambda-l1", type=float, default=1.0, show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run_training(stage: str, data: Path, out: Path, variant: str | None, width: int | None, resume: bool,
                  gmm: Path | None = None, **opts) -> None:
    from vton.models.checkpoint import CheckpointError
    from vton.models.losses import MissingWeightsError
    from vton.models.train import TrainOptions, train_from_folder

    try:
        result = train_from_folder(stage, data, out, TrainOptions(**opts), variant=variant, width=width,
                                   gmm_path=gmm, resume=resume)
    except (CheckpointError, MissingWeightsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.losses.items())
    click.echo(f"trained {stage} steps {result.start_step}..{result.steps} in {result.seconds:.1f} s; "
               f"{losses}; final checkpoint {result.final}")


@main.group()
def train() -> None:
    """Train the GMM, then the TOM (paper defaults: Adam 1e-4, batch 4, 200k steps)."""


@train.command("gmm")
@_train_options
@click.option("--lambda-gic", type=float, default=40.0, show_default=True, help="CP-VTON+ grid regulariser weight.")
def train_gmm(**kwargs) -> None:
    """Train the geometric matching module on DATA's train split."""
    _run_training("gmm", **kwargs)


@train.command("tom")
@_train_options
@click.option("--gmm", type=click.Path(exists=True, path_type=Path), default=None,
              help="Trained GMM (gmm_final.pth, a bundle, or a folder) that warps the cloth on the fly; required.")
@click.option("--lambda-vgg", type=float, default=1.0, show_default=True, help="0 trains without the VGG19 loss.")
@click.option("--lambda-mask", type=float, default=1.0, show_default=True)
@click.option("--vgg-weights", type=click.Path(dir_okay=False), default=None,
              help="vgg19-dcbbb8c0.pth (default: TORCH_HOME/hub/checkpoints/).")
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
    """What each file is: gmm or tom, cpvton or cpvton+, width, parameters, whether it loads strictly."""
    import json

    from vton.models.checkpoint import CheckpointError, format_table, inspect_checkpoint

    try:
        infos = [info for path in paths for info in inspect_checkpoint(path)]
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps([i.to_dict() for i in infos], indent=2) if as_json else format_table(infos))
    if not all(i.strict for i in infos):
        sys.exit(1)


# --- infer -------------------------------------------------------------------------------------


# --- evaluate ----------------------------------------------------------------------------------


# --- keypoints ---------------------------------------------------------------------------------


# --- report, amt, study ------------------------------------------------------------------------


# --- demo --------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())

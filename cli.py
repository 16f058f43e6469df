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
@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--results", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Existing outputs: DIR/{paired,unpaired}/try-on/<person stem>.{png,jpg} (+ warp-mask/).")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Run inference with these checkpoints into OUT/results/{paired,unpaired} (repeatable).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run folder to write.")
@click.option("--metrics", default="ssim,lpips,iou,ssim_cloth,is,fid,kid,tv", show_default=True,
              help="Comma-separated subset; tv is always computed (it defines the LARGE/SMALL subsets).")
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with alexnet-owt-7be5be79.pth / weights-inception-2015-12-05-6726825d.pth "
                   "(else $TORCH_HOME/hub/checkpoints).")
@click.option("--device", default=None, help="cuda / cpu (default: cuda when available).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=None, type=click.IntRange(0), help="Decoding workers (default min(4, cpus)).")
@click.option("--seed", default=0, show_default=True, type=int, help="IS shuffle, KID subsets, bootstrap.")
@click.option("--bootstrap", "n_boot", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--is-splits", default=10, show_default=True, type=click.IntRange(1))
@click.option("--kid-subset-size", default=1000, show_default=True, type=click.IntRange(2))
@click.option("--subset-size", default=50, show_default=True, type=click.IntRange(1),
              help="Cloths in each of the LARGE / SMALL TV subsets.")
def evaluate(data: Path, results: Path | None, checkpoints: tuple[Path, ...], out: Path, metrics: str,
             weights_dir: Path | None, device: str | None, batch_size: int, workers: int | None, seed: int,
             n_boot: int, is_splits: int, kid_subset_size: int, subset_size: int) -> None:
    """Score try-on results on DATA (CP-VTON layout): SSIM, LPIPS, IoU, SSIM in the cloth, IS, FID, KID, TV."""
    from vton.eval.protocol import Settings, evaluate_run, format_table

    if (results is None) == (not checkpoints):
        raise click.UsageError("give exactly one of --results DIR or --checkpoint CKPT")
    try:
        settings = Settings(metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()), device=device,
                            batch_size=batch_size, workers=workers, seed=seed, n_boot=n_boot, is_splits=is_splits,
                            kid_subset_size=kid_subset_size, subset_size=subset_size, weights_dir=weights_dir)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from exc
    try:
        summary = evaluate_run(data, out, results, checkpoints, settings)
    except (ValueError, FileNotFoundError) as exc:  # bad pairs files, missing inputs: a message, not a traceback
        raise click.ClickException(str(exc)) from exc
    click.echo(format_table(summary))
    for reason in sorted(set(summary["skipped"].values())):
        if "missing weights file" in reason:
            click.echo(f"warning: {reason}", err=True)
    click.echo(f"wrote {out / 'metrics.parquet'} and {out / 'summary.json'}")


# --- keypoints ---------------------------------------------------------------------------------


# --- report, amt, study ------------------------------------------------------------------------


# --- demo --------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())

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


@main.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--checkpoint", "checkpoints", multiple=True, required=True, type=click.Path(exists=True, path_type=Path),
              help="Our bundle, a folder holding gmm_final.pth and tom_final.pth, or GMM and TOM files (repeat).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test"]))
@click.option("--pairs", default="unpaired", show_default=True,
              help="unpaired (test_pairs.txt), paired (test_pairs_same.txt), train, or a pairs file.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Results folder.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(["fp32", "bf16", "fp16"]),
              help="Reduced precision is for CUDA; see the README for its tolerance.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=None,
              help="Write JPEG at this quality (75 reproduces the original files) instead of lossless PNG.")
@click.option("--extras", is_flag=True, help="Also write the rendered person and the composition mask.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Local Dask processes.")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler (tcp://HOST:PORT).")
def infer(data: Path, checkpoints: tuple[Path, ...], split: str, pairs: str, out: Path, batch_size: int, device: str,
          precision: str, jpeg_quality: int | None, extras: bool, workers: int, scheduler: str | None) -> None:
    """Run GMM and TOM over DATA and write warp-cloth/, warp-mask/ and try-on/ images named by person."""
    from vton.pipelines.infer import InferOptions, run_inference

    opts = InferOptions(split=split, pairs=pairs, batch_size=batch_size, device=device, precision=precision,
                        jpeg_quality=jpeg_quality, extras=extras, workers=workers, scheduler=scheduler)
    summary = run_inference(data, checkpoints, out, opts)
    click.echo(f"infer: {summary.pairs} pairs ({summary.written} written, {summary.skipped} already there) "
               f"on {summary.device} -> {summary.out}")


# --- evaluate ----------------------------------------------------------------------------------


# --- keypoints ---------------------------------------------------------------------------------


# --- report, amt, study ------------------------------------------------------------------------


# --- demo --------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())

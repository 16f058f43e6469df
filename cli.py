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
@click.option("--a", "run_a", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--b", "run_b", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--subset", type=click.Choice(["all", "large", "small"]), default="all", show_default=True)
@click.option("--base-url", required=True, help="Where the images/ folder will be uploaded.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--trials-per-hit", default=10, show_default=True, type=int)
@click.option("--catch-rate", default=0.1, show_default=True, type=float)
@click.option("--seed", default=0, show_default=True, type=int)
def amt_export(run_a: Path, run_b: Path, subset: str, base_url: str, out: Path, trials_per_hit: int,
               catch_rate: float, seed: int) -> None:
    """Batch CSV, HIT template, anonymous images and the unblinding key.csv for run A vs run B."""
    from vton.reports.amt_export import StudyError, export_study

    try:
        info = export_study(run_a, run_b, out, base_url, subset, trials_per_hit, catch_rate, seed)
    except StudyError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{info['hits']} HITs, {info['ab_trials']} A/B + {info['catch_trials']} catch trials -> {out}")


@amt.command("analyze")
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: RESULTS' folder/analysis).")
@click.option("--min-catch-accuracy", default=0.75, show_default=True, type=float,
              help="Drop workers whose share of correct catch trials is below this.")
@click.option("--bootstrap", "n_boot", default=2000, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
def amt_analyze(results: Path, key: Path, out: Path | None, min_catch_accuracy: float, n_boot: int,
                seed: int) -> None:
    """Preference for A over B (overall and per subset): Wilson CI, binomial test, worker x item bootstrap."""
    from vton.reports.amt_analyze import ResultsError, analyze_results

    try:
        s = analyze_results(results, key, out, min_catch_accuracy, n_boot, seed)
    except ResultsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"A={s['a_run']} B={s['b_run']}; dropped {s['workers_dropped']}/{s['workers']} workers")
    for r in s["preference"]:
        click.echo(f"  {r['subset']}: {r['prefer_a']}/{r['votes']} prefer A = {r['share_a']:.3f} "
                   f"[{r['bootstrap_lo']:.3f}, {r['bootstrap_hi']:.3f}] p={r['p_binomial']:.3g}")
    click.echo(f"-> {s['out']}")


@main.group()
def study() -> None:
    """Run an exported study locally for in-lab participants."""


@study.command("serve")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--port", default=8000, show_default=True, type=int)
def study_serve(folder: Path, host: str, port: int) -> None:
    """Serve the study in FOLDER (from `vton amt export`); answers go to FOLDER/results.csv."""
    from vton.reports.study import make_server

    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}, not loopback: anyone who can reach it can take part", err=True)
    server = make_server(folder, host, port)
    click.echo(f"study at http://{host}:{server.server_address[1]}/ (Ctrl-C stops); answers -> {folder}/results.csv")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# --- demo --------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())

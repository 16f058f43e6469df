"""`vton weights`: which pretrained files a run needs, where they are, whether they are the published ones; fetching
them (from their publishers or a mirror) and importing copies the user already has.

The files are the rows of `vton.core.weight_files`; what needs each is read here from the live tables (metric rows,
protocol rows), which is why this sits above eval. Files are looked up in ``weights_dir`` (when given) and then in
``$TORCH_HOME/hub/checkpoints``; they are placed in ``weights_dir`` when given, else in that hub folder.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from vton.core import weight_files as wf
from vton.core.download import DownloadError, HashMismatchError, copy_verified, download, part_path
from vton.core.io import LockedError, sha256_file
from vton.core.weights import hub_checkpoints_dir, locate
from vton.eval.networks import networks_needed
from vton.eval.protocols import DEFAULT, PROTOCOLS
from vton.eval.registry import METRICS

RUN_TARGETS = ("evaluate", "train", "keypoints")


def target_names() -> list[str]:
    """What ``--for`` takes: a command, a protocol, or all."""
    return [*RUN_TARGETS, *PROTOCOLS, "all"]


def rows_for(target: str) -> list[wf.WeightFile]:
    """The files ``target`` loads: `vton evaluate` with its defaults (the vton protocol, every metric), a protocol,
    `vton train` (the TOM's VGG19 loss), `vton keypoints` (openpifpaf's default model), or all."""
    if target == "all":
        return list(wf.FILES)
    if target in PROTOCOLS or target == "evaluate":
        return _rows_of(networks_needed([DEFAULT if target == "evaluate" else target]))
    if target == "train":
        return [wf.using(wf.VGG_LOSS)]
    if target == "keypoints":
        return [wf.using(wf.OPENPIFPAF)]
    raise ValueError(f"unknown --for {target!r}; choose from {', '.join(target_names())}")


def _rows_of(networks: Iterable[str]) -> list[wf.WeightFile]:
    return list(dict.fromkeys(wf.using(n) for n in networks))


def select(names: Sequence[str], target: str | None, default_all: bool = False) -> list[wf.WeightFile]:
    """The files named (by key or file name) or those of ``--for target``; every file when neither is given and
    ``default_all``."""
    if names and target:
        raise ValueError("name files or give --for, not both")
    if names:
        return list(dict.fromkeys(wf.get(n) for n in names))
    if target:
        return rows_for(target)
    if default_all:
        return list(wf.FILES)
    raise ValueError(f"name the files to fetch ({', '.join(wf.BY_KEY)}) or give --for "
                     f"{'|'.join(target_names())}")


# --- what a run needs (for --download-weights) ------------------------------------------------------------------
def rows_for_evaluate(protocols: Sequence[str], metrics: Sequence[str] | None) -> list[wf.WeightFile]:
    return _rows_of(networks_needed(protocols, metrics))


def rows_for_train(stage: str, lambda_vgg: float, vgg_weights: str | None) -> list[wf.WeightFile]:
    """The TOM's VGG19 loss file, unless the loss is off or the user gave their own file."""
    return [wf.using(wf.VGG_LOSS)] if stage == "tom" and lambda_vgg and not vgg_weights else []


def rows_for_keypoints(checkpoint: str | None) -> list[wf.WeightFile]:
    return [] if checkpoint is not None else [wf.using(wf.OPENPIFPAF)]


def needed_by(row: wf.WeightFile) -> str:
    """What loads the file, read from the metric and protocol tables."""
    uses = set(row.uses)
    metrics = [s.name for s in METRICS if uses & set(s.networks)]
    protocols = [p.name for p in PROTOCOLS.values() if any(uses & set(r.networks) for r in p.rows)]
    parts = [f"metrics {', '.join(metrics)}" if metrics else "", f"protocols {', '.join(protocols)}" if protocols
             else "", "train tom (VGG19 loss)" if wf.VGG_LOSS in uses else "",
             "keypoints, prepare --keypoints openpifpaf" if wf.OPENPIFPAF in uses else ""]
    return "; ".join(p for p in parts if p)


# --- where files are and what they are ---------------------------------------------------------------------------
def place(weights_dir: str | os.PathLike | None) -> Path:
    """Where files are put: ``weights_dir`` when given, else where torch.hub (and so the libraries) looks."""
    return Path(weights_dir) if weights_dir else hub_checkpoints_dir()


@dataclass(frozen=True)
class Status:
    row: wf.WeightFile
    path: Path | None  # where it was found (None: missing)
    digest: str | None  # its SHA-256, when found
    partial: int  # bytes of an interrupted download waiting to be resumed

    @property
    def state(self) -> str:
        """``verified``, ``wrong hash``, ``unverified`` (no published hash) or ``missing``."""
        if self.path is None:
            return "missing"
        return {True: "verified", False: "wrong hash", None: "unverified"}[self.row.verdict(self.digest or "")]

    def describe(self) -> str:
        if self.path is None:
            return "missing" + (f" ({self.partial / 1e6:.1f} MB downloaded, resumes)" if self.partial else "")
        if self.state == "wrong hash":
            return f"WRONG HASH: expected SHA-256 {self.row.sha256}..., got {self.digest} ({self.path})"
        if self.state == "unverified":
            return f"present, no published hash to check; SHA-256 {self.digest} ({self.path})"
        return f"verified ({self.path})"


def status(row: wf.WeightFile, weights_dir: str | os.PathLike | None = None) -> Status:
    path = locate(row.filename, weights_dir)
    part = part_path(place(weights_dir) / row.filename)
    return Status(row, path, sha256_file(path) if path else None, part.stat().st_size if part.is_file() else 0)


def list_table(rows: Sequence[wf.WeightFile], weights_dir: str | os.PathLike | None = None) -> str:
    """One block per file: key, file name, size, status, what needs it, where it comes from."""
    lines = [f"weights folder: {place(weights_dir)}" + (f" (then {hub_checkpoints_dir()})" if weights_dir else "")]
    for row in rows:
        size = f", {row.size_mb:.0f} MB" if row.size_mb else ""
        lines += [f"{row.key}: {row.filename}{size}", f"  status:    {status(row, weights_dir).describe()}",
                  f"  needed by: {needed_by(row)}", f"  what:      {row.what}",
                  f"  from:      {row.url} (SHA-256 {row.sha256 + '...' if row.sha256 else 'not published'})"]
    return "\n".join(lines)


def verify(rows: Sequence[wf.WeightFile], weights_dir: str | os.PathLike | None = None,
           missing_fails: bool = True) -> tuple[list[str], bool]:
    """A line per file and whether all passed: a wrong hash fails, a missing file fails when ``missing_fails``."""
    found = [status(row, weights_dir) for row in rows]
    ok = all(s.state != "wrong hash" and (s.path is not None or not missing_fails) for s in found)
    return [f"{s.row.key}: {s.describe()}" for s in found], ok


# --- fetching and importing --------------------------------------------------------------------------------------
def mirror_base(mirror: str | None) -> str | None:
    """``--mirror`` or else $VTON_WEIGHTS_MIRROR: a plain http(s) folder holding the files under their names."""
    base = mirror or os.environ.get(wf.MIRROR_ENV) or None
    if base is not None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the weights mirror must be an http:// or https:// folder URL, got {base!r} "
                             f"(--mirror or ${wf.MIRROR_ENV})")
    return base


def source_url(row: wf.WeightFile, mirror: str | None) -> str:
    return f"{mirror.rstrip('/')}/{quote(row.filename)}" if mirror else row.url


def fetch(rows: Sequence[wf.WeightFile], weights_dir: str | os.PathLike | None = None, mirror: str | None = None,
          progress: bool = True) -> list[str]:
    """Download each file that is missing or not the published one into `place` (a verified or unverifiable file
    already found is kept); a line per file. Every file is tried; then one error lists those that failed."""
    base = mirror_base(mirror)
    lines, failed = [], []
    for row in rows:
        found = status(row, weights_dir)
        if found.state in ("verified", "unverified"):
            lines.append(f"{row.filename}: already there, {found.describe()}")
            continue
        url, target = source_url(row, base), place(weights_dir) / row.filename
        try:
            digest = download(url, target, row.sha256, progress)
        except (DownloadError, HashMismatchError, LockedError) as exc:  # the next file may still come
            failed.append(str(exc))
            continue
        check = "matches the published" if row.sha256 else "no published hash to check; SHA-256"
        lines.append(f"{row.filename}: downloaded from {url} -> {target} ({check} {digest})")
    if failed:
        raise DownloadError(f"{len(failed)} of {len(rows)} weight files not fetched: " + "; ".join(failed))
    return lines


def identify(source: Path, name: str | None) -> wf.WeightFile:
    """The row a file the user has is a copy of: named with ``name``, else by its file name, else by its SHA-256."""
    if name:
        return wf.get(name)
    if source.name in wf.BY_FILENAME:
        return wf.BY_FILENAME[source.name]
    digest = sha256_file(source)
    rows = [row for row in wf.FILES if row.verdict(digest)]
    if len(rows) != 1:
        which = " and ".join(r.key for r in rows) if rows else "no published file"
        raise ValueError(f"{source}: its SHA-256 {digest} matches {which}; name it with --as KEY "
                         f"({', '.join(wf.BY_KEY)})")
    return rows[0]


def import_file(source: str | os.PathLike, name: str | None = None,
                weights_dir: str | os.PathLike | None = None) -> str:
    """Copy a weight file the user already has to `place` under its table name, hash-checked before it lands."""
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: not a file")
    row = identify(source, name)
    target = place(weights_dir) / row.filename
    digest = copy_verified(source, target, row.sha256)
    check = "matches the published" if row.sha256 else "no published hash to check; SHA-256"
    return f"{source} -> {target} ({row.key}; {check} {digest})"

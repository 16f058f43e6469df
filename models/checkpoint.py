"""Checkpoints: original CP-VTON state dicts (plain or ``module.``-prefixed) and our bundle (GMM + TOM + config).

Our bundle is a plain dict saved with ``torch.save`` (readable with ``weights_only=True``)::

    {"format": "vton-bundle", "format_version": 1, "config": {"variant", "gmm_width", "tom_width"},
     "gmm": state_dict | None, "tom": state_dict | None, "step": int, "versions": {lib: version},
     "train": {...} | None, "optimizer": state_dict | None, "elapsed": float}

``train``/``optimizer``/``elapsed`` are filled by the training loop for ``--resume``.
"""
from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from vton.models.config import GMM_CLOTH_CHANNELS, PAPER_WIDTH, TOM_INPUT_CHANNELS, ModelConfig
from vton.models.gmm import GMM
from vton.models.tom import TOM
from vton.pipelines.io import atomic_write_bytes
from vton import library_versions

BUNDLE_FORMAT = "vton-bundle"
BUNDLE_VERSION = 1
MODULES = ("gmm", "tom")
FINAL_NAMES = {"gmm": "gmm_final.pth", "tom": "tom_final.pth"}
# The first-layer weight that tells each network apart, and its input-channel count per variant.
FIRST_KEYS = {"gmm": "extractionA.model.0.weight", "tom": "model.model.0.weight"}
VARIANT_KEYS = {"gmm": ("extractionB.model.0.weight", GMM_CLOTH_CHANNELS), "tom": ("model.model.0.weight", TOM_INPUT_CHANNELS)}
SHOW_MISMATCHES = 8


class CheckpointError(ValueError):
    """A file that is not a usable GMM/TOM checkpoint, with the reason (first mismatching keys and shapes)."""


@dataclass
class ModuleInfo:
    """What one network inside a checkpoint file is."""

    path: str
    module: str
    variant: str
    width: int
    parameters: int
    strict: bool
    source: str  # "state_dict" (original format) or "bundle"
    step: int | None = None
    mismatches: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_checkpoint(path: str | os.PathLike) -> Any:
    """torch.load with weights_only=True, turning any failure into a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or holding objects weights_only refuses
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc


def is_bundle(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == BUNDLE_FORMAT


def normalize_state(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Drop a DataParallel ``module.`` prefix; state dicts saved before PyTorch 0.4.1 lack BN's num_batches_tracked."""
    out = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    for key in [k for k in out if k.endswith(".running_mean")]:
        out.setdefault(key[: -len("running_mean")] + "num_batches_tracked", torch.tensor(0, dtype=torch.long))
    return out


def identify(state: Mapping[str, Any], path: str | os.PathLike = "") -> tuple[str, str, int]:
    """(module, variant, width) of an original-format state dict (prefix stripped), read from its first-layer shapes."""
    for module, first in FIRST_KEYS.items():
        if first in state:
            key, channels = VARIANT_KEYS[module]
            in_channels = state[key].shape[1] if key in state and state[key].dim() == 4 else None
            variants = [v for v, c in channels.items() if c == in_channels]
            if not variants:
                raise CheckpointError(
                    f"{path}: looks like a {module.upper()} but {key} has shape "
                    f"{list(state[key].shape) if key in state else 'missing'}; expected input channels "
                    + " or ".join(f"{c} ({v})" for v, c in channels.items()))
            return module, variants[0], int(state[first].shape[0])
    keys = ", ".join(list(state)[:SHOW_MISMATCHES]) or "(empty)"
    raise CheckpointError(f"{path}: not a GMM or TOM state dict (no {' or '.join(FIRST_KEYS.values())}); first keys: {keys}")


def build(module: str, variant: str, width: int = PAPER_WIDTH) -> nn.Module:
    return {"gmm": GMM, "tom": TOM}[module](variant=variant, width=width)


def state_mismatches(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between a state dict and the network's own: missing, unexpected, wrong shape."""
    own = model.state_dict()
    lines = [f"missing {k} {list(v.shape)}" for k, v in own.items() if k not in state]
    lines += [f"unexpected {k} {list(v.shape)}" for k, v in state.items() if k not in own]
    lines += [f"shape {k}: file {list(v.shape)} != network {list(own[k].shape)}"
              for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    return lines


def mismatch_error(path: str | os.PathLike, module: str, variant: str, width: int, lines: list[str]) -> CheckpointError:
    shown = "\n  ".join(lines[:SHOW_MISMATCHES])
    more = f"\n  ... and {len(lines) - SHOW_MISMATCHES} more" if len(lines) > SHOW_MISMATCHES else ""
    return CheckpointError(f"{path}: {module.upper()} ({variant}, width {width}) does not load strictly, "
                           f"{len(lines)} mismatching keys:\n  {shown}{more}")


def file_states(path: str | os.PathLike) -> tuple[dict[str, tuple[dict[str, torch.Tensor], str, int]], Any]:
    """{module: (state, variant, width)} for every network in a file, plus the raw object read."""
    obj = read_checkpoint(path)
    if is_bundle(obj):
        try:
            config = ModelConfig.from_dict(obj["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: {BUNDLE_FORMAT} with a bad config ({exc})") from exc
        widths = {"gmm": config.gmm_width, "tom": config.tom_width}
        states = {m: (normalize_state(obj[m]), config.variant, widths[m]) for m in MODULES if obj.get(m) is not None}
        if not states:
            raise CheckpointError(f"{path}: {BUNDLE_FORMAT} holds neither a GMM nor a TOM")
        return states, obj
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: neither a state dict of tensors nor a {BUNDLE_FORMAT} file")
    state = normalize_state(obj)
    module, variant, width = identify(state, path)
    return {module: (state, variant, width)}, obj


def inspect_checkpoint(path: str | os.PathLike) -> list[ModuleInfo]:
    """One entry per network in the file (a bundle gives one per module it holds); never raises for shape mismatches."""
    states, obj = file_states(path)
    source, step = ("bundle", int(obj.get("step", 0))) if is_bundle(obj) else ("state_dict", None)
    infos = []
    for module, (state, variant, width) in states.items():
        with torch.device("meta"):  # only the shapes are compared: no weights allocated or initialised
            model = build(module, variant, width)
        lines = state_mismatches(model, state)
        params = sum(int(v.numel()) for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        infos.append(ModuleInfo(str(path), module, variant, width, params, not lines, source, step, lines))
    return infos


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike = "") -> nn.Module:
    """load_state_dict(strict=True) after a shape check that reports the first mismatching keys."""
    state = normalize_state(state)
    lines = state_mismatches(model, state)
    if lines:
        raise mismatch_error(path, type(model).__name__.lower(), getattr(model, "variant", "?"), getattr(model, "width", 0), lines)
    model.load_state_dict(state, strict=True)
    return model


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """A folder stands for the gmm_final.pth / tom_final.pth it holds."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = [p / n for n in FINAL_NAMES.values() if (p / n).is_file()]
            if not found:
                raise CheckpointError(f"{p}: folder holds neither {' nor '.join(FINAL_NAMES.values())}")
            files += found
        else:
            files.append(p)
    return files


def load_models(paths: Iterable[str | os.PathLike], device: str | torch.device = "cpu"
                ) -> tuple[GMM | None, TOM | None, ModelConfig]:
    """Build and strictly load the GMM and/or TOM from our bundle, a folder of *_final.pth, or files told apart by keys.

    Networks come back on ``device`` in eval mode. GMM and TOM must be the same variant.
    """
    found: dict[str, tuple[dict[str, torch.Tensor], str, int, Path]] = {}
    for path in expand_paths(paths):
        for module, (state, variant, width) in file_states(path)[0].items():
            if module in found:
                raise CheckpointError(f"two {module.upper()} checkpoints given: {found[module][3]} and {path}")
            found[module] = (state, variant, width, path)
    if not found:
        raise CheckpointError("no checkpoint given")
    variants = {v[1] for v in found.values()}
    if len(variants) > 1:
        raise CheckpointError("GMM and TOM are different variants: " + ", ".join(f"{m} {v[1]} ({v[3]})" for m, v in found.items()))
    models: dict[str, nn.Module] = {}
    for module, (state, variant, width, path) in found.items():
        models[module] = load_state(build(module, variant, width), state, path).to(device).eval()
    config = ModelConfig(variants.pop(), *(found[m][2] if m in found else PAPER_WIDTH for m in MODULES))
    return models.get("gmm"), models.get("tom"), config  # type: ignore[return-value]


def save_bundle(path: str | os.PathLike, config: ModelConfig, *, gmm: nn.Module | None = None, tom: nn.Module | None = None,
                step: int = 0, train: dict[str, Any] | None = None, optimizer: dict[str, Any] | None = None,
                elapsed: float = 0.0) -> Path:
    """Write our bundle atomically (temp file + rename); tensors are saved from CPU so the file is device-free."""
    def cpu_state(model: nn.Module | None) -> dict[str, torch.Tensor] | None:
        return None if model is None else {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    bundle = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "config": config.to_dict(),
              "gmm": cpu_state(gmm), "tom": cpu_state(tom), "step": int(step), "versions": library_versions("torch", "torchvision", "numpy"),
              "train": train, "optimizer": optimizer, "elapsed": float(elapsed)}
    buf = io.BytesIO()
    torch.save(bundle, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def format_table(infos: list[ModuleInfo]) -> str:
    """A plain-text table of inspect results, then the first mismatches of every entry that does not load strictly."""
    header = ["file", "module", "variant", "width", "parameters", "strict", "source", "step"]
    rows = [[Path(i.path).name, i.module, i.variant, str(i.width), f"{i.parameters:,}", "yes" if i.strict else "no",
             i.source, "" if i.step is None else str(i.step)] for i in infos]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    for info in infos:
        if not info.strict:
            lines.append(str(mismatch_error(info.path, info.module, info.variant, info.width, info.mismatches)))
    return "\n".join(lines)

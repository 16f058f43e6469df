"""Checkpoints: original CP-VTON state dicts (plain or ``module.``-prefixed) and our bundle (GMM + TOM + config).

Our bundle is a plain dict saved with ``torch.save`` (readable with ``weights_only=True``)::

    {"format": "vton-bundle", "format_version": 1, "config": {"variant", "gmm_width", "tom_width"},
     "gmm": state_dict | None, "tom": state_dict | None, "step": int, "versions": {lib: version},
     "train": {...} | None, "optimizer": state_dict | None, "elapsed": float}

``train``/``optimizer``/``elapsed`` are filled by the training loop for ``--resume``.

Every file is checked before use (types of every field, keys, shapes and dtypes against the network built on the
meta device, finite values): a malformed file gives one CheckpointError line naming the file and what is wrong,
never a TypeError deep inside, nor a network allocated at the size a bad config asks for.
"""
from __future__ import annotations

import io
import os
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vton.core.io import atomic_write_bytes
from vton.core.versions import library_versions
from vton.models.config import GMM_CLOTH_CHANNELS, PAPER_WIDTH, TOM_INPUT_CHANNELS, ModelConfig
from vton.models.gmm import GMM
from vton.models.tom import TOM

BUNDLE_FORMAT = "vton-bundle"
BUNDLE_VERSION = 1
MODULES = ("gmm", "tom")
FINAL_NAMES = {"gmm": "gmm_final.pth", "tom": "tom_final.pth"}
# The first-layer weight that tells each network apart, and its input-channel count per variant.
FIRST_KEYS = {"gmm": "extractionA.model.0.weight", "tom": "model.model.0.weight"}
VARIANT_KEYS = {
    "gmm": ("extractionB.model.0.weight", GMM_CLOTH_CHANNELS),
    "tom": ("model.model.0.weight", TOM_INPUT_CHANNELS),
}
SHOW_MISMATCHES = 8


class CheckpointError(ValueError):
    """A file that is not a usable GMM/TOM checkpoint: one line naming the file and the reason."""


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
    nonfinite_keys: list[str] = field(default_factory=list)  # tensors holding NaN or an infinity

    @property
    def usable(self) -> bool:
        return self.strict and not self.nonfinite_keys

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "nonfinite": len(self.nonfinite_keys)}


@dataclass(frozen=True)
class Bundle:
    """Our bundle with every field checked (see the module docstring); ``states`` holds only the modules present."""

    config: ModelConfig
    states: dict[str, dict[str, torch.Tensor]]
    step: int
    train: dict[str, Any] | None
    optimizer: dict[str, Any] | None
    elapsed: float


def read_checkpoint(path: str | os.PathLike) -> Any:
    """torch.load with weights_only=True, turning any failure into a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or holding objects weights_only refuses
        first = str(exc).strip().splitlines()[:1] or [""]  # torch's weights_only refusal runs to ten lines
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {first[0]})") from exc


def is_bundle(obj: Any) -> bool:
    return isinstance(obj, Mapping) and obj.get("format") == BUNDLE_FORMAT


def show(value: Any) -> str:
    """A short one-line rendering of a value read from a file, for messages."""
    if isinstance(value, torch.Tensor):
        kind = "meta" if value.is_meta else "" if value.layout == torch.strided else str(value.layout).split(".")[-1]
        return f"a {kind + ' ' if kind else ''}tensor of shape {list(value.shape)}"
    return f"{' '.join(reprlib.repr(value).split())} ({type(value).__name__})"


def check_tensors(tensors: Any, path: str | os.PathLike, what: str) -> Mapping[str, torch.Tensor]:
    """``tensors`` if it maps names to dense tensors holding data (weights_only also admits sparse and meta ones)."""
    if not isinstance(tensors, Mapping):
        raise CheckpointError(f"{path}: {what} is {show(tensors)}, not a mapping of names to tensors")
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: {what} has the key {show(key)}, not a name")
        if not isinstance(value, torch.Tensor) or value.layout != torch.strided or value.is_meta:
            raise CheckpointError(f"{path}: {what} entry {key} is {show(value)}, not a dense tensor")
    return tensors


_REQUIRED = object()
NUMBER_OR_TEXT = (str, int, float, bool, type(None))
KIND_NAMES = {int: "an integer", float: "a number", Mapping: "a mapping", type(None): "None"}


def bundle_field(obj: Mapping[str, Any], key: str, kinds: tuple[type, ...], path: str | os.PathLike,
                 default: Any = _REQUIRED) -> Any:
    """``obj[key]`` if it is one of ``kinds`` (a bool only where bool is named); ``default`` when absent."""
    if key not in obj:
        if default is _REQUIRED:
            raise CheckpointError(f"{path}: {BUNDLE_FORMAT} lacks its {key!r} entry")
        return default
    value = obj[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(KIND_NAMES[k] for k in kinds)
        raise CheckpointError(f"{path}: {BUNDLE_FORMAT} entry {key!r} is {show(value)}, not {names}")
    return value


def parse_bundle(obj: Mapping[str, Any], path: str | os.PathLike) -> Bundle:
    """Check every entry of a bundle read from ``path``; states come back with any ``module.`` prefix dropped."""
    version = bundle_field(obj, "format_version", (int,), path)
    if version != BUNDLE_VERSION:
        raise CheckpointError(f"{path}: {BUNDLE_FORMAT} version {version}; this vton reads version {BUNDLE_VERSION}")
    raw_config = bundle_field(obj, "config", (Mapping,), path)
    try:
        config = ModelConfig.from_dict(raw_config)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {BUNDLE_FORMAT} with a bad config ({exc})") from exc
    states = {m: normalize_state(check_tensors(obj[m], path, f"{BUNDLE_FORMAT} {m.upper()} state"))
              for m in MODULES if obj.get(m) is not None}
    if not states:
        raise CheckpointError(f"{path}: {BUNDLE_FORMAT} holds neither a GMM nor a TOM")
    step = bundle_field(obj, "step", (int,), path)
    if step < 0:
        raise CheckpointError(f"{path}: {BUNDLE_FORMAT} step {step} is negative")
    train = bundle_field(obj, "train", (Mapping, type(None)), path, None)
    for key, value in (train or {}).items():
        if not isinstance(key, str) or not isinstance(value, NUMBER_OR_TEXT):
            raise CheckpointError(f"{path}: {BUNDLE_FORMAT} train record {key!r} is {show(value)}, "
                                  "not a number or text")
    optimizer = bundle_field(obj, "optimizer", (Mapping, type(None)), path, None)
    elapsed = bundle_field(obj, "elapsed", (int, float), path, 0.0)
    return Bundle(config, states, step, None if train is None else dict(train),
                  None if optimizer is None else dict(optimizer), float(elapsed))


def read_bundle(path: str | os.PathLike) -> Bundle:
    """Our bundle at ``path``, checked; a CheckpointError for anything else."""
    obj = read_checkpoint(path)
    if not is_bundle(obj):
        raise CheckpointError(f"{path}: not a {BUNDLE_FORMAT} file")
    return parse_bundle(obj, path)


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
            if state[first].dim() != 4:
                raise CheckpointError(f"{path}: looks like a {module.upper()} but {first} has shape "
                                      f"{list(state[first].shape)}, not that of a convolution weight")
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
    raise CheckpointError(
        f"{path}: not a GMM or TOM state dict (no {' or '.join(FIRST_KEYS.values())}); first keys: {keys}"
    )


def build(module: str, variant: str, width: int = PAPER_WIDTH) -> nn.Module:
    return {"gmm": GMM, "tom": TOM}[module](variant=variant, width=width)


def state_mismatches(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between a state dict and the network's own: missing, unexpected, wrong shape, and
    a dtype of another kind (integer or complex values where the network holds floats, or the reverse)."""
    own = model.state_dict()
    lines = [f"missing {k} {list(v.shape)}" for k, v in own.items() if k not in state]
    lines += [f"unexpected {k} {list(v.shape)}" for k, v in state.items() if k not in own]
    lines += [f"shape {k}: file {list(v.shape)} != network {list(own[k].shape)}"
              for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    lines += [f"dtype {k}: file {v.dtype} != network {own[k].dtype}" for k, v in state.items()
              if k in own and (v.is_floating_point() != own[k].is_floating_point() or v.is_complex())]
    return lines


def mismatch_error(path: str | os.PathLike, module: str, variant: str, width: int, lines: list[str]) -> CheckpointError:
    more = [f"... and {len(lines) - SHOW_MISMATCHES} more"] if len(lines) > SHOW_MISMATCHES else []
    return CheckpointError(f"{path}: {module.upper()} ({variant}, width {width}) does not load strictly, "
                           f"{len(lines)} mismatching keys: " + "; ".join(lines[:SHOW_MISMATCHES] + more))


def meta_mismatches(module: str, variant: str, width: int, state: Mapping[str, torch.Tensor]) -> list[str]:
    """state_mismatches against the network built on the meta device: shapes only, nothing allocated or initialised,
    so a file asking for a huge network costs nothing to refuse."""
    with torch.device("meta"):
        return state_mismatches(build(module, variant, width), state)


def nonfinite_keys(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating tensors holding NaN or an infinity: such weights make black or white images."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def nonfinite_message(path: str | os.PathLike, what: str, keys: list[str]) -> str:
    return f"{path}: {what} tensor {keys[0]} holds NaN or infinite values ({len(keys)} such tensors)"


def refuse_nonfinite(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, what: str, hint: str = "") -> None:
    bad = nonfinite_keys(tensors)
    if bad:
        raise CheckpointError(nonfinite_message(path, what, bad) + hint)


def file_states(path: str | os.PathLike) -> tuple[dict[str, tuple[dict[str, torch.Tensor], str, int]], Bundle | None]:
    """{module: (state, variant, width)} for every network in a file, plus the bundle when the file is one."""
    obj = read_checkpoint(path)
    if is_bundle(obj):
        bundle = parse_bundle(obj, path)
        widths = {"gmm": bundle.config.gmm_width, "tom": bundle.config.tom_width}
        return {m: (state, bundle.config.variant, widths[m]) for m, state in bundle.states.items()}, bundle
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: a {type(obj).__name__}, neither a state dict of tensors nor a {BUNDLE_FORMAT} file"
        )
    state = normalize_state(check_tensors(obj, path, "state dict"))
    module, variant, width = identify(state, path)
    return {module: (state, variant, width)}, None


def inspect_checkpoint(path: str | os.PathLike) -> list[ModuleInfo]:
    """One entry per network in the file (a bundle gives one per module it holds); shape mismatches and non-finite
    values are reported in the entries, not raised."""
    states, bundle = file_states(path)
    source, step = ("bundle", bundle.step) if bundle is not None else ("state_dict", None)
    infos = []
    for module, (state, variant, width) in states.items():
        lines = meta_mismatches(module, variant, width, state)
        params = sum(
            int(v.numel())
            for k, v in state.items()
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        )
        infos.append(ModuleInfo(str(path), module, variant, width, params, not lines, source, step, lines,
                                nonfinite_keys(state)))
    return infos


def check_loadable(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike) -> None:
    """A CheckpointError listing the first mismatching keys unless ``state`` loads strictly into ``model``."""
    lines = state_mismatches(model, state)
    if lines:
        raise mismatch_error(path, type(model).__name__.lower(), model.variant, model.width, lines)


def load_network(module: str, variant: str, width: int, state: Mapping[str, torch.Tensor],
                 path: str | os.PathLike) -> nn.Module:
    """The network with ``state`` loaded strictly; checked on the meta device first, so a mismatching file (say a
    config of width 100000 beside width-64 weights) is refused before any memory is allocated."""
    with torch.device("meta"):
        check_loadable(build(module, variant, width), state, path)
    model = build(module, variant, width)
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


def load_models(paths: Iterable[str | os.PathLike], device: str | torch.device = "cpu", allow_nonfinite: bool = False
                ) -> tuple[GMM | None, TOM | None, ModelConfig]:
    """Build and strictly load the GMM and/or TOM from our bundle, a folder of *_final.pth, or files told apart by keys.

    Networks come back on ``device`` in eval mode. GMM and TOM must be the same variant. Weights holding NaN or an
    infinity are refused (they would make black or white images with no error) unless ``allow_nonfinite``.
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
        raise CheckpointError(
            "GMM and TOM are different variants: " + ", ".join(f"{m} {v[1]} ({v[3]})" for m, v in found.items())
        )
    models: dict[str, nn.Module] = {}
    for module, (state, variant, width, path) in found.items():
        if not allow_nonfinite:
            refuse_nonfinite(state, path, module.upper(), "; --allow-nonfinite loads it anyway")
        models[module] = load_network(module, variant, width, state, path).to(device).eval()
    config = ModelConfig(variants.pop(), *(found[m][2] if m in found else PAPER_WIDTH for m in MODULES))
    return models.get("gmm"), models.get("tom"), config  # type: ignore[return-value]


def save_bundle(
    path: str | os.PathLike,
    config: ModelConfig,
    *,
    gmm: nn.Module | None = None,
    tom: nn.Module | None = None,
    step: int = 0,
    train: dict[str, Any] | None = None,
    optimizer: dict[str, Any] | None = None,
    elapsed: float = 0.0,
) -> Path:
    """Write our bundle atomically (temp file + rename); tensors are saved from CPU so the file is device-free."""
    def cpu_state(model: nn.Module | None) -> dict[str, torch.Tensor] | None:
        return None if model is None else {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    bundle = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "config": config.to_dict(),
        "gmm": cpu_state(gmm),
        "tom": cpu_state(tom),
        "step": int(step),
        "versions": library_versions("torch", "torchvision", "numpy"),
        "train": train,
        "optimizer": optimizer,
        "elapsed": float(elapsed),
    }
    buf = io.BytesIO()
    torch.save(bundle, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def checkpoint_table(infos: list[ModuleInfo]) -> str:
    """A plain-text table of inspect results, then a line for every entry that does not load strictly (its first
    mismatches) or holds non-finite values (the first such tensor)."""
    header = ["file", "module", "variant", "width", "parameters", "strict", "nonfinite", "source", "step"]
    rows = [[Path(i.path).name, i.module, i.variant, str(i.width), f"{i.parameters:,}", "yes" if i.strict else "no",
             str(len(i.nonfinite_keys)), i.source, "" if i.step is None else str(i.step)] for i in infos]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    for info in infos:
        if not info.strict:
            lines.append(str(mismatch_error(info.path, info.module, info.variant, info.width, info.mismatches)))
        if info.nonfinite_keys:
            lines.append(nonfinite_message(info.path, info.module.upper(), info.nonfinite_keys))
    return "\n".join(lines)

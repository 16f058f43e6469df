"""Inference fast path: reduced precision where the hardware computes it natively, fixed shapes compiled, batched.

Two uses. ``prepare_for_inference`` wraps one network for the forward benchmark (bench/models.py). ``FastSettings``
and ``fast_networks`` are `vton infer --fast`: copies of the exact networks with the GMM's batch invariance off
(a pair's bits then depend on its fixed batch, which resumes keep), autocast to bf16 where the CPU has native bf16
(AVX512-BF16 or AMX) or on CUDA, channels_last on CUDA only, and torch.compile (inductor) on the one padded batch
shape, CUDA graphs on CUDA; its PNG files are written at zlib level 1 (the same pixels, encoded ~2x faster); with
``decode="device"`` its JPEG inputs are decoded batched on the device (torchvision's decode_jpeg: nvjpeg on CUDA).
Measured one change at a time on a 2-core AVX512-BF16 CPU (bench/models.py, README "Benchmarks"): bf16 autocast
about 2x, compile on top about 1.5x more after 25-50 s of compilation, channels_last no gain there. Its
outputs are not the exact path's bytes: `vton infer --fast` measures and records the difference
(`vton.models.deviation`).
"""
from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vton.core.devices import autocast_dtype
from vton.models.options import DECODES

BATCHED_DECODE_TORCHVISION = (0, 19)  # decode_jpeg takes a list of images (one nvjpeg call) from torchvision 0.19
# /proc/cpuinfo flags of the CPUs whose oneDNN convolutions run bf16 natively (otherwise bf16 is emulated and slower).
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of a /proc/cpuinfo text (x86 ``flags``, ARM ``Features``); empty when it names none."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def native_bf16(cpuinfo_path: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (no /proc/cpuinfo, as on macOS: assume not)."""
    try:
        text = Path(cpuinfo_path).read_text()
    except OSError:
        return False
    return bool(cpu_flags(text) & NATIVE_BF16_FLAGS)


@dataclass(frozen=True)
class FastSettings:
    """What the fast path does; every field changes the images, so all of them go into infer.json."""

    precision: str  # autocast dtype name (core.devices.PRECISIONS); fp32 = no autocast
    channels_last: bool
    compile: str | None  # torch.compile mode (None: eager); "reduce-overhead" replays CUDA graphs
    batch_size: int  # every batch is padded to it: one shape, one compilation, a pair's bits fixed by its batch
    png_compress_level: int = 1  # zlib level of the PNG files: 1 encodes ~2x faster than PIL's 6, same pixels
    decode: str = "host"  # JPEG inputs decoded by PIL in the loader ("host") or by decode_jpeg on the device

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fast_settings(device: torch.device, batch_size: int, precision: str = "fp32", compile: bool = True,
                  decode: str = "host", cpuinfo_path: str | Path = "/proc/cpuinfo") -> FastSettings:
    """The fast path's settings on ``device``: ``precision`` when reduced, else bf16 on CUDA and on CPUs with native
    bf16 (fp32 elsewhere, where emulated bf16 is slower); CUDA graphs on CUDA, inductor on the CPU; JPEGs decoded
    where ``decode`` says (on the CPU, decode_jpeg gives PIL's pixels)."""
    autocast_dtype(precision)
    if decode not in DECODES:
        raise ValueError(f"decode must be one of {', '.join(DECODES)}, not {decode!r}")
    if decode == "device":
        import torchvision

        if tuple(int(p) for p in re.findall(r"\d+", torchvision.__version__)[:2]) < BATCHED_DECODE_TORCHVISION:
            raise ValueError(f"--decode device needs torchvision {'.'.join(map(str, BATCHED_DECODE_TORCHVISION))} "
                             f"or newer (batched decode_jpeg); this is {torchvision.__version__}")
    cuda = device.type == "cuda"
    if precision == "fp32":
        precision = "bf16" if cuda or native_bf16(cpuinfo_path) else "fp32"
    mode = ("reduce-overhead" if cuda else "default") if compile else None
    return FastSettings(precision=precision, channels_last=cuda, compile=mode, batch_size=batch_size, decode=decode)


def fast_networks(gmm: nn.Module, tom: nn.Module | None, settings: FastSettings
                  ) -> tuple[nn.Module, nn.Module | None]:
    """Copies of (gmm, tom) set up as ``settings`` says; the originals stay the exact path's. ``run_gmm`` and
    ``run_tom`` take them as they take the originals (a compiled module forwards ``variant`` to its network)."""
    def make(net: nn.Module) -> nn.Module:
        twin = copy.deepcopy(net).eval()
        if settings.channels_last:
            twin = twin.to(memory_format=torch.channels_last)
        if settings.compile is not None:
            twin = torch.compile(twin, mode=settings.compile, dynamic=False)
        return twin

    twin_gmm = copy.deepcopy(gmm)
    twin_gmm.set_batch_invariant(False)  # the regression head batched: per-sample loops cost launches and speed
    return make(twin_gmm), (make(tom) if tom is not None else None)


def pad_batch(raw: dict, size: int) -> dict:
    """A collated batch with its last item repeated up to ``size`` rows (tensors and name lists alike): the short
    last batch gets the compiled shape instead of a second compilation; callers keep the first rows only."""
    def pad(value: Any) -> Any:
        short = size - len(value)
        if short <= 0:
            return value
        if isinstance(value, torch.Tensor):
            return torch.cat([value, value[-1:].expand(short, *value.shape[1:])])
        return list(value) + [value[-1]] * short

    return {k: pad(v) for k, v in raw.items()}


# --- one network, for the forward benchmark ---------------------------------------------------------

def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


class FastModel(nn.Module):
    """Runs ``model`` under inference_mode (channels_last inputs, autocast when asked); outputs come back fp32."""

    def __init__(
        self, model: nn.Module, device: torch.device, precision: str, compiled: bool, channels_last: bool
    ) -> None:
        super().__init__()
        self.model, self.device, self.precision = model, device, precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.runner = torch.compile(model, dynamic=False) if compiled else model
        self.max_abs_deviation: float | None = None

    def forward(self, *inputs: torch.Tensor) -> Any:
        dtype = autocast_dtype(self.precision)
        inputs = tuple(x.to(self.device).contiguous(memory_format=self.memory_format) for x in inputs)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            out = self.runner(*inputs)
        outs = tuple(o.float() for o in _as_tuple(out))
        return outs if isinstance(out, tuple) else outs[0]


def max_abs_deviation(reference: nn.Module, fast: nn.Module, inputs: tuple[torch.Tensor, ...]) -> float:
    """Largest |fast - eager fp32| over all outputs for the given inputs."""
    with torch.inference_mode():
        ref = _as_tuple(reference(*inputs))
        got = _as_tuple(fast(*inputs))
    return max(float((a.float() - b.float().to(a.device)).abs().max()) for a, b in zip(ref, got))


def prepare_for_inference(model: nn.Module, device: str | torch.device = "cpu", fast: bool = True,
                          precision: str = "fp32", compile: bool = False, channels_last: bool | None = None,
                          example: tuple[torch.Tensor, ...] | None = None) -> nn.Module:
    """The network ready for inference on ``device``; ``fast=False`` gives plain eager fp32 (the reference).

    ``channels_last`` defaults to on for CUDA only. With ``example`` inputs the returned FastModel's
    ``max_abs_deviation`` holds the deviation from eager fp32.
    """
    autocast_dtype(precision)  # refuses an unknown name before any work
    device = torch.device(device)
    eager = model.to(device).eval()
    if not fast:
        return eager
    channels_last = device.type == "cuda" if channels_last is None else channels_last
    twin = copy.deepcopy(eager).to(memory_format=torch.channels_last) if channels_last else eager
    fast_model = FastModel(twin, device, precision, compile, channels_last)
    if example is not None:
        example = tuple(x.to(device) for x in example)
        fast_model.max_abs_deviation = max_abs_deviation(eager, fast_model, example)
    return fast_model

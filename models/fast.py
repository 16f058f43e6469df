"""Inference fast path: eval + inference_mode, channels_last on CUDA, optionally reduced precision and torch.compile.

``prepare_for_inference`` returns a wrapper with the same call signature as the network; given example inputs it
also measures the largest absolute deviation of every output from eager fp32. Measured on a 2-core CPU
(bench/models.py): channels_last and bf16 autocast did not pay off there, torch.compile made the TOM about 2x faster
(the GMM not) after ~50 s of compilation per input shape.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from vton.core.devices import autocast_dtype


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

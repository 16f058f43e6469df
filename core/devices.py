"""The device rule every command's ``--device`` follows."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import torch

# Inference precisions: fp32 runs without autocast; the others autocast to that float type (CUDA only in `vton infer`).
PRECISIONS: Final = ("fp32", "bf16", "fp16")


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (None: fp32, autocast off); ValueError for a name not in PRECISIONS."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def resolve_device(device: str | None = "auto") -> torch.device:
    """``auto`` (or None) is CUDA when a GPU is visible, else the CPU; anything else is taken as torch spells it.

    torch is imported here, not at module level: modules that only need this rule (keypoints, prepare) must not pay
    torch's import (about 700 MB of RSS and a second of start-up) in every prepare worker.
    """
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:  # a misspelt --device is bad input: one line, not a traceback
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc


@contextmanager
def ieee_fp32() -> Iterator[None]:
    """Full-precision float32 convolutions and matrix products inside the block, the previous settings restored after.

    On Ampere and newer GPUs cuDNN convolutions default to TF32 (10 mantissa bits), so a score would depend on the GPU
    generation and differ from the CPU's by about 1e-3; with TF32 off and cuDNN's deterministic algorithms, a metric
    means the same on every device. The CPU ignores these settings.
    """
    import torch

    cudnn = torch.backends.cudnn
    tf32, deterministic, matmul = cudnn.allow_tf32, cudnn.deterministic, torch.get_float32_matmul_precision()
    cudnn.allow_tf32, cudnn.deterministic = False, True
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        cudnn.allow_tf32, cudnn.deterministic = tf32, deterministic
        torch.set_float32_matmul_precision(matmul)

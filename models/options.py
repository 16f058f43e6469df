"""The options of training and inference, apart from the torch code that uses them, so that the command line reads
their defaults (``vton train --help``, ``vton infer --help``) without importing torch."""
from __future__ import annotations

from dataclasses import dataclass

DECODES = ("host", "device")  # where `vton infer --fast` decodes JPEG inputs


@dataclass
class TrainOptions:
    """Defaults are the paper's: Adam 1e-4 (0.5, 0.999), batch 4, 200k steps, loss weights 1 (L_gic 40 as CP-VTON+)."""

    steps: int = 200_000
    batch_size: int = 4
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    save_every: int = 5000
    log_every: int = 10
    seed: int = 0
    workers: int = 2
    device: str = "cpu"
    lambda_l1: float = 1.0
    lambda_vgg: float = 1.0
    lambda_mask: float = 1.0
    lambda_gic: float = 40.0
    vgg_weights: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.save_every < 0 or self.workers < 0 or self.lr <= 0:
            raise ValueError("save-every and workers must be >= 0 and lr > 0")


@dataclass(frozen=True)
class InferOptions:
    """How to run; everything that changes the pixels is recorded in ``infer.json``."""

    split: str = "test"
    pairs: str = "unpaired"
    batch_size: int = 8
    device: str = "auto"
    precision: str = "fp32"  # one of core.devices.PRECISIONS (reduced ones: CUDA only, checked against fp32)
    jpeg_quality: int | None = None  # None: lossless PNG; 75 reproduces the original test.py files
    extras: bool = False  # also write the rendered person and the composition mask
    io_workers: int = 0  # decoding / encoding workers each; 0: one per core (at most 16) on CUDA, 1 on the CPU
    workers: int = 1  # Dask processes (local scheduler); 1 runs here
    scheduler: str | None = None  # address of an existing Dask cluster
    progress: bool = True
    allow_nonfinite: bool = False  # load weights holding NaN/inf (refused by default: black or white images)
    fast: bool = False  # the fast path (models/fast.py): not the exact path's bytes; its deviation goes to infer.json
    compile: bool = True  # with fast: torch.compile the networks (~50 s once on a 2-core CPU, then ~1.5x faster)
    decode: str = "host"  # with fast: where JPEG inputs are decoded, "host" (PIL, loader processes) or "device"

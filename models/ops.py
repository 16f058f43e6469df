"""Small tensor operations whose results must not depend on how pairs are batched."""
from __future__ import annotations

import torch


def per_sample_matmul(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``x @ matrix`` for B x K rows, one row at a time.

    BLAS picks its kernel (and so its summation order) by the number of rows, so a pair's theta and grid would change
    in the last bits with the batch it happens to be in, and flip a few saved pixels. One GEMV per row keeps every
    pair's output independent of batching, which resumed runs and the batch-4 reference loop rely on; the matrices
    here are tiny, so the loop costs nothing.
    """
    return torch.cat([row @ matrix for row in x.split(1)], 0)

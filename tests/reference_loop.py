"""The straightforward inference loop of the original test.py, written independently of `vton.models.infer`.

The oracle of the inference tests and the baseline of `bench/infer.py`: a DataLoader with batch 4, eager fp32 under
``no_grad``, GMM then TOM per batch, outputs converted as the original ``save_images`` did.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf

from vton.models.checkpoint import load_models
from vton.pipelines.dataset import TryOnDataset


def original_save_images(tensors: torch.Tensor) -> list[np.ndarray]:
    """visualization.save_images of the reference: (x + 1) * 0.5 * 255, clamp, astype uint8, CHW -> HWC."""
    out = []
    for t in tensors:
        array = ((t.clone() + 1) * 0.5 * 255).cpu().clamp(0, 255).numpy().astype("uint8")
        out.append(array.squeeze(0) if array.shape[0] == 1 else array.swapaxes(0, 1).swapaxes(1, 2))
    return out


def reference_batches(data: Path, checkpoints: list[Path], pairs: str, device: torch.device = torch.device("cpu"),
                      workers: int = 0, split: str = "test") -> Iterator[tuple[list[str], dict[str, list[np.ndarray]]]]:
    """Per batch: the person stems and the uint8 images of warp-cloth/, warp-mask/ and try-on/."""
    gmm, tom, config = load_models(checkpoints, device)
    gmm.set_batch_invariant()  # as `vton infer`: the files are compared byte for byte at another batch size
    loader = torch.utils.data.DataLoader(TryOnDataset(data, split, pairs, config.variant), batch_size=4,
                                         shuffle=False, num_workers=workers, pin_memory=device.type == "cuda")
    with torch.no_grad():
        for inputs in loader:
            c, cm, agnostic = (inputs[k].to(device) for k in ("cloth", "cloth_mask", "agnostic"))
            grid, _ = gmm(agnostic, c)
            warped_cloth = nnf.grid_sample(c, grid, padding_mode="border", align_corners=True)
            warped_mask = nnf.grid_sample(cm, grid, padding_mode="zeros", align_corners=True)
            outputs = tom(torch.cat([agnostic, warped_cloth], 1))
            p_rendered, m_composite = torch.split(outputs, 3, 1)
            p_rendered, m_composite = torch.tanh(p_rendered), torch.sigmoid(m_composite)
            p_tryon = warped_cloth * m_composite + p_rendered * (1 - m_composite)
            images = {"warp-cloth": original_save_images(warped_cloth),
                      "warp-mask": original_save_images(warped_mask * 2 - 1), "try-on": original_save_images(p_tryon)}
            yield [Path(n).stem for n in inputs["im_name"]], images

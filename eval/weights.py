"""Locate pretrained weight files offline: a user folder first, then where torch.hub caches them (TORCH_HOME).

Nothing here downloads: every loader checks the file exists and fails with a message naming the file and the folders
it was looked for in, so an offline machine never hangs on a download.
"""
from __future__ import annotations

from pathlib import Path

import torch

from vton.core.io import sha256_file
from vton.core.weights import MissingWeightsError, hub_checkpoints_dir, locate, missing_message, require, search_dirs  # noqa: F401

# torchvision's AlexNet and SqueezeNet 1.1 (the LPIPS backbones); the LPIPS linear layers ship inside ``lpips``.
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
SQUEEZENET_FILE = "squeezenet1_1-b8a52dc0.pth"
# torchvision's VGG16 (the DISTS backbone, VGG16_Weights.IMAGENET1K_V1).
VGG16_FILE = "vgg16-397923af.pth"
# torchvision's ImageNet Inception v3 (HR-VITON's IS); torchvision <= 0.9 named the same weights
# inception_v3_google-1a9a5a14.pth (re-uploaded under this name from 0.10).
IMAGENET_INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"
# torch-fidelity's TF-2015 Inception port (URL_INCEPTION_V3 in torch_fidelity/feature_extractor_inceptionv3.py).
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
# clean-fid's TorchScript Inception (inception_url in cleanfid/downloads_helper.py, NVIDIA's stylegan2-ada-pytorch).
CLEANFID_INCEPTION_FILE = "inception-2015-12-05.pt"
# pytorch-fid's port of the same network (FID_WEIGHTS_URL in pytorch_fid/inception.py).
PYTORCH_FID_INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
LPIPS_LIN_RESOURCE = "weights/v0.1/{backbone}.pth"


def lpips_lin_path(backbone: str = "alex") -> Path:
    """The LPIPS v0.1 linear-layer weights of ``backbone`` ("alex", "squeeze") shipped inside the ``lpips`` package."""
    from importlib.resources import files

    try:
        path = Path(str(files("lpips") / LPIPS_LIN_RESOURCE.format(backbone=backbone)))
    except ModuleNotFoundError as exc:
        raise MissingWeightsError("the lpips package is not installed (it ships the LPIPS linear layers)") from exc
    if not path.is_file():
        raise MissingWeightsError(f"missing {path} (the lpips package ships it; reinstall lpips)")
    return path


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A plain tensor state dict, loaded safely (``weights_only``) onto the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def hash_matches_name(path: Path) -> bool:
    """torch.hub names files ``name-<sha256 prefix>.ext``: True for the official file, False for e.g. random weights."""
    return sha256_file(path).startswith(path.stem.rsplit("-", 1)[-1])


def file_record(path: Path) -> dict[str, object]:
    """What the summary records about a weight file: where it was and whether it is the official one."""
    return {"file": str(path), "official_hash": hash_matches_name(path)}

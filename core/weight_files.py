"""Every pretrained file vton can use: one row each, the only list of them (names, URLs, hashes, who loads it).

Each file keeps the name under which its library caches it, so a file fetched here is the file the library would
have fetched, and one the library fetched is found here. All of them live in ``$TORCH_HOME/hub/checkpoints``
(`vton.core.weights.hub_checkpoints_dir`), where ``torch.hub.load_state_dict_from_url`` caches torchvision's,
torch-fidelity's, pytorch-fid's and openpifpaf's files. clean-fid alone caches its Inception elsewhere (``/tmp``,
``cleanfid/features.py``); vton hands clean-fid the folder holding the file (``InceptionV3W(folder,
download=False)``), so the shared ``/tmp``, where anyone could plant a file of that name, is never read.

Expected hashes: torch.hub names files ``name-<first hex digits of the SHA-256>.ext`` and checks that prefix
(``check_hash``); that prefix is all its publishers give. clean-fid's TorchScript file has no hash in its name and
none is published: it is listed, fetched and found, but cannot be verified (its SHA-256 is shown instead).

Nothing here touches the network; `vton.core.download` fetches, `vton.workflows.weights` drives it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Final

TORCHVISION: Final = "https://download.pytorch.org/models/"
MIRROR_ENV: Final = "VTON_WEIGHTS_MIRROR"

# What loads a file, as the code names it: the metric table's networks (`vton.eval.registry.NETWORKS`), the
# protocols' networks (`vton.eval.protocols`, Row.networks), the VGG19 loss and the pose detector.
VGG_LOSS: Final = "vgg-loss"
OPENPIFPAF: Final = "openpifpaf"


@dataclass(frozen=True)
class WeightFile:
    """One pretrained file. ``sha256``: the expected digest, a prefix (torch.hub's, from the name) or in full; None
    where none is published. ``size_mb``: as its publisher states it (torchvision's ``_file_size``), else None."""

    key: str  # what `vton weights download KEY` takes (the file name works too)
    filename: str  # the name its library caches it under
    url: str
    sha256: str | None
    size_mb: float | None
    uses: tuple[str, ...]
    what: str

    def verdict(self, digest: str) -> bool | None:
        """Whether a file of SHA-256 ``digest`` is this one: True, False, or None when nothing is published."""
        return None if self.sha256 is None else digest.startswith(self.sha256)

    @property
    def download_command(self) -> str:
        return f"vton weights download {self.key}"


FILES: Final[tuple[WeightFile, ...]] = (
    WeightFile("alexnet", "alexnet-owt-7be5be79.pth", TORCHVISION + "alexnet-owt-7be5be79.pth", "7be5be79",
               233.087, ("lpips", "lpips-alex"),
               "torchvision AlexNet IMAGENET1K_V1: the LPIPS backbone (lpips ships the linear layers)"),
    WeightFile("vgg16", "vgg16-397923af.pth", TORCHVISION + "vgg16-397923af.pth", "397923af", 527.796, ("dists",),
               "torchvision VGG16 IMAGENET1K_V1: the DISTS backbone (torchmetrics ships alpha/beta)"),
    WeightFile("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth", TORCHVISION + "squeezenet1_1-b8a52dc0.pth",
               "b8a52dc0", 4.729, ("lpips-squeeze",), "torchvision SqueezeNet 1.1 IMAGENET1K_V1: the LPIPS-SqueezeNet "
               "backbone of CatVTON's and VtonEval's scripts"),
    WeightFile("inception-fidelity", "weights-inception-2015-12-05-6726825d.pth",
               "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth", "6726825d", None, ("inception", "fidelity"),
               "torch-fidelity's port of TensorFlow's 2015 Inception (URL_INCEPTION_V3): IS, FID, KID"),
    WeightFile("inception-cleanfid", "inception-2015-12-05.pt",
               "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
               None, None, ("cleanfid",),
               "clean-fid's TorchScript Inception (NVIDIA stylegan2-ada-pytorch metrics; no published hash)"),
    WeightFile("inception-pytorch-fid", "pt_inception-2015-12-05-6726825d.pth",
               "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth", "6726825d", None, ("pytorch-fid",),
               "pytorch-fid's port of TensorFlow's 2015 Inception (FID_WEIGHTS_URL)"),
    WeightFile("inception-imagenet", "inception_v3_google-0cc3c7bd.pth",
               TORCHVISION + "inception_v3_google-0cc3c7bd.pth", "0cc3c7bd", 103.903, ("imagenet",),
               "torchvision Inception v3 IMAGENET1K_V1: HR-VITON's IS (torchvision <= 0.9 had -1a9a5a14, "
               "other bytes)"),
    WeightFile("vgg19", "vgg19-dcbb9e9d.pth", TORCHVISION + "vgg19-dcbb9e9d.pth", "dcbb9e9d", 548.051, (VGG_LOSS,),
               "torchvision VGG19 IMAGENET1K_V1: CP-VTON's perceptual loss (vton train tom)"),
    WeightFile("openpifpaf", "shufflenetv2k16-210820-232500-cocokp-slurm726069-edge513-o10s-7189450a.pkl",
               "https://github.com/openpifpaf/torchhub/releases/download/v0.13/"
               "shufflenetv2k16-210820-232500-cocokp-slurm726069-edge513-o10s-7189450a.pkl", "7189450a", None,
               (OPENPIFPAF,), "openpifpaf 0.13's shufflenetv2k16 COCO keypoints (a pickled network: "
               "loaded only with --trust-checkpoint)"),
)
BY_KEY: Final = {f.key: f for f in FILES}
BY_FILENAME: Final = {f.filename: f for f in FILES}


def get(name: str) -> WeightFile:
    """The row named ``name`` (its key or its file name); a ValueError listing the keys otherwise."""
    found = BY_KEY.get(name) or BY_FILENAME.get(name)
    if found is None:
        raise ValueError(f"unknown weights file {name!r}; known: {', '.join(BY_KEY)}")
    return found


def using(network: str) -> WeightFile:
    """The file the network (or loss, or detector) named ``network`` loads."""
    found = [f for f in FILES if network in f.uses]
    if len(found) != 1:
        raise KeyError(f"{len(found)} weight files are used by {network!r}, not one")
    return found[0]

"""The networks the metric rows name (LPIPS, Inception), loaded offline from checked weight files.

A network whose file (or package) is missing skips the metrics that need it, with the reason; nothing downloads.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from vton.eval import metrics as M
from vton.eval import perceptual, weights
from vton.eval.registry import METRICS, NETWORKS
from vton.eval.settings import Settings, Work

CPU_INCEPTION_BATCH = 8  # measured: ~95 ms/image at batch 1-16, ~130 ms/image at 64 on a 2-core CPU


def _lpips(settings: Settings) -> tuple[torch.nn.Module, dict[str, Any]]:
    backbone = weights.require(weights.ALEXNET_FILE, settings.weights_dir)
    lin = weights.lpips_lin_path()
    net = perceptual.LPIPS.from_files("alex", backbone, lin)
    return net, {"backbone": weights.file_record(backbone), "lin": str(lin)}


def _inception(settings: Settings) -> tuple[torch.nn.Module, dict[str, Any]]:
    path = weights.require(weights.INCEPTION_FILE, settings.weights_dir)
    return M.inception_extractor(path), weights.file_record(path)


def _dists(settings: Settings) -> tuple[torch.nn.Module, dict[str, Any]]:
    path = weights.require(weights.VGG16_FILE, settings.weights_dir)
    return perceptual.dists_network(path), {"backbone": weights.file_record(path)}


LOADERS: dict[str, Callable[[Settings], tuple[torch.nn.Module, dict[str, Any]]]] = {
    "lpips": _lpips, "dists": _dists, "inception": _inception}  # one per name in NETWORKS, loaded in that order


def load_networks(work: Work, settings: Settings, device: torch.device) -> tuple[dict[str, torch.nn.Module],
                                                                                 dict[str, Any]]:
    """The networks the metrics left in ``work`` need, and what the summary records of their weight files; a
    missing file (or package) skips its metrics with the reason."""
    nets: dict[str, torch.nn.Module] = {}
    files: dict[str, Any] = {}
    for name in NETWORKS:
        if not work.needs(name):
            continue
        try:
            net, files[name] = LOADERS[name](settings)
            nets[name] = net.to(device)
        except (weights.MissingWeightsError, ModuleNotFoundError) as exc:
            work.skip_for_weights([s.name for s in METRICS if name in s.networks], exc)
    return nets, files


def inception_features(net: torch.nn.Module, images: torch.Tensor, device: torch.device) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
    """Pool3 features and logits of uint8 images; on the CPU in small batches (cache-resident activations, fastest
    there), on a GPU in one."""
    size = images.shape[0] if device.type == "cuda" else CPU_INCEPTION_BATCH
    parts = [net(chunk) for chunk in images.split(size)]
    pool, logits = (torch.cat(outs) for outs in zip(*parts))
    return pool, logits


# --- the networks of the field's protocols (`vton.eval.protocols`) ---------------------------------------------
def _lpips_of(backbone: perceptual.Backbone, file: str, eps: perceptual.Eps) -> Callable[[Settings], tuple]:
    def load(settings: Settings) -> tuple[torch.nn.Module, dict[str, Any]]:
        path = weights.require(file, settings.weights_dir)
        lin = weights.lpips_lin_path(backbone)
        return (perceptual.LPIPS.from_files(backbone, path, lin, eps),
                {"backbone": weights.file_record(path), "lin": str(lin), "eps": eps})
    return load


def _feature_model(cls_name: str) -> Callable[[Settings, torch.device], tuple]:
    def load(settings: Settings, device: torch.device) -> tuple[Any, dict[str, Any]]:
        from vton.eval import fid

        model = getattr(fid, cls_name).from_weights(settings.weights_dir, device=device)
        return model, weights.file_record(model.weights_file)
    return load


def _imagenet(settings: Settings) -> tuple[torch.nn.Module, dict[str, Any]]:
    path = weights.require(weights.IMAGENET_INCEPTION_FILE, settings.weights_dir)
    return perceptual.imagenet_inception(path), weights.file_record(path)


PROTOCOL_LOADERS: dict[str, Callable[..., tuple[Any, dict[str, Any]]]] = {
    "lpips-alex": _lpips_of("alex", weights.ALEXNET_FILE, "lpips"),
    "lpips-squeeze": _lpips_of("squeeze", weights.SQUEEZENET_FILE, "torchmetrics"),
    "fidelity": _inception,
    "imagenet": _imagenet,
}
FEATURE_LOADERS: dict[str, Callable[[Settings, torch.device], tuple[Any, dict[str, Any]]]] = {
    "cleanfid": _feature_model("CleanFidFeatures"),  # run on the device themselves, as their libraries do
    "pytorch-fid": _feature_model("PytorchFidFeatures"),
}


def networks_needed(protocols: Sequence[str], metrics: Sequence[str] | None = None) -> list[str]:
    """The networks a run of ``protocols`` loads: for the ``vton`` protocol those of its metric rows (``metrics``
    only, None: all), for the others those of their rows; in a stable order."""
    from vton.eval.protocols import DEFAULT, PROTOCOLS

    names = [n for s in METRICS if DEFAULT in protocols and (metrics is None or s.name in metrics) for n in s.networks]
    names += [n for p in protocols if p != DEFAULT for row in PROTOCOLS[p].rows for n in row.networks]
    return list(dict.fromkeys(names))


def load_protocol_networks(names: list[str], settings: Settings, device: torch.device
                           ) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """The networks the rows of protocols ``names`` need: (networks, why each missing one is missing, what the
    summary records of each weight file). A missing file skips only the rows that need it."""
    from vton.eval.protocols import PROTOCOLS

    needed = sorted({n for name in names for row in PROTOCOLS[name].rows for n in row.networks})
    nets: dict[str, Any] = {}
    why_not: dict[str, str] = {}
    files: dict[str, Any] = {}
    for name in needed:
        try:
            if name in FEATURE_LOADERS:
                nets[name], files[name] = FEATURE_LOADERS[name](settings, device)
            else:
                net, files[name] = PROTOCOL_LOADERS[name](settings)
                nets[name] = net.to(device)
        except (weights.MissingWeightsError, ModuleNotFoundError) as exc:
            why_not[name] = str(exc)
    return nets, why_not, files

"""The GMM's batch-invariance option: what `vton infer` relies on for byte-identical files at any batch size."""
from __future__ import annotations

import torch

from vton.models.gmm import GMM
from vton.models.infer import batch_invariant


def test_batch_invariant_gmm_gives_a_batch_of_4_the_bits_of_4_batches_of_1() -> None:
    """At the paper's width, where oneDNN's feature-extraction kernels happen not to depend on the batch (at width 8
    they do: the option covers the regression head, whose kernel choice changed saved pixels)."""
    torch.manual_seed(0)
    gmm = GMM("cpvton", batch_invariant=True).eval()
    agnostic, cloth = torch.randn(4, 22, 256, 192), torch.randn(4, 3, 256, 192)
    with torch.no_grad():
        grid, theta = gmm(agnostic, cloth)
        alone = [gmm(agnostic[i:i + 1], cloth[i:i + 1]) for i in range(4)]
    assert torch.equal(theta, torch.cat([t for _, t in alone]))
    assert torch.equal(grid, torch.cat([g for g, _ in alone]))


def test_the_option_is_off_by_default_and_inference_turns_it_on() -> None:
    gmm = GMM("cpvton", width=2)
    assert not gmm.batch_invariant
    assert batch_invariant((gmm, None, None))[0].batch_invariant
    assert not gmm.set_batch_invariant(False).batch_invariant

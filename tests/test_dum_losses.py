"""DUM losses against hand-computed values (docs/ORIGINAL.md 3.4)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from DUM.losses import contrast_depth, contrast_depth_loss, contrast_kernels, dum_loss, kl_to_target


def test_kernels_are_the_eight_neighbour_differences():
    k = contrast_kernels()
    assert k.shape == (8, 1, 3, 3)
    assert torch.all(k[:, 0, 1, 1] == -1)
    assert torch.all(k.sum(dim=(1, 2, 3)) == 0)
    # every neighbour position exactly once
    pos = (k[:, 0] == 1).float().sum(0)
    expected = torch.ones(3, 3)
    expected[1, 1] = 0
    assert torch.equal(pos, expected)


def test_contrast_of_a_3x3_map_by_hand():
    d = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
    c = contrast_depth(d)
    assert c.shape == (1, 8, 1, 1)  # no padding: 3x3 -> 1x1
    assert sorted(c.flatten().tolist()) == sorted([1 - 5, 2 - 5, 3 - 5, 4 - 5, 6 - 5, 7 - 5, 8 - 5, 9 - 5])
    assert contrast_depth(torch.zeros(2, 32, 32)).shape == (2, 8, 30, 30)


def test_cdl_by_hand():
    pred = torch.zeros(1, 3, 3)
    pred[0, 1, 1] = 2.0  # centre raised: every neighbour difference is -2
    target = torch.zeros(1, 3, 3)
    target[0, 0, 0] = 1.0  # only the top-left difference is +1
    # differences: pred all -2; target (1, 0, 0, ..., 0) -> squared errors 9 + 7*4 = 37 over 8 entries
    assert math.isclose(contrast_depth_loss(pred, target).item(), 37 / 8, rel_tol=1e-6)
    # a constant offset has no contrast
    assert contrast_depth_loss(target + 5.0, target).item() == 0.0


def test_kl_by_hand():
    mu = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]])       # [2,1,2]
    logvar = torch.tensor([[[0.0, math.log(2.0)]], [[0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0]], [[0.0, 3.0]]])
    # item 0: 0.5*(1 + 1 - 1 - 0) + 0.5*(2 + 0 - 1 - ln2) = 0.5 + 0.5*(1 - ln2)
    # item 1: 0 + 0.5*(1 + 9 - 1 - 0) = 4.5
    expected = ((0.5 + 0.5 * (1 - math.log(2.0))) + 4.5) / 2
    assert math.isclose(kl_to_target(mu, logvar, target).item(), expected, rel_tol=1e-6)
    assert kl_to_target(target, torch.zeros_like(target), target).item() == 0.0


def test_total_weights_real_and_generated_parts():
    g = torch.Generator().manual_seed(0)
    pred, mu, logvar, target = (torch.randn(8, 6, 6, generator=g) for _ in range(4))
    generated = torch.tensor([False] * 6 + [True] * 2)
    out = dum_loss(pred, mu, logvar, target, generated, gen_weight=0.1, kl_lambda=0.001)

    def part(sl):
        mse = F.mse_loss(pred[sl], target[sl])
        cdl = F.mse_loss(contrast_depth(pred[sl]), contrast_depth(target[sl]))
        kl = (0.5 * (logvar[sl].exp() + (mu[sl] - target[sl]) ** 2 - 1 - logvar[sl])).sum((1, 2)).mean()
        return mse, cdl, kl

    r, gpart = part(slice(0, 6)), part(slice(6, 8))
    expected = r[0] + r[1] + 0.001 * r[2] + 0.1 * (gpart[0] + gpart[1] + 0.001 * gpart[2])
    assert torch.allclose(out.total, expected, rtol=1e-6)
    assert torch.allclose(out.mse, r[0]) and torch.allclose(out.gen_kl, gpart[2], rtol=1e-6)
    # the split follows the mask, not the position: shuffling the batch changes nothing
    perm = torch.randperm(8, generator=g)
    shuffled = dum_loss(pred[perm], mu[perm], logvar[perm], target[perm], generated[perm], 0.1, 0.001)
    assert torch.allclose(shuffled.total, out.total, rtol=1e-6)


def test_baseline_without_logvar_and_all_real_batch():
    pred, target = torch.rand(4, 5, 5), torch.rand(4, 5, 5)
    out = dum_loss(pred, pred, None, target)
    assert out.kl.item() == 0.0 and out.gen_mse.item() == 0.0
    assert torch.allclose(out.total, F.mse_loss(pred, target) + contrast_depth_loss(pred, target))


def test_gradients_reach_mu_and_logvar():
    mu = torch.zeros(2, 4, 4, requires_grad=True)
    logvar = torch.zeros(2, 4, 4, requires_grad=True)
    eps = torch.randn(2, 4, 4)
    sample = mu + eps * torch.exp(0.5 * logvar)
    out = dum_loss(sample, mu, logvar, torch.rand(2, 4, 4), torch.tensor([False, True]))
    out.total.backward()
    assert mu.grad.abs().sum() > 0 and logvar.grad.abs().sum() > 0

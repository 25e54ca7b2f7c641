"""Depth losses of CDCN + DUM (docs/ORIGINAL.md 3.4): MSE + contrastive depth loss on the sampled map,
KL(N(mu, sigma^2) || N(D, 1)), and the real/generated weighting of the total.

Maps are ``[B, M, M]`` (M = 32 at 256 px). Losses are computed in float32 even under autocast: the
KL term exponentiates the log-variance and the CDL differences are small.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

# The 8 contrast kernels of CDCN's Contrast_depth_loss: -1 at the centre, +1 at one neighbour, in
# raster order of the neighbour (top-left, top, top-right, left, right, bottom-left, bottom, bottom-right).
_NEIGHBOURS = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)]


def contrast_kernels(device=None, dtype=torch.float32) -> torch.Tensor:
    """``[8, 1, 3, 3]`` fixed kernels (not learned)."""
    k = torch.zeros(8, 1, 3, 3, device=device, dtype=dtype)
    for i, (r, c) in enumerate(_NEIGHBOURS):
        k[i, 0, 1, 1] = -1.0
        k[i, 0, r, c] = 1.0
    return k


def contrast_depth(depth: torch.Tensor) -> torch.Tensor:
    """``[B, M, M]`` -> ``[B, 8, M-2, M-2]``: neighbour minus centre, no padding (as the original)."""
    x = depth.float().unsqueeze(1).expand(-1, 8, -1, -1)  # replicated to 8 channels, groups=8
    return F.conv2d(x, contrast_kernels(depth.device), groups=8)


def contrast_depth_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CDL: MSE between the contrast maps of prediction and target (mean over all elements)."""
    return F.mse_loss(contrast_depth(pred), contrast_depth(target))


def kl_to_target(mu: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(D, 1)) summed over the map, averaged over the batch (DUM, docs/ORIGINAL.md 3.4)."""
    mu, logvar, target = mu.float(), logvar.float(), target.float()
    per_pixel = 0.5 * (logvar.exp() + (mu - target) ** 2 - 1.0 - logvar)
    return per_pixel.flatten(1).sum(1).mean()


class DepthLoss(NamedTuple):
    total: torch.Tensor   # the value to back-propagate
    mse: torch.Tensor     # real part
    cdl: torch.Tensor
    kl: torch.Tensor
    gen_mse: torch.Tensor  # generated part (0 when the batch holds none)
    gen_cdl: torch.Tensor
    gen_kl: torch.Tensor


def _part(pred, mu, logvar, target):
    mse = F.mse_loss(pred.float(), target.float())
    cdl = contrast_depth_loss(pred, target)
    kl = kl_to_target(mu, logvar, target) if logvar is not None else pred.new_zeros((), dtype=torch.float32)
    return mse, cdl, kl


def dum_loss(pred: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor | None, target: torch.Tensor,
             generated: torch.Tensor | None = None, gen_weight: float = 0.1, kl_lambda: float = 0.001) -> DepthLoss:
    """Total loss of one batch.

    ``pred`` is the reparameterised sample for CDCN_u (the map itself for the CDCN/CDCN++ baselines,
    with ``logvar=None`` so KL is 0). Real and generated items are told apart by the ``generated``
    mask rather than by position, so the split does not depend on batch order; each part is averaged
    over its own items, as the original's ``[:48]``/``[48:]`` slices did:
    ``(MSE + CDL + kl_lambda*KL)_real + gen_weight * (MSE + CDL + kl_lambda*KL)_generated``.
    """
    if generated is None:
        generated = torch.zeros(pred.shape[0], dtype=torch.bool, device=pred.device)
    generated = generated.to(device=pred.device, dtype=torch.bool).view(-1)
    zero = pred.new_zeros((), dtype=torch.float32)
    parts = []
    for mask in (~generated, generated):
        if bool(mask.any()):
            parts.append(_part(pred[mask], mu[mask], None if logvar is None else logvar[mask], target[mask]))
        else:
            parts.append((zero, zero, zero))
    (mse, cdl, kl), (gmse, gcdl, gkl) = parts
    total = (mse + cdl + kl_lambda * kl) + gen_weight * (gmse + gcdl + kl_lambda * gkl)
    return DepthLoss(total, mse, cdl, kl, gmse, gcdl, gkl)

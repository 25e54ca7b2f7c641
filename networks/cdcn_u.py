"""CDCN with the Depth Uncertainty Module (DSDG's ``CDCN_u``, ``DSDG/DUM/models/CDCNs_u.py``).

DSDG (arXiv 2112.00568) sec. III-C: the CDCN trunk predicts a per-pixel Gaussian over the depth map,
mean ``mu`` and log-variance ``logvar`` from two plain 3x3 heads (no ReLU, no CDC), and the depth
losses are applied to one reparameterised sample. ORIGINAL_SPEC.md 3.2/3.9 give the layout; the
module names (``conv1``, ``Block1``, ``mu_head``...) and Sequential indices are the key format of the
released ``CDCN_U_P1.pkl`` and must not change.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from networks.cdc import Conv2d_cd
from networks.cdcn import cdcn_trunk_forward, init_cdcn_trunk
from utils.checkpoint import CheckpointError, load_checkpoint, load_state_dict_strict

__all__ = ["CDCN_u", "DUMOutput", "load_pretrained", "state_dict_from_checkpoint"]


class DUMOutput(NamedTuple):
    mu: torch.Tensor        # [B, M, M] depth mean; the test score uses only this
    logvar: torch.Tensor    # [B, M, M] depth log-variance
    sample: torch.Tensor    # [B, M, M] mu + eps * exp(logvar / 2): what the training losses see
    x_concat: torch.Tensor  # [B, 3*C, M, M]
    x_Block1: torch.Tensor  # [B, C, S/2, S/2]
    x_Block2: torch.Tensor  # [B, C, S/4, S/4]
    x_Block3: torch.Tensor  # [B, C, S/8, S/8]
    x_input: torch.Tensor   # [B, 3, S, S]


class CDCN_u(nn.Module):
    """``CDCN_u()`` is the published model: 3x256x256 input in ~[-1, 1], 32x32 maps, 2,245,592 params."""

    def __init__(self, basic_conv=Conv2d_cd, theta: float = 0.7, width: float = 1.0, image_size: int = 256,
                 memory_efficient: bool = True):
        super().__init__()
        # In training, run BN-ReLU-conv as fused nodes that keep one activation per layer instead of
        # two (networks/cdc.py, run_memory_efficient); outputs and gradients are unchanged.
        self.memory_efficient = memory_efficient
        c64 = init_cdcn_trunk(self, basic_conv, theta, width, image_size)
        self.mu_head = nn.Sequential(nn.Conv2d(c64, 1, kernel_size=3, stride=1, padding=1, bias=False))
        self.logvar_head = nn.Sequential(nn.Conv2d(c64, 1, kernel_size=3, stride=1, padding=1, bias=False))

    def forward(self, x: torch.Tensor) -> DUMOutput:
        h, x_concat, x_Block1, x_Block2, x_Block3 = cdcn_trunk_forward(self, x)
        mu = self.mu_head(h).squeeze(1)
        logvar = self.logvar_head(h).squeeze(1)
        # One draw of randn_like per forward, in train and eval mode alike, exactly as the original:
        # with the same seed the sample reproduces the reference. exp(logvar/2) == sqrt(exp(logvar))
        # without overflowing for large logvar.
        eps = torch.randn_like(mu)
        sample = mu + eps * torch.exp(0.5 * logvar)
        return DUMOutput(mu, logvar, sample, x_concat, x_Block1, x_Block2, x_Block3, x)


_STATE_KEYS = ("model", "state_dict", "model_state", "net")


def state_dict_from_checkpoint(obj: dict, source: str = "") -> dict:
    """The model state_dict inside a loaded file: a bare state_dict (the released ``CDCN_U_P1.pkl``)
    or a training checkpoint dict holding it under ``model`` / ``state_dict``."""
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for key in _STATE_KEYS:
        sd = obj.get(key)
        if isinstance(sd, dict) and sd and all(isinstance(v, torch.Tensor) for v in sd.values()):
            return sd
    raise CheckpointError(f"{source or 'checkpoint'}: holds no model state_dict (keys: {sorted(obj)[:8]}); "
                          f"expected a state_dict or a dict with one of {list(_STATE_KEYS)}")


def load_pretrained(model: nn.Module, path, map_location="cpu") -> nn.Module:
    """Strictly load our checkpoints or the released ``CDCN_U_P1.pkl`` (``module.`` keys) into ``model``."""
    obj = load_checkpoint(path, map_location=map_location,
                          hint="Pass a CDCN+DUM checkpoint written by DUM/train.py or the released CDCN_U_P1.pkl.")
    load_state_dict_strict(model, state_dict_from_checkpoint(obj, str(path)), source=str(path))
    return model

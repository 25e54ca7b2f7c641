"""The Depth Uncertainty Module's heads and output, shared by every depth network that carries it
(``CDCN_u``, ``depthnet_u``, ``ResNet18_u``), and the one loader of their weight files.

DSDG (arXiv 2112.00568) sec. III-C: a trunk's 64-channel features feed two plain 3x3 convolutions
(no bias, no ReLU), ``mu_head`` and ``logvar_head``; the losses see one reparameterised sample.
The heads' names are the key format of the original checkpoints.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from utils.checkpoint import CheckpointError, load_checkpoint, load_state_dict_strict

__all__ = ["DUMOutput", "add_dum_heads", "dum_output", "state_dict_from_checkpoint", "load_weights"]


class DUMOutput(NamedTuple):
    mu: torch.Tensor        # [B, M, M] depth mean; the test score uses only this
    logvar: torch.Tensor    # [B, M, M] depth log-variance
    sample: torch.Tensor    # [B, M, M] mu + eps * exp(logvar / 2): what the training losses see
    x_concat: torch.Tensor  # [B, C_cat, M, M] the three stage outputs resized to M and concatenated
    x_Block1: torch.Tensor  # first of the three stages (CDCN: Block1 at S/2; ResNet18_u: layer2 at S/2)
    x_Block2: torch.Tensor  # second (S/4)
    x_Block3: torch.Tensor  # third (S/8)
    x_input: torch.Tensor   # [B, 3, S, S]


def add_dum_heads(net: nn.Module, channels: int) -> None:
    """Create ``mu_head`` and ``logvar_head`` (3x3, ``channels`` -> 1, no bias) on ``net``, in this order."""
    net.mu_head = nn.Sequential(nn.Conv2d(channels, 1, kernel_size=3, stride=1, padding=1, bias=False))
    net.logvar_head = nn.Sequential(nn.Conv2d(channels, 1, kernel_size=3, stride=1, padding=1, bias=False))


def dum_output(net: nn.Module, h: torch.Tensor, x_concat, stage1, stage2, stage3, x) -> DUMOutput:
    """Heads on the features ``h`` [B, C, M, M] and the reparameterised sample."""
    mu = net.mu_head(h).squeeze(1)
    logvar = net.logvar_head(h).squeeze(1)
    # One draw of randn_like per forward, in train and eval mode alike, exactly as the original:
    # with the same seed the sample reproduces the reference. exp(logvar/2) == sqrt(exp(logvar))
    # without overflowing for large logvar.
    eps = torch.randn_like(mu)
    sample = mu + eps * torch.exp(0.5 * logvar)
    return DUMOutput(mu, logvar, sample, x_concat, stage1, stage2, stage3, x)


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


def load_weights(model: nn.Module, path, map_location="cpu", hint: str = "") -> nn.Module:
    """Strictly load a training checkpoint of DUM/train.py or an original state_dict (``module.`` keys)."""
    obj = load_checkpoint(path, map_location=map_location, hint=hint)
    load_state_dict_strict(model, state_dict_from_checkpoint(obj, str(path)), source=str(path))
    return model

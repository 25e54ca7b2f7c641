"""CDCN with the Depth Uncertainty Module (DSDG's ``CDCN_u``, ``DSDG/DUM/models/CDCNs_u.py``).

DSDG (arXiv 2112.00568) sec. III-C: the CDCN trunk predicts a per-pixel Gaussian over the depth map,
mean ``mu`` and log-variance ``logvar`` from two plain 3x3 heads (no ReLU, no CDC, ``networks/dum.py``),
and the depth losses are applied to one reparameterised sample. docs/ORIGINAL.md 3.2/3.9 give the
layout; the module names (``conv1``, ``Block1``, ``mu_head``...) and Sequential indices are the key
format of the released ``CDCN_U_P1.pkl`` and must not change.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from networks.cdc import Conv2d_cd
from networks.cdcn import cdcn_trunk_forward, init_cdcn_trunk
from networks.dum import DUMOutput, add_dum_heads, dum_output, load_weights, state_dict_from_checkpoint

__all__ = ["CDCN_u", "DUMOutput", "load_pretrained", "state_dict_from_checkpoint"]


class CDCN_u(nn.Module):
    """``CDCN_u()`` is the published model: 3x256x256 input in ~[-1, 1], 32x32 maps, 2,245,592 params."""

    def __init__(self, basic_conv=Conv2d_cd, theta: float = 0.7, width: float = 1.0, image_size: int = 256,
                 memory_efficient: bool = True):
        super().__init__()
        # In training, run BN-ReLU-conv as fused nodes that keep one activation per layer instead of
        # two (networks/cdc.py, run_memory_efficient); outputs and gradients are unchanged.
        self.memory_efficient = memory_efficient
        c64 = init_cdcn_trunk(self, basic_conv, theta, width, image_size)
        add_dum_heads(self, c64)

    def forward(self, x: torch.Tensor) -> DUMOutput:
        h, x_concat, x_Block1, x_Block2, x_Block3 = cdcn_trunk_forward(self, x)
        return dum_output(self, h, x_concat, x_Block1, x_Block2, x_Block3, x)


def load_pretrained(model: nn.Module, path, map_location="cpu") -> nn.Module:
    """Strictly load our checkpoints or the released ``CDCN_U_P1.pkl`` (``module.`` keys) into ``model``."""
    return load_weights(model, path, map_location,
                        hint="Pass a CDCN+DUM checkpoint written by DUM/train.py or the released CDCN_U_P1.pkl.")

"""DepthNet with the Depth Uncertainty Module (the original's ``depthnet_u`` in ``DUM/models/CDCNs_u.py``)
and its plain depth-supervised baseline ``DepthNet``.

DepthNet is CDCN's layout with ordinary 3x3 convolutions in place of the central-difference ones
(docs/NETWORKS.md): the same channels, blocks, pools and 32x32 fusion, so its
keys are CDCN_u's without the ``.conv.`` level (``conv1.0.weight``, ``Block1.0.weight``, ...). The
trunk is built by ``networks/cdcn.py`` with ``networks.blocks.plain_conv``; nothing is copied.
``DepthNet`` ends like CDCN: ``lastconv3`` = conv 64->1 + ReLU, one depth map, no uncertainty.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from networks.blocks import plain_conv
from networks.cdcn import CDCN, cdcn_trunk_forward, init_cdcn_trunk
from networks.dum import DUMOutput, add_dum_heads, dum_output, load_weights

__all__ = ["depthnet_u", "DepthNet", "load_pretrained"]


class depthnet_u(nn.Module):  # noqa: N801 - the original's class name
    """``depthnet_u()`` is the original's model: 3x256x256 input, 32x32 maps, 2,245,592 parameters."""

    def __init__(self, width: float = 1.0, image_size: int = 256, memory_efficient: bool = True):
        super().__init__()
        self.memory_efficient = memory_efficient  # fuses BN-ReLU-max-pool in CPU training (networks/cdc.py)
        c64 = init_cdcn_trunk(self, plain_conv, 0.0, width, image_size)
        add_dum_heads(self, c64)

    def forward(self, x: torch.Tensor) -> DUMOutput:
        h, x_concat, x_Block1, x_Block2, x_Block3 = cdcn_trunk_forward(self, x)
        return dum_output(self, h, x_concat, x_Block1, x_Block2, x_Block3, x)


class DepthNet(CDCN):
    """CDCN with plain convolutions: the "without DUM" baseline of depthnet_u (2,245,016 parameters)."""

    def __init__(self, width: float = 1.0, image_size: int = 256, memory_efficient: bool = True):
        super().__init__(basic_conv=plain_conv, theta=0.0, width=width, image_size=image_size,
                         memory_efficient=memory_efficient)


def load_pretrained(model: nn.Module, path, map_location="cpu") -> nn.Module:
    """Strictly load our checkpoints or an original depthnet_u state_dict (``module.`` keys) into ``model``."""
    return load_weights(model, path, map_location,
                        hint="Pass a DepthNet checkpoint written by DUM/train.py or an original depthnet_u state_dict.")

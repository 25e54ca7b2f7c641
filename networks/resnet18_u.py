"""ResNet-18 with the Depth Uncertainty Module (the original's ``ResNet18_u``, ``DUM/models/ResNet_u.py``)
and its plain depth-supervised baseline ``ResNet18``.

Layout (docs/NETWORKS.md): a stride-1 stem (3x3 conv 3->64, BN, ReLU), four
stages of two residual blocks with 64, 128, 196 and 256 channels and strides 1, 2, 2, 2 (256 -> 32 px
at the published size), the outputs of stages 2-4 resized to the map size (32x32) and concatenated
(580 channels), ``lastconv1`` (580->128) and ``lastconv2`` (128->64) 3x3 conv-BN-ReLU, then the DUM
heads. The original also creates ``lastconv3`` (64->1) and never calls it; it is kept, so its
checkpoints load strictly, and the baseline ``ResNet18`` is exactly that head: conv 64->1 + ReLU, as
CDCN's ``lastconv3``. Names (``layerN.i.left``/``shortcut``) and indices are the original key format.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from networks.blocks import map_size_for, resize_to, scaled
from networks.dum import DUMOutput, add_dum_heads, dum_output, load_weights

__all__ = ["ResidualBlock", "ResNet18_u", "ResNet18", "ResNetOutput", "load_pretrained"]

STAGES = ((64, 1), (128, 2), (196, 2), (256, 2))  # (channels, stride of the stage's first block)


def conv_bn_relu(c_in: int, c_out: int) -> list:
    return [nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True)]


class ResidualBlock(nn.Module):
    """relu(left(x) + shortcut(x)); left = conv3x3(stride)-BN-ReLU-conv3x3-BN, shortcut = conv1x1(stride)-BN
    when the shape changes, else the identity (an empty Sequential, no keys)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.left = nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, kernel_size=3, stride=1, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.left(x) + self.shortcut(x))


class ResNetOutput(NamedTuple):
    map: torch.Tensor       # [B, M, M], non-negative (final ReLU)
    x_concat: torch.Tensor  # [B, C2+C3+C4, M, M]
    x_layer2: torch.Tensor  # [B, C2, S/2, S/2]
    x_layer3: torch.Tensor  # [B, C3, S/4, S/4]
    x_layer4: torch.Tensor  # [B, C4, S/8, S/8]
    x_input: torch.Tensor


class _ResNetTrunk(nn.Module):
    """Stem, four stages, fusion, lastconv1-3, created in the original's order (a seeded build draws
    the original's initial weights)."""

    def __init__(self, width: float = 1.0, image_size: int = 256):
        super().__init__()
        self.image_size, self.map_size = image_size, map_size_for(image_size)
        c_in = scaled(64, width)
        self.conv1 = nn.Sequential(*conv_bn_relu(3, c_in))
        for i, (channels, stride) in enumerate(STAGES, start=1):
            c_out = scaled(channels, width)
            setattr(self, f"layer{i}", nn.Sequential(ResidualBlock(c_in, c_out, stride), ResidualBlock(c_out, c_out)))
            c_in = c_out
        c_cat = sum(scaled(c, width) for c, _ in STAGES[1:])
        c64, c128 = scaled(64, width), scaled(128, width)
        self.lastconv1 = nn.Sequential(*conv_bn_relu(c_cat, c128))
        self.lastconv2 = nn.Sequential(*conv_bn_relu(c128, c64))
        self.lastconv3 = nn.Sequential(nn.Conv2d(c64, 1, kernel_size=3, stride=1, padding=1, bias=False),
                                       nn.ReLU(inplace=True))
        self.features = c64

    def trunk(self, x: torch.Tensor):
        """-> (features [B, 64w, M, M] after lastconv2, x_concat, layer2, layer3, layer4 outputs)."""
        x2 = self.layer2(self.layer1(self.conv1(x)))
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        m = self.map_size
        x_concat = torch.cat([resize_to(x2, m), resize_to(x3, m), resize_to(x4, m)], dim=1)
        return self.lastconv2(self.lastconv1(x_concat)), x_concat, x2, x3, x4


class ResNet18_u(_ResNetTrunk):  # noqa: N801 - the original's name
    """``ResNet18_u()`` is the original's model: 3x256x256 input, 32x32 maps, 4,983,256 parameters
    (576 of them in the unused ``lastconv3``)."""

    def __init__(self, width: float = 1.0, image_size: int = 256):
        super().__init__(width, image_size)
        add_dum_heads(self, self.features)

    def forward(self, x: torch.Tensor) -> DUMOutput:
        h, x_concat, x2, x3, x4 = self.trunk(x)
        return dum_output(self, h, x_concat, x2, x3, x4, x)


class ResNet18(_ResNetTrunk):
    """The "without DUM" baseline: the same trunk, depth map = ReLU(lastconv3(features))."""

    def forward(self, x: torch.Tensor) -> ResNetOutput:
        h, x_concat, x2, x3, x4 = self.trunk(x)
        return ResNetOutput(self.lastconv3(h).squeeze(1), x_concat, x2, x3, x4, x)


def load_pretrained(model: nn.Module, path, map_location="cpu") -> nn.Module:
    """Strictly load our checkpoints or an original ResNet18_u state_dict (``module.`` keys) into ``model``."""
    return load_weights(model, path, map_location,
                        hint="Pass a ResNet-18 checkpoint written by DUM/train.py or an original ResNet18_u state_dict.")

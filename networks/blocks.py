"""Small pieces every network file shares: channel scaling, map size, the original's 32x32 resize and
the plain-convolution factory with ``Conv2d_cd``'s signature. One home, imported, never copied."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["scaled", "map_size_for", "resize_to", "plain_conv"]


def scaled(channels: int, width: float) -> int:
    """Channel count at a width multiplier (width 1.0 returns the published number).

    Every network with a ``width`` argument (CDCN family, ResNet18_u, dual VAE, LightCNN) scales its
    channels through this one function, so a width means the same thing everywhere.
    """
    return max(1, int(round(channels * width)))


def map_size_for(image_size: int) -> int:
    """Side of the depth map: three 2x reductions, 256 -> 32."""
    if image_size % 8 or image_size < 8:
        raise ValueError(f"image_size must be a positive multiple of 8, got {image_size}")
    return image_size // 8


def resize_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """The original ``nn.Upsample(size=(32, 32), mode='bilinear')`` (align_corners False, no antialias).

    At the target size bilinear resampling is the identity, so skip it instead of copying.
    """
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def plain_conv(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
               dilation: int = 1, groups: int = 1, bias: bool = False, theta: float = 0.0) -> nn.Conv2d:
    """``nn.Conv2d`` called like ``Conv2d_cd`` (``theta`` accepted and ignored), so the CDCN builders make
    DepthNet: the same layout with plain convolutions, whose keys have no ``.conv.`` level."""
    del theta  # a plain convolution has no central-difference term
    return nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding,
                     dilation=dilation, groups=groups, bias=bias)

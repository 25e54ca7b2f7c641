"""CDCN and CDCN++ (Yu et al., CVPR 2020), the depth networks DSDG's CDCN+DUM is built from.

Layer layout follows ``ZitongYu/CDCN: CVPR2020_paper_codes/models/CDCNs.py`` (see
docs/ORIGINAL.md 3.2 and 3.10); the module names and Sequential indices are a checkpoint format.
Also holds the trunk builders that ``networks/cdcn_u.py`` reuses (one home, never copied).
``width`` scales every channel count and ``image_size`` sets the input side (map side = size // 8),
so CPU tests can run e.g. ``CDCN(width=0.25, image_size=64)``; the defaults are the paper's model.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn as nn

from networks.blocks import map_size_for, resize_to, scaled
from networks.cdc import Conv2d_cd, run_memory_efficient

__all__ = ["CDCN", "CDCNpp", "CDCNOutput", "CDCNppOutput", "scaled", "cd_bn_relu", "cd_block",
           "map_size_for", "resize_to", "init_cdcn_trunk", "cdcn_trunk_forward", "run_blocks", "SpatialAttention"]


def cd_bn_relu(basic_conv, c_in: int, c_out: int, theta: float) -> list:
    # In-place ReLU: BatchNorm's backward needs its input, not its output, so overwriting the BN
    # output is safe and avoids allocating a second activation-sized tensor per layer.
    return [basic_conv(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False, theta=theta),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def cd_block(basic_conv, channels: Sequence[int], theta: float, pool: bool = True) -> nn.Sequential:
    """CD-BN-ReLU for each consecutive channel pair, then MaxPool(3, 2, 1): Block1..3 of CDCN."""
    layers = []
    for c_in, c_out in zip(channels[:-1], channels[1:]):
        layers += cd_bn_relu(basic_conv, c_in, c_out, theta)
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    return nn.Sequential(*layers)


def init_cdcn_trunk(net: nn.Module, basic_conv, theta: float, width: float, image_size: int) -> int:
    """Create CDCN's trunk on ``net`` (conv1, Block1-3, lastconv1-2, in the original's creation order,
    so a seeded build draws the same initial weights). Returns the width of lastconv2's output."""
    c64, c128, c196 = scaled(64, width), scaled(128, width), scaled(196, width)
    net.image_size, net.map_size = image_size, map_size_for(image_size)
    net.conv1 = nn.Sequential(*cd_bn_relu(basic_conv, 3, c64, theta))
    net.Block1 = cd_block(basic_conv, [c64, c128, c196, c128], theta)
    net.Block2 = cd_block(basic_conv, [c128, c128, c196, c128], theta)
    net.Block3 = cd_block(basic_conv, [c128, c128, c196, c128], theta)
    net.lastconv1 = nn.Sequential(*cd_bn_relu(basic_conv, 3 * c128, c128, theta))
    net.lastconv2 = nn.Sequential(*cd_bn_relu(basic_conv, c128, c64, theta))
    return c64


def use_memory_efficient(net: nn.Module, x: torch.Tensor) -> bool:
    """Training with gradients and ``net.memory_efficient`` set, on the CPU: run BN-ReLU-conv as fused nodes.

    Not under autocast: the fused node saves the fp32 weight its backward needs in the forward dtype.
    Not on CUDA: there its gradients differed from plain autograd by about 3e-3 (relative L2, cuDNN
    deterministic, TF32 off; plain-vs-plain noise 7e-6), while on the CPU they agree to 2e-7 or better. In
    float64 fused and plain agree exactly, and moving the input by one ulp moves fp32 gradients of
    this network by ~1e-3 (ReLU signs and max-pool winners): the likely cause is cuDNN's BatchNorm
    (plain) rounding differently from the native kernel (fused), not the fused math
    (docs/PERFORMANCE.md). bench/bench_gpu_train.py checks it on a GPU; until then GPUs, which have
    the memory to spare, take the plain path.
    """
    return (bool(getattr(net, "memory_efficient", False)) and net.training and torch.is_grad_enabled()
            and x.device.type == "cpu" and not any(torch.is_autocast_enabled(d) for d in ("cpu", "cuda")))


def run_blocks(net: nn.Module, x: torch.Tensor, names=("conv1", "Block1", "Block2", "Block3")):
    """Run the named Sequentials in order; return the outputs of all but the first (the blocks)."""
    seqs = [getattr(net, n) for n in names]
    if not use_memory_efficient(net, x):
        outs = []
        for seq in seqs:
            x = seq(x)
            outs.append(x)
        return outs[1:]
    ends = [sum(len(s) for s in seqs[:k + 1]) - 1 for k in range(len(seqs))]
    _, captured = run_memory_efficient([m for s in seqs for m in s], x, capture=set(ends[1:]))
    return [captured[e] for e in ends[1:]]


def cdcn_trunk_forward(net: nn.Module, x: torch.Tensor):
    """-> (features [B, 64w, M, M] after lastconv2, x_concat, x_Block1, x_Block2, x_Block3)."""
    x_Block1, x_Block2, x_Block3 = run_blocks(net, x)
    m = net.map_size
    x_concat = torch.cat([resize_to(x_Block1, m), resize_to(x_Block2, m), resize_to(x_Block3, m)], dim=1)
    if use_memory_efficient(net, x_concat):
        h, _ = run_memory_efficient(list(net.lastconv1) + list(net.lastconv2), x_concat)
    else:
        h = net.lastconv2(net.lastconv1(x_concat))
    return h, x_concat, x_Block1, x_Block2, x_Block3


class CDCNOutput(NamedTuple):
    map: torch.Tensor       # [B, M, M], non-negative (final ReLU)
    x_concat: torch.Tensor  # [B, 3*C, M, M]
    x_Block1: torch.Tensor  # [B, C, S/2, S/2]
    x_Block2: torch.Tensor  # [B, C, S/4, S/4]
    x_Block3: torch.Tensor  # [B, C, S/8, S/8]
    x_input: torch.Tensor


class CDCNppOutput(NamedTuple):
    map: torch.Tensor
    x_concat: torch.Tensor
    attention1: torch.Tensor  # [B, 1, S/2, S/2]
    attention2: torch.Tensor
    attention3: torch.Tensor
    x_input: torch.Tensor


class CDCN(nn.Module):
    """CDCN: the trunk of CDCN+DUM with ``lastconv3`` = CD 64->1 + ReLU. 2,245,016 parameters."""

    def __init__(self, basic_conv=Conv2d_cd, theta: float = 0.7, width: float = 1.0, image_size: int = 256,
                 memory_efficient: bool = True):
        super().__init__()
        self.memory_efficient = memory_efficient
        c64 = init_cdcn_trunk(self, basic_conv, theta, width, image_size)
        self.lastconv3 = nn.Sequential(
            basic_conv(c64, 1, kernel_size=3, stride=1, padding=1, bias=False, theta=theta), nn.ReLU())

    def forward(self, x: torch.Tensor) -> CDCNOutput:
        h, x_concat, b1, b2, b3 = cdcn_trunk_forward(self, x)
        return CDCNOutput(self.lastconv3(h).squeeze(1), x_concat, b1, b2, b3, x)


class SpatialAttention(nn.Module):
    """sigmoid(conv_k([mean_c(x), max_c(x)])): CDCN++'s per-block spatial attention (key ``conv1``)."""

    def __init__(self, kernel: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size=kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv1(pooled))


class CDCNpp(nn.Module):
    """CDCN++ with the searched block widths (x1.6, x1.2/x1.4, x1.2) and spatial attention."""

    def __init__(self, basic_conv=Conv2d_cd, theta: float = 0.7, width: float = 1.0, image_size: int = 256,
                 memory_efficient: bool = True):
        super().__init__()
        self.memory_efficient = memory_efficient
        c64, c128 = scaled(64, width), scaled(128, width)
        # The searched widths are int(128 * factor) in the original: 204, 153, 179.
        c204, c153, c179 = (scaled(int(128 * f), width) for f in (1.6, 1.2, 1.4))
        self.image_size, self.map_size = image_size, map_size_for(image_size)
        self.conv1 = nn.Sequential(*cd_bn_relu(basic_conv, 3, c64, theta))
        self.Block1 = cd_block(basic_conv, [c64, c128, c204, c128], theta)
        self.Block2 = cd_block(basic_conv, [c128, c153, c128, c179, c128], theta)
        self.Block3 = cd_block(basic_conv, [c128, c128, c153, c128], theta)
        self.lastconv1 = nn.Sequential(
            *cd_bn_relu(basic_conv, 3 * c128, c128, theta),
            basic_conv(c128, 1, kernel_size=3, stride=1, padding=1, bias=False, theta=theta), nn.ReLU())
        self.sa1, self.sa2, self.sa3 = SpatialAttention(7), SpatialAttention(5), SpatialAttention(3)

    def forward(self, x: torch.Tensor) -> CDCNppOutput:
        m = self.map_size
        # Each block sees the previous block's un-attended output, as in the original.
        x_Block1, x_Block2, x_Block3 = run_blocks(self, x)
        att1, att2, att3 = self.sa1(x_Block1), self.sa2(x_Block2), self.sa3(x_Block3)
        x_concat = torch.cat([resize_to(att1 * x_Block1, m), resize_to(att2 * x_Block2, m),
                              resize_to(att3 * x_Block3, m)], dim=1)
        if use_memory_efficient(self, x_concat):
            depth, _ = run_memory_efficient(list(self.lastconv1), x_concat)
        else:
            depth = self.lastconv1(x_concat)
        return CDCNppOutput(depth.squeeze(1), x_concat, att1, att2, att3, x)

"""The three networks of MTCNN (Zhang et al., "Joint Face Detection and Alignment using Multi-task
Cascaded Convolutional Networks", IEEE SPL 2016) in PyTorch: P-Net, R-Net and O-Net.

Layer sizes are those of the ``mtcnn`` pip package's Keras models, whose weights data/mtcnn_weights.py
copies in; the cascade that runs them is data/mtcnn.py. The dense layers read the last feature map
in Keras' (W, H, C) flattening order. ``fold_input_normalization`` makes a net take raw 0-255 pixels.
"""
from __future__ import annotations

import torch
from torch import nn


def _face_prob(logits: torch.Tensor) -> torch.Tensor:
    # softmax over (not face, face) along dim 1, face channel only: sigmoid of the difference
    return torch.sigmoid(logits[:, 1] - logits[:, 0])


class PNet(nn.Module):
    """Proposal net: fully convolutional, 12x12 receptive field, stride 2. Input (N, 3, H, W) in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        # ceil_mode reproduces Keras' padding="same" max pooling (pads bottom/right only)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.box = nn.Conv2d(32, 4, 1)
        self.prob = nn.Conv2d(32, 2, 1)

    body = ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3")
    heads = ("box", "prob")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        # face probability (N, h, w), box offsets (N, 4, h, w) in units of the 12 px cell
        return _face_prob(self.prob(x)), self.box(x)


def _flatten_whc(x: torch.Tensor) -> torch.Tensor:
    # (N, C, H, W) -> (N, W*H*C): the order Keras' Permute((2, 1, 3)) + Flatten fed the dense layers
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    """Refine net on 24x24 crops."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.fc4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)  # 576 = 3 * 3 * 64
        self.box = nn.Linear(128, 4)
        self.prob = nn.Linear(128, 2)

    body = ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4")
    heads = ("box", "prob")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.fc4(_flatten_whc(x)))
        return _face_prob(self.prob(x)), self.box(x)


class ONet(nn.Module):
    """Output net on 48x48 crops: probability, box offsets and 5 landmarks (x1..x5, y1..y5)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.fc5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)  # 1152 = 3 * 3 * 128
        self.box = nn.Linear(256, 4)
        self.landmarks = nn.Linear(256, 10)
        self.prob = nn.Linear(256, 2)

    body = ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4", "fc5", "prelu5")
    heads = ("box", "landmarks", "prob")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.fc5(_flatten_whc(x)))
        return _face_prob(self.prob(x)), self.box(x), self.landmarks(x)


def fold_input_normalization(net: nn.Module) -> nn.Module:
    """Make ``net`` take raw 0-255 pixels: fold the reference's (x - 127.5) / 128 into conv1.

    conv1 has no padding, so W(ax + b) + c = (aW)x + (c + b * sum W) holds exactly for every output;
    this saves two full passes over every pyramid level and crop."""
    conv = net.conv1
    scale, shift = 0.0078125, -127.5 * 0.0078125
    with torch.no_grad():
        conv.bias.add_(shift * conv.weight.sum(dim=(1, 2, 3)))
        conv.weight.mul_(scale)
    return net

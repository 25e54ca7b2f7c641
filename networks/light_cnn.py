"""LightCNN-29 v2, DSDG's frozen identity network (Wu et al., "A Light CNN for Deep Face
Representation with Noisy Labels", TIFS 2018; layout of ``AlfredXiangWu/LightCNN: light_cnn.py``).

Every layer is a Max-Feature-Map (MFM): a convolution to 2*out channels followed by the element-wise
max of the two halves. The attribute names (``conv1.filter``, ``blockN.i.convK.filter``,
``groupN.conv_a/conv.filter``, ``fc``, ``fc2``) are the key format of the published
``LightCNN_29Layers_V2_checkpoint.pth.tar`` and must not change (docs/ORIGINAL.md 2.8, 8).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from networks.blocks import scaled
from utils.checkpoint import CheckpointError, load_checkpoint, load_state_dict_strict, save_checkpoint, unwrap

__all__ = ["LightCNN29v2", "identity_features", "to_identity_input", "load_lightcnn", "save_lightcnn_checkpoint",
           "LIGHTCNN_FILE", "IDENTITY_SIZE"]

LIGHTCNN_FILE = "LightCNN_29Layers_V2_checkpoint.pth.tar"
IDENTITY_SIZE = 128
_HINT = (f"Put the published LightCNN-29 v2 checkpoint {LIGHTCNN_FILE} into ip_checkpoint/ "
         f"(or train one with `python train_lightcnn.py`, which writes the same layout).")


class mfm(nn.Module):
    """Conv (k x k, bias) to 2*out channels, then max over the two halves -> out channels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.out_channels = out_channels
        self.filter = nn.Conv2d(in_channels, 2 * out_channels, kernel_size, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(self.filter(x), self.out_channels, dim=1)
        return torch.maximum(a, b)


class group(nn.Module):
    """mfm 1x1 in->in, then mfm 3x3 in->out."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv_a = mfm(in_channels, in_channels, 1, 1, 0)
        self.conv = mfm(in_channels, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv_a(x))


class resblock(nn.Module):
    """Two mfm 3x3 c->c plus the identity; no norm."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = mfm(channels, channels)
        self.conv2 = mfm(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


def _pool(x: torch.Tensor) -> torch.Tensor:
    # LightCNN v2 pools with the sum of a 2x2 max-pool and a 2x2 average-pool.
    return F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)


class LightCNN29v2(nn.Module):
    """Input [B, 1, 128, 128] grey in [0, 1]; ``forward`` returns the 256-d ``fc`` feature.

    ``LightCNN29v2()`` is the published feature network (10,475,872 parameters, no classifier).
    ``num_classes`` adds the training classifier ``fc2`` (Linear 256 -> classes, no bias, after
    dropout 0.5), used by ``forward_logits``.
    """

    def __init__(self, num_classes: int | None = None, width: float = 1.0, layers=(1, 2, 3, 4)):
        super().__init__()
        c48, c96, c192, c128 = (scaled(c, width) for c in (48, 96, 192, 128))
        self.conv1 = mfm(1, c48, 5, 1, 2)
        self.block1 = nn.Sequential(*[resblock(c48) for _ in range(layers[0])])
        self.group1 = group(c48, c96)
        self.block2 = nn.Sequential(*[resblock(c96) for _ in range(layers[1])])
        self.group2 = group(c96, c192)
        self.block3 = nn.Sequential(*[resblock(c192) for _ in range(layers[2])])
        self.group3 = group(c192, c128)
        self.block4 = nn.Sequential(*[resblock(c128) for _ in range(layers[3])])
        self.group4 = group(c128, c128)
        # 128 px in, four 2x pools -> 8x8.
        self.fc = nn.Linear(8 * 8 * c128, 256)
        self.num_classes = num_classes
        if num_classes:
            self.fc2 = nn.Linear(256, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pool(self.conv1(x))
        x = _pool(self.group1(self.block1(x)))
        x = _pool(self.group2(self.block2(x)))
        x = self.group3(self.block3(x))
        x = _pool(self.group4(self.block4(x)))
        return self.fc(torch.flatten(x, 1))

    def forward_logits(self, x: torch.Tensor):
        """-> (logits [B, num_classes], feature [B, 256]) for classifier training."""
        if not self.num_classes:
            raise RuntimeError("LightCNN29v2 was built without a classifier (num_classes=None)")
        feature = self.forward(x)
        return self.fc2(F.dropout(feature, p=0.5, training=self.training)), feature


def to_identity_input(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> [B, 1, 128, 128] grey, as DSDG feeds LightCNN.

    Resize is ``F.interpolate(mode='bilinear')`` with align_corners unset (False) and no antialias,
    as in the original; grey = 0.299 R + 0.587 G + 0.114 B.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images [B, 3, H, W], got {tuple(images.shape)}")
    if images.shape[-2:] != (IDENTITY_SIZE, IDENTITY_SIZE):
        images = F.interpolate(images, size=(IDENTITY_SIZE, IDENTITY_SIZE), mode="bilinear", align_corners=False)
    r, g, b = images[:, 0:1], images[:, 1:2], images[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def identity_features(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """L2-normalised LightCNN feature [B, 256] of RGB images in [0, 1] (differentiable w.r.t. images)."""
    return F.normalize(net(to_identity_input(images)), p=2, dim=1)


def _lightcnn_state_dict(obj: dict, path) -> dict:
    sd = obj["state_dict"] if isinstance(obj.get("state_dict"), dict) else obj
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: not a LightCNN checkpoint (no tensor state_dict; keys: {sorted(obj)[:8]}). {_HINT}")
    return sd


def load_lightcnn(path, device="cpu", width: float = 1.0) -> LightCNN29v2:
    """Frozen eval-mode LightCNN29v2 from the published layout or a bare state_dict.

    The published file holds ``module.``-prefixed keys and the 80,013-class classifier
    (``fc2.weight``; DSDG's copy calls it ``fc2_``). The prefix is stripped, the classifier dropped,
    and the rest loaded strictly: a file that does not fit raises instead of loading nothing
    silently, as the original's key filter did.
    """
    path = Path(path)
    obj = load_checkpoint(path, map_location="cpu", hint=_HINT)
    net = LightCNN29v2(width=width)
    try:
        load_state_dict_strict(net, _lightcnn_state_dict(obj, path), source=str(path), drop_prefixes=("fc2.", "fc2_."))
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}. {_HINT}") from None
    net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def save_lightcnn_checkpoint(net: LightCNN29v2, path, epoch: int, arch: str = "LightCNN-29v2",
                             prec1: float = 0.0, **extra) -> Path:
    """Write the published layout: {'epoch', 'arch', 'state_dict' (``module.`` keys, with fc2), 'prec1'}.

    ``extra`` (e.g. optimizer state, config) is stored alongside for resuming; loaders ignore it.
    """
    state_dict = {f"module.{k}": v.detach().cpu() for k, v in unwrap(net).state_dict().items()}
    return save_checkpoint({"epoch": int(epoch), "arch": arch, "state_dict": state_dict,
                            "prec1": float(prec1), **extra}, path)

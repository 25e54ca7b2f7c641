"""DSDG's dual-VAE generator (arXiv 2112.00568 sec. III-B; ``DSDG/networks/generator.py``, itself
extending DVG, Fu et al., "Dual Variational Generation for Low-Shot Heterogeneous Face Recognition").

The spoof encoder maps a spoof face to an identity latent and a spoof-pattern latent, the live
encoder maps the paired live face to an identity latent, and the decoder turns
[z_type, z_id_spoof, z_id_live] into the pair (6 channels: spoof RGB, live RGB). Layer layout in
docs/ORIGINAL.md 2.2-2.5; the ``main.<idx>`` / ``fc`` names and indices are the original key format.

Image sizes: 256 is the published model (first conv stride 2, five 2x pools, six 2x upsamplings).
128 uses a stride-1 first conv and drops the decoder's last upsampling (DVG's 128-px layout); 64
also drops the encoder's first pool and the decoder's second-to-last upsampling. All sizes keep the
4x4 x (512*width) bottleneck, and the dropped layers become ``nn.Identity`` at the same index, so
every size has the same state_dict keys.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from networks.blocks import scaled

__all__ = ["ResidualBlock", "SpoofEncoder", "LiveEncoder", "Decoder", "TypeClassifier", "DualVAE",
           "DualVAEOutput", "reparameterize", "IMAGE_SIZES"]

IMAGE_SIZES = (256, 128, 64)
_NORM_EPS = 1e-3  # InstanceNorm2d(eps=0.001), affine=False, no running stats: no state_dict entries


@torch.no_grad()
def decode_pairs(decoder: nn.Module, noise_type: torch.Tensor, noise_id: torch.Tensor):
    """[n, hdim] spoof-pattern noise and [n, hdim] identity noise -> (spoof, live), each [n,3,S,S] in [0,1].

    The decoder input is [noise_t, noise_id, noise_id]: one identity code shared by both images."""
    out = decoder(torch.cat([noise_type, noise_id, noise_id], dim=1))  # [n, 6, S, S]
    return out[:, 0:3], out[:, 3:6]


def _check_size(image_size: int) -> None:
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {image_size}")


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + eps * exp(logvar / 2), eps ~ N(0, I) on mu's device (the original hard-wired CUDA)."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


class ResidualBlock(nn.Module):
    """conv3x3-IN-LReLU-conv3x3, add the shortcut, then IN-LReLU (norm AFTER the addition).

    The 1x1 ``conv_expand`` shortcut exists only when the channel count changes; the original tested
    ``inc is not outc``, which compares int identity, so compare values instead.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        if in_channels != out_channels:
            self.conv_expand = nn.Conv2d(in_channels, out_channels, 1, 1, 0, bias=False)
        else:
            self.conv_expand = None
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.bn1 = nn.InstanceNorm2d(out_channels, eps=_NORM_EPS)
        self.relu1 = nn.LeakyReLU(0.2, inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.InstanceNorm2d(out_channels, eps=_NORM_EPS)
        self.relu2 = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.conv_expand is None else self.conv_expand(x)
        out = self.conv2(self.relu1(self.bn1(self.conv1(x))))
        return self.relu2(self.bn2(out + shortcut))


def _make_layer(n: int, in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(in_channels, out_channels),
                         *[ResidualBlock(out_channels, out_channels) for _ in range(n - 1)])


class _Encoder(nn.Module):
    """Shared trunk of both encoders: [B, 3, S, S] in [0, 1] -> fc output [B, chunks * hdim]."""

    def __init__(self, chunks: int, image_size: int = 256, hdim: int = 128, width: float = 1.0):
        super().__init__()
        _check_size(image_size)
        c = [scaled(ch, width) for ch in (32, 64, 128, 256, 512)]
        self.image_size, self.hdim, self.chunks = image_size, hdim, chunks
        stride = 2 if image_size == 256 else 1
        first_pool = nn.AvgPool2d(2) if image_size != 64 else nn.Identity()
        self.main = nn.Sequential(
            nn.Conv2d(3, c[0], 5, stride, 2, bias=False),       # 0
            nn.InstanceNorm2d(c[0], eps=_NORM_EPS),              # 1
            nn.LeakyReLU(0.2, inplace=True),                     # 2
            first_pool,                                          # 3: -> 64 px
            _make_layer(1, c[0], c[1]), nn.AvgPool2d(2),         # 4, 5: -> 32
            _make_layer(1, c[1], c[2]), nn.AvgPool2d(2),         # 6, 7: -> 16
            _make_layer(1, c[2], c[3]), nn.AvgPool2d(2),         # 8, 9: -> 8
            _make_layer(1, c[3], c[4]), nn.AvgPool2d(2),         # 10, 11: -> 4
            _make_layer(1, c[4], c[4]),                          # 12
        )
        self.fc = nn.Linear(c[4] * 4 * 4, chunks * hdim)

    def forward(self, x: torch.Tensor):
        h = self.main(x)  # [B, 512w, 4, 4]
        return tuple(self.fc(torch.flatten(h, 1)).chunk(self.chunks, dim=1))


class SpoofEncoder(_Encoder):
    """Original ``Encoder_s`` (netE_nir). forward -> (mu_id, logvar_id, mu_type, logvar_type), each [B, hdim]."""

    def __init__(self, image_size: int = 256, hdim: int = 128, width: float = 1.0):
        super().__init__(4, image_size, hdim, width)


class LiveEncoder(_Encoder):
    """Original ``Encoder`` (netE_vis). forward -> (mu_id, logvar_id), each [B, hdim]."""

    def __init__(self, image_size: int = 256, hdim: int = 128, width: float = 1.0):
        super().__init__(2, image_size, hdim, width)


class Decoder(nn.Module):
    """Original ``Decoder_s`` (netG): z [B, 3*hdim] = [z_type, z_id_spoof, z_id_live] -> [B, 6, S, S].

    Sigmoid output in [0, 1]; channels 0-2 are the spoof image, 3-5 the live image.
    """

    def __init__(self, image_size: int = 256, hdim: int = 128, width: float = 1.0):
        super().__init__()
        _check_size(image_size)
        c64, c128, c256, c512 = (scaled(ch, width) for ch in (64, 128, 256, 512))
        self.image_size, self.hdim, self.bottleneck = image_size, hdim, c512

        def up(keep: bool) -> nn.Module:
            return nn.Upsample(scale_factor=2, mode="nearest") if keep else nn.Identity()

        self.fc = nn.Sequential(nn.Linear(3 * hdim, c512 * 4 * 4), nn.ReLU(inplace=True))
        self.main = nn.Sequential(
            _make_layer(1, c512, c512), up(True),                # 0, 1: 4 -> 8
            _make_layer(1, c512, c512), up(True),                # 2, 3: -> 16
            _make_layer(1, c512, c512), up(True),                # 4, 5: -> 32
            _make_layer(1, c512, c256), up(True),                # 6, 7: -> 64
            _make_layer(1, c256, c128), up(image_size >= 128),   # 8, 9: -> 128
            _make_layer(2, c128, c64), up(image_size >= 256),    # 10, 11: -> 256
            nn.Conv2d(c64, 6, 5, 1, 2, bias=True),               # 12
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], self.bottleneck, 4, 4)
        return torch.sigmoid(self.main(h))


class TypeClassifier(nn.Module):
    """Original ``Cls`` (netCls): Linear(hdim -> attack_types) on the sampled spoof-pattern latent."""

    def __init__(self, hdim: int = 128, attack_types: int = 4):
        super().__init__()
        self.fc = nn.Linear(hdim, attack_types)

    def forward(self, z_type: torch.Tensor) -> torch.Tensor:
        return self.fc(z_type)


class DualVAEOutput(NamedTuple):
    rec_spoof: torch.Tensor     # [B, 3, S, S]
    rec_live: torch.Tensor      # [B, 3, S, S]
    mu_id_spoof: torch.Tensor   # [B, hdim] each below
    logvar_id_spoof: torch.Tensor
    mu_type: torch.Tensor
    logvar_type: torch.Tensor
    mu_id_live: torch.Tensor
    logvar_id_live: torch.Tensor
    z_type: torch.Tensor
    z_id_spoof: torch.Tensor
    z_id_live: torch.Tensor


class DualVAE(nn.Module):
    """The four generator networks in one container (each keeps its original keys under its name)."""

    def __init__(self, image_size: int = 256, hdim: int = 128, attack_types: int = 4, width: float = 1.0):
        super().__init__()
        self.image_size, self.hdim, self.attack_types, self.width = image_size, hdim, attack_types, width
        self.spoof_encoder = SpoofEncoder(image_size, hdim, width)
        self.live_encoder = LiveEncoder(image_size, hdim, width)
        self.decoder = Decoder(image_size, hdim, width)
        self.type_classifier = TypeClassifier(hdim, attack_types)

    @classmethod
    def from_config(cls, image_size: int = 256, hdim: int = 128, attack_types: int = 4,
                    width: float = 1.0) -> "DualVAE":
        return cls(image_size=image_size, hdim=hdim, attack_types=attack_types, width=width)

    def config(self) -> dict:
        return {"image_size": self.image_size, "hdim": self.hdim, "attack_types": self.attack_types,
                "width": self.width}

    def forward(self, spoof: torch.Tensor, live: torch.Tensor) -> DualVAEOutput:
        """Encode the pair, sample the three latents, decode (docs/ORIGINAL.md 2.6 steps 1-3)."""
        mu_s, lv_s, mu_t, lv_t = self.spoof_encoder(spoof)
        mu_l, lv_l = self.live_encoder(live)
        z_t, z_s, z_l = reparameterize(mu_t, lv_t), reparameterize(mu_s, lv_s), reparameterize(mu_l, lv_l)
        rec = self.decoder(torch.cat([z_t, z_s, z_l], dim=1))
        return DualVAEOutput(rec[:, :3], rec[:, 3:], mu_s, lv_s, mu_t, lv_t, mu_l, lv_l, z_t, z_s, z_l)

    @torch.no_grad()
    def sample_pairs(self, n: int, generator: torch.Generator | None = None):
        """n new (spoof, live) pairs from the prior, each [n, 3, S, S] in [0, 1].

        As the original ``generated.py``: decoder input [noise_t, noise_id, noise_id], one identity
        code shared by both images and an independent spoof-pattern code (drawn first).
        """
        device = next(self.decoder.parameters()).device
        gen_device = generator.device if generator is not None else device
        noise_t = torch.randn(n, self.hdim, generator=generator, device=gen_device).to(device)
        noise_id = torch.randn(n, self.hdim, generator=generator, device=gen_device).to(device)
        return decode_pairs(self.decoder, noise_t, noise_id)

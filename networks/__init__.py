"""Networks of the DSDG pipeline, one per file: central-difference conv (``cdc``), CDCN / CDCN++
(``cdcn``), CDCN with the Depth Uncertainty Module (``cdcn_u``), LightCNN-29 v2 (``light_cnn``) and
the dual-VAE generator (``vae``). Each builds with no arguments into the published configuration."""
from __future__ import annotations

import torch.nn as nn

__all__ = ["DEPTH_NETS", "build_depth_net"]

DEPTH_NETS = ("cdcn_u", "cdcn", "cdcnpp")


def build_depth_net(name: str = "cdcn_u", **kwargs) -> nn.Module:
    """Depth network by name; kwargs (theta, width, image_size, basic_conv) go to its constructor.

    ``cdcn_u`` returns ``DUMOutput`` (mu, logvar, sample, ...); ``cdcn``/``cdcnpp`` return a NamedTuple
    whose first field ``map`` is the depth map (no logvar).
    """
    key = name.lower().replace("-", "_").replace("+", "p")
    if key == "cdcn_u":
        from networks.cdcn_u import CDCN_u
        return CDCN_u(**kwargs)
    if key == "cdcn":
        from networks.cdcn import CDCN
        return CDCN(**kwargs)
    if key == "cdcnpp":
        from networks.cdcn import CDCNpp
        return CDCNpp(**kwargs)
    raise ValueError(f"unknown depth network {name!r}; choose one of {', '.join(DEPTH_NETS)}")

"""Networks of the DSDG pipeline, one per file: central-difference conv (``cdc``), shared pieces
(``blocks``), the Depth Uncertainty Module's heads (``dum``), CDCN / CDCN++ (``cdcn``), CDCN + DUM
(``cdcn_u``), DepthNet (+ DUM) (``depthnet_u``), ResNet-18 (+ DUM) (``resnet18_u``), LightCNN-29 v2
(``light_cnn``) and the dual-VAE generator (``vae``). Each builds with no arguments into the published
configuration. ``registry`` maps model names and checkpoints to depth networks."""
from __future__ import annotations

from networks.registry import DEPTH_NETS, build_depth_net

__all__ = ["DEPTH_NETS", "build_depth_net"]

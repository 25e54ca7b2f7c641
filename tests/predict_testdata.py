"""A tiny CDCN+DUM checkpoint trained inside the tests on the three sample photos, for predict/export tests.

The faces are found, cropped and given mesh depth maps by DUM/inference.py's FaceCropper (the path
predict.py takes) at 64 px input / 8 px maps, width 0.25. The net takes a few Adam steps of the DUM
loss toward depth/255 for the live photo and zero maps for the print and replay attacks, the
training targets of DSDG. The decision threshold stored in it sits halfway between the live score
and the highest attack score on these faces (a stand-in dev set). Built once per test session.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from DUM.inference import torch_threads

SAMPLES = {"image_T1.jpg": "live", "image_F1.jpg": "spoof", "image_F2.jpg": "spoof"}
ARCH = {"model": "cdcn_u", "theta": 0.7, "width": 0.25, "image_size": 64}
THRESHOLD_SOURCE = "tests: the three sample faces (stand-in dev set)"
STEPS = 40
_CACHE: dict = {}


def tiny_model(root: Path, samples_dir: Path) -> dict:
    """{'checkpoint', 'threshold', 'scores' (file name -> score), 'decisions', 'crops'}; cached per session."""
    if "model" in _CACHE:
        return _CACHE["model"]
    import cv2

    from DUM.inference import FaceCropper, TorchDepthModel, normalize, score_crops
    from DUM.losses import dum_loss
    from networks.registry import build_model
    from utils.checkpoint import save_checkpoint

    root.mkdir(parents=True, exist_ok=True)
    cropper = FaceCropper(ARCH["image_size"], ARCH["image_size"] // 8)
    frames = [cv2.imread(str(Path(samples_dir) / name)) for name in SAMPLES]
    crops = [faces[0] for faces in cropper(frames)]
    assert all(not c.problem for c in crops), [c.problem for c in crops]
    x = normalize([c.image for c in crops])
    target = torch.stack([torch.from_numpy(c.depth / 255.0 if label == "live" else np.zeros_like(c.depth))
                          for c, label in zip(crops, SAMPLES.values())]).float()
    with torch_threads(1):
        torch.manual_seed(0)
        net = build_model(ARCH)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        net.train()
        for _ in range(STEPS):
            out = net(x)
            loss = dum_loss(out.sample, out.mu, out.logvar, target)
            opt.zero_grad()
            loss.total.backward()
            opt.step()
        model = TorchDepthModel(net, torch.device("cpu"), source="tiny", image_size=64, map_size=8, arch=ARCH)
        scores = [s.score for s in score_crops(model, crops)]
    live, attacks = scores[0], max(scores[1:])
    assert live > attacks, f"tiny model did not learn to separate the samples: {scores}"
    threshold = (live + attacks) / 2
    state = {"model": net.state_dict(), "config": dict(ARCH, protocol=1, seed=0), "epoch": 1,
             "threshold": threshold, "threshold_eer": threshold, "threshold_source": THRESHOLD_SOURCE,
             "threshold_info": {"split": "dev", "threshold_rule": "live iff score > threshold"}}
    path = save_checkpoint(state, root / "best.pt")
    _CACHE["model"] = {"checkpoint": path, "threshold": threshold, "crops": crops,
                       "scores": dict(zip(SAMPLES, scores)), "decisions": dict(SAMPLES)}
    return _CACHE["model"]

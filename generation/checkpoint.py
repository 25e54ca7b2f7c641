"""The generator checkpoint: what ``train_generator.py`` writes and ``generated.py`` reads.

One dict: ``format``, ``model`` (the DualVAE settings, enough to rebuild it), the state_dicts of the
four networks under their names, optimizer, scaler, epoch, RNG state, config and git SHA.
"""
from __future__ import annotations

import hashlib

import torch.nn as nn

from networks.vae import DualVAE
from utils.checkpoint import CheckpointError, load_checkpoint, load_state_dict_strict

NETS = ("spoof_encoder", "live_encoder", "decoder", "type_classifier")
CHECKPOINT_FORMAT = "dsdg-generator/1"


def model_config(args) -> dict:
    """The settings that rebuild the DualVAE (stored as the checkpoint's ``model``)."""
    return {"image_size": int(args.image_size), "hdim": int(args.hdim), "attack_types": int(args.attack_types),
            "width": float(args.width)}


def build_vae(cfg: dict) -> nn.Module:
    return DualVAE.from_config(image_size=cfg["image_size"], hdim=cfg["hdim"], attack_types=cfg["attack_types"],
                               width=cfg["width"])


def load_networks(vae: nn.Module, ckpt: dict, source) -> None:
    """Load the four networks' state_dicts of ``ckpt`` into ``vae``, strictly."""
    for name in NETS:
        load_state_dict_strict(getattr(vae, name), ckpt[name], source=f"{source} [{name}]")


def parameter_checksum(vae: nn.Module) -> str:
    """SHA-256 over every tensor of the four networks' state_dicts (exact equality across ranks/runs)."""
    h = hashlib.sha256()
    for name in NETS:
        for key, value in getattr(vae, name).state_dict().items():
            h.update(f"{name}.{key}".encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def load_generator(path, device="cpu") -> tuple[nn.Module, dict]:
    """Build the DualVAE described by a ``train_generator.py`` checkpoint and load its weights strictly."""
    ckpt = load_checkpoint(path, map_location="cpu", hint="(a checkpoint written by train_generator.py)")
    if ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a train_generator.py checkpoint (format {ckpt.get('format')!r})")
    vae = build_vae(ckpt["model"])
    load_networks(vae, ckpt, path)
    return vae.to(device).eval(), ckpt

"""The one home that turns a model name, or a checkpoint, into a depth network.

Every stage that builds a depth network (DUM/train.py, DUM/test.py, predict.py, export_onnx.py,
bench/) goes through :func:`build_model` or :func:`load_model`. A network is named by its registry
name (``--model``) and its settings (``theta`` for the central-difference ones, ``width``,
``image_size``); :func:`arch_settings` resolves them into the flat dict that checkpoints store under
``network`` (e.g. ``{"model": "resnet18_u", "width": 1.0, "image_size": 256}``), so test, predict and
export rebuild the right network from the file alone. Older checkpoints of DUM/train.py carry the
same values in ``config``; a plain original state_dict (``CDCN_U_P1.pkl``, an original depthnet_u or
ResNet18_u file) carries none, and its network is recognised from its key layout.

| name | network | DUM | parameters at width 1 |
| --- | --- | --- | --- |
| cdcn_u | CDCN + DUM (the published DSDG model) | yes | 2,245,592 |
| cdcn | CDCN (central-difference convs, ReLU depth head) | no | 2,245,016 |
| cdcnpp | CDCN++ (searched widths, spatial attention) | no | 2,257,352 |
| depthnet_u | DepthNet + DUM (CDCN_u with plain convs) | yes | 2,245,592 |
| depthnet | DepthNet (CDCN with plain convs) | no | 2,245,016 |
| resnet18_u | ResNet-18 + DUM | yes | 4,983,256 |
| resnet18 | ResNet-18 (its ``lastconv3`` depth head) | no | 4,983,256 |
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import torch
import torch.nn as nn

from networks.cdcn import CDCN, CDCNpp
from networks.cdcn_u import CDCN_u
from networks.depthnet_u import DepthNet, depthnet_u
from networks.dum import state_dict_from_checkpoint
from networks.resnet18_u import ResNet18, ResNet18_u
from utils.checkpoint import CheckpointError, clean_state_dict, load_checkpoint, load_state_dict_strict

__all__ = ["ModelSpec", "MODELS", "DEPTH_NETS", "ARCH_KEYS", "get_spec", "arch_settings", "build_model",
           "build_depth_net", "infer_model", "checkpoint_arch", "load_model", "LoadedModel"]

log = logging.getLogger(__name__)

ARCH_KEYS = ("theta", "width", "image_size")  # the settings a checkpoint records besides the name
_TYPES = {"theta": float, "width": float, "image_size": int}
_CDC = {"theta": 0.7, "width": 1.0, "image_size": 256}
_PLAIN = {"width": 1.0, "image_size": 256}


@dataclass(frozen=True)
class ModelSpec:
    name: str                     # registry name, the value of --model
    label: str                    # backbone name for tables: CDCN, DepthNet, ResNet-18
    dum: bool                     # mu/logvar heads (True) or one ReLU depth map (False)
    build: Callable[..., nn.Module]
    defaults: Mapping = field(default_factory=dict)  # constructor settings of the published model
    baseline: str = ""            # the same backbone without DUM (for DUM networks)


MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("cdcn_u", "CDCN", True, CDCN_u, _CDC, baseline="cdcn"),
    ModelSpec("cdcn", "CDCN", False, CDCN, _CDC),
    ModelSpec("cdcnpp", "CDCN++", False, CDCNpp, _CDC),
    ModelSpec("depthnet_u", "DepthNet", True, depthnet_u, _PLAIN, baseline="depthnet"),
    ModelSpec("depthnet", "DepthNet", False, DepthNet, _PLAIN),
    ModelSpec("resnet18_u", "ResNet-18", True, ResNet18_u, _PLAIN, baseline="resnet18"),
    ModelSpec("resnet18", "ResNet-18", False, ResNet18, _PLAIN),
)}
DEPTH_NETS = tuple(MODELS)
_ALIASES = {"cdcn++": "cdcnpp", "resnet18u": "resnet18_u", "depthnetu": "depthnet_u", "resnet_18": "resnet18",
            "resnet_18_u": "resnet18_u"}


def get_spec(name: str) -> ModelSpec:
    key = str(name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key).replace("+", "p")
    if key not in MODELS:
        raise ValueError(f"unknown depth network {name!r}; choose one of {', '.join(DEPTH_NETS)}")
    return MODELS[key]


def arch_settings(name: str, **settings) -> dict:
    """``{"model": name, <its settings>}``: given values (None = not given) over the published defaults.

    Settings a network does not have (``theta`` of the plain-conv networks) are dropped, so one set of
    flags serves every network.
    """
    spec = get_spec(name)
    arch = {"model": spec.name}
    for key, default in spec.defaults.items():
        value = settings.get(key)
        arch[key] = _TYPES[key](default if value is None else value)
    return arch


def build_model(arch: Mapping | str, **kwargs) -> nn.Module:
    """The network of ``arch`` (a dict of :func:`arch_settings`, or a name with settings in kwargs).

    Other kwargs (``memory_efficient``, ``basic_conv``) go to the constructor as they are.
    """
    arch = dict(arch) if isinstance(arch, Mapping) else {"model": arch}
    settings = {k: kwargs.pop(k, None) for k in ARCH_KEYS}
    settings = {k: v if v is not None else arch.get(k) for k, v in settings.items()}
    resolved = arch_settings(arch["model"], **settings)
    net = get_spec(resolved["model"]).build(**{k: v for k, v in resolved.items() if k != "model"}, **kwargs)
    net.arch = resolved  # what a checkpoint of this network records (a plain dict, weights_only-safe)
    return net


def build_depth_net(name: str = "cdcn_u", **kwargs) -> nn.Module:
    """Depth network by name; kwargs (theta, width, image_size, basic_conv, memory_efficient) go to its
    constructor (``theta`` is ignored by the networks without central-difference convolutions).

    DUM networks return ``DUMOutput`` (mu, logvar, sample, ...); the baselines a NamedTuple whose
    first field ``map`` is the depth map (no logvar).
    """
    return build_model(name, **kwargs)


def infer_model(state_dict: Mapping) -> str | None:
    """The registry name a state_dict's key layout belongs to (``module.`` stripped), or None."""
    keys = set(clean_state_dict(state_dict))
    dum = "mu_head.0.weight" in keys
    if "layer1.0.left.0.weight" in keys:
        return "resnet18_u" if dum else "resnet18"
    if "sa1.conv1.weight" in keys:
        return "cdcnpp"
    if "conv1.0.conv.weight" in keys:
        return "cdcn_u" if dum else "cdcn"
    if "conv1.0.weight" in keys and "Block1.0.weight" in keys:
        return "depthnet_u" if dum else "depthnet"
    return None


def checkpoint_arch(obj: Mapping, **overrides) -> dict:
    """Network of a loaded checkpoint: ``overrides`` (None = not given) over its ``network`` record,
    over the ``config`` of older DUM/train.py checkpoints, over the layout of a plain state_dict,
    over the published CDCN_u."""
    plain = bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())
    stored: dict = {}
    if not plain:
        for key in ("config", "network"):  # "network" wins over an older "config"
            if isinstance(obj.get(key), Mapping):
                stored.update({k: v for k, v in obj[key].items() if k in ("model", *ARCH_KEYS) and v is not None})
    name = overrides.get("model") or stored.get("model")
    if name is None:
        sd = obj if plain else {}
        if not plain:
            try:
                sd = state_dict_from_checkpoint(dict(obj))
            except CheckpointError:
                sd = {}
        name = infer_model(sd) or "cdcn_u"
    settings = {k: overrides.get(k) if overrides.get(k) is not None else stored.get(k) for k in ARCH_KEYS}
    return arch_settings(name, **settings)


class LoadedModel(NamedTuple):
    net: nn.Module     # eval mode, on the CPU (or map_location)
    arch: dict         # arch_settings of the network
    checkpoint: dict   # the loaded file (thresholds, epoch, config ...)


def load_model(path, map_location="cpu", **overrides) -> LoadedModel:
    """Build the network a checkpoint holds and load its weights strictly (``module.`` keys accepted).

    ``overrides`` (model, theta, width, image_size; None = from the file) exist for plain state_dicts
    saved at other settings; our checkpoints and the original files need none.
    """
    path = Path(path)
    obj = load_checkpoint(path, map_location=map_location,
                          hint="Pass best.pt/last.pt of DUM/train.py or an original state_dict such as CDCN_U_P1.pkl.")
    arch = checkpoint_arch(obj, **overrides)
    net = build_model(arch)
    load_state_dict_strict(net, state_dict_from_checkpoint(obj, str(path)), source=str(path))
    log.debug("loaded %s as %s", path, arch)
    return LoadedModel(net.eval(), arch, obj)

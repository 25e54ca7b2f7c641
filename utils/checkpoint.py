"""Checkpoints: atomic saves, ``weights_only`` loads with clear errors, one ``module.`` stripper.

A checkpoint is one plain dict (state_dicts, optimiser, scheduler, scaler, epoch, RNG state, config
as a plain dict, git SHA). It is always loaded with ``torch.load(..., weights_only=True)``: a file
holding pickled code is refused, never executed.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import torch

from utils.io import default_permissions


class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable, unsafe, or does not fit the network."""


def save_checkpoint(state: Mapping, path) -> Path:
    """``torch.save`` to a temp file beside ``path``, then ``os.replace``: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    default_permissions(fd)
    os.close(fd)
    try:
        torch.save(dict(state), tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path, map_location="cpu", hint: str = "") -> dict:
    """Load with ``weights_only=True``. ``hint`` says where the file should come from (for errors)."""
    path = Path(path)
    where = f" {hint}" if hint else ""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}.{where}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: it holds pickled objects that are not plain tensors/containers "
            f"(weights_only=True). Convert it to a plain state_dict first.{where} ({exc.__class__.__name__})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a foreign file can fail anywhere in the legacy unpickler
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or wrong file?): "
                              f"{str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}.{where}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict (state_dict or checkpoint), got {type(obj).__name__}")
    return obj


def clean_state_dict(state_dict: Mapping[str, torch.Tensor], prefixes: Iterable[str] = ("module.",)) -> dict:
    """Strip DataParallel/DDP prefixes (``module.``) from every key that has one."""
    out = {}
    for key, value in state_dict.items():
        for prefix in prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out


def load_state_dict_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "",
                           drop_prefixes: Iterable[str] = ()) -> None:
    """Strip ``module.``, drop keys under ``drop_prefixes`` (e.g. a classifier), load ``strict=True``.

    Mismatches raise CheckpointError naming the source file and the offending keys and shapes.
    """
    sd = clean_state_dict(state_dict)
    drop = tuple(drop_prefixes)
    if drop:
        sd = {k: v for k, v in sd.items() if not k.startswith(drop)}
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
             for k in sorted(set(sd) & set(own)) if tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        def head(xs):
            return ", ".join(xs[:6]) + (f" ... (+{len(xs) - 6})" if len(xs) > 6 else "")
        parts = []
        if missing:
            parts.append(f"missing keys: {head(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {head(unexpected)}")
        if wrong:
            parts.append(f"shape mismatch: {head(wrong)}")
        raise CheckpointError(f"{source or 'state_dict'} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare module inside DDP/DataParallel (what we save)."""
    return model.module if hasattr(model, "module") and isinstance(model.module, torch.nn.Module) else model

"""MTCNN weights from the ``mtcnn`` pip package, converted into our networks (networks/mtcnn.py).

The weights are read from ``mtcnn==1.0.0``'s ``mtcnn/assets/weights/{pnet,rnet,onet}.lz4``
(``joblib`` pickles of Keras weight lists). The package is located with ``importlib.util.find_spec``
and never imported: its ``__init__`` imports TensorFlow (see the README's dependency notes).
Layout of those lists: convolution kernels HWIO, dense kernels (in, out), biases and PReLU slopes
(C,) or (1, 1, C); the heads are told apart by their output width (2 face probability, 4 box
regression, 10 landmarks). Keras flattens the last feature map in (W, H, C) order. ``joblib.load``
unpickles, so only files from the installed package (or a folder the user names) are read.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from networks.mtcnn import ONet, PNet, RNet
from utils.io import InputError

WEIGHT_FILES = {"pnet": "pnet.lz4", "rnet": "rnet.lz4", "onet": "onet.lz4"}
INSTALL_HINT = "pip install mtcnn==1.0.0"
_HEAD_WIDTHS = {2: "prob", 4: "box", 10: "landmarks"}


class MTCNNWeightsError(InputError):
    """The MTCNN weights are missing or do not have the expected layout."""


def _package_locations(name: str = "mtcnn") -> list[str]:
    """Folders of the installed package ``name``, found without importing it.

    When a script in data/ runs, data/ is first on sys.path and data/mtcnn.py (beside this file)
    is a top-level module called ``mtcnn``: find_spec then returns it (not a package), so search the
    other sys.path entries too."""
    here = Path(__file__).resolve().parent
    specs = []
    try:
        specs.append(importlib.util.find_spec(name))
    except (ImportError, ValueError):
        pass
    others = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    specs.append(importlib.machinery.PathFinder.find_spec(name, others))
    return [loc for spec in specs if spec is not None for loc in (spec.submodule_search_locations or [])]


def mtcnn_weights_dir() -> Path:
    """The ``assets/weights`` folder of the installed ``mtcnn`` package."""
    for location in _package_locations():
        folder = Path(location) / "assets" / "weights"
        if folder.is_dir():
            return folder
    raise MTCNNWeightsError(
        "the MTCNN weights ship in the 'mtcnn' package, which is not installed "
        f"(or has no assets/weights folder): run `{INSTALL_HINT}` (only its weight files are used; "
        "TensorFlow is not needed)")


def _read_weight_list(path: Path) -> list[np.ndarray]:
    import joblib  # a dependency of mtcnn; imported late so this module loads without it

    if not path.is_file():
        raise MTCNNWeightsError(f"{path}: MTCNN weight file missing; reinstall with `{INSTALL_HINT}`")
    try:
        arrays = joblib.load(path)
    except Exception as exc:  # joblib raises many kinds (missing lz4, truncated file, ...)
        raise MTCNNWeightsError(f"{path}: could not read MTCNN weights ({exc}); reinstall with `{INSTALL_HINT}`"
                                " (reading .lz4 needs the 'lz4' package)") from exc
    if not isinstance(arrays, (list, tuple)) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise MTCNNWeightsError(f"{path}: expected a list of arrays (mtcnn 1.0.0 layout), got {type(arrays).__name__}")
    return list(arrays)


def _copy(param: torch.Tensor, value: np.ndarray, what: str) -> None:
    tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    if tuple(tensor.shape) != tuple(param.shape):
        raise MTCNNWeightsError(f"{what}: shape {tuple(value.shape)} does not fit {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(tensor)


def _take_dense_or_conv(layer: nn.Module, kernel: np.ndarray, bias: np.ndarray, what: str) -> None:
    if isinstance(layer, nn.Conv2d):
        if kernel.ndim != 4:
            raise MTCNNWeightsError(f"{what}: expected a 4-d HWIO kernel, got shape {kernel.shape}")
        kernel = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    else:
        if kernel.ndim != 2:
            raise MTCNNWeightsError(f"{what}: expected a 2-d (in, out) kernel, got shape {kernel.shape}")
        kernel = kernel.T  # (in, out) -> (out, in)
    _copy(layer.weight, kernel, what + " kernel")
    _copy(layer.bias, bias.reshape(-1), what + " bias")


def load_keras_weights(net: nn.Module, arrays: Sequence[np.ndarray], source: str = "<weights>") -> nn.Module:
    """Copy a Keras ``get_weights()`` list into one of our nets, checking every shape."""
    arrays = list(arrays)
    pos = 0

    def take(count: int, what: str) -> list[np.ndarray]:
        nonlocal pos
        if pos + count > len(arrays):
            raise MTCNNWeightsError(f"{source}: ran out of arrays at {what} ({len(arrays)} arrays in the file)")
        out = arrays[pos:pos + count]
        pos += count
        return out

    for name in net.body:
        layer = getattr(net, name)
        what = f"{source}: {type(net).__name__}.{name}"
        if isinstance(layer, nn.PReLU):
            (slope,) = take(1, name)
            _copy(layer.weight, slope.reshape(-1), what)
        else:
            kernel, bias = take(2, name)
            _take_dense_or_conv(layer, kernel, bias, what)
    done = set()
    while pos < len(arrays):
        kernel, bias = take(2, "heads")
        head = _HEAD_WIDTHS.get(int(kernel.shape[-1]))
        if head not in net.heads or head in done:
            raise MTCNNWeightsError(f"{source}: unexpected head of width {kernel.shape[-1]} for {type(net).__name__}")
        _take_dense_or_conv(getattr(net, head), kernel, bias, f"{source}: {type(net).__name__}.{head}")
        done.add(head)
    if done != set(net.heads):
        raise MTCNNWeightsError(f"{source}: heads {sorted(set(net.heads) - done)} missing for {type(net).__name__}")
    return net


def load_mtcnn_nets(weights_dir=None) -> tuple[PNet, RNet, ONet]:
    """The three nets with the packaged weights, in eval mode on the CPU."""
    folder = Path(weights_dir) if weights_dir is not None else mtcnn_weights_dir()
    nets = []
    for key, cls in (("pnet", PNet), ("rnet", RNet), ("onet", ONet)):
        path = folder / WEIGHT_FILES[key]
        nets.append(load_keras_weights(cls(), _read_weight_list(path), str(path)).eval())
    return tuple(nets)

"""Speed settings of a training step that change no code path: TF32, channels-last, compile (the
precision policy, autocast included, is utils/training.py's).

One place for the switches the GPU benchmark (bench/bench_gpu_train.py) measures, so a training
script can take the same ones. TF32: PyTorch enables it for cuDNN convolutions by default
(``torch.backends.cudnn.allow_tf32`` is True; matmuls are off by default) and it rounds the
convolution inputs to a 10-bit mantissa (about 1e-3 relative per product), so fp32 and TF32 runs
differ at that level.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

__all__ = ["tf32", "to_channels_last", "maybe_compile"]


@contextmanager
def tf32(enabled: bool):
    """TF32 for cuDNN convolutions and CUDA matmuls on or off inside the block, restored afterwards."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def to_channels_last(model: nn.Module, x: torch.Tensor | None = None):
    """NHWC weights (and input): cuDNN's tensor-core convolutions run NHWC without transposes."""
    model = model.to(memory_format=torch.channels_last)
    return model if x is None else (model, x.contiguous(memory_format=torch.channels_last))


def maybe_compile(model: nn.Module, enabled: bool, mode: str | None = None) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (the module's parameters and state_dict are shared)."""
    return torch.compile(model, mode=mode) if enabled else model

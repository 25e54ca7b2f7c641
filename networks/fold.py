"""Inference-only rewrites of a trained depth network: fewer, plainer layers, the same outputs.

* :func:`fold_to_plain_convs`: every ``Conv2d_cd`` becomes an ``nn.Conv2d`` holding its folded kernel
  (centre tap W_c - theta * sum W, exact for the 3x3/padding-1 layers of these networks; see
  ``networks/cdc.py``).
* :func:`fold_batchnorm`: every eval-mode ``BatchNorm2d`` that directly follows a convolution inside
  an ``nn.Sequential`` is folded into that convolution, which gains a bias:
  W' = W * g / sqrt(v + eps) per output channel, b' = (b - m) * g / sqrt(v + eps) + beta
  (running mean m and variance v). The BatchNorm becomes ``nn.Identity``, so Sequential indices stay.
* :func:`fold_for_inference`: both, on a copy; what predict.py, export_onnx.py and the benchmark run.

These change the float32 rounding only (about 1e-6 relative; ``tests/test_fold.py`` checks it), so
they are for prediction: the folded module has a different state_dict and cannot be trained on
(training needs the batch statistics).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from networks.cdc import Conv2d_cd

__all__ = ["fold_to_plain_convs", "fold_batchnorm", "fold_for_inference", "count_batchnorm"]


def fold_to_plain_convs(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every Conv2d_cd replaced by an nn.Conv2d holding its folded kernel."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, Conv2d_cd):
                continue
            c = child.conv
            if abs(child.theta) >= 1e-8 and not child.foldable:
                raise ValueError(f"{name}: Conv2d_cd {c} cannot be folded into one convolution "
                                 f"(needs an odd square kernel with 'same' padding)")
            plain = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
                              c.groups, bias=c.bias is not None)
            with torch.no_grad():
                plain.weight.copy_(child.folded_weight() if abs(child.theta) >= 1e-8 else c.weight)
                if c.bias is not None:  # the original feeds the bias to the 1x1 term as well
                    plain.bias.copy_(c.bias * (1.0 - child.theta) if abs(child.theta) >= 1e-8 else c.bias)
            setattr(parent, name, plain)
    return model


def _conv_with_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One nn.Conv2d computing bn(conv(x)) with ``bn``'s running statistics (eval mode), in float64."""
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    with torch.no_grad():
        var, mean = bn.running_var.double(), bn.running_mean.double()
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
        scale = gamma / torch.sqrt(var + bn.eps)                                    # [C_out]
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(var)
        fused.weight.copy_((conv.weight.double() * scale[:, None, None, None]).to(conv.weight.dtype))
        fused.bias.copy_(((bias - mean) * scale + beta).to(conv.weight.dtype))
    return fused.to(conv.weight.device)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold, in place, each BatchNorm2d that directly follows an nn.Conv2d in an nn.Sequential;
    returns how many were folded. Run :func:`fold_to_plain_convs` first (a Conv2d_cd is left alone)."""
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for prev, name in zip(names[:-1], names[1:]):
            conv, bn = seq._modules[prev], seq._modules[name]
            if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
                    and bn.running_var is not None and bn.num_features == conv.out_channels):
                seq._modules[prev] = _conv_with_bn(conv, bn)
                seq._modules[name] = nn.Identity()
                folded += 1
    return folded


def count_batchnorm(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def fold_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with central differences and BatchNorm folded into plain convolutions."""
    plain = fold_to_plain_convs(model.eval()).eval()
    fold_batchnorm(plain)
    return plain

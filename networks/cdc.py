"""Central-difference convolution (CDC), the building block of CDCN, CDCN++ and CDCN+DUM.

Yu et al., "Searching Central Difference Convolutional Networks for Face Anti-Spoofing", CVPR 2020,
eq. (4): y = conv(x, W) - theta * conv(x, sum_k W_k), the second term a 1x1 convolution with the
kernel's spatial sum. The original code runs it as two convolutions. When the kernel is odd and
square and the padding keeps its centre tap on the output position (3x3, padding 1, any stride),
the 1x1 term samples exactly the pixel the centre tap sees, so both terms fold into ONE convolution
whose centre tap is W_c - theta * sum(W). The fold is recomputed from the stored weight inside every
forward: gradients reach ``conv.weight`` and the state_dict keeps the published layout.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ["Conv2d_cd", "fold_cd_weight", "set_cdc_fold", "run_memory_efficient"]


def fold_cd_weight(weight: torch.Tensor, theta: float) -> torch.Tensor:
    """Kernel (out, in/groups, k, k) with ``theta * sum(W)`` taken off its centre tap (differentiable)."""
    kh, kw = weight.shape[-2:]
    w_sum = weight.sum(dim=(2, 3), keepdim=True)  # (out, in, 1, 1)
    # Zero-pad the 1x1 sum to k x k so it lands on the centre tap, without an in-place write into
    # a leaf-derived tensor (keeps autograd simple and allocation to one kernel-sized tensor).
    centre = F.pad(w_sum, (kw // 2, kw // 2, kh // 2, kh // 2))
    return weight - theta * centre


class Conv2d_cd(nn.Module):
    """CDC layer. Attribute ``conv`` (key ``conv.weight``) is a file-format name: keep it.

    ``fold=True`` (default) computes the layer as one convolution whenever that is exact; ``fold=False``
    runs the original two-convolution form (kept for the equality test and the benchmark).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, dilation: int = 1, groups: int = 1, bias: bool = False,
                 theta: float = 0.7, fold: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              padding=padding, dilation=dilation, groups=groups, bias=bias)
        self.theta = float(theta)
        self.fold = bool(fold)

    @property
    def foldable(self) -> bool:
        c = self.conv
        kh, kw = c.kernel_size
        # The centre tap sits on the output position iff padding == dilation * (k // 2) per axis.
        return (kh == kw and kh % 2 == 1 and isinstance(c.padding, tuple)
                and c.padding == (c.dilation[0] * (kh // 2), c.dilation[1] * (kw // 2))
                and c.padding_mode == "zeros")

    def folded_weight(self) -> torch.Tensor:
        """The single k x k kernel equivalent to this layer (exact when ``foldable``)."""
        return fold_cd_weight(self.conv.weight, self.theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if abs(self.theta) < 1e-8:  # the original returns the plain convolution here
            return c(x)
        if self.fold and self.foldable:
            # The original also feeds the bias to the 1x1 term, so the folded bias is b * (1 - theta).
            bias = None if c.bias is None else c.bias * (1.0 - self.theta)
            return F.conv2d(x, self.folded_weight(), bias, c.stride, c.padding, c.dilation, c.groups)
        out_normal = c(x)
        w_sum = c.weight.sum(dim=(2, 3), keepdim=True)
        out_diff = F.conv2d(x, w_sum, c.bias, c.stride, 0, 1, c.groups)
        return out_normal - self.theta * out_diff

    def extra_repr(self) -> str:
        return f"theta={self.theta}, fold={self.fold}"


def set_cdc_fold(model: nn.Module, fold: bool) -> nn.Module:
    """Switch every Conv2d_cd inside ``model`` between folded and original two-conv form."""
    for m in model.modules():
        if isinstance(m, Conv2d_cd):
            m.fold = bool(fold)
    return model


# --------------------------------------------------------------------------------------------------
# Memory-efficient training path: BatchNorm -> ReLU -> (conv | max-pool) as one autograd node.
#
# Plain autograd keeps two activation-sized tensors per CD-BN-ReLU layer: the conv output (BN needs
# it) and the ReLU output (the next conv needs it for its weight gradient, max-pool for its
# backward). The ReLU output is a cheap elementwise function of the conv output and the batch
# statistics, so this node saves only the conv output and recomputes the ReLU output during
# backward: one extra elementwise pass per layer instead of one stored tensor. Forward values and
# running-statistics updates are those of nn.BatchNorm2d (same aten kernel); the recomputed ReLU
# output can differ from the forward one in the last bit, which only touches the weight gradient.


class _BNReLUThen(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c, gamma, beta, weight, running_mean, running_var, momentum, eps, conv_cfg, pool_cfg):
        y, mean, invstd = torch.ops.aten.native_batch_norm(c, gamma, beta, running_mean, running_var,
                                                           True, momentum, eps)
        r = y.relu_()
        ctx.eps, ctx.conv_cfg, ctx.pool_cfg = eps, conv_cfg, pool_cfg
        if weight is not None:
            stride, padding, dilation, groups = conv_cfg
            out = F.conv2d(r, weight, None, stride, padding, dilation, groups)
            ctx.save_for_backward(c, gamma, beta, mean, invstd, weight)
        else:
            k, s, p = pool_cfg
            out, idx = torch.ops.aten.max_pool2d_with_indices(r, [k, k], [s, s], [p, p], [1, 1], False)
            ctx.save_for_backward(c, gamma, beta, mean, invstd, idx)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        c, gamma, beta, mean, invstd, w_or_idx = ctx.saved_tensors
        scale = gamma * invstd
        shift = beta - mean * scale
        r = torch.addcmul(shift[None, :, None, None], c, scale[None, :, None, None]).relu_()
        grad_out = grad_out.contiguous(memory_format=_memory_format(c))
        grad_w = None
        if ctx.conv_cfg is not None:
            stride, padding, dilation, groups = ctx.conv_cfg
            grad_r, grad_w, _ = torch.ops.aten.convolution_backward(
                grad_out, r, w_or_idx, None, list(stride), list(padding), list(dilation), False, [0, 0],
                groups, [True, ctx.needs_input_grad[3], False])
        else:
            k, s, p = ctx.pool_cfg
            grad_r = torch.ops.aten.max_pool2d_with_indices_backward(grad_out, r, [k, k], [s, s], [p, p],
                                                                     [1, 1], False, w_or_idx)
        # ReLU backward in place: grad_r is ours, so no third activation-sized buffer.
        grad_y = torch.ops.aten.threshold_backward.grad_input(grad_r, r, 0, grad_input=grad_r)
        del r, grad_r
        grad_c, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
            grad_y, c, gamma, None, None, mean, invstd, True, ctx.eps, [True, True, True])
        return grad_c, grad_gamma, grad_beta, grad_w, None, None, None, None, None, None


def _memory_format(t: torch.Tensor):
    return torch.channels_last if t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous() \
        else torch.contiguous_format


def _fusable_bn(m) -> bool:
    # Exactly BatchNorm2d (not SyncBatchNorm) with affine parameters and running statistics.
    return type(m) is nn.BatchNorm2d and m.affine and m.track_running_stats


def _bn_momentum(bn: nn.BatchNorm2d) -> float:
    bn.num_batches_tracked.add_(1)  # what nn.BatchNorm2d.forward does in training mode
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


def _is_max_pool(m) -> bool:
    return (type(m) is nn.MaxPool2d and m.kernel_size == 3 and m.stride == 2 and m.padding == 1
            and m.dilation == 1 and not m.ceil_mode and not m.return_indices)


def run_memory_efficient(modules, x: torch.Tensor, capture=()):
    """Run a flat list of modules, fusing every BatchNorm2d -> ReLU -> (folded Conv2d_cd | MaxPool2d(3,2,1))
    into one ``_BNReLUThen`` node; anything else runs as usual. Training mode only (batch statistics).

    Returns (output, {i: output after module i for i in capture}).
    """
    captured, i, n = {}, 0, len(modules)
    while i < n:
        m = modules[i]
        nxt = modules[i + 2] if i + 2 < n else None
        if (nxt is not None and _fusable_bn(m) and type(modules[i + 1]) is nn.ReLU
                and not any(j in capture for j in (i, i + 1))):
            if isinstance(nxt, Conv2d_cd) and nxt.fold and nxt.foldable and nxt.conv.bias is None:
                c = nxt.conv
                x = _BNReLUThen.apply(x, m.weight, m.bias, nxt.folded_weight(), m.running_mean, m.running_var,
                                      _bn_momentum(m), m.eps, (c.stride, c.padding, c.dilation, c.groups), None)
                i += 3
            elif _is_max_pool(nxt):
                x = _BNReLUThen.apply(x, m.weight, m.bias, None, m.running_mean, m.running_var,
                                      _bn_momentum(m), m.eps, None, (3, 2, 1))
                i += 3
            else:
                x = m(x)
                i += 1
            if i - 1 in capture:
                captured[i - 1] = x
            continue
        x = m(x)
        if i in capture:
            captured[i] = x
        i += 1
    return x, captured

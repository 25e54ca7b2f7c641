"""networks/fold.py: BatchNorm and central differences folded into plain convolutions give the outputs
of the original two-convolution network with BatchNorm (eval mode)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from networks import build_depth_net
from networks.cdc import Conv2d_cd, set_cdc_fold
from networks.fold import count_batchnorm, fold_batchnorm, fold_for_inference, fold_to_plain_convs


def trained_like(model: str, seed: int = 0) -> nn.Module:
    """A tiny network whose BatchNorm layers hold non-trivial statistics and affine parameters."""
    torch.manual_seed(seed)
    net = build_depth_net(model, theta=0.7, width=0.25, image_size=32)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.2, 3.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return net.eval()


@pytest.mark.parametrize("model", ["cdcn_u", "cdcn", "cdcnpp"])
def test_folded_network_matches_the_original(model):
    net = trained_like(model)
    n_bn = count_batchnorm(net)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    set_cdc_fold(net, False)  # reference: the original two convolutions per CDC, BatchNorm separate
    with torch.inference_mode():
        ref = net(x)
        folded = fold_for_inference(net)
        got = folded(x)
    assert count_batchnorm(folded) == 0 and n_bn > 0
    assert not any(isinstance(m, Conv2d_cd) for m in folded.modules())
    assert count_batchnorm(net) == n_bn  # the original is left alone
    for name in ("mu", "logvar") if model == "cdcn_u" else ("map",):
        r, g = getattr(ref, name), getattr(got, name)
        assert r.shape == g.shape
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5 * float(r.abs().max()))


def test_fold_counts_only_conv_then_batchnorm():
    seq = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1))
    with torch.no_grad():
        seq[1].running_mean.fill_(0.3)
        seq[1].running_var.fill_(2.0)
        seq[0].bias.fill_(0.1)
    seq.eval()
    x = torch.randn(2, 2, 8, 8)
    with torch.inference_mode():
        ref = seq(x)
    assert fold_batchnorm(seq) == 1  # the BatchNorm after the ReLU has no conv to go into
    assert isinstance(seq[1], nn.Identity) and isinstance(seq[3], nn.BatchNorm2d)
    with torch.inference_mode():
        torch.testing.assert_close(seq(x), ref, rtol=1e-5, atol=1e-6)


def test_plain_conv_fold_rejects_unfoldable_cdc():
    net = nn.Sequential(Conv2d_cd(2, 2, kernel_size=3, padding=0, theta=0.7))
    with pytest.raises(ValueError, match="cannot be folded"):
        fold_to_plain_convs(net)


@pytest.mark.parametrize("model", ["depthnet_u", "resnet18_u"])
def test_other_registry_networks_keep_their_outputs(model):
    """BatchNorm outside a Sequential (ResNet's bn1/bn2) stays as it is; outputs are unchanged."""
    from DUM.engine import depth_outputs
    from networks.registry import build_model

    torch.manual_seed(0)
    net = build_model(model, width=0.25, image_size=32)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.2, 3.0)
    net.eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        _, ref, _ = depth_outputs(net(x))
        folded = fold_for_inference(net)
        _, got, _ = depth_outputs(folded(x))
    assert count_batchnorm(folded) < count_batchnorm(net)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))

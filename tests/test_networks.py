"""Networks: key layouts against the original's listings, the reference forward of CDCN+DUM, the folded
central-difference convolution, the fused training path, gradients, small variants and loading the
published checkpoint layouts."""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from conftest import find_fixture
from networks import build_depth_net
from networks.cdc import Conv2d_cd, fold_cd_weight, set_cdc_fold
from networks.cdcn import CDCN, CDCNpp
from networks.cdcn_u import CDCN_u, DUMOutput, load_pretrained
from networks.light_cnn import (LIGHTCNN_FILE, LightCNN29v2, identity_features, load_lightcnn,
                                save_lightcnn_checkpoint)
from networks.vae import Decoder, DualVAE, LiveEncoder, SpoofEncoder, TypeClassifier, reparameterize
from utils.checkpoint import CheckpointError

_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def _layout(module: torch.nn.Module) -> list:
    return [(k, list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in module.state_dict().items()]


def _listing(entries: list) -> list:
    return [(e["key"], e["shape"], e["dtype"]) for e in entries]


def _relerr(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# ----------------------------------------------------------------------------------- key layouts

def test_cdcn_u_keys_equal_reference(reference_dir):
    ref = json.loads((reference_dir / "cdcn_dum_state_dict_keys.json").read_text())
    model = CDCN_u()
    assert _layout(model) == _listing(ref["keys"])
    assert sum(p.numel() for p in model.parameters()) == ref["n_parameters"] == 2_245_592


def test_lightcnn_keys_equal_reference(reference_dir):
    ref = json.loads((reference_dir / "lightcnn29v2_state_dict_keys.json").read_text())
    net = LightCNN29v2()
    assert _layout(net) == _listing(ref["keys"])
    assert sum(p.numel() for p in net.parameters()) == ref["n_parameters"]


@pytest.mark.parametrize("name,cls", [("netE_nir", SpoofEncoder), ("netE_vis", LiveEncoder),
                                      ("netG", Decoder), ("netCls", TypeClassifier)])
def test_generator_keys_equal_reference(reference_dir, name, cls):
    ref = json.loads((reference_dir / "generator_state_dict_keys.json").read_text())["networks"][name]
    net = cls()
    assert _layout(net) == _listing(ref["keys"])
    assert sum(p.numel() for p in net.parameters()) == ref["n_parameters"]


def test_dual_vae_groups_the_four_networks(reference_dir):
    ref = json.loads((reference_dir / "generator_state_dict_keys.json").read_text())["networks"]
    vae = DualVAE()
    for attr, name in [("spoof_encoder", "netE_nir"), ("live_encoder", "netE_vis"), ("decoder", "netG"),
                       ("type_classifier", "netCls")]:
        assert _layout(getattr(vae, attr)) == _listing(ref[name]["keys"])


def test_cdcn_and_cdcnpp_parameter_counts():
    # docs/ORIGINAL.md 3.2 / 3.10.
    assert sum(p.numel() for p in CDCN().parameters()) == 2_245_016
    assert sum(p.numel() for p in CDCNpp().parameters()) == 2_257_352


def test_build_depth_net_factory():
    assert type(build_depth_net("cdcn_u", width=0.25, image_size=32)) is CDCN_u
    assert type(build_depth_net("CDCN", width=0.25, image_size=32)) is CDCN
    assert type(build_depth_net("cdcnpp", width=0.25, image_size=32)) is CDCNpp
    with pytest.raises(ValueError, match="unknown depth network"):
        build_depth_net("resnet50_u")


# ----------------------------------------------------------------------------------- reference forward

def _reference_forward(ref: dict, train: bool) -> DUMOutput:
    torch.manual_seed(0)
    model = CDCN_u()
    # Same constructor order as the original: seed-0 default init reproduces the reference weights.
    for k, v in ref["state_dict"].items():
        assert torch.equal(model.state_dict()[k], v), k
    model.load_state_dict(ref["state_dict"], strict=True)
    model.train(train)
    with torch.no_grad():
        torch.manual_seed(2024)
        return model(ref["input"])


def test_cdcn_u_matches_reference_outputs(reference_dir):
    """Against the trimmed reference the repository ships (same weights, input and noise as the full one)."""
    ref = torch.load(reference_dir / "cdcn_dum_reference_small.pt", weights_only=True)
    out = _reference_forward(ref, train=False)
    assert isinstance(out, DUMOutput) and len(out) == 8
    for name in ("mu", "logvar", "embedding", "x_Block3"):
        ours = getattr(out, {"embedding": "sample"}.get(name, name))
        assert ours.shape == ref[name].shape, name
        assert _relerr(ours, ref[name]) <= 1e-4, (name, _relerr(ours, ref[name]))
    # The sample used exactly the reference's noise draw.
    assert _relerr(out.sample, out.mu + ref["epsilon"] * torch.exp(0.5 * out.logvar)) <= 1e-6
    out = _reference_forward(ref, train=True)
    assert _relerr(out.mu, ref["train_mode_mu"]) <= 1e-4
    assert _relerr(out.logvar, ref["train_mode_logvar"]) <= 1e-4


def test_cdcn_u_matches_every_output_of_full_reference():
    """All eight outputs (the full file is not shipped: skips without the shared reference folder)."""
    ref = torch.load(find_fixture("reference/cdcn_dum_reference.pt"), weights_only=True)
    out = _reference_forward(ref, train=False)
    assert len(out) == len(ref["outputs"]) == 8
    for name, ours, theirs in zip(ref["output_names"], out, ref["outputs"]):
        assert ours.shape == theirs.shape, name
        assert _relerr(ours, theirs) <= 1e-4, (name, _relerr(ours, theirs))


# ----------------------------------------------------------------------------------- folded CDC

def _two_conv_reference(x, w, b, theta, stride, padding, groups):
    """Eq. (4) of the CDCN paper written out as the original two convolutions."""
    out = F.conv2d(x, w, b, stride, padding, 1, groups)
    return out - theta * F.conv2d(x, w.sum(dim=(2, 3), keepdim=True), b, stride, 0, 1, groups)


@pytest.mark.parametrize("theta", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("stride,groups,bias", [(1, 1, False), (2, 1, False), (1, 2, True)])
def test_folded_cdc_equals_two_convolutions(theta, stride, groups, bias):
    torch.manual_seed(1)
    folded = Conv2d_cd(4, 6, stride=stride, groups=groups, bias=bias, theta=theta)
    original = copy.deepcopy(folded)
    original.fold = False
    assert list(folded.state_dict()) == ["conv.weight"] + (["conv.bias"] if bias else [])
    x1 = torch.randn(2, 4, 9, 9, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = folded(x1), original(x2)
    expected = _two_conv_reference(x1.detach(), folded.conv.weight.detach(),
                                   None if folded.conv.bias is None else folded.conv.bias.detach(),
                                   theta, stride, 1, groups)
    assert torch.allclose(y1, expected, atol=1e-5, rtol=1e-5)
    assert torch.allclose(y2, expected, atol=1e-5, rtol=1e-5)
    # The folded kernel is a plain convolution kernel: its centre tap is W_c - theta * sum(W).
    w = folded.conv.weight.detach()
    fw = folded.folded_weight().detach()
    assert torch.allclose(fw[:, :, 1, 1], w[:, :, 1, 1] - theta * w.sum(dim=(2, 3)), atol=1e-6)
    assert torch.equal(fw[:, :, 0, :], w[:, :, 0, :])
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5, rtol=1e-5)
    assert torch.allclose(folded.conv.weight.grad, original.conv.weight.grad, atol=1e-4, rtol=1e-5)
    if bias:
        assert torch.allclose(folded.conv.bias.grad, original.conv.bias.grad, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("kernel,padding,dilation", [(5, 2, 1), (3, 2, 2), (1, 0, 1)])
def test_fold_is_exact_for_other_centred_kernels(kernel, padding, dilation):
    torch.manual_seed(2)
    layer = Conv2d_cd(3, 5, kernel_size=kernel, padding=padding, dilation=dilation, theta=0.7)
    assert layer.foldable
    x = torch.randn(1, 3, 11, 11)
    w = layer.conv.weight.detach()
    expected = F.conv2d(x, w, None, 1, padding, dilation) - 0.7 * F.conv2d(x, w.sum(dim=(2, 3), keepdim=True))
    assert torch.allclose(layer(x), expected, atol=1e-5)
    # Padding that moves the centre tap off the output pixel cannot be folded.
    assert not Conv2d_cd(3, 5, kernel_size=3, padding=0).foldable


def test_fold_weight_gradient_reaches_stored_weight():
    w = torch.randn(3, 2, 3, 3, requires_grad=True)
    fold_cd_weight(w, 0.7).sum().backward()
    # d/dW of sum(W - 0.7 * pad(sum W)): 1 everywhere, minus 0.7 * (one centre tap) for every tap.
    assert torch.allclose(w.grad, torch.full_like(w, 1 - 0.7))


def test_set_cdc_fold_switches_every_layer():
    model = CDCN_u(width=0.25, image_size=32)
    set_cdc_fold(model, False)
    assert all(not m.fold for m in model.modules() if isinstance(m, Conv2d_cd))
    set_cdc_fold(model, True)
    assert all(m.fold for m in model.modules() if isinstance(m, Conv2d_cd))


# ----------------------------------------------------------------------------------- fused training path

@pytest.mark.parametrize("cls", [CDCN_u, CDCN, CDCNpp])
@pytest.mark.parametrize("channels_last", [False, True])
def test_memory_efficient_training_equals_plain_autograd(cls, channels_last):
    torch.manual_seed(0)
    fused = cls(width=0.25, image_size=32)
    with torch.no_grad():  # non-trivial BN affine parameters so every term matters
        for p in fused.parameters():
            if p.dim() == 1:
                p.add_(0.2 * torch.randn_like(p))
    plain = copy.deepcopy(fused)
    plain.memory_efficient = False
    x = torch.randn(4, 3, 32, 32)
    if channels_last:
        fused, plain = fused.to(memory_format=torch.channels_last), plain.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    outs = []
    for model in (fused, plain):
        model.train()
        torch.manual_seed(5)
        out = model(x)
        sum((o ** 2).mean() for o in out[:3]).backward()
        outs.append(out)
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    for (name, pa), pb in zip(fused.named_parameters(), plain.parameters()):
        assert pa.grad is not None and _relerr(pa.grad, pb.grad) < 1e-4, name
    for (name, a), b in zip(fused.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), name  # running statistics and num_batches_tracked updated alike


# ----------------------------------------------------------------------------------- gradients

def _assert_all_grads(module):
    for name, p in module.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
            assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@pytest.mark.parametrize("name", ["cdcn_u", "cdcn", "cdcnpp"])
def test_depth_nets_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = build_depth_net(name, width=0.25, image_size=32).train()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    depth = torch.rand(4, 4, 4)
    out = model(x)
    assert out[0].shape == (4, 4, 4)
    if name == "cdcn_u":
        kl = 0.5 * (out.logvar.exp() + (out.mu - depth) ** 2 - 1 - out.logvar)
        loss = F.mse_loss(out.sample, depth) + 1e-3 * kl.sum(dim=(1, 2)).mean()
    else:
        loss = F.mse_loss(out.map, depth)
    assert torch.isfinite(loss)
    loss.backward()
    _assert_all_grads(model)


def test_dual_vae_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    vae = DualVAE(image_size=64, width=0.125, hdim=16)
    spoof, live = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
    out = vae(spoof, live)
    rec = F.mse_loss(out.rec_spoof, spoof) + F.mse_loss(out.rec_live, live)
    kl = sum((-0.5 * (1 + lv - mu ** 2 - lv.exp())).sum(1).mean() for mu, lv in
             [(out.mu_id_spoof, out.logvar_id_spoof), (out.mu_type, out.logvar_type),
              (out.mu_id_live, out.logvar_id_live)])
    cls = F.cross_entropy(vae.type_classifier(out.z_type), torch.tensor([0, 1, 3]))
    (rec + kl + cls).backward()
    _assert_all_grads(vae)


def test_lightcnn_with_classifier_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = LightCNN29v2(num_classes=7, width=0.25).train()
    logits, feature = net.forward_logits(torch.rand(4, 1, 128, 128))
    assert logits.shape == (4, 7) and feature.shape == (4, 256)
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 6])).backward()
    _assert_all_grads(net)
    with pytest.raises(RuntimeError):
        LightCNN29v2(width=0.25).forward_logits(torch.rand(1, 1, 128, 128))


# ----------------------------------------------------------------------------------- small variants

def test_cdcn_u_small_variant_shapes():
    model = CDCN_u(width=0.25, image_size=64).eval()
    assert model.map_size == 8
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert out.mu.shape == out.logvar.shape == out.sample.shape == (2, 8, 8)
    assert out.x_concat.shape == (2, 96, 8, 8) and out.x_Block1.shape == (2, 32, 32, 32)
    with pytest.raises(ValueError):
        CDCN_u(image_size=60)


@pytest.mark.parametrize("size", [128, 64])
def test_vae_small_sizes_keep_the_bottleneck_and_keys(size):
    big, small = DualVAE(width=0.125, hdim=16), DualVAE(image_size=size, width=0.125, hdim=16)
    assert _layout(big) == _layout(small)  # dropped pools/upsamplings are parameter-free
    x = torch.rand(2, 3, size, size)
    assert small.spoof_encoder.main(x).shape == (2, 64, 4, 4)
    mu_s, lv_s, mu_t, lv_t = small.spoof_encoder(x)
    assert mu_s.shape == lv_s.shape == mu_t.shape == lv_t.shape == (2, 16)
    assert len(small.live_encoder(x)) == 2
    y = small.decoder(torch.randn(2, 48))
    assert y.shape == (2, 6, size, size) and 0 <= y.min() and y.max() <= 1
    with pytest.raises(ValueError):
        DualVAE(image_size=96)


def test_vae_sampling_shares_the_identity_code():
    vae = DualVAE(image_size=64, width=0.125, hdim=16).eval()
    spoof, live = vae.sample_pairs(3, generator=torch.Generator().manual_seed(7))
    assert spoof.shape == live.shape == (3, 3, 64, 64)
    g = torch.Generator().manual_seed(7)
    noise_t, noise_id = torch.randn(3, 16, generator=g), torch.randn(3, 16, generator=g)
    with torch.no_grad():
        expected = vae.decoder(torch.cat([noise_t, noise_id, noise_id], dim=1))
    assert torch.allclose(spoof, expected[:, :3]) and torch.allclose(live, expected[:, 3:])
    again, _ = vae.sample_pairs(3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(spoof, again)


def test_reparameterize_uses_the_drawn_noise():
    mu, logvar = torch.randn(4, 8), torch.randn(4, 8)
    torch.manual_seed(3)
    z = reparameterize(mu, logvar)
    torch.manual_seed(3)
    assert torch.allclose(z, mu + torch.randn(4, 8) * torch.exp(0.5 * logvar))


def test_identity_features_resize_grey_and_normalise():
    torch.manual_seed(0)
    net = LightCNN29v2(width=0.25).eval()
    images = torch.rand(2, 3, 256, 256, requires_grad=True)
    feats = identity_features(net, images)
    assert feats.shape == (2, 256)
    assert torch.allclose(feats.norm(dim=1), torch.ones(2), atol=1e-5)
    small = F.interpolate(images.detach(), size=(128, 128), mode="bilinear", align_corners=False)
    grey = 0.299 * small[:, :1] + 0.587 * small[:, 1:2] + 0.114 * small[:, 2:]
    assert torch.allclose(feats.detach(), F.normalize(net(grey), dim=1), atol=1e-6)
    feats.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------- published layouts

def _from_listing(entries, prefix="module.", seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for e in entries:
        dtype = _DTYPES[e["dtype"]]
        value = (torch.randint(0, 100, e["shape"], generator=g) if dtype == torch.int64
                 else torch.randn(e["shape"], generator=g))
        sd[prefix + e["key"]] = value.to(dtype)
    return sd


def test_released_cdcn_u_layout_loads_strictly(reference_dir, tmp_path):
    ref = json.loads((reference_dir / "cdcn_dum_state_dict_keys.json").read_text())
    sd = _from_listing(ref["keys"])
    path = tmp_path / "CDCN_U_P1.pkl"
    torch.save(sd, path)  # the released file is a plain state_dict with DataParallel keys
    model = load_pretrained(CDCN_u(), path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd["module." + k]), k
    # Our own training checkpoints (a dict holding the state_dict under "model") load the same way.
    torch.save({"model": {k[len("module."):]: v for k, v in sd.items()}, "epoch": 3}, tmp_path / "ours.pt")
    load_pretrained(CDCN_u(), tmp_path / "ours.pt")
    # A file that does not fit is refused, naming the file and the offending key.
    del sd["module.mu_head.0.weight"]
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"CDCN_U_P1\.pkl.*mu_head\.0\.weight"):
        load_pretrained(CDCN_u(), path)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_pretrained(CDCN_u(width=0.5), tmp_path / "ours.pt")


def test_published_lightcnn_layout_loads_strictly(reference_dir, tmp_path):
    ref = json.loads((reference_dir / "lightcnn29v2_state_dict_keys.json").read_text())
    sd = _from_listing(ref["keys"])
    sd["module.fc2.weight"] = torch.zeros(80013, 256)  # the 80,013-class classifier the feature net drops
    path = tmp_path / LIGHTCNN_FILE
    torch.save({"epoch": 5, "arch": "LightCNN-29v2", "state_dict": sd, "prec1": 98.5}, path)
    del sd
    net = load_lightcnn(path)
    assert not net.training and all(not p.requires_grad for p in net.parameters())
    expected = _from_listing(ref["keys"])
    for k, v in net.state_dict().items():
        assert torch.equal(v, expected["module." + k]), k
    with torch.no_grad():
        assert identity_features(net, torch.rand(1, 3, 64, 64)).shape == (1, 256)


def test_lightcnn_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = LightCNN29v2(num_classes=5, width=0.25)
    path = save_lightcnn_checkpoint(net, tmp_path / "lcnn.pth.tar", epoch=2, prec1=50.0)
    raw = torch.load(path, weights_only=True)
    assert set(raw) >= {"epoch", "arch", "state_dict", "prec1"}
    assert all(k.startswith("module.") for k in raw["state_dict"]) and "module.fc2.weight" in raw["state_dict"]
    loaded = load_lightcnn(path, width=0.25)
    x = torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net.eval()(x))


def test_lightcnn_missing_or_wrong_file_says_where_to_put_it(tmp_path):
    with pytest.raises(CheckpointError) as err:
        load_lightcnn(tmp_path / "ip_checkpoint" / LIGHTCNN_FILE)
    msg = str(err.value)
    assert LIGHTCNN_FILE in msg and "ip_checkpoint/" in msg and "train_lightcnn.py" in msg
    wrong = tmp_path / "wrong.pth.tar"
    torch.save(CDCN_u(width=0.25, image_size=32).state_dict(), wrong)
    with pytest.raises(CheckpointError) as err:
        load_lightcnn(wrong)
    assert "wrong.pth.tar" in str(err.value) and "ip_checkpoint/" in str(err.value)
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth.tar.*ip_checkpoint/"):
        load_lightcnn(tmp_path / "junk.pth.tar")


def test_autocast_training_uses_the_plain_path():
    model = CDCN_u(width=0.25, image_size=32).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(2, 3, 32, 32))
    out.sample.float().square().mean().backward()
    _assert_all_grads(model)

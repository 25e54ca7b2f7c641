"""DepthNet and ResNet-18, with and without the Depth Uncertainty Module, and the model registry:
key layouts and forward outputs against the original's references, strict loading of original files,
small variants, and one network through DUM/train.py -> DUM/test.py -> export_onnx.py with no flags."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dum_testdata as td
import export_onnx
from DUM import test as dum_test
from DUM import train as dum_train
from DUM.losses import dum_loss
from networks import build_depth_net
from networks.depthnet_u import DepthNet, depthnet_u
from networks.depthnet_u import load_pretrained as load_depthnet
from networks.dum import DUMOutput
from networks.registry import (DEPTH_NETS, MODELS, arch_settings, build_model, checkpoint_arch, get_spec,
                               infer_model, load_model)
from networks.resnet18_u import ResNet18, ResNet18_u
from networks.resnet18_u import load_pretrained as load_resnet
from reference_forward import load_forward_reference
from utils.checkpoint import CheckpointError, load_checkpoint

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference"
NETS = {"depthnet_u": depthnet_u, "resnet18_u": ResNet18_u}
_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def _listing(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}_state_dict_keys.json").read_text())


def _layout(module: torch.nn.Module) -> list:
    return [(k, list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in module.state_dict().items()]


def _relerr(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _from_listing(entries, prefix="module.", seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {prefix + e["key"]: (torch.randint(0, 100, e["shape"], generator=g) if e["dtype"] == "int64"
                                else torch.randn(e["shape"], generator=g)).to(_DTYPES[e["dtype"]]) for e in entries}


# ----------------------------------------------------------------------------------- layouts and references

@pytest.mark.parametrize("name", NETS)
def test_keys_equal_the_original_listing(name):
    ref = _listing(name)
    model = NETS[name]()  # no arguments: the original's configuration
    assert _layout(model) == [(e["key"], e["shape"], e["dtype"]) for e in ref["keys"]]
    assert len(model.state_dict()) == ref["n_tensors"]
    assert sum(p.numel() for p in model.parameters()) == ref["n_parameters"]


def test_depthnet_is_cdcn_u_without_the_conv_level():
    from networks.cdcn_u import CDCN_u

    cdcn_keys = [k.replace(".conv.", ".") for k in CDCN_u().state_dict()]
    assert list(depthnet_u().state_dict()) == cdcn_keys
    assert not any(isinstance(m, torch.nn.Module) and type(m).__name__ == "Conv2d_cd" for m in depthnet_u().modules())


@pytest.mark.parametrize("name", NETS)
def test_forward_matches_the_original(name):
    """Weights and input are rebuilt from their recipe and checked against the original's hashes
    (tests/reference_forward.py); the model built after seed 0 has exactly those weights, and every
    stored output must agree to 1e-4 of its largest magnitude, in eval and in train mode."""
    ref = load_forward_reference(name)
    torch.manual_seed(0)
    model = NETS[name]()  # same creation order as the original: seed 0 draws its weights
    assert list(model.state_dict()) == list(ref["state_dict"])
    for k, v in ref["state_dict"].items():
        assert torch.equal(model.state_dict()[k], v), k
    x = ref["input"]
    model.eval()
    with torch.no_grad():
        torch.manual_seed(2024)
        out = model(x)
    assert isinstance(out, DUMOutput) and [list(t.shape) for t in out] == ref["output_shapes"]
    for field, key in (("mu", "mu"), ("logvar", "logvar"), ("sample", "embedding")):
        assert _relerr(getattr(out, field), ref[key]) <= 1e-4, (field, _relerr(getattr(out, field), ref[key]))
    assert _relerr(out.sample, out.mu + ref["epsilon"] * torch.exp(0.5 * out.logvar)) <= 1e-6
    model.train()
    with torch.no_grad():
        torch.manual_seed(2024)
        out = model(x)
    assert _relerr(out.mu, ref["train_mode_mu"]) <= 1e-4
    assert _relerr(out.logvar, ref["train_mode_logvar"]) <= 1e-4


@pytest.mark.parametrize("name,loader", [("depthnet_u", load_depthnet), ("resnet18_u", load_resnet)])
def test_original_checkpoint_loads_strictly(name, loader, tmp_path):
    sd = _from_listing(_listing(name)["keys"])
    path = tmp_path / f"{name}.pkl"
    torch.save(sd, path)  # the original saves a DataParallel state_dict: every key starts with module.
    model = loader(NETS[name](), path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd["module." + k]), k
    # The registry recognises the network from the keys alone: no flag needed.
    net, arch, _ = load_model(path)
    assert type(net) is NETS[name] and arch["model"] == name and not net.training
    assert all(torch.equal(v, sd["module." + k]) for k, v in net.state_dict().items())
    del sd["module.logvar_head.0.weight"]
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=rf"{name}\.pkl.*logvar_head\.0\.weight"):
        loader(NETS[name](), path)


# ----------------------------------------------------------------------------------- small variants, baselines

@pytest.mark.parametrize("name", DEPTH_NETS)
def test_every_network_trains_at_small_width_and_size(name):
    torch.manual_seed(0)
    model = build_depth_net(name, theta=0.7, width=0.25, image_size=32).train()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    target = torch.rand(4, 4, 4)
    out = model(x)
    assert out[0].shape == (4, 4, 4) and model.map_size == 4 and model.arch["width"] == 0.25
    if get_spec(name).dum:
        loss = dum_loss(out.sample, out.mu, out.logvar, target).total
    else:
        assert (out.map >= 0).all()  # ReLU depth head, as CDCN's
        loss = dum_loss(out.map, out.map, None, target).total
    loss.backward()
    unused = {"lastconv3.0.weight"} if name == "resnet18_u" else set()  # the original never calls it
    for pname, p in model.named_parameters():
        if pname in unused:
            assert p.grad is None
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


def test_resnet18_u_small_variant_shapes():
    model = ResNet18_u(width=0.25, image_size=64).eval()
    out = model(torch.zeros(2, 3, 64, 64))
    # Stages 2-4 at 32, 16 and 8 px, concatenated at the 8x8 map size: 32 + 49 + 64 channels.
    assert [tuple(t.shape) for t in out[3:7]] == [(2, 145, 8, 8), (2, 32, 32, 32), (2, 49, 16, 16), (2, 64, 8, 8)]
    with pytest.raises(ValueError, match="multiple of 8"):
        ResNet18_u(image_size=60)


def test_baselines_share_the_dum_networks_trunks():
    assert set(ResNet18().state_dict()) == set(ResNet18_u().state_dict()) - {"mu_head.0.weight", "logvar_head.0.weight"}
    assert set(DepthNet().state_dict()) == {k for k in depthnet_u().state_dict() if "_head" not in k} | {"lastconv3.0.weight"}
    assert sum(p.numel() for p in DepthNet().parameters()) == 2_245_016
    for spec in MODELS.values():
        if spec.dum:
            assert spec.baseline in MODELS and not MODELS[spec.baseline].dum
            assert MODELS[spec.baseline].label == spec.label


# ----------------------------------------------------------------------------------- registry

def test_arch_settings_and_names():
    assert arch_settings("resnet18_u", theta=0.5, width=0.5) == {"model": "resnet18_u", "width": 0.5, "image_size": 256}
    assert arch_settings("CDCN-U") == {"model": "cdcn_u", "theta": 0.7, "width": 1.0, "image_size": 256}
    assert get_spec("cdcn++").name == "cdcnpp"
    with pytest.raises(ValueError, match="unknown depth network"):
        get_spec("resnet50")
    net = build_model({"model": "depthnet", "width": 0.25, "image_size": 32})
    assert type(net) is DepthNet and net.arch == {"model": "depthnet", "width": 0.25, "image_size": 32}


def test_checkpoint_arch_precedence():
    sd = {"module.layer1.0.left.0.weight": torch.zeros(1), "module.mu_head.0.weight": torch.zeros(1)}
    assert infer_model(sd) == "resnet18_u"
    assert checkpoint_arch(sd) == arch_settings("resnet18_u")
    old = {"model": {}, "config": {"model": "cdcn", "theta": 0.5, "width": 0.25, "image_size": 64, "lr": 1e-4}}
    assert checkpoint_arch(old) == {"model": "cdcn", "theta": 0.5, "width": 0.25, "image_size": 64}
    new = dict(old, network={"model": "depthnet_u", "width": 0.5, "image_size": 128})
    assert checkpoint_arch(new) == {"model": "depthnet_u", "width": 0.5, "image_size": 128}
    assert checkpoint_arch(new, width=1.0, model=None) == {"model": "depthnet_u", "width": 1.0, "image_size": 128}
    assert checkpoint_arch({"model": {"conv1.0.weight": torch.zeros(1), "Block1.0.weight": torch.zeros(1)}})["model"] \
        == "depthnet"


# ----------------------------------------------------------------------------------- stages

@pytest.fixture(scope="module")
def tree(tmp_path_factory, samples_dir):
    return td.build_tree(tmp_path_factory.mktemp("nets_tree"), samples_dir)


@pytest.mark.parametrize("name", ["resnet18_u", "depthnet"])
def test_train_test_export_without_architecture_flags(name, tree, tmp_path, samples_dir):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "run"
        dum_train.main(["--crop-root", str(tree["crop_root"]), "--protocol", "1", "--out-dir", str(out),
                        "--model", name, "--image-size", "64", "--width", "0.25", "--batch-size", "8",
                        "--workers", "0", "--device", "cpu", "--eval-start", "1", "--epochs", "1", "--frame-batch", "4"])
        ckpt = load_checkpoint(out / "last.pt")
        assert ckpt["network"] == arch_settings(name, width=0.25, image_size=64)
        # test.py and export_onnx.py rebuild the network from the checkpoint alone.
        res = dum_test.main(["--checkpoint", str(out / "best.pt"), "--crop-root", str(tree["crop_root"]),
                             "--protocol", "1", "--out-dir", str(tmp_path / "test"), "--device", "cpu",
                             "--workers", "0", "--no-plots"])
        assert res["inputs"]["architecture"] == ckpt["network"]
        summary = export_onnx.main(["--checkpoint", str(out / "best.pt"), "--out", str(tmp_path / "m.onnx"),
                                    "--check-images", str(samples_dir)])
    finally:
        torch.set_num_threads(old)
    assert summary["check"]["ok"] and (tmp_path / "m.onnx").is_file()
    outputs = ["mu", "logvar"] if get_spec(name).dum else ["mu"]
    assert [k for k in summary["check"] if k != "ok"] == outputs
    assert summary["check"]["mu"]["relative"] < 1e-4

"""The fixtures the repository ships: present and unchanged (so a missing file fails here instead of
making tests skip), and the trimmed forward references rebuild the original's exact weights."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from conftest import FIXTURES, find_fixture
from reference_forward import default_init_state_dict, load_forward_reference, reference_input, tensors_sha256


def _manifest() -> list[tuple[str, str]]:
    lines = (FIXTURES / "SHA256SUMS").read_text().splitlines()
    return [(line.split()[1].removeprefix("./"), line.split()[0]) for line in lines if line.strip()]


def test_manifest_lists_the_files_the_suite_needs():
    names = {name for name, _ in _manifest()}
    assert {"reference/cdcn_dum_reference_small.pt", "reference/metrics/expected.json",
            "samples/image_T1.jpg", "samples/image_F1.jpg", "samples/image_F2.jpg",
            "samples/LICENSE-Apache-2.0.txt", "reference/resnet18_u_reference_small.pt",
            "reference/depthnet_u_reference_small.pt"} <= names
    for net in ("cdcn_dum", "depthnet_u", "resnet18_u", "generator", "lightcnn29v2"):
        assert f"reference/{net}_state_dict_keys.json" in names


@pytest.mark.parametrize("name,digest", _manifest())
def test_shipped_fixture_present_and_unchanged(name, digest):
    path = FIXTURES / name
    assert path.is_file(), f"{path} is missing from the repository"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} differs from its SHA256SUMS entry"


def test_find_fixture_skips_naming_an_absent_file():
    with pytest.raises(pytest.skip.Exception, match="no_such_file.pt"):
        find_fixture("reference/no_such_file.pt")


def test_default_init_recipe_reproduces_shipped_cdcn_weights(reference_dir):
    """The recipe the trimmed references rely on, checked against weights the repository ships whole."""
    small = torch.load(reference_dir / "cdcn_dum_reference_small.pt", weights_only=True)
    listing = json.loads((reference_dir / "cdcn_dum_state_dict_keys.json").read_text())
    rebuilt = default_init_state_dict(listing, seed=0)
    assert list(rebuilt) == list(small["state_dict"])
    for k, v in small["state_dict"].items():
        assert torch.equal(rebuilt[k], v), k
    assert torch.equal(reference_input(), small["input"])
    assert tensors_sha256(default_init_state_dict(listing, seed=1)) != tensors_sha256(rebuilt)


@pytest.mark.parametrize("name,n_tensors,n_parameters", [("resnet18_u", 135, 4_983_256),
                                                          ("depthnet_u", 74, 2_245_592)])
def test_trimmed_reference_rebuilds_with_matching_hashes(name, n_tensors, n_parameters):
    ref = load_forward_reference(name)
    assert len(ref["state_dict"]) == n_tensors
    assert sum(v.numel() for k, v in ref["state_dict"].items() if not k.endswith(("running_mean", "running_var",
                                                                                   "num_batches_tracked"))) == n_parameters
    assert ref["mu"].shape == ref["epsilon"].shape == (2, 32, 32)
    assert torch.equal(ref["embedding"], ref["mu"] + ref["epsilon"] * torch.exp(ref["logvar"]).sqrt())


def test_trimmed_reference_rejects_other_weights(reference_dir):
    ref = torch.load(reference_dir / "resnet18_u_reference_small.pt", weights_only=True)
    listing = json.loads((reference_dir / "resnet18_u_state_dict_keys.json").read_text())
    assert tensors_sha256(default_init_state_dict(listing, seed=0)) == ref["state_dict_sha256"]
    assert tensors_sha256(default_init_state_dict(listing, seed=1)) != ref["state_dict_sha256"]


@pytest.mark.parametrize("name", ["resnet18_u", "depthnet_u"])
def test_trimmed_reference_equals_full_file_when_available(name):
    full = torch.load(find_fixture(f"reference/{name}_reference.pt"), weights_only=True)
    small = torch.load(FIXTURES / "reference" / f"{name}_reference_small.pt", weights_only=True)
    listing = json.loads((FIXTURES / "reference" / f"{name}_state_dict_keys.json").read_text())
    assert tensors_sha256(full["state_dict"]) == small["state_dict_sha256"]
    for k, v in default_init_state_dict(listing).items():
        assert torch.equal(v, full["state_dict"][k]), k
    for k in ("mu", "logvar", "embedding", "epsilon", "train_mode_mu", "train_mode_logvar"):
        assert torch.equal(full[k], small[k]), k

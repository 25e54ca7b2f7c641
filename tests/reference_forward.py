"""Forward references of the original depth networks, whole or rebuilt from a trimmed fixture.

The original's reference files (``<name>_reference.pt``) hold seed-0 default-initialised weights,
a fixed input and the forward outputs. Weights and input are reproducible from their recipe:
``torch.manual_seed(0)`` then PyTorch's default initialisation drawn in state_dict order (conv and
linear weights kaiming_uniform(a=sqrt(5)), their biases uniform(+-1/sqrt(fan_in)), BatchNorm weight 1,
bias 0, running mean 0, var 1), and ``torch.rand(2, 3, 256, 256, generator=seed 1234) * 2 - 1``.
A trimmed fixture (``<name>_reference_small.pt`` without ``state_dict``/``input``) stores the outputs
plus the SHA-256 of the original weights and input; ``load_forward_reference`` rebuilds both and
checks the hashes, so a test compares against exactly the original's weights.
"""
from __future__ import annotations

import hashlib
import json
import math

import torch

from conftest import FIXTURES, SHARED, find_fixture

_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def default_init_state_dict(listing: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state_dict a seed-``seed`` default initialisation gives, from a key listing (JSON dict)."""
    torch.manual_seed(seed)
    keys = listing["keys"]
    state = {}
    for i, entry in enumerate(keys):
        t = torch.empty(entry["shape"], dtype=_DTYPES[entry["dtype"]])
        leaf = entry["key"].rsplit(".", 1)[1]
        if leaf == "weight" and t.dim() >= 2:
            torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5))
        elif leaf == "bias" and i > 0 and len(keys[i - 1]["shape"]) >= 2:  # conv/linear bias after its weight
            bound = 1 / math.sqrt(math.prod(keys[i - 1]["shape"][1:]))
            torch.nn.init.uniform_(t, -bound, bound)
        elif leaf in ("weight", "running_var"):  # BatchNorm
            t.fill_(1)
        else:
            t.zero_()
        state[entry["key"]] = t
    return state


def reference_input() -> torch.Tensor:
    return torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1234)) * 2 - 1


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over key names and raw bytes, in order."""
    h = hashlib.sha256()
    for k, v in tensors.items():
        h.update(k.encode())
        h.update(v.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def load_forward_reference(name: str) -> dict:
    """``name`` in {cdcn_dum, depthnet_u, resnet18_u}: a dict with at least ``state_dict``, ``input``,
    ``mu``, ``logvar``, ``embedding``, ``epsilon``, ``train_mode_mu``, ``train_mode_logvar``. Prefers a
    shipped file, then the shared full file, then rebuilds from the trimmed fixture (skip if none)."""
    for rel in (f"reference/{name}_reference.pt", f"reference/{name}_reference_small.pt"):
        for base in (FIXTURES, SHARED):
            if (base / rel).exists():
                ref = torch.load(base / rel, weights_only=True)
                if "state_dict" not in ref:
                    ref = _rebuild(name, ref)
                if "outputs" in ref and "mu" not in ref:
                    ref.update({k: v for k, v in zip(ref["output_names"], ref["outputs"])})
                return ref
    find_fixture(f"reference/{name}_reference_small.pt")  # skips, naming the file
    raise AssertionError("unreachable")


def _rebuild(name: str, ref: dict) -> dict:
    listing = json.loads(find_fixture(f"reference/{name}_state_dict_keys.json").read_text())
    state = default_init_state_dict(listing, seed=0)
    x = reference_input()
    assert tensors_sha256(state) == ref["state_dict_sha256"], f"{name}: rebuilt weights differ from the original's"
    assert tensors_sha256({"input": x}) == ref["input_sha256"], f"{name}: rebuilt input differs from the original's"
    return dict(ref, state_dict=state, input=x)

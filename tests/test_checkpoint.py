"""utils/checkpoint.py: atomic saves, round trips, and refusal of truncated, foreign or unsafe files."""
from __future__ import annotations

import os
import pickle

import pytest
import torch

from networks.cdcn_u import CDCN_u
from utils.checkpoint import (CheckpointError, clean_state_dict, load_checkpoint, load_state_dict_strict,
                              save_checkpoint, unwrap)
from utils.seed import rng_state, set_rng_state


def _small_model():
    torch.manual_seed(0)
    return CDCN_u(width=0.25, image_size=32)


def _train_state(model, epoch=3):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=5e-5)
    loss = model(torch.rand(2, 3, 32, 32)).sample.square().mean()
    loss.backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=500, gamma=0.5)
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "epoch": epoch, "config": {"lr": 1e-4, "protocol": "1", "sizes": [256, 32]},
            "rng": rng_state(), "git_sha": "abc123"}


def _no_temp_files(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


def test_round_trip_restores_everything(tmp_path):
    model = _small_model()
    state = _train_state(model)
    path = save_checkpoint(state, tmp_path / "run" / "last.pt")
    assert path.is_file() and _no_temp_files(path.parent)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["config"] == state["config"] and loaded["git_sha"] == "abc123"
    fresh = CDCN_u(width=0.25, image_size=32)
    load_state_dict_strict(fresh, loaded["model"], source=str(path))
    for (k, a), b in zip(fresh.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    opt = torch.optim.Adam(fresh.parameters(), lr=1e-4, weight_decay=5e-5)
    opt.load_state_dict(loaded["optimizer"])
    assert opt.state_dict()["state"][0]["exp_avg"].equal(state["optimizer"]["state"][0]["exp_avg"])
    # The saved RNG state replays the same stream.
    set_rng_state(loaded["rng"])
    first = torch.rand(3)
    assert not torch.equal(first, torch.rand(3))
    set_rng_state(loaded["rng"])
    assert torch.equal(first, torch.rand(3))


def test_save_is_atomic_when_writing_fails(tmp_path):
    path = save_checkpoint({"epoch": 1, "w": torch.ones(2)}, tmp_path / "last.pt")
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint({"epoch": 2, "bad": lambda: None}, path)  # a lambda cannot be pickled
    assert path.read_bytes() == before  # the old checkpoint survives intact
    assert _no_temp_files(tmp_path)
    assert load_checkpoint(path)["epoch"] == 1
    save_checkpoint({"epoch": 2, "w": torch.zeros(2)}, path)  # overwriting works and leaves no temp file
    assert load_checkpoint(path)["epoch"] == 2 and _no_temp_files(tmp_path)


def test_truncated_file_is_refused(tmp_path):
    path = save_checkpoint(_train_state(_small_model()), tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="last.pt"):
        load_checkpoint(path)


def test_missing_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found.*nowhere.pt"):
        load_checkpoint(tmp_path / "nowhere.pt")
    (tmp_path / "notes.txt").write_text("epoch 3, loss 0.1\n")
    with pytest.raises(CheckpointError, match="notes.txt"):
        load_checkpoint(tmp_path / "notes.txt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")  # a checkpoint must be a dict
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tmp_path / "tensor.pt")


class _Payload:
    """Unpickling this object calls os.system: the classic pickle code-execution payload."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_with_code_payload_is_refused_without_running_it(tmp_path, legacy):
    # The payload is live: plain unpickling runs it (shown on a separate marker).
    live_marker = tmp_path / "ran_with_plain_pickle"
    pickle.loads(pickle.dumps(_Payload(live_marker)))
    assert live_marker.exists()

    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    obj = {"state_dict": {"w": torch.ones(1)}, "extra": _Payload(marker)}
    if legacy:  # the pre-1.6 non-zip format is a bare pickle stream
        with open(path, "wb") as fh:
            pickle.dump(obj, fh)
    else:
        torch.save(obj, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path)
    assert not marker.exists(), "loading executed the pickled payload"


def test_clean_state_dict_and_strict_load_errors(tmp_path):
    model = _small_model()
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    assert list(clean_state_dict(sd)) == list(model.state_dict())
    other = CDCN_u(width=0.25, image_size=32)
    load_state_dict_strict(other, sd, source="x.pkl")
    sd.pop("module.conv1.0.conv.weight")
    sd["module.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"x\.pkl.*missing keys: conv1\.0\.conv\.weight.*unexpected keys: extra"):
        load_state_dict_strict(other, sd, source="x.pkl")
    wrapped = torch.nn.DataParallel(model)
    assert unwrap(wrapped) is model and unwrap(model) is model

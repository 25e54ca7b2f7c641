"""train_lightcnn.py: trains on an identity folder, exports the published layout, resumes."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from tests.gen_fixtures import single_thread  # noqa: F401  (autouse fixture)
from tests.gen_fixtures import VIDEOS, source_images
from utils.checkpoint import load_checkpoint

WIDTH = 0.125


def build_faces(root, samples_dir) -> None:
    """Three identities (three photos), two jittered face crops each, ImageFolder layout."""
    images = source_images(samples_dir)
    for identity, (_, src, (x, y, w, h)) in zip(("id_a", "id_b", "id_c"), (VIDEOS[0], VIDEOS[1], VIDEOS[3])):
        folder = root / identity
        folder.mkdir(parents=True)
        for j in range(2):
            dx, dy = 4 * j, 2 * j
            face = cv2.resize(images[src][y + dy:y + dy + h, x + dx:x + dx + w], (150, 150))
            cv2.imwrite(str(folder / f"{j}.jpg"), face)


def test_train_lightcnn_exports_published_layout_and_resumes(tmp_path, samples_dir):
    import train_lightcnn
    from generation.trainer import load_identity_net
    from networks.light_cnn import identity_features, load_lightcnn

    faces = tmp_path / "faces"
    build_faces(faces, samples_dir)
    out = tmp_path / "run"
    common = ["--data-root", str(faces), "--val-root", str(faces), "--out-dir", str(out), "--width", str(WIDTH),
              "--batch-size", "4", "--workers", "0", "--device", "cpu", "--optimizer", "adam", "--lr", "1e-3"]
    first = train_lightcnn.main(common + ["--epochs", "1"])
    assert first["classes"] == 3 and np.isfinite(first["loss"])
    export = out / "LightCNN_29Layers_V2_checkpoint.pth.tar"
    published = torch.load(export, map_location="cpu", weights_only=True)
    assert set(published) >= {"state_dict", "epoch", "arch", "prec1"} and published["epoch"] == 1
    keys = list(published["state_dict"])
    assert all(k.startswith("module.") for k in keys)
    assert tuple(published["state_dict"]["module.fc2.weight"].shape)[0] == 3
    trained = load_checkpoint(out / "last.pt")["model"]
    init_fc = published["state_dict"]["module.fc.weight"]
    assert torch.equal(init_fc, trained["fc.weight"])

    # resume: the second run continues at epoch 2 and moves the weights further
    second = train_lightcnn.main(common + ["--epochs", "2"])
    assert second["start_epoch"] == 2
    published2 = torch.load(export, map_location="cpu", weights_only=True)
    assert published2["epoch"] == 2 and not torch.equal(published2["state_dict"]["module.fc.weight"], init_fc)

    # the export is what the generator reads as its identity network
    net = load_lightcnn(export, width=WIDTH)
    assert not any(p.requires_grad for p in net.parameters())
    ident = load_identity_net(export, torch.device("cpu"), WIDTH)
    feats = identity_features(ident, torch.rand(2, 3, 64, 64))
    assert feats.shape == (2, 256) and torch.allclose(feats.norm(dim=1), torch.ones(2), atol=1e-5)

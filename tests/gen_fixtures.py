"""Tiny on-disk generator data for the generator-stage tests, built from real photos.

An OULU-style full-frame tree (two users, each with a live video and two attack videos of two
frames), box files, a generator training list and a Protocol_1 Train.txt, written into a temp
folder exactly as the real stages write them. Faces: the three sample photos and two public-domain
portraits (skimage astronaut, matplotlib grace_hopper) with hand-placed boxes.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from data.boxes import Box, write_box
from data.frames import box_name, frame_name, split_dirs
from utils.io import atomic_imwrite

# (video id, source photo, box x y w h in the source's pixels)
VIDEOS = [
    ("1_1_01_1", "T1", (110, 130, 160, 210)),
    ("1_1_01_2", "F1", (175, 110, 185, 250)),
    ("1_1_01_4", "F2", (140, 180, 200, 300)),
    ("1_1_02_1", "astronaut", (165, 25, 135, 175)),
    ("1_1_02_3", "grace", (165, 70, 175, 230)),
    ("1_1_02_5", "astronaut_flip", (212, 25, 135, 175)),
]
FRAMES = (1, 2)
HALF = 0.5  # frames are stored at half size to keep the tests' image decoding cheap


def source_images(samples_dir) -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook
    import skimage.data

    samples_dir = Path(samples_dir)
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return {
        "T1": cv2.imread(str(samples_dir / "image_T1.jpg")),
        "F1": cv2.imread(str(samples_dir / "image_F1.jpg")),
        "F2": cv2.imread(str(samples_dir / "image_F2.jpg")),
        "astronaut": astronaut,
        "astronaut_flip": np.ascontiguousarray(astronaut[:, ::-1]),
        "grace": cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))),
    }


def build_generator_data(root, samples_dir) -> dict[str, Path]:
    """Write the tree under ``root``; returns the paths the stages take as flags."""
    root = Path(root)
    img_root = root / "oulu_images"
    dirs = split_dirs(img_root, "train")
    images = source_images(samples_dir)
    list_lines, protocol_lines = [], []
    for video, src, (x, y, w, h) in VIDEOS:
        base = images[src]
        base = cv2.resize(base, (int(base.shape[1] * HALF), int(base.shape[0] * HALF)), interpolation=cv2.INTER_AREA)
        user, file_id = video.split("_")[2], int(video.split("_")[3])
        for n in FRAMES:
            # a second frame that differs the way consecutive video frames do: a small shift
            frame = np.roll(base, shift=2 * (n - 1), axis=1)
            name = frame_name(video, n)
            atomic_imwrite(dirs["img"] / video / name, frame)
            write_box(dirs["bbox"] / video / box_name(name),
                      Box(int(x * HALF) + 2 * (n - 1), int(y * HALF), int(w * HALF), int(h * HALF), 0.99))
            list_lines.append(f"{video}/{name} {user} {int(file_id == 1)} {file_id}")
        protocol_lines.append(f"{'+1' if file_id == 1 else '-1'},{video}")
    train_list = root / "train_list.txt"
    train_list.write_text("\n".join(list_lines) + "\n", encoding="utf-8")
    protocol = img_root / "protocols" / "Protocol_1" / "Train.txt"
    protocol.parent.mkdir(parents=True, exist_ok=True)
    protocol.write_text("\n".join(protocol_lines) + "\n", encoding="utf-8")
    return {"img_root": img_root, "train_list": train_list, "protocol": protocol}


def build_lightcnn(path, width: float = 0.125, seed: int = 0) -> Path:
    """A randomly initialised LightCNN-29 v2 of ``width`` saved in the published layout."""
    import torch

    from networks.light_cnn import LightCNN29v2, save_lightcnn_checkpoint

    torch.manual_seed(seed)
    net = LightCNN29v2(num_classes=10, width=width)
    save_lightcnn_checkpoint(net, path, 1)
    return Path(path)


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One intra-op thread for these tiny networks: on a shared 2-core machine OpenMP's spinning
    threads made the same tests several times slower than one thread. Autouse in every module
    that imports it (module scope, so the module fixtures that train run with it too)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def batch_mean_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One gloo process of the DDP batch-mean check: gradients of the mmd and ort terms on a half batch."""
    import os
    import sys

    import torch
    import torch.distributed as dist

    from generation.losses import mean_alignment_loss, orthogonal_loss

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(8, 5, generator=g) for _ in range(3))  # the full batch, identical on every rank
    rows = slice(rank * 4, rank * 4 + 4)
    za, zb, zc = (t[rows].clone().requires_grad_(True) for t in (a, b, c))
    loss = mean_alignment_loss(za, zb) + orthogonal_loss(zc, za)
    loss.backward()
    dist.destroy_process_group()
    # torch.distributed.nn binds the live process group as a default argument when imported after
    # init; the group then outlives destroy_process_group and gloo aborted at interpreter exit.
    torch.save({"loss": loss.detach(), "ga": za.grad, "gb": zb.grad, "gc": zc.grad,
                "imported_distributed_nn": "torch.distributed.nn" in sys.modules},
               os.path.join(out_dir, f"rank{rank}.pt"))

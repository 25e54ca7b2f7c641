"""A tiny OULU-NPU-style data tree for the depth-network tests, built from real face photos.

Full frames (``oulu_images``-like) come from the three sample photos and three public-domain
portraits, downscaled, with a hand-measured face box per photo and a synthetic depth map (a
Gaussian blob over the face, as a stand-in for PRNet). Each video holds a few frames shifted by a
few pixels. ``build_tree`` also runs the real crop stage and adds generated folders and Train_g.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from data.boxes import Box, write_box
from data.frames import box_name, depth_name, frame_name, split_dirs
from utils.io import atomic_imwrite

# Face boxes (x, y, w, h) measured by eye on the original photos.
FACE_BOXES = {
    "T1": (140, 140, 160, 190),      # samples/image_T1.jpg, live, 480x640
    "F1": (190, 150, 170, 200),      # samples/image_F1.jpg, printed poster
    "F2": (150, 250, 185, 230),      # samples/image_F2.jpg, replay on a tablet
    "astronaut": (170, 55, 95, 110),  # skimage.data.astronaut(), 512x512
    "grace": (170, 145, 180, 190),   # matplotlib grace_hopper.jpg, 512x600
    "camera": (150, 85, 100, 120),   # skimage.data.camera(), 512x512
}
LIVE = ("T1", "astronaut", "grace")
PRINT = ("F1", "camera")
REPLAY = ("F2",)
SCALE = 0.25  # full frames are stored at a quarter of the photo size to keep the tests fast


def load_photos(samples_dir: Path) -> dict[str, np.ndarray]:
    """name -> BGR uint8 photo at full resolution."""
    import matplotlib.cbook
    import skimage.data

    photos = {k: cv2.imread(str(Path(samples_dir) / f"image_{k}.jpg")) for k in ("T1", "F1", "F2")}
    photos["astronaut"] = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    photos["camera"] = cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2BGR)
    photos["grace"] = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    for name, image in photos.items():
        assert image is not None, name
    return photos


def gaussian_depth(shape, box: Box, peak: float = 255.0) -> np.ndarray:
    """uint8 depth map: a Gaussian blob over the face (nose ~ peak), 0 far from it."""
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    d = peak * np.exp(-(((xx - cx) / (0.35 * box.w)) ** 2 + ((yy - cy) / (0.35 * box.h)) ** 2))
    d[d < 8] = 0
    return np.clip(np.round(d), 0, 255).astype(np.uint8)


def frame_and_box(photo: np.ndarray, name: str, shift: int) -> tuple[np.ndarray, Box]:
    """The photo downscaled by SCALE and shifted right/down by ``shift`` px, with its box."""
    small = cv2.resize(photo, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_AREA)
    m = np.float32([[1, 0, shift], [0, 1, shift // 2]])
    frame = cv2.warpAffine(small, m, (small.shape[1], small.shape[0]), borderMode=cv2.BORDER_REFLECT)
    x, y, w, h = FACE_BOXES[name]
    box = Box(int(round(x * SCALE)) + shift, int(round(y * SCALE)) + shift // 2, int(round(w * SCALE)),
              int(round(h * SCALE)), 0.99)
    return frame, box


def video_photo(video: str) -> str:
    """Which photo a video id P_S_UU_F shows: live photos for file 1, print/replay ones otherwise."""
    _, _, user, file_id = video.split("_")
    pool = {1: LIVE, 2: PRINT, 3: PRINT, 4: REPLAY, 5: REPLAY}[int(file_id)]
    return pool[(int(user) + int(file_id)) % len(pool)]


SPLIT_USERS = {"train": (1, 2), "dev": (21, 22), "test": (36, 37)}


def split_videos(split: str) -> list[str]:
    session = 3 if split == "test" else 1
    return [f"1_{session}_{u:02d}_{f}" for u in SPLIT_USERS[split] for f in range(1, 6)]


FRAMES_PER_VIDEO = {"train": 3, "dev": 2, "test": 2}


def write_full_tree(root: Path, photos: dict, frames_per_video: dict = FRAMES_PER_VIDEO) -> dict[str, list[str]]:
    """Full-frame tree + protocols/Protocol_1/{Train,Dev,Test}.txt. Returns split -> videos."""
    out = {}
    for split in ("train", "dev", "test"):
        dirs = split_dirs(root, split)
        videos = split_videos(split)
        for video in videos:
            name = video_photo(video)
            for k in range(frames_per_video[split]):
                n = 1 + 5 * k  # gaps in the numbering, as with extract_frame --every 5
                frame, box = frame_and_box(photos[name], name, shift=2 * k)
                fname = frame_name(video, n)
                atomic_imwrite(dirs["img"] / video / fname, frame)
                write_box(dirs["bbox"] / video / box_name(fname), box)
                atomic_imwrite(dirs["depth"] / video / depth_name(fname), gaussian_depth(frame.shape, box))
        out[split] = videos
        label = {1: "+1", 2: "-1", 3: "-1", 4: "-2" if split == "test" else "-1", 5: "-2" if split == "test" else "-1"}
        text = "".join(f"{label[int(v[-1])]},{v}\n" for v in videos)
        path = root / "protocols" / "Protocol_1" / f"{split.capitalize()}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return out


def write_generated(crop_root: Path, photos: dict, image_size: int, map_size: int, n_folders: int = 2,
                    frames: int = 3, seed: int = 0) -> list[str]:
    """Generated folders p1_0_1_k (live, with depth) and p1_0_0_k (spoof) in the crop tree."""
    rng = np.random.default_rng(seed)
    dirs = split_dirs(crop_root, "train")
    lines = []
    for k in range(n_folders):
        for domain in (1, 0):
            video = f"p1_0_{domain}_{k}"
            name = LIVE[k % len(LIVE)] if domain else PRINT[k % len(PRINT)]
            x, y, w, h = FACE_BOXES[name]
            face = cv2.resize(photos[name][y:y + h, x:x + w], (image_size, image_size), interpolation=cv2.INTER_AREA)
            for i in range(1, frames + 1):
                jitter = np.clip(face.astype(np.int16) + rng.integers(-10, 11, 3), 0, 255).astype(np.uint8)
                atomic_imwrite(dirs["img"] / video / f"{i}_scene.jpg", jitter)
                if domain:
                    depth = gaussian_depth((map_size, map_size), Box(0, 0, map_size, map_size))
                    atomic_imwrite(dirs["depth"] / video / f"{i}_depth1D.jpg", depth)
            lines.append(f"{domain},{video}")
    return lines


def build_tree(tmp: Path, samples_dir: Path, image_size: int = 64, map_size: int = 8) -> dict:
    """Full-frame tree, crops through the real crop stage, generated folders and Train_g.txt."""
    from DUM.make_dataset import crop_dataset

    photos = load_photos(samples_dir)
    data_root, crop_root = tmp / "oulu_images", tmp / "oulu_images_crop"
    videos = write_full_tree(data_root, photos)
    crop_dataset.main(["--data-root", str(data_root), "--crop-root", str(crop_root), "--split", "train", "dev", "test",
                       "--image-size", str(image_size), "--map-size", str(map_size), "--workers", "2",
                       "--protocol-dir", str(data_root / "protocols")])
    generated = write_generated(crop_root, photos, image_size, map_size)
    p1 = crop_root / "protocols" / "Protocol_1"
    (p1 / "Train_g.txt").write_text((p1 / "Train.txt").read_text() + "".join(line + "\n" for line in generated))
    return {"data_root": data_root, "crop_root": crop_root, "videos": videos, "generated": generated,
            "image_size": image_size, "map_size": map_size, "photos": photos}

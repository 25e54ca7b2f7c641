"""Build a small OULU-NPU-style demo dataset from public-domain portraits the dependencies ship.

OULU-NPU may not be redistributed, so the demo pipeline runs on videos made here. The data shows
every stage working end to end; it measures nothing about accuracy: a few re-posed photographs of
three people with simulated attacks say nothing about how a model does on real presentation attacks.

Output (``--out``, default ``demo_data/``), laid out like the dataset:

* ``Train_files/``, ``Dev_files/``, ``Test_files/``: ``P_S_UU_F.avi`` (phone P, session S, two-digit
  user UU, file F), MJPG, ``--frames`` frames of ``--size`` at ``--fps``;
* ``protocols/Protocol_1/{Train,Dev,Test}.txt``: OULU lines ``+1,1_1_01_1`` (live), ``-1,...``
  (print, files 2/3), ``-2,...`` (replay, files 4/5) in every split. The shipped OULU Train/Dev files
  label replay ``-1`` too; every reader takes the attack type from the file id, so labelling by type
  changes nothing downstream. Users are disjoint across splits; train and dev use sessions 1 and 2,
  test session 3, as in OULU Protocol 1; all ``--phones`` phones in every split;
* ``users.csv`` (which portrait each user is), ``config.json``, ``log.txt``.

Portraits: scikit-image's ``camera`` (CC0; grey, used as three equal channels) and ``astronaut``
(NASA, public domain) and matplotlib's ``grace_hopper.jpg`` (US Navy, public domain). No other real
face photos ship with the dependencies (``skimage.data.lfw_subset`` holds 25x25 crops of news photos,
neither public domain nor large enough for a detector); ``--extra-portrait`` adds your own. Each split
gets its own portraits (camera train, astronaut dev, Grace Hopper test; extra portraits join the
splits in turn), so identities never cross splits. When a split has more users than portraits, the
extra users are the same photograph mirrored, re-tinted and re-scaled: different ``UU``, **not**
different identities. The cameraman's half-profile face, partly hidden by his camera, is found by
MTCNN in nearly every frame but loses the MediaPipe face mesh (the depth stage) on most of his attack
frames; that costs nothing in train, whose attack depth targets are zero, and the other two faces
keep dev and test, where every frame's depth map is used, complete.

What each file id simulates (phone = camera model, session = room and light, both seeded):

* 1 live: the person, cut out with MediaPipe's selfie matte, stands in a procedural room; the head
  moves (translation, rotation, scale, weighted towards the face so the torso lags) against the
  still background, the room light drifts in brightness and colour temperature, a side light shades
  the face;
* 2/3 print: the photo is printed on a sheet: grey-component CMYK separation with impure inks
  (gamut loss), halftone (2: rotated AM dot screens, glossy white paper; 3: stochastic inkjet-like
  droplets, warmer matte paper, stronger desaturation), paper margins and edges in view, a
  cylindrical bend with its shading, and the hand-held sheet moving rigidly;
* 4/5 replay: the photo plays on a screen with small head motion: RGB sub-pixel stripes and a dark
  pixel matrix that the camera samples into moire, gamma and white-point shift, raised black level,
  a specular glare and a faint room reflection, a bezel, a tilted (perspective) device. 4: a desk
  monitor (coarse pixels, landscape, nearly still); 5: a hand-held high-density tablet (portrait).

Prints and screens are rendered at twice the output size, blurred by the lens and area-averaged as a
sensor integrates the optical image (what turns dots and sub-pixels into aliasing and moire); live
frames, with no detail finer than a pixel, are rendered at the output size. The phone's camera then
blurs, vignettes, white-balances and adds shot and read noise. Each video draws from its own seed
``(--seed, P, S, UU, F)``: the same arguments give the same files (byte-identical on one machine,
whatever ``--workers``), and any video can be rebuilt alone. A rerun skips videos already written
(each is written under ``.partial/``, checked by decoding, and renamed); other settings need ``--force``.

    python demo/make_demo_data.py --out demo_data --users 6 --frames 12 --size 320x240 --seed 0
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import csv
import functools
import io
import json
import logging
import math
import multiprocessing
import os
import re
import time
from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data.protocols import make_oulu_protocol, write_protocol
from utils.io import InputError, atomic_write_text
from utils.run import save_config, setup_logging

log = logging.getLogger(__name__)

DATA_VERSION = 1  # bump when rendering changes, so a rerun does not mix old and new videos
SPLIT_FOLDERS = {"train": "Train_files", "dev": "Dev_files", "test": "Test_files"}
SPLIT_SESSIONS = {"train": (1, 2), "dev": (1, 2), "test": (3,)}  # OULU-NPU Protocol 1
FILE_KIND = {1: "live", 2: "print", 3: "print", 4: "replay", 5: "replay"}
SUPERSAMPLE = 2  # optical image resolution / sensor resolution; moire needs sub-pixel structure
LENS_BLUR = 0.4  # lens blur sigma before the sensor integrates, in sensor pixels
FACE_FRACTION = 0.30  # live face width / frame height: ~72 px at 240 rows, far above MTCNN's 20 px minimum
# keys of config.json that change the videos; a rerun with other values would mix two datasets
DATA_KEYS = ("data_version", "users", "phones", "frames", "size", "fps", "seed", "extra_portrait")
_VIDEO_RE = re.compile(r"^\d_\d_\d{2}_\d\.avi$")


# ---------------------------------------------------------------------------------------------------
# portraits, users, cameras, rooms


@dataclass(frozen=True)
class Portrait:
    name: str
    rgb: np.ndarray  # (H, W, 3) float32 RGB in [0, 1]
    matte: np.ndarray  # (H, W) float32, 1 on the person
    face: tuple[float, float, float]  # face centre x, centre y, width, in pixels


@dataclass(frozen=True)
class UserLook:
    user: int
    split: str
    portrait: int  # index into the portrait list
    variant: int  # 0 the photo as shipped; >0 a re-posed copy of the same person
    flip: bool
    gains: tuple[float, float, float]  # RGB tint of this copy
    face_scale: float


@dataclass(frozen=True)
class CameraModel:
    """One phone: what its lens and sensor do to every frame."""
    white_balance: tuple[float, float, float]
    blur: float  # lens blur sigma, sensor pixels
    vignette: float
    read_noise: float
    shot_noise: float  # variance per unit signal
    saturation: float


@dataclass(frozen=True)
class Room:
    background: np.ndarray  # (OH, OW, 3) lit background at optical resolution (SUPERSAMPLE x output)
    background_sensor: np.ndarray  # the same at the output size
    light: np.ndarray  # (3,) colour of the room light
    side: float  # -1 light from image left, +1 from the right


@dataclass(frozen=True)
class VideoSpec:
    video_id: str
    split: str
    phone: int
    session: int
    user: int
    file_id: int


def builtin_images() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) of the real portraits scikit-image and matplotlib ship."""
    import skimage.data
    from matplotlib import cbook

    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_COLOR)
    # the order assigns splits (assign_users): the cameraman's half-profile face, partly hidden by
    # his camera, loses the face mesh on many attack frames, which costs nothing in train (attack
    # depth targets are zero there) but would in dev and test, where every frame's depth is used
    return [("camera", np.repeat(skimage.data.camera()[..., None], 3, axis=2)),
            ("astronaut", skimage.data.astronaut()),
            ("grace_hopper", cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB))]


def read_portrait_file(path) -> tuple[str, np.ndarray]:
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"{path}: --extra-portrait is not a readable image")
    return path.stem, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def analyse_portraits(images: list[tuple[str, np.ndarray]]) -> list[Portrait]:
    """Face box (MediaPipe face detection) and person matte (MediaPipe selfie segmentation)."""
    import mediapipe as mp  # heavy; only the builder needs it

    portraits = []
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as detector, \
            mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as segmenter:
        for name, rgb in images:
            rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
            found = detector.process(rgb).detections
            if not found:
                raise InputError(f"{name}: no face found in the portrait (MediaPipe face detection)")
            box = max(found, key=lambda d: d.score[0]).location_data.relative_bounding_box
            h, w = rgb.shape[:2]
            face = ((box.xmin + box.width / 2) * w, (box.ymin + box.height / 2) * h, box.width * w)
            matte = segmenter.process(rgb).segmentation_mask.astype(np.float32)
            matte = np.clip(cv2.GaussianBlur(matte, (0, 0), 1.0), 0.0, 1.0)
            # the live renderer extends the photo by repeating its edge rows: only the bottom one
            # (the torso going on below the frame) may carry the person, not the sides or the top
            ramp = max(2, w // 32)
            fade = np.clip(np.arange(w, dtype=np.float32) / ramp, 0, 1)
            matte *= np.minimum(fade, fade[::-1])[None, :]
            matte *= np.clip(np.arange(h, dtype=np.float32) / ramp, 0, 1)[:, None]
            portraits.append(Portrait(name, rgb.astype(np.float32) / 255.0, matte, face))
    return portraits


def split_users(n_users: int) -> dict[str, list[int]]:
    """Users 1..n in three disjoint blocks, train first (OULU: 20/15/20 of 55)."""
    n_held = n_users // 3
    n_train = n_users - 2 * n_held
    users = list(range(1, n_users + 1))
    return {"train": users[:n_train], "dev": users[n_train:n_train + n_held], "test": users[n_train + n_held:]}


def assign_users(n_users: int, n_portraits: int, seed: int) -> list[UserLook]:
    """Which portrait (and which re-posed copy of it) each user is; splits never share a portrait
    when there are at least three."""
    looks = []
    for index, (split, users) in enumerate(split_users(n_users).items()):
        pool = [p for p in range(n_portraits) if p % 3 == index] if n_portraits >= 3 else list(range(n_portraits))
        for k, user in enumerate(users):
            variant = k // len(pool)
            rng = np.random.default_rng([seed, 3, user])
            gains = tuple(float(g) for g in rng.uniform(0.9, 1.1, 3)) if variant else (1.0, 1.0, 1.0)
            scale = float(rng.uniform(0.9, 1.1)) if variant else 1.0
            looks.append(UserLook(user, split, pool[k % len(pool)], variant, variant % 2 == 1, gains, scale))
    return looks


def camera_model(seed: int, phone: int) -> CameraModel:
    rng = np.random.default_rng([seed, 2, phone])
    return CameraModel(white_balance=tuple(float(g) for g in rng.uniform(0.94, 1.06, 3)),
                       blur=float(rng.uniform(0.35, 0.7)), vignette=float(rng.uniform(0.08, 0.25)),
                       read_noise=float(rng.uniform(0.006, 0.012)), shot_noise=float(rng.uniform(3e-4, 9e-4)),
                       saturation=float(rng.uniform(0.95, 1.1)))


_SESSION_STYLE = {  # OULU sessions: office lights, meeting room, office with window light
    1: dict(wall=(0.76, 0.70, 0.60), light=(1.0, 0.92, 0.80), side=-1.0, window=False),
    2: dict(wall=(0.68, 0.71, 0.73), light=(0.97, 1.0, 0.98), side=1.0, window=False),
    3: dict(wall=(0.80, 0.79, 0.74), light=(0.90, 0.95, 1.04), side=1.0, window=True),
}


def _low_freq(rng, h: int, w: int, cells: int = 6) -> np.ndarray:
    """Smooth noise in [-1, 1]: uneven wall paint and light fall-off."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def make_room(seed: int, phone: int, session: int, width: int, height: int) -> Room:
    """A still, out-of-focus room seen by one phone in one session (optical resolution)."""
    rng = np.random.default_rng([seed, 1, phone, session])
    style = _SESSION_STYLE[session]
    ow, oh = width * SUPERSAMPLE, height * SUPERSAMPLE
    wall = np.array(style["wall"], np.float32) * rng.uniform(0.92, 1.05, 3).astype(np.float32)
    ys, xs = np.mgrid[0:oh, 0:ow].astype(np.float32)
    shade = 1.05 - 0.2 * ys / oh + 0.12 * style["side"] * (xs / ow - 0.5) + 0.05 * _low_freq(rng, oh, ow)
    img = wall[None, None, :] * shade[..., None]
    def rect(x0, y0, x1, y1, colour, thickness=-1):
        cv2.rectangle(img, (int(x0 * ow), int(y0 * oh)), (int(x1 * ow), int(y1 * oh)),
                      tuple(float(c) for c in colour), thickness)
    # furniture along the walls; the person covers the middle anyway
    x = rng.uniform(0.02, 0.12)
    rect(x, 0.15, x + 0.18, 1.05, rng.uniform([0.35, 0.22, 0.12], [0.55, 0.38, 0.25]))  # door
    rect(x + 0.15, 0.6, x + 0.165, 0.64, (0.8, 0.75, 0.55))
    if style["window"]:
        rect(0.62, 0.05, 0.97, 0.55, (0.92, 0.96, 1.0))
        rect(0.62, 0.05, 0.97, 0.55, (0.55, 0.55, 0.52), max(2, ow // 100))
        rect(0.79, 0.05, 0.80, 0.55, (0.55, 0.55, 0.52))
    else:
        shelf_x = rng.uniform(0.68, 0.78)
        for i in range(int(rng.integers(6, 11))):
            bx = shelf_x + i * 0.022
            rect(bx, rng.uniform(0.3, 0.38), bx + 0.018, 0.5, rng.uniform(0.1, 0.8, 3))
        rect(shelf_x - 0.02, 0.5, shelf_x + 0.26, 0.52, (0.3, 0.25, 0.2))
        if session == 2:
            rect(0.25, 0.05, 0.6, 0.35, (0.9, 0.9, 0.9))  # whiteboard
            for _ in range(3):
                y = rng.uniform(0.1, 0.3)
                rect(0.28, y, rng.uniform(0.35, 0.55), y + 0.01, rng.uniform(0.0, 0.5, 3))
    rect(0.0, 0.88, 1.0, 1.0, rng.uniform(0.25, 0.45, 3))  # desk edge
    light = np.array(style["light"], np.float32)
    img = cv2.GaussianBlur(img * light, (0, 0), 1.5 * SUPERSAMPLE)  # focus is on the face
    img = np.clip(img, 0, 1).astype(np.float32)
    return Room(img, cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA), light, style["side"])


# ---------------------------------------------------------------------------------------------------
# shared pieces of the renderers


def trajectory(rng, frames: int, amplitude: float) -> np.ndarray:
    """A smooth random path of ``frames`` values within +-amplitude: motion and light drift."""
    t = np.arange(frames, dtype=np.float64) / max(frames, 1)
    f1, f2 = rng.uniform(0.5, 1.2), rng.uniform(1.5, 2.5)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    return amplitude * (np.sin(2 * np.pi * f1 * t + p1) + 0.35 * np.sin(2 * np.pi * f2 * t + p2)) / 1.35


def light_drift(rng, frames: int, strength: float = 1.0) -> np.ndarray:
    """(frames, 3) RGB gain of the room light: brightness and colour temperature drift."""
    gain = 1.0 + trajectory(rng, frames, 0.12 * strength) + rng.uniform(-0.05, 0.05)
    temp = trajectory(rng, frames, 0.07 * strength)
    return (gain[:, None] * np.stack([1 + temp, np.ones_like(temp), 1 - temp], axis=1)).astype(np.float32)


def coarse_grid(ow: int, oh: int, step: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Optical-pixel coordinates of a grid ``step`` times coarser, placed so that ``upsample``
    (cv2.resize, linear) brings values computed on it back onto every pixel. Warps here are smooth,
    so computing them coarse saves 15/16 of the work."""
    xs = (np.arange(ow // step, dtype=np.float32) + 0.5) * step - 0.5
    ys = (np.arange(oh // step, dtype=np.float32) + 0.5) * step - 0.5
    return np.meshgrid(xs, ys)


def upsample(values: np.ndarray, ow: int, oh: int) -> np.ndarray:
    return cv2.resize(values.astype(np.float32), (ow, oh), interpolation=cv2.INTER_LINEAR)


def user_image(portrait: Portrait, look: UserLook) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """The portrait as this user looks: mirrored and tinted for re-posed copies."""
    rgb, matte = portrait.rgb, portrait.matte
    cx, cy, fw = portrait.face
    if look.flip:
        rgb, matte, cx = rgb[:, ::-1], matte[:, ::-1], rgb.shape[1] - cx
    rgb = np.clip(rgb * np.array(look.gains, np.float32), 0, 1)
    return np.ascontiguousarray(rgb), np.ascontiguousarray(matte), (cx, cy, fw * look.face_scale)


def crop_around_face(rgb, face, face_frac: float, out_w: int, out_h: int, face_y: float = 0.42) -> np.ndarray:
    """The part of a photo a printout or screen shows: face ``face_frac`` of the width, its centre
    ``face_y`` down; mirrored edges fill what lies outside the photo."""
    cx, cy, fw = face
    scale = out_w * face_frac / fw  # output px per photo px
    if scale < 1:  # area-average first so the warp below does not alias
        rgb = cv2.resize(rgb, None, fx=scale * 1.25, fy=scale * 1.25, interpolation=cv2.INTER_AREA)
        cx, cy, scale = cx * scale * 1.25, cy * scale * 1.25, 1 / 1.25
    m = np.float32([[scale, 0, out_w / 2 - scale * cx], [0, scale, out_h * face_y - scale * cy]])
    return cv2.warpAffine(rgb, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def pose_homography(src_half: tuple[float, float], texel: float, centre, angles, size) -> np.ndarray:
    """Homography of a flat rectangle (half sizes in texels, origin at its centre) held in front of a
    pinhole camera: rotated by ``angles`` (tilt about x, y, roll; radians), its centre imaged at
    ``centre``, ``texel`` optical pixels per texel when frontal."""
    ax, ay, roll = angles
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    rot = rz @ ry @ rx
    focal = 1.6 * size[0]  # ~35 degrees across: mild perspective, as a phone held at arm's length sees
    hw, hh = src_half
    src = np.float32([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]])
    pts = np.c_[src * texel, np.zeros(4)] @ rot.T
    dst = np.float32(focal * pts[:, :2] / (focal + pts[:, 2:3]) + np.asarray(centre, np.float64))
    return cv2.getPerspectiveTransform(src, dst)


def _affine(dx: float, dy: float, scale: float = 1.0) -> np.ndarray:
    """3x3 matrix of x -> scale * x + (dx, dy)."""
    return np.array([[scale, 0, dx], [0, scale, dy], [0, 0, 1]], np.float64)


# sensor pixel j covers optical pixels SUPERSAMPLE*j .. SUPERSAMPLE*j + SUPERSAMPLE - 1 (INTER_AREA)
_OPTICAL_TO_SENSOR = _affine(-(SUPERSAMPLE - 1) / (2 * SUPERSAMPLE), -(SUPERSAMPLE - 1) / (2 * SUPERSAMPLE),
                             1 / SUPERSAMPLE)


def integrate(optical: np.ndarray, size) -> np.ndarray:
    """Optical image -> sensor pixels: the lens blurs (its MTF still passes detail beyond the sensor's
    Nyquist limit, hence moire and aliased halftone), then each pixel averages its area."""
    blurred = cv2.GaussianBlur(optical, (0, 0), LENS_BLUR * SUPERSAMPLE)
    return cv2.resize(blurred, tuple(size), interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=4)
def _falloff(w: int, h: int) -> np.ndarray:
    """Squared distance from the image centre, 0 there and 1 in the corners (for vignetting)."""
    ys, xs = np.ogrid[0:h, 0:w]
    return (((xs - w / 2) ** 2 + (ys - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)).astype(np.float32)


def sense(image: np.ndarray, cam: CameraModel, rng, size: tuple[int, int]) -> np.ndarray:
    """Sensor irradiance (float RGB, ``size``) -> the phone's uint8 BGR frame."""
    w, h = size
    if image.shape[:2] != (h, w):
        raise ValueError(f"expected a {w}x{h} image, got {image.shape[1]}x{image.shape[0]}")
    img = cv2.GaussianBlur(image, (0, 0), cam.blur)  # this phone's softness: its optics, demosaicing
    img = img * (1 - np.float32(cam.vignette) * _falloff(w, h))[..., None] * np.float32(cam.white_balance)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + cam.saturation * (img - grey)
    sigma = np.sqrt(cam.read_noise ** 2 + cam.shot_noise * np.clip(img, 0, None))
    img = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_RGB2BGR)


# ---------------------------------------------------------------------------------------------------
# the three kinds of video


def render_live(rng, portrait: Portrait, look: UserLook, room: Room, size, frames: int) -> Iterator[np.ndarray]:
    """Rendered at the output size: a live face has no structure finer than a pixel to preserve."""
    ow, oh = size
    rgb, matte, (fx, fy, fw) = user_image(portrait, look)
    face_w = FACE_FRACTION * oh * rng.uniform(0.93, 1.07)
    s = face_w / fw
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    layer = cv2.resize(np.dstack([rgb * room.light, matte]), None, fx=s, fy=s, interpolation=interp)
    fx, fy = fx * s, fy * s
    ax, ay = ow * (0.5 + rng.uniform(-0.06, 0.06)), oh * (0.42 + rng.uniform(-0.04, 0.04))
    dx, dy = trajectory(rng, frames, 0.035 * ow), trajectory(rng, frames, 0.025 * oh)
    rot, zoom = trajectory(rng, frames, math.radians(4)), 1 + trajectory(rng, frames, 0.04)
    side = room.side * rng.uniform(0.15, 0.3) + trajectory(rng, frames, 0.1)  # light on a 3-D head
    drift = light_drift(rng, frames)
    xs, ys = coarse_grid(ow, oh)
    for t in range(frames):
        cx, cy = ax + dx[t], ay + dy[t]
        px, py = xs - cx, ys - cy
        c, sn = math.cos(-rot[t]) / zoom[t], math.sin(-rot[t]) / zoom[t]
        still_x, still_y = ax + c * px - sn * py, ay + sn * px + c * py  # where the point was before moving
        # the head follows the pose fully, the torso a quarter: a neck, not a rigid cardboard cut-out
        weight = 0.25 + 0.75 * np.exp(-(px ** 2 + py ** 2) / (2 * (1.5 * face_w) ** 2))
        map_x = upsample(xs + weight * (still_x - xs) - ax + fx, ow, oh)
        map_y = upsample(ys + weight * (still_y - ys) - ay + fy, ow, oh)
        img = cv2.remap(layer, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        shading = upsample(1 + side[t] * np.clip(px / (1.2 * face_w), -1, 1), ow, oh)
        alpha = img[..., 3:]
        frame = img[..., :3] * (shading[..., None] * alpha) + room.background_sensor * (1 - alpha)
        yield frame * drift[t]


# file id -> printer and paper, loosely after OULU's two printers and not calibrated to them. period:
# AM dot pitch in sensor pixels (2.0 shows the dots; 2.2 already hides faces from MediaPipe's detector
# in ~1 frame in 8); droplets: FM droplet sites per texel side; spread: ink bleed, sensor pixels;
# tone: the driver's mid-tone gamma against dot gain; saturation: the driver's gamut mapping;
# bend: cylinder radius / sheet width; gloss: specular sheen; face_frac: face width / photo width
_PRINTERS = {
    2: dict(screen="am", period=2.0, tone=0.9, saturation=0.8, paper=(0.95, 0.95, 0.93), bend=1.6, gloss=0.12,
            face_frac=0.42),
    3: dict(screen="fm", droplets=2, spread=0.3, tone=0.8, saturation=0.62, paper=(0.94, 0.92, 0.86), bend=0.9,
            gloss=0.0, face_frac=0.48),
}
# RGB transmittance of each ink layer (impure inks: the cause of a print's gamut loss)
_INKS = np.float32([[0.20, 0.78, 0.92], [0.90, 0.28, 0.70], [0.97, 0.92, 0.25], [0.10, 0.10, 0.11]])
_SCREEN_ANGLES = (15.0, 75.0, 0.0, 45.0)  # C, M, Y, K: the classic rosette


def print_sheet(rng, photo: np.ndarray, printer: dict, texels_per_px: float, margin: int) -> np.ndarray:
    """Reflectance of a printed sheet (RGB float) from the photo (RGB float, texel resolution)."""
    photo = np.clip(photo, 0, 1) ** np.float32(printer["tone"])  # the driver lightens mid-tones against dot gain
    grey = photo @ np.float32([0.299, 0.587, 0.114])
    photo = grey[..., None] + printer["saturation"] * (photo - grey[..., None])
    cmy = 1 - np.clip(photo, 0, 1)
    k = 0.8 * cmy.min(axis=2)  # grey-component replacement: black ink carries the shadows
    cmy = (cmy - k[..., None]) / (1 - k[..., None] + 1e-6)
    cover = np.concatenate([cmy, k[..., None]], axis=2)
    h, w = photo.shape[:2]
    if printer["screen"] == "am":
        period = printer["period"] * texels_per_px
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        ink = np.empty_like(cover)
        for i, angle in enumerate(_SCREEN_ANGLES):
            a = math.radians(angle)
            u, v = xs * math.cos(a) + ys * math.sin(a), -xs * math.sin(a) + ys * math.cos(a)
            spot = 0.5 - 0.25 * (np.cos(2 * np.pi * u / period) + np.cos(2 * np.pi * v / period))
            ink[..., i] = np.clip((cover[..., i] - spot) * 4 + 0.5, 0, 1)  # dots grow from cell centres
    else:
        # stochastic (FM) screening: each texel holds n x n droplet sites, each inked with probability
        # = coverage, so the texel's inked fraction is binomial (droplets finer than a texel for free)
        sites = printer["droplets"] ** 2
        ink = rng.binomial(sites, np.clip(cover, 0, 1)).astype(np.float32) / sites
        ink = cv2.GaussianBlur(ink, (0, 0), printer["spread"] * texels_per_px)  # ink bleeds into the paper
    paper = np.float32(printer["paper"])
    refl = np.ones((h, w, 3), np.float32)
    for i in range(4):
        refl *= 1 - ink[..., i:i + 1] * (1 - _INKS[i])
    sheet = np.empty((h + 2 * margin, w + 2 * margin, 3), np.float32)
    sheet[:] = paper
    sheet[margin:margin + h, margin:margin + w] = paper * refl
    fibre = cv2.GaussianBlur(rng.standard_normal(sheet.shape[:2]).astype(np.float32), (0, 0), 1.5)
    return sheet * (1 + 0.04 * fibre)[..., None]


def render_print(rng, portrait: Portrait, look: UserLook, room: Room, size, frames: int,
                 file_id: int) -> Iterator[np.ndarray]:
    """A hand-held printed photo: the sheet is printed once (texels finer than the optical image),
    then bent, posed and lit per frame."""
    printer = _PRINTERS[file_id]
    ow, oh = size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE
    texels_per_px = 2.5  # sheet texels per sensor pixel: halftone dots are finer than the optical image
    texel = SUPERSAMPLE / texels_per_px
    face_px = FACE_FRACTION * size[1] * rng.uniform(0.9, 1.05)
    photo_w = int(face_px / printer["face_frac"] * texels_per_px)
    photo_h = int(photo_w * 4 / 3)
    rgb, _, face = user_image(portrait, look)
    photo = crop_around_face(rgb, face, printer["face_frac"], photo_w, photo_h, face_y=0.4)
    margin = int(0.09 * photo_w)
    sheet = print_sheet(rng, photo, printer, texels_per_px, margin)
    th, tw = sheet.shape[:2]
    sheet = np.dstack([sheet, np.ones((th, tw), np.float32)])  # alpha rides along in one remap
    face_off = np.array([0.0, (margin + 0.4 * photo_h) - th / 2]) * texel  # face relative to sheet centre
    centre = np.array([ow * (0.5 + rng.uniform(-0.05, 0.05)), oh * (0.42 + rng.uniform(-0.03, 0.03))]) - face_off
    base = rng.uniform(-1, 1, 3) * np.radians([6, 6, 3])
    tilt = [trajectory(rng, frames, math.radians(a)) for a in (3, 3, 2)]
    shift = np.stack([trajectory(rng, frames, 0.02 * ow), trajectory(rng, frames, 0.02 * oh)], axis=1)
    radius = printer["bend"] * tw * (1 + trajectory(rng, frames, 0.12))
    gloss_at = room.side * 0.3 + rng.uniform(-0.2, 0.2)
    drift = light_drift(rng, frames, 0.8)
    xs, ys = coarse_grid(ow, oh)
    pix = np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
    for t in range(frames):
        r = radius[t]
        chord = r * math.sin(tw / (2 * r))  # the bent sheet seen from the front is narrower
        angles = base + np.array([tilt[0][t], tilt[1][t], tilt[2][t]])
        hom = pose_homography((chord, th / 2), texel, centre + shift[t], angles, (ow, oh))
        a, b, z = np.tensordot(np.linalg.inv(hom), pix, axes=1)
        a, b = a / z, b / z
        arc = r * np.arcsin(np.clip(a / r, -1, 1))  # cylindrical bend about the vertical axis
        phi = arc / r
        sag = 0.03 * th * (arc / (tw / 2)) ** 2  # the bent corners curl towards the camera
        map_x, map_y = upsample(arc + tw / 2, ow, oh), upsample(b - sag + th / 2, ow, oh)
        img = cv2.remap(sheet, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        # the sensor integrates the halftone now; light and shading vary slowly, so applying them
        # after the integration gives the same frame for a quarter of the work
        img = integrate(img, size)
        alpha = img[..., 3:]
        shade = upsample(1 + 0.25 * room.side * np.sin(phi) - 0.15 * (1 - np.cos(phi)), *size)
        sheen = upsample(printer["gloss"] * np.exp(-((phi - gloss_at - angles[1]) / 0.15) ** 2), *size)
        lit = (img[..., :3] * shade[..., None] + sheen[..., None] * alpha) * (room.light * drift[t])
        yield lit + room.background_sensor * (drift[t] * (1 - alpha))  # specular sheen: additive


# file id -> display, loosely after OULU's desk monitor and laptop, not calibrated. pitch: screen pixel
# in sensor pixels (near 1: the sub-pixel stripes alias into moire); gamma, white, black, brightness:
# how the display renders the recording; glare: lamp reflection peak; reflect: room in the glass;
# motion: how much the device moves (a monitor on a desk vs a hand-held tablet)
_DEVICES = {
    4: dict(aspect=4 / 3, face_frac=0.30, pitch=1.6, gamma=1.25, white=(0.90, 0.96, 1.0), black=0.07,
            bezel=0.07, bezel_colour=(0.16, 0.16, 0.17), glare=0.3, glare_size=0.25, reflect=0.03,
            brightness=1.0, motion=0.3),
    5: dict(aspect=3 / 4, face_frac=0.42, pitch=0.85, gamma=0.8, white=(1.0, 0.97, 0.9), black=0.035,
            bezel=0.045, bezel_colour=(0.04, 0.04, 0.045), glare=0.45, glare_size=0.14, reflect=0.08,
            brightness=1.1, motion=1.0),
}
_SUBPIXEL_ROWS = np.float32([1.0, 1.0, 0.3])  # the dark matrix between pixel rows


def render_replay(rng, portrait: Portrait, look: UserLook, room: Room, size, frames: int,
                  file_id: int) -> Iterator[np.ndarray]:
    """A screen replaying a recording of the photo: the emitted sub-pixel image goes through the
    optics and the sensor; the reflective parts (bezel, glass) are smooth and rendered coarse."""
    dev = _DEVICES[file_id]
    ow, oh = size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE
    face_px = 0.27 * size[1] * rng.uniform(0.92, 1.05)
    screen_w = face_px / dev["face_frac"]
    nx, ny = int(round(screen_w / dev["pitch"])), int(round(screen_w / dev["aspect"] / dev["pitch"]))
    texel = dev["pitch"] * SUPERSAMPLE / 3  # three texels per screen pixel: the R, G and B stripes
    rgb, _, face = user_image(portrait, look)
    source = crop_around_face(rgb, face, dev["face_frac"], nx, ny)  # the recording the attacker plays
    bz = int(dev["bezel"] * 3 * ny)
    th, tw = 3 * ny + 2 * bz, 3 * nx + 2 * bz
    bezel = np.empty((th, tw, 3), np.float32)
    bezel[:] = np.float32(dev["bezel_colour"])
    bezel *= (1 + 0.15 * np.linspace(1, -1, th, dtype=np.float32))[:, None, None]
    alpha_tex = np.zeros((th, tw), np.float32)
    r = bz // 2  # rounded corners
    cv2.rectangle(alpha_tex, (r, 0), (tw - 1 - r, th - 1), 1.0, -1)
    cv2.rectangle(alpha_tex, (0, r), (tw - 1, th - 1 - r), 1.0, -1)
    for x, y in ((r, r), (tw - 1 - r, r), (r, th - 1 - r), (tw - 1 - r, th - 1 - r)):
        cv2.circle(alpha_tex, (x, y), r, 1.0, -1)
    mask = np.zeros((3, 3, 3), np.float32)
    for ch in range(3):
        mask[:, ch, ch] = _SUBPIXEL_ROWS * 3 / _SUBPIXEL_ROWS.mean()
    mask = np.tile(mask, (ny, nx, 1))
    # what the device reflects (bezel, the room in the glass, a lamp's glare) is smooth: it lives on
    # a grid 4x coarser than the sub-pixels and goes straight to the sensor
    coarse = 4
    cw, ch_ = tw // coarse, th // coarse
    bezel[bz:bz + 3 * ny, bz:bz + 3 * nx] = 0  # the screen's glass is black where it does not emit
    mirror = cv2.GaussianBlur(room.background[:, ::-1], (0, 0), 3 * SUPERSAMPLE) * dev["reflect"]
    reflective = cv2.resize(bezel, (cw, ch_), interpolation=cv2.INTER_AREA) + cv2.resize(mirror, (cw, ch_))
    alpha_c = cv2.resize(alpha_tex, (cw, ch_), interpolation=cv2.INTER_AREA)
    gxs, gys = np.meshgrid((np.arange(cw, dtype=np.float32) + 0.5) * coarse - 0.5,
                           (np.arange(ch_, dtype=np.float32) + 0.5) * coarse - 0.5)
    glare_xy = np.array([tw * rng.uniform(0.25, 0.75), th * rng.uniform(0.15, 0.4)])
    glare_angle = rng.uniform(0, np.pi)
    centre = np.array([ow * (0.5 + rng.uniform(-0.04, 0.04)), oh * (0.5 + rng.uniform(-0.03, 0.03))])
    base = rng.uniform(-1, 1, 3) * np.radians([7, 7, 2])
    tilt = [trajectory(rng, frames, math.radians(a) * dev["motion"]) for a in (3, 3, 2)]
    shift = np.stack([trajectory(rng, frames, 0.015 * ow * dev["motion"]),
                      trajectory(rng, frames, 0.015 * oh * dev["motion"])], axis=1)
    cdx, cdy = trajectory(rng, frames, 0.03 * nx), trajectory(rng, frames, 0.02 * ny)  # the recorded head
    crot, czoom = trajectory(rng, frames, math.radians(3)), 1 + trajectory(rng, frames, 0.03)
    drift = light_drift(rng, frames, 0.8)
    white = np.float32(dev["white"]) * dev["brightness"]
    coarse_to_texel = _affine((coarse - 1) / 2, (coarse - 1) / 2, coarse)  # coarse pixel centres
    to_corner = _affine(-tw / 2, -th / 2)  # pose_homography's origin is the device centre
    for t in range(frames):
        m = cv2.getRotationMatrix2D((nx / 2, 0.42 * ny), math.degrees(crot[t]), czoom[t])
        m[:, 2] += (cdx[t], cdy[t])
        content = cv2.warpAffine(source, m, (nx, ny), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        shown = dev["black"] + (white - dev["black"]) * np.clip(content, 0, 1) ** dev["gamma"]
        emitted = cv2.resize(shown, (3 * nx, 3 * ny), interpolation=cv2.INTER_NEAREST) * mask
        angles = base + np.array([tilt[0][t], tilt[1][t], tilt[2][t]])
        hom = pose_homography((tw / 2, th / 2), texel, centre + shift[t], angles, (ow, oh)) @ to_corner
        # sub-pixels: optical resolution, then the sensor integrates them (the moire)
        img = cv2.warpPerspective(emitted, hom @ _affine(bz, bz), (ow, oh), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
        img = integrate(img, size)
        gx, gy = glare_xy + np.array([angles[1], -angles[0]]) * np.array([tw, th])  # moves with the tilt
        u = (gxs - gx) * math.cos(glare_angle) + (gys - gy) * math.sin(glare_angle)
        v = -(gxs - gx) * math.sin(glare_angle) + (gys - gy) * math.cos(glare_angle)
        size_px = dev["glare_size"] * tw
        glare = dev["glare"] * np.exp(-(u / size_px) ** 2 - (v / (0.45 * size_px)) ** 2)
        layer = np.dstack([(reflective + glare[..., None]) * alpha_c[..., None], alpha_c])
        layer = cv2.warpPerspective(layer, _OPTICAL_TO_SENSOR @ hom @ coarse_to_texel, size,
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        lit = room.light * drift[t]
        yield img + layer[..., :3] * lit + room.background_sensor * (drift[t] * (1 - layer[..., 3:]))


# ---------------------------------------------------------------------------------------------------
# the dataset


class DemoBuilder:
    """Renders any video of the demo set on demand (rooms are made once per phone and session)."""

    def __init__(self, portraits: list[Portrait], looks: list[UserLook], size, frames: int, seed: int):
        self.portraits, self.size, self.frames, self.seed = portraits, tuple(size), int(frames), int(seed)
        self.looks = {look.user: look for look in looks}
        self._rooms: dict[tuple[int, int], Room] = {}

    def room(self, phone: int, session: int) -> Room:
        key = (phone, session)
        if key not in self._rooms:
            self._rooms[key] = make_room(self.seed, phone, session, *self.size)
        return self._rooms[key]

    def frames_of(self, spec: VideoSpec) -> Iterator[np.ndarray]:
        """The video's frames as uint8 BGR, ``size`` wide and high."""
        rng = np.random.default_rng([self.seed, 4, spec.phone, spec.session, spec.user, spec.file_id])
        look = self.looks[spec.user]
        args = (rng, self.portraits[look.portrait], look, self.room(spec.phone, spec.session), self.size, self.frames)
        kind = FILE_KIND[spec.file_id]
        if kind == "live":
            irradiance = render_live(*args)
        elif kind == "print":
            irradiance = render_print(*args, spec.file_id)
        else:
            irradiance = render_replay(*args, spec.file_id)
        cam = camera_model(self.seed, spec.phone)
        for frame in irradiance:  # what reaches the sensor, one frame at a time
            yield sense(frame.astype(np.float32, copy=False), cam, rng, self.size)


def video_specs(looks: list[UserLook], phones: int) -> list[VideoSpec]:
    specs = []
    for look in looks:
        for phone in range(1, phones + 1):
            for session in SPLIT_SESSIONS[look.split]:
                for file_id in FILE_KIND:
                    vid = f"{phone}_{session}_{look.user:02d}_{file_id}"
                    specs.append(VideoSpec(vid, look.split, phone, session, look.user, file_id))
    return sorted(specs, key=lambda s: (s.split != "train", s.split != "dev", s.video_id))


def write_video(path: Path, frames: Iterator[np.ndarray], size, fps: float, n_frames: int, partial_dir: Path) -> None:
    """MJPG .avi written under ``partial_dir`` (outside the split folders a frame extractor walks),
    checked by decoding, then renamed into place."""
    partial_dir.mkdir(parents=True, exist_ok=True)
    tmp = partial_dir / path.name  # VideoWriter picks the container from the .avi suffix
    writer = cv2.VideoWriter(str(tmp), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), float(fps), tuple(size))
    try:
        if not writer.isOpened():
            raise OSError(f"{tmp}: OpenCV could not open an MJPG writer")
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)  # explicit, so OpenCV versions agree
        for frame in frames:
            writer.write(frame)
        writer.release()
        cap = cv2.VideoCapture(str(tmp))
        count = 0
        while cap.read()[0]:
            count += 1
        cap.release()
        if count != n_frames:
            raise OSError(f"{tmp}: wrote {n_frames} frames but {count} decode")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
    finally:
        writer.release()
        if tmp.exists():
            tmp.unlink()


_WORKER: dict = {}  # per process: the builder and settings _make_video needs


def _init_worker(builder: DemoBuilder, fps: float, partial_dir: Path, own_process: bool) -> None:
    if own_process:
        cv2.setNumThreads(1)  # one video per process already fills the cores
    _WORKER.update(builder=builder, fps=fps, partial_dir=partial_dir)


def _make_video(job: tuple[VideoSpec, Path]) -> str:
    spec, path = job
    builder = _WORKER["builder"]
    write_video(path, builder.frames_of(spec), builder.size, _WORKER["fps"], builder.frames, _WORKER["partial_dir"])
    return spec.video_id


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # absent, or holds another run's partial file
        pass


def write_protocols(out: Path, specs: list[VideoSpec], looks: list[UserLook], phones: int) -> dict[str, Path]:
    folder = out / "protocols" / "Protocol_1"
    ids = [s.video_id for s in specs]
    paths = {}
    for split, name in (("train", "Train.txt"), ("dev", "Dev.txt"), ("test", "Test.txt")):
        users = [look.user for look in looks if look.split == split]
        items = make_oulu_protocol(ids, users=users, sessions=SPLIT_SESSIONS[split], phones=range(1, phones + 1))
        paths[split] = write_protocol(folder / name, items, fmt="oulu")
    return paths


def write_users(out: Path, looks: list[UserLook], portraits: list[Portrait]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["user", "split", "portrait", "variant", "mirrored", "note"])
    for look in looks:
        note = "the photo as shipped" if look.variant == 0 else "re-posed copy: same person as variant 0"
        w.writerow([f"{look.user:02d}", look.split, portraits[look.portrait].name, look.variant, int(look.flip), note])
    atomic_write_text(out / "users.csv", buf.getvalue())
    return out / "users.csv"


# ---------------------------------------------------------------------------------------------------
# command line


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[xX](\d+)", str(text).strip())
    if m is None:
        raise argparse.ArgumentTypeError(f"--size must look like WIDTHxHEIGHT (e.g. 320x240), got {text!r}")
    w, h = int(m[1]), int(m[2])
    if w < 64 or h < 64 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"--size {text}: width and height must be even and at least 64")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Build a small OULU-NPU-style demo dataset (videos + Protocol_1 lists) from public-domain "
                    "portraits shipped with scikit-image and matplotlib.",
        epilog="The demo data shows the pipeline working; it measures nothing about accuracy. "
               "See the module docstring (demo/make_demo_data.py) for what each video simulates.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="demo_data",
                   help="dataset folder: Train_files/, Dev_files/, Test_files/, protocols/, users.csv, "
                        "config.json, log.txt")
    p.add_argument("--users", type=int, default=6, help="users 01..N, split into disjoint train/dev/test thirds (3-55)")
    p.add_argument("--phones", type=int, default=1, help="phones 1..N, each a different simulated camera (1-6)")
    p.add_argument("--frames", type=int, default=12, help="frames per video")
    p.add_argument("--size", type=parse_size, default="320x240",
                   help="frame size WIDTHxHEIGHT; below 320x240 the faces on screens get too small for the "
                        "face mesh of the depth stage")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate written in the .avi (OULU-NPU: 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice; same seed, same videos")
    p.add_argument("--extra-portrait", action="append", default=[], metavar="IMAGE",
                   help="another portrait photo with one clear face (repeatable); you must have the right to use it")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes rendering videos in parallel (each video is seeded alone, so the output "
                        "does not depend on this)")
    p.add_argument("--force", action="store_true",
                   help="rebuild every video, and delete demo videos (P_S_UU_F.avi) the new settings do not make")
    return p


def check_args(args) -> None:
    if not 3 <= args.users <= 55:
        raise InputError(f"--users must be 3..55 (two-digit OULU user ids, at least one user per split), "
                         f"got {args.users}")
    if not 1 <= args.phones <= 6:
        raise InputError(f"--phones must be 1..6 (OULU-NPU phone ids), got {args.phones}")
    if args.frames < 1:
        raise InputError(f"--frames must be at least 1, got {args.frames}")
    if args.fps <= 0:
        raise InputError(f"--fps must be positive, got {args.fps}")


def check_previous(out: Path, config: dict) -> None:
    """A rerun into a finished folder must not mix videos from two configurations."""
    path = out / "config.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc}); delete it or rerun with --force") from None
    changed = [k for k in DATA_KEYS if old.get(k) != config.get(k)]
    if changed:
        diff = ", ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in changed)
        raise InputError(f"{out} holds demo data built with other settings ({diff}); "
                         "use another --out or rerun with --force")


def run(args) -> dict:
    check_args(args)
    out = Path(args.out)
    start = time.time()
    config = {"data_version": DATA_VERSION, **vars(args), "size": list(args.size), "out": str(out),
              "extra_portrait": [str(p) for p in args.extra_portrait]}
    if not args.force:
        check_previous(out, json.loads(json.dumps(config)))
    save_config(config, out)
    log.info("demo data: it shows the pipeline working and measures nothing about accuracy")
    portraits = analyse_portraits(builtin_images() + [read_portrait_file(p) for p in args.extra_portrait])
    looks = assign_users(args.users, len(portraits), args.seed)
    for look in looks:
        log.info("user %02d (%s): %s, variant %d%s", look.user, look.split, portraits[look.portrait].name,
                 look.variant, ", mirrored" if look.flip else "")
    specs = video_specs(looks, args.phones)
    wanted = {out / SPLIT_FOLDERS[s.split] / f"{s.video_id}.avi" for s in specs}
    if args.force:
        for folder in SPLIT_FOLDERS.values():
            for path in sorted((out / folder).glob("*.avi")):
                if _VIDEO_RE.match(path.name) and path not in wanted:
                    log.info("removing %s (not part of the new settings)", path)
                    path.unlink()
    builder = DemoBuilder(portraits, looks, args.size, args.frames, args.seed)
    jobs = [(spec, out / SPLIT_FOLDERS[spec.split] / f"{spec.video_id}.avi") for spec in specs]
    todo = [job for job in jobs if args.force or not job[1].is_file()]
    skipped = len(jobs) - len(todo)
    workers = max(1, min(args.workers, len(todo)))
    initargs = (builder, args.fps, out / ".partial", workers > 1)
    with logging_redirect_tqdm(), tqdm(total=len(todo), desc="demo videos", unit="video") as bar:
        if workers > 1:
            # spawn, not fork: MediaPipe's and OpenCV's threads in this process can deadlock a forked child
            context = multiprocessing.get_context("spawn")
            with context.Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
                for _ in pool.imap_unordered(_make_video, todo):
                    bar.update()
        else:
            _init_worker(*initargs)
            for job in todo:
                _make_video(job)
                bar.update()
    written = len(todo)
    _remove_empty(out / ".partial")
    protocols = write_protocols(out, specs, looks, args.phones)
    users_csv = write_users(out, looks, portraits)
    counts = {split: sum(s.split == split for s in specs) for split in SPLIT_FOLDERS}
    seconds = time.time() - start
    log.info("%d videos written, %d already there; %s; %.1f s", written, skipped,
             ", ".join(f"{k} {v}" for k, v in counts.items()), seconds)
    for split, path in protocols.items():
        log.info("%s protocol: %s", split, path)
    return {"out": str(out), "videos": counts, "written": written, "skipped": skipped,
            "protocols": {k: str(v) for k, v in protocols.items()}, "users_csv": str(users_csv), "seconds": seconds}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    setup_logging(args.out)
    try:
        return run(args)
    except InputError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

"""How the demo videos are rendered: portraits, rooms, the phone's camera, the live video, and the
optical pieces the attacks (demo/attacks.py) share. demo/builder.py picks the renderer per file id.

Portraits: scikit-image's ``camera`` (CC0; grey, used as three equal channels) and ``astronaut``
(NASA, public domain) and matplotlib's ``grace_hopper.jpg`` (US Navy, public domain). No other real
face photos ship with the dependencies (``skimage.data.lfw_subset`` holds 25x25 crops of news photos,
neither public domain nor large enough for a detector); ``--extra-portrait`` adds your own. The
first user of each split is one photo as shipped (camera train, astronaut dev, Grace Hopper test);
further users are derived identities (``reshape_face``: facial proportions changed, then re-tinted,
re-scaled, every other one mirrored), made of every photo in turn (demo/builder.py assign_users).
They are synthetic variations of the photographed people, not new people. The cameraman's
half-profile face, partly hidden by his camera, is found by MTCNN in nearly every frame but loses
the MediaPipe face mesh (the depth stage) on most of his attack frames; that costs nothing in
train, whose attack depth targets are zero, and in dev and test the other faces keep most frames
with a map (a frame without one is scored with the face template's depth).

Live (file id 1): the person, cut out with MediaPipe's selfie matte, stands in a procedural room; the
head moves (translation, rotation, scale, weighted towards the face so the torso lags) against the
still background, the room light drifts in brightness and colour temperature, a side light shades
the face.

Prints and screens are rendered at twice the output size, blurred by the lens and area-averaged as a
sensor integrates the optical image (what turns dots and sub-pixels into aliasing and moire); live
frames, with no detail finer than a pixel, are rendered at the output size. The phone's camera then
blurs, vignettes, white-balances and adds shot and read noise.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from utils.io import InputError

SUPERSAMPLE = 2  # optical image resolution / sensor resolution; moire needs sub-pixel structure
LENS_BLUR = 0.4  # lens blur sigma before the sensor integrates, in sensor pixels
FACE_FRACTION = 0.30  # live face width / frame height: ~72 px at 240 rows, far above MTCNN's 20 px minimum


# ---------------------------------------------------------------------------------------------------
# portraits, cameras, rooms


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
    shape: tuple[float, ...] = (0.0,) * 5  # reshape_face parameters; all zero for the photo as shipped


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


FACE_SHAPE_RANGE = (0.16, 0.14, 0.12, 0.16, 0.14)  # +- bounds of the reshape_face parameters


def random_face_shape(rng) -> tuple[float, ...]:
    """Facial proportions of a derived identity: each parameter drawn within FACE_SHAPE_RANGE, with at
    least a third of its range, so no two derived faces of one photo look nearly alike by chance."""
    signs = rng.choice([-1.0, 1.0], len(FACE_SHAPE_RANGE))
    return tuple(float(s * r * rng.uniform(0.35, 1.0)) for s, r in zip(signs, FACE_SHAPE_RANGE))


def reshape_face(rgb: np.ndarray, matte: np.ndarray, face, shape) -> tuple[np.ndarray, np.ndarray]:
    """A person with other facial proportions, made from a portrait by a smooth warp in face
    coordinates (u, v) = ((x, y) - face centre) / face width. ``shape`` = (face width, eye spacing,
    eye height, nose-to-mouth length, chin length), each a relative change (e.g. 0.1 = 10 %). Every
    displacement is a Gaussian bump around its feature, small against the bump's width, so the warp
    never folds; hair, neck and background beyond about one face width stay where they were."""
    width, eyes, eye_height, mouth, chin = shape
    cx, cy, fw = face
    h, w = rgb.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    u, v = (xs - cx) / fw, (ys - cy) / fw

    def bump(u0, v0, su, sv):
        return np.exp(-((u - u0) / su) ** 2 / 2 - ((v - v0) / sv) ** 2 / 2)

    # the map says where each output pixel is read from: a wider face reads from nearer the centre
    du = -width * u * bump(0, 0.05, 0.55, 0.7)
    du += -eyes * np.tanh(u / 0.15) * 0.12 * bump(0, -0.2, 0.3, 0.12)  # eyes apart / together
    dv = -eye_height * 0.1 * bump(0, -0.2, 0.4, 0.15)  # eyes higher / lower in the face
    dv += -mouth * (v - 0.1) * bump(0, 0.22, 0.3, 0.18)  # longer / shorter nose-to-mouth
    dv += -chin * (v - 0.3) * np.clip(v / 0.3, 0, 1) * bump(0, 0.5, 0.45, 0.3)  # longer / shorter chin
    map_x, map_y = xs + du * fw, ys + dv * fw
    warp = functools.partial(cv2.remap, map1=map_x, map2=map_y, interpolation=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    return warp(rgb), warp(matte)


def user_image(portrait: Portrait, look: UserLook) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """The portrait as this user looks: for derived identities re-shaped (reshape_face), mirrored and tinted."""
    rgb, matte = portrait.rgb, portrait.matte
    cx, cy, fw = portrait.face
    if any(look.shape):
        rgb, matte = reshape_face(rgb, matte, portrait.face, look.shape)
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


def affine(dx: float, dy: float, scale: float = 1.0) -> np.ndarray:
    """3x3 matrix of x -> scale * x + (dx, dy)."""
    return np.array([[scale, 0, dx], [0, scale, dy], [0, 0, 1]], np.float64)


# sensor pixel j covers optical pixels SUPERSAMPLE*j .. SUPERSAMPLE*j + SUPERSAMPLE - 1 (INTER_AREA)
OPTICAL_TO_SENSOR = affine(-(SUPERSAMPLE - 1) / (2 * SUPERSAMPLE), -(SUPERSAMPLE - 1) / (2 * SUPERSAMPLE),
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
# the live video


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

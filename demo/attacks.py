"""The two attacks of the demo set, rendered on the pieces demo/render.py shares.

* 2/3 print: the photo is printed on a sheet: grey-component CMYK separation with impure inks
  (gamut loss), halftone (2: rotated AM dot screens, glossy white paper; 3: stochastic inkjet-like
  droplets, warmer matte paper, stronger desaturation), paper margins and edges in view, a
  cylindrical bend with its shading, and the hand-held sheet moving rigidly;
* 4/5 replay: the photo plays on a screen with small head motion: RGB sub-pixel stripes and a dark
  pixel matrix that the camera samples into moire, gamma and white-point shift, raised black level,
  a specular glare and a faint room reflection, a bezel, a tilted (perspective) device. 4: a desk
  monitor (coarse pixels, landscape, nearly still); 5: a hand-held high-density tablet (portrait).

Both yield sensor irradiance per frame; the camera model (render.sense) makes the phone's frames.
"""
from __future__ import annotations

import math
from typing import Iterator

import cv2
import numpy as np

from demo.render import (FACE_FRACTION, SUPERSAMPLE, OPTICAL_TO_SENSOR, Portrait, Room, UserLook, affine,
                         coarse_grid, crop_around_face, integrate, light_drift, pose_homography, trajectory,
                         upsample, user_image)


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


def device_textures(dev: dict, nx: int, ny: int, bz: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A replay device in texels (three per screen pixel, the bezel ``bz`` wide around them): the
    bezel's colour with a top-to-bottom shading, the device's alpha (rounded corners), and the RGB
    sub-pixel stripe mask of the ``nx`` x ``ny`` screen."""
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
    return bezel, alpha_tex, np.tile(mask, (ny, nx, 1))


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
    bezel, alpha_tex, mask = device_textures(dev, nx, ny, bz)
    th, tw = alpha_tex.shape
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
    coarse_to_texel = affine((coarse - 1) / 2, (coarse - 1) / 2, coarse)  # coarse pixel centres
    to_corner = affine(-tw / 2, -th / 2)  # pose_homography's origin is the device centre
    for t in range(frames):
        m = cv2.getRotationMatrix2D((nx / 2, 0.42 * ny), math.degrees(crot[t]), czoom[t])
        m[:, 2] += (cdx[t], cdy[t])
        content = cv2.warpAffine(source, m, (nx, ny), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        shown = dev["black"] + (white - dev["black"]) * np.clip(content, 0, 1) ** dev["gamma"]
        emitted = cv2.resize(shown, (3 * nx, 3 * ny), interpolation=cv2.INTER_NEAREST) * mask
        angles = base + np.array([tilt[0][t], tilt[1][t], tilt[2][t]])
        hom = pose_homography((tw / 2, th / 2), texel, centre + shift[t], angles, (ow, oh)) @ to_corner
        # sub-pixels: optical resolution, then the sensor integrates them (the moire)
        img = cv2.warpPerspective(emitted, hom @ affine(bz, bz), (ow, oh), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
        img = integrate(img, size)
        gx, gy = glare_xy + np.array([angles[1], -angles[0]]) * np.array([tw, th])  # moves with the tilt
        u = (gxs - gx) * math.cos(glare_angle) + (gys - gy) * math.sin(glare_angle)
        v = -(gxs - gx) * math.sin(glare_angle) + (gys - gy) * math.cos(glare_angle)
        size_px = dev["glare_size"] * tw
        glare = dev["glare"] * np.exp(-(u / size_px) ** 2 - (v / (0.45 * size_px)) ** 2)
        layer = np.dstack([(reflective + glare[..., None]) * alpha_c[..., None], alpha_c])
        layer = cv2.warpPerspective(layer, OPTICAL_TO_SENSOR @ hom @ coarse_to_texel, size,
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        lit = room.light * drift[t]
        yield img + layer[..., :3] * lit + room.background_sensor * (drift[t] * (1 - layer[..., 3:]))

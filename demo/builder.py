"""The demo set's contents: which portrait each user is, which videos exist, and rendering any of
them on demand (demo/render.py for live video, demo/attacks.py for print and replay)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from demo.attacks import render_print, render_replay
from demo.render import Portrait, Room, UserLook, camera_model, make_room, random_face_shape, render_live, sense

FILE_KIND = {1: "live", 2: "print", 3: "print", 4: "replay", 5: "replay"}


@dataclass(frozen=True)
class VideoSpec:
    video_id: str
    split: str
    phone: int
    session: int
    user: int
    file_id: int


def split_users(n_users: int) -> dict[str, list[int]]:
    """Users 1..n in three disjoint blocks, train first (OULU: 20/15/20 of 55)."""
    n_held = n_users // 3
    n_train = n_users - 2 * n_held
    users = list(range(1, n_users + 1))
    return {"train": users[:n_train], "dev": users[n_train:n_train + n_held], "test": users[n_train + n_held:]}


def assign_users(n_users: int, n_portraits: int, seed: int, mixed: bool = True) -> list[UserLook]:
    """Which portrait (and which derived identity made from it) each user is. Variant 0 is the photo
    as shipped; every further variant is a derived identity: the face re-shaped
    (demo.render.reshape_face), re-tinted, re-scaled and, every other one, mirrored.

    The first user of each split is a photo as shipped, a different one per split when there are
    at least three (train the first portrait, dev the second, test the third). ``mixed`` (default):
    the further users of a split are derived identities of all portraits in turn, so every split
    holds several faces and no (portrait, variant) pair occurs twice; otherwise (``mixed=False``)
    a split derives its further users from its own portraits only, and splits never share a portrait."""
    looks = []
    next_variant = [1] * n_portraits  # mixed: each portrait's next unused derived identity
    for index, (split, users) in enumerate(split_users(n_users).items()):
        pool = [p for p in range(n_portraits) if p % 3 == index] if n_portraits >= 3 else list(range(n_portraits))
        for k, user in enumerate(users):
            if mixed and k > 0:
                portrait = (pool[0] + k) % n_portraits
                variant = next_variant[portrait]
                next_variant[portrait] += 1
            else:
                portrait, variant = pool[k % len(pool)], k // len(pool) if not mixed else 0
            rng = np.random.default_rng([seed, 3, user])
            gains = tuple(float(g) for g in rng.uniform(0.9, 1.1, 3)) if variant else (1.0, 1.0, 1.0)
            scale = float(rng.uniform(0.9, 1.1)) if variant else 1.0
            shape = random_face_shape(rng) if variant else (0.0,) * 5
            looks.append(UserLook(user, split, portrait, variant, variant % 2 == 1, gains, scale, shape))
    return looks


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

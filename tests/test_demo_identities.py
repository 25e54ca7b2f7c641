"""Derived identities of the demo set: re-shaped faces, distinct per user, the photo elsewhere untouched."""
from __future__ import annotations

import numpy as np

from demo.builder import assign_users
from demo.render import FACE_SHAPE_RANGE, reshape_face


def _portrait(h=200, w=160):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([xs / w, ys / h, 0.5 + 0.5 * np.sin(xs / 5) * np.cos(ys / 7)], axis=2).astype(np.float32)
    return rgb, (ys < 150).astype(np.float32), (80.0, 90.0, 60.0)  # face centre (80, 90), 60 px wide


def test_zero_shape_is_the_photo_and_a_shape_moves_only_the_face():
    rgb, matte, face = _portrait()
    same, same_matte = reshape_face(rgb, matte, face, (0.0,) * 5)
    assert np.allclose(same, rgb, atol=1e-5) and np.allclose(same_matte, matte, atol=1e-5)
    wider, _ = reshape_face(rgb, matte, face, (0.15, 0.1, 0.1, 0.15, 0.1))
    # channels 0 and 1 are ramps in x and y: their change is the displacement, in pixels
    moved = np.hypot((wider[..., 0] - rgb[..., 0]) * 160, (wider[..., 1] - rgb[..., 1]) * 200)
    assert moved[60:120, 50:110].max() > 3  # features moved by pixels
    assert moved[:8].max() < 1 and moved[:, :4].max() < 1 and moved[-8:].max() < 1  # far away: under a pixel


def test_every_derived_user_has_its_own_face_shape():
    looks = assign_users(15, 3, seed=0)
    shapes = [look.shape for look in looks if look.variant]
    assert len(shapes) == 12 and len(set(shapes)) == 12
    for look in looks:
        if look.variant == 0:
            assert look.shape == (0.0,) * 5
        else:  # each parameter at least a third of its range away from the photo's proportions
            assert all(0.3 * r <= abs(s) <= r for s, r in zip(look.shape, FACE_SHAPE_RANGE))
    assert assign_users(15, 3, seed=0) == looks and assign_users(15, 3, seed=1) != looks


def test_mixed_splits_show_several_faces_and_never_reuse_one():
    looks = assign_users(12, 3, seed=0)
    first = {look.split: (look.portrait, look.variant) for look in reversed(looks)}
    assert first == {"train": (0, 0), "dev": (1, 0), "test": (2, 0)}  # each split's own photo as shipped
    for split in ("train", "dev", "test"):
        assert {look.portrait for look in looks if look.split == split} == {0, 1, 2}
    pairs = [(look.portrait, look.variant) for look in looks]
    assert len(set(pairs)) == len(pairs)  # every user a different face
    assert [(look.split, look.portrait) for look in assign_users(3, 3, seed=0)] == [
        ("train", 0), ("dev", 1), ("test", 2)]

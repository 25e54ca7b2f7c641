"""The frame score's denominator, and the face template used when a frame has no usable depth map.

Frame score (the original's test score, docs/ and the README): sum(mu) / sum(depth), with the
frame's depth label as a raw 0-255 map at the network's map size. The original always had a depth
map (PRNet produced one for every face box), so every frame was scored. Our depth labels come from
the MediaPipe face mesh, which can fail on a face that MTCNN boxed (more often on attacks: prints,
screens). Such a frame, and a frame whose depth crop is all black, is still scored: its denominator
is the depth sum of a *face template*, the mean depth of a face label over a dev/test crop.

``FACE_TEMPLATE_MEAN_DEPTH`` is that mean (0-255 scale) over the crop at the dev/test scale 1.3
(crop side = 1.3 x the MTCNN box, ``crop_dataset.py --test-scale``), measured with our own pipeline
(MTCNN box, mesh depth label, 1.3 crop at 32 x 32) on five real faces: the three sample photos of
tests (76.5, 85.4, 78.9), ``skimage.data.astronaut()`` (81.1) and Grace Hopper (76.6); mean 79.7,
spread +-5 %. tests/test_fta.py measures it again. It does not depend on the map size: the
denominator is the mean times the number of map pixels.
"""
from __future__ import annotations

import math

FACE_TEMPLATE_MEAN_DEPTH = 80.0   # mean 0-255 depth over a 1.3x face crop, see above
FALLBACK_NOTE = "no usable depth map (no mesh, or an all-black crop): scored with the face template's depth sum"


def template_depth_sum(map_height: int, map_width: int | None = None) -> float:
    """The face template's depth sum over a ``map_height`` x ``map_width`` map (0-255 scale)."""
    return FACE_TEMPLATE_MEAN_DEPTH * int(map_height) * int(map_width if map_width is not None else map_height)


def frame_score(mu_sum: float, depth_sum: float, map_height: int, map_width: int | None = None
                ) -> tuple[float | None, bool]:
    """(score, used the template) of one frame: ``mu_sum / depth_sum``, or ``mu_sum / template`` when
    the depth sum is not positive. ``None`` when the network output is not finite (the frame cannot
    be scored: a failure to acquire at frame level)."""
    if not math.isfinite(mu_sum):
        return None, False
    if depth_sum > 0 and math.isfinite(depth_sum):
        return mu_sum / depth_sum, False
    return mu_sum / template_depth_sum(map_height, map_width), True

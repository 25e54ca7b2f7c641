"""Dense face depth maps without PRNet: the MediaPipe face mesh rendered with a vectorised z-buffer.

The original DSDG used PRNet depth maps (TensorFlow 1, about 1 frame/s; docs/ORIGINAL.md 1.4). This
module makes maps in the same convention from the 468-point MediaPipe face mesh: a grey image the
size of the frame, background 0, the face's depth normalised to [0, 1] over the mesh (farthest mesh
point 0, nose tip 1) and stored as 0-255. Eye and mouth openings of the mesh are closed by triangle
fans around each opening's mean point, so the map is one continuous surface, like PRNet's.

The stage that writes these maps for every frame of a split is ``data/depth.py``; the generator's
sampler and ``DUM/inference.py`` use :class:`FaceDepthEstimator` directly. mediapipe is imported
lazily: importing this module costs numpy and OpenCV only.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from data.boxes import Box

MESH_VERTICES = 468          # refine_landmarks adds 10 iris points (468-477) that the tessellation leaves out
NOSE_TIP = 1                 # mesh landmark on the tip of the nose
CHEEKS = (234, 454)          # mesh landmarks on the left/right face contour at cheek height


# ----------------------------------------------------------------------------------------------
# Mesh topology and rendering
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MeshTopology:
    triangles: np.ndarray        # (852, 3) int32 faces of the 468-vertex surface
    oval: np.ndarray             # (36,) ordered outer boundary, the FACEMESH_FACE_OVAL loop
    holes: tuple                 # ordered boundary loops of the two eye openings and the mouth
    fill_triangles: np.ndarray   # (52, 3) fans closing hole k around an extra vertex 468 + k


def _boundary_loops(boundary_edges) -> list[list[int]]:
    """Chain boundary edges (each vertex on one loop, degree 2) into ordered loops."""
    neighbours = defaultdict(list)
    for a, b in boundary_edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    seen, loops = set(), []
    for start in sorted(neighbours):
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = [n for n in sorted(neighbours[cur]) if n != prev and n not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            seen.add(cur)
            loop.append(cur)
        loops.append(loop)
    return loops


@functools.lru_cache(maxsize=None)
def mesh_topology() -> MeshTopology:
    """Triangles of the MediaPipe face mesh, from the 3-cliques of its tessellation edge graph.

    The edge graph has 854 3-cliques; two of them (49-64-129 and its mirror 279-294-358) are not
    faces but the outline of three faces around an inner vertex. They are recognised by all three
    edges being shared by three cliques, and dropped, so that every edge borders at most two faces.
    """
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL, FACEMESH_TESSELATION

    edges = {tuple(sorted(e)) for e in FACEMESH_TESSELATION}
    adjacent = defaultdict(set)
    for a, b in edges:
        adjacent[a].add(b)
        adjacent[b].add(a)
    cliques = sorted({tuple(sorted((a, b, c))) for a, b in edges for c in adjacent[a] & adjacent[b]})
    uses = defaultdict(int)
    for a, b, c in cliques:
        for e in ((a, b), (b, c), (a, c)):
            uses[e] += 1
    triangles = [t for t in cliques if not all(uses[e] == 3 for e in ((t[0], t[1]), (t[1], t[2]), (t[0], t[2])))]
    uses = defaultdict(int)
    for a, b, c in triangles:
        for e in ((a, b), (b, c), (a, c)):
            uses[e] += 1
    if max(uses.values()) != 2:
        raise RuntimeError("face mesh tessellation is not a manifold surface; mediapipe changed its mesh?")
    loops = _boundary_loops([e for e, n in uses.items() if n == 1])
    oval_vertices = {v for e in FACEMESH_FACE_OVAL for v in e}
    outer = [lp for lp in loops if set(lp) == oval_vertices]
    if len(outer) != 1:
        raise RuntimeError("face mesh outer boundary does not match FACEMESH_FACE_OVAL")
    holes = tuple(np.asarray(lp, np.int32) for lp in loops if set(lp) != oval_vertices)
    fans = [(int(lp[i]), int(lp[(i + 1) % len(lp)]), MESH_VERTICES + k)
            for k, lp in enumerate(holes) for i in range(len(lp))]
    return MeshTopology(np.asarray(triangles, np.int32), np.asarray(outer[0], np.int32), holes,
                        np.asarray(fans, np.int32))


def _edge_x(xp, yp, xq, yq, y):
    """x where the row y crosses the edge p->q (yp <= yq). One expression for every use, so two
    triangles sharing an edge get bit-identical crossings and no pixel falls between them."""
    dy = yq - yp
    slope = np.divide(xq - xp, dy, out=np.zeros_like(dy), where=dy > 0)
    return xp + (y - yp) * slope


def _pixel_spans(corners, top: np.ndarray, bottom: np.ndarray, width: int):
    """Every covered pixel of the triangles, flat: ``(t, r, s, cols)`` with ``t`` the triangle of each
    row span, ``r`` its row, and per pixel ``s`` its row span and ``cols`` its column. ``corners``
    are the vertex coordinates sorted by y (x0, y0 top ... x2, y2 bottom), one entry per triangle."""
    x0, y0, x1, y1, x2, y2 = corners
    nrows = bottom - top + 1
    t = np.repeat(np.arange(nrows.size), nrows)                         # (R,) triangle of each row span
    r = top[t] + np.arange(t.size) - np.repeat(np.cumsum(nrows) - nrows, nrows)
    y = r.astype(np.float64)
    x_long = _edge_x(x0[t], y0[t], x2[t], y2[t], y)
    x_short = np.where(y < y1[t], _edge_x(x0[t], y0[t], x1[t], y1[t], y), _edge_x(x1[t], y1[t], x2[t], y2[t], y))
    left = np.maximum(np.ceil(np.minimum(x_long, x_short)), 0).astype(np.int64)
    right = np.minimum(np.floor(np.maximum(x_long, x_short)), width - 1).astype(np.int64)
    ncols = np.maximum(right - left + 1, 0)
    s = np.repeat(np.arange(ncols.size), ncols)                         # (P,) row span of each pixel
    cols = left[s] + np.arange(s.size) - np.repeat(np.cumsum(ncols) - ncols, ncols)
    return t, r, s, cols


def render_depth(vertices, triangles, height: int, width: int, background: float = 0.0) -> np.ndarray:
    """Z-buffer triangles into a ``height`` x ``width`` float32 map; the larger depth (nearer) wins.

    ``vertices`` (N, 3): x, y in pixels, where pixel (row r, column c) is sampled at the point
    x = c, y = r, and depth (larger = nearer the camera). ``triangles`` (T, 3) vertex indices. Each
    pixel inside a triangle or on its edges gets the depth of the triangle's plane at that point
    (barycentric interpolation of the vertex depths); uncovered pixels get ``background`` (pass
    ``np.nan`` or ``-np.inf`` to tell them from depth 0).

    Vectorised scanline: every (triangle, row) pair gets its covered column span from the triangle's
    edges, the spans are expanded into one flat pixel array (about the face's area, ~5*10^4 pixels
    for a 640x480 frame) and merged with ``np.maximum.at``. No Python loop over triangles.
    """
    v = np.asarray(vertices, np.float64)
    tri = np.asarray(triangles, np.int64).reshape(-1, 3)
    out = np.full((height, width), background, np.float32)
    if tri.size == 0 or height <= 0 or width <= 0:
        return out
    p = v[tri]                                                          # (T, 3, 3)
    p = np.take_along_axis(p, np.argsort(p[:, :, 1], axis=1, kind="stable")[:, :, None], axis=1)
    x0, y0, z0 = p[:, 0].T                                              # top vertex (smallest y)
    x1, y1, z1 = p[:, 1].T
    x2, y2, z2 = p[:, 2].T                                              # bottom vertex
    den = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)                 # twice the signed area
    top = np.maximum(np.ceil(y0), 0)
    bottom = np.minimum(np.floor(y2), height - 1)
    keep = np.isfinite(p).all(axis=(1, 2)) & (np.abs(den) > 1e-12) & (bottom >= top)
    if not keep.any():
        return out
    x0, y0, z0, x1, y1, z1, x2, y2, z2, den = (a[keep] for a in (x0, y0, z0, x1, y1, z1, x2, y2, z2, den))
    top, bottom = top[keep].astype(np.int64), bottom[keep].astype(np.int64)
    # the triangle's depth plane z = A x + B y + C (normal = edge01 x edge02)
    A = ((z1 - z0) * (y2 - y0) - (z2 - z0) * (y1 - y0)) / den
    B = ((x1 - x0) * (z2 - z0) - (x2 - x0) * (z1 - z0)) / den
    C = z0 - A * x0 - B * y0
    zlo, zhi = np.minimum(np.minimum(z0, z1), z2), np.maximum(np.maximum(z0, z1), z2)

    t, r, s, cols = _pixel_spans((x0, y0, x1, y1, x2, y2), top, bottom, width)
    if s.size == 0:
        return out
    y = r.astype(np.float64)
    row_a, row_b = A[t], B[t] * y + C[t]
    # clipping to the vertex range keeps sliver triangles from overshooting through rounding
    depth = np.clip(row_a[s] * cols + row_b[s], zlo[t][s], zhi[t][s])
    # z-buffer only the covered window, not the whole frame
    ra, rb, ca, cb = int(top.min()), int(bottom.max()) + 1, int(cols.min()), int(cols.max()) + 1
    zbuf = np.full((rb - ra) * (cb - ca), -np.inf, np.float64)
    np.maximum.at(zbuf, (r[s] - ra) * (cb - ca) + (cols - ca), depth)
    zbuf = zbuf.reshape(rb - ra, cb - ca)
    window = out[ra:rb, ca:cb]
    covered = zbuf > -np.inf
    window[covered] = zbuf[covered]
    return out


def normalize_depth(depth: np.ndarray) -> np.ndarray:
    """Map depths linearly to [0, 1]: farthest 0, nearest 1 (PRNet maps: ``z -= min; z /= max``)."""
    depth = np.asarray(depth, np.float64)
    lo, hi = float(depth.min()), float(depth.max())
    return (depth - lo) / (hi - lo) if hi > lo else np.zeros_like(depth)


def depth_to_uint8(depth_map: np.ndarray) -> np.ndarray:
    """A [0, 1] depth map as the stored 0-255 grey image (rounded; values outside are clipped)."""
    d = np.clip(np.asarray(depth_map, np.float32), 0.0, 1.0)
    # cv2 rounds and saturates in one pass (numpy's rint/clip/astype took ~5 ms on a VGA frame)
    return cv2.convertScaleAbs(d, alpha=255.0)


def landmarks_to_depth(landmarks: np.ndarray, height: int, width: int, fill_holes: bool = True) -> np.ndarray:
    """A [0, 1] float32 depth map of the frame from mesh points (x, y, depth) in frame pixels."""
    topo = mesh_topology()
    pts = np.asarray(landmarks, np.float64)[:MESH_VERTICES]
    verts = np.column_stack([pts[:, 0], pts[:, 1], normalize_depth(pts[:, 2])])
    triangles = topo.triangles
    if fill_holes:
        centres = np.stack([verts[loop].mean(0) for loop in topo.holes])
        verts = np.vstack([verts, centres])
        triangles = np.vstack([triangles, topo.fill_triangles])
    return render_depth(verts, triangles, height, width, background=0.0)


# ----------------------------------------------------------------------------------------------
# Face mesh
# ----------------------------------------------------------------------------------------------

def _square_region(box: Box, scale: float) -> tuple[float, float, float]:
    """(x0, y0, side) of a square about the box centre, ``scale`` times its longer side."""
    side = max(box.w, box.h) * scale
    return box.x + box.w / 2.0 - side / 2.0, box.y + box.h / 2.0 - side / 2.0, side


def _cut(image: np.ndarray, x0: float, y0: float, side: float, size: int) -> tuple[np.ndarray, float, float, float]:
    """Square crop (zero padded where it leaves the image), resized to ``size``; returns it and its
    exact frame region (x0, y0, side) after rounding to whole pixels."""
    h, w = image.shape[:2]
    x0, y0, side = int(round(x0)), int(round(y0)), max(1, int(round(side)))
    xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    crop = np.zeros((side, side, 3), np.uint8)
    if xb > xa and yb > ya:
        crop[ya - y0:yb - y0, xa - x0:xb - x0] = image[ya:yb, xa:xb]
    # INTER_AREA only where linear would alias (it costs several ms more on a VGA crop)
    interp = cv2.INTER_AREA if side > 2 * size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp), float(x0), float(y0), float(side)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceDepthEstimator:
    """PRNet-style depth maps from the MediaPipe face mesh, for full frames or face crops.

    ``estimate(image_bgr, box=None)`` returns a uint8 map the size of the image (background 0, nose
    tip about 255) or ``None`` when no face mesh is found (``estimate_with_reason`` also says why).
    With a box (``data.boxes.Box``, frame pixels) the mesh runs on a square crop of ``box_scale``
    times the box, resized to ``crop_size`` (then on a 1.5x wider crop if that fails): the face then
    fills the detector's view whatever the frame size. Up to ``max_faces`` meshes are found in the
    crop and the one whose outline overlaps the box most is kept; when none overlaps it by at least
    ``min_box_iou`` (IoU of the mesh's bounding box and the box) the frame gets no map, so a
    person in the background never labels the boxed face. Without a box the whole image is
    searched (the largest mesh wins); if that fails the image is searched again zero-padded by
    ``pad`` on every side, which finds faces in tight crops (generated 256x256 faces) whose chin or
    forehead touches the border.

    ``tracking=True`` runs MediaPipe in video mode (landmarks of the previous frame seed the next,
    skipping the detector); call :meth:`reset` before each new video. Static mode (the default)
    treats every frame alone, so results do not depend on which frames were processed before.
    """

    def __init__(self, max_faces: int = 4, refine: bool = False, box_scale: float = 1.8,
                 crop_size: int = 256, pad: float = 0.3, min_detection_confidence: float = 0.5,
                 tracking: bool = False, fill_holes: bool = True, min_box_iou: float = 0.3):
        self.max_faces, self.refine = int(max_faces), bool(refine)
        self.min_box_iou = float(min_box_iou)
        self.box_scale, self.crop_size, self.pad = float(box_scale), int(crop_size), float(pad)
        self.min_detection_confidence = float(min_detection_confidence)
        self.tracking, self.fill_holes = bool(tracking), bool(fill_holes)
        self._meshes: dict[bool, object] = {}

    def _mesh(self, static: bool):
        if static not in self._meshes:
            from mediapipe.python.solutions.face_mesh import FaceMesh

            self._meshes[static] = FaceMesh(static_image_mode=static, max_num_faces=self.max_faces,
                                            refine_landmarks=self.refine,
                                            min_detection_confidence=self.min_detection_confidence)
        return self._meshes[static]

    def reset(self) -> None:
        """Forget tracking state (start of a new video)."""
        if False in self._meshes:
            self._meshes[False].reset()

    def close(self) -> None:
        for mesh in self._meshes.values():
            mesh.close()
        self._meshes.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self, rgb: np.ndarray, static: bool, x0: float, y0: float, sx: float, sy: float, box
             ) -> tuple[np.ndarray | None, float | None]:
        """(mesh points in frame pixels, key) of the best mesh in ``rgb``: the largest without a box,
        else the one whose bounding box overlaps ``box`` most (key = that IoU); (None, None) if none."""
        result = self._mesh(static).process(rgb)
        faces = result.multi_face_landmarks or []
        best, best_key = None, None
        for face in faces:
            a = np.array([(p.x, p.y, p.z) for p in face.landmark], np.float64)
            # normalised -> frame pixels in render_depth's convention (pixel c sampled at x = c);
            # MediaPipe's z is negative toward the camera and scaled like x, hence -z * sx
            pts = np.column_stack([x0 + a[:, 0] * sx - 0.5, y0 + a[:, 1] * sy - 0.5, -a[:, 2] * sx])
            bb = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
            key = _iou(bb, (box.x, box.y, box.x + box.w, box.y + box.h)) if box is not None else \
                (bb[2] - bb[0]) * (bb[3] - bb[1])
            if best_key is None or key > best_key:
                best, best_key = pts, key
        return best, best_key

    def landmarks(self, image_bgr: np.ndarray, box: Box | None = None) -> np.ndarray | None:
        """Mesh points (468, or 478 with ``refine``) as (x, y, depth) in image pixels, or None."""
        return self.landmarks_with_reason(image_bgr, box)[0]

    def landmarks_with_reason(self, image_bgr: np.ndarray, box: Box | None = None
                              ) -> tuple[np.ndarray | None, str]:
        """(mesh points or None, why None: "" when found). With a box, a mesh counts only when it
        overlaps the box (IoU >= ``min_box_iou``)."""
        image = np.asarray(image_bgr)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"expected a BGR or grey image, got shape {image.shape}")
        image = image[:, :, :3]
        h, w = image.shape[:2]
        if box is not None:
            # second try: a wider view, for boxes that cut the face or sit off centre
            regions = [_square_region(box, self.box_scale), _square_region(box, self.box_scale * 1.5)]
        else:
            side = max(h, w) * (1.0 + 2.0 * self.pad)
            regions = [None, ((w - side) / 2.0, (h - side) / 2.0, side)]
        best_elsewhere = None
        for attempt, region in enumerate(regions):
            static = not self.tracking or attempt > 0   # fallbacks never disturb the tracker
            if region is None:
                rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
                pts, key = self._run(rgb, static, 0.0, 0.0, float(w), float(h), box)
            else:
                crop, x0, y0, side = _cut(image, *region, size=self.crop_size)
                pts, key = self._run(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), static, x0, y0, side, side, box)
            if pts is not None and (box is None or key >= self.min_box_iou):
                return pts, ""
            if pts is not None:
                best_elsewhere = key if best_elsewhere is None else max(best_elsewhere, key)
        if best_elsewhere is not None:
            return None, (f"no face mesh overlaps the box (a mesh was found beside it, IoU {best_elsewhere:.2f} "
                          f"< {self.min_box_iou:g}: another person's face?)")
        return None, "no face mesh found in " + ("the box crop" if box is not None else "the frame")

    def estimate_float(self, image_bgr: np.ndarray, box: Box | None = None) -> np.ndarray | None:
        """The [0, 1] float32 depth map of the image, or None when no face mesh is found."""
        pts = self.landmarks(image_bgr, box)
        if pts is None:
            return None
        h, w = np.asarray(image_bgr).shape[:2]
        return landmarks_to_depth(pts, h, w, self.fill_holes)

    def estimate(self, image_bgr: np.ndarray, box: Box | None = None) -> np.ndarray | None:
        """The uint8 depth map (image size, background 0, nose tip ~255), or None when no face mesh is found."""
        return self.estimate_with_reason(image_bgr, box)[0]

    def estimate_with_reason(self, image_bgr: np.ndarray, box: Box | None = None) -> tuple[np.ndarray | None, str]:
        """(uint8 depth map or None, why None: "" when made); see :meth:`landmarks_with_reason`."""
        pts, reason = self.landmarks_with_reason(image_bgr, box)
        if pts is None:
            return None, reason
        h, w = np.asarray(image_bgr).shape[:2]
        # already within [0, 1] (normalised vertices, clamped planes): no clipping pass needed
        return cv2.convertScaleAbs(landmarks_to_depth(pts, h, w, self.fill_holes), alpha=255.0), ""

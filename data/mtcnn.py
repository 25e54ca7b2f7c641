"""MTCNN face detector in PyTorch, running the weights that ship in the ``mtcnn`` pip package.

The cascade of Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks" (IEEE SPL 2016): an image pyramid through the fully convolutional P-Net gives
proposals, R-Net rescores and refines them on 24x24 crops, O-Net gives the final boxes, scores and
five landmarks on 48x48 crops. Box conventions (1-based boxes, ``+1`` widths after P-Net, squaring,
flooring) and resizing (cv2.INTER_AREA, zero padding outside the frame) follow the reference release
and the ``mtcnn`` package the original DSDG used, so that the weights see what they were trained on.
On ``skimage.data.astronaut()`` and Grace Hopper the boxes land within 3 px of a PyTorch reference
port (tests/test_bbox.py). Frames of one size run as one batch through every stage; the networks run
on any torch device, resizing and cropping use cv2 on the CPU.

    detector = MTCNN(min_face_size=40)
    faces = detector.detect_batch([rgb_frame, ...])  # per frame: list of Face, most probable first
    box = select_face(faces[0]).to_box()             # the most probable face as data.boxes.Box

The networks live in networks/mtcnn.py, the conversion of the package's weights in
data/mtcnn_weights.py; both are re-exported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
from torch import nn
from torchvision.ops import batched_nms

from data.boxes import Box
from data.mtcnn_weights import (INSTALL_HINT, WEIGHT_FILES, MTCNNWeightsError, load_keras_weights,  # noqa: F401
                                load_mtcnn_nets, mtcnn_weights_dir)
from networks.mtcnn import ONet, PNet, RNet, fold_input_normalization  # noqa: F401
from utils.run import resolve_device


# --------------------------------------------------------------------------------------------------
# Box helpers (all on (K, 4) float tensors x1, y1, x2, y2)


def pyramid_scales(height: int, width: int, min_face: float, factor: float, cell: int = 12) -> list[float]:
    """Scales at which a face of ``min_face`` px and larger fill P-Net's 12 px cell; empty if too small."""
    scales, scale = [], cell / float(min_face)
    side = min(height, width) * scale
    while side >= cell:
        scales.append(scale)
        scale *= factor
        side *= factor
    return scales


def _square(boxes: torch.Tensor) -> torch.Tensor:
    # grow the shorter side about the centre: R-Net and O-Net take square crops
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + (w - side) * 0.5
    y1 = boxes[:, 1] + (h - side) * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor, plus_one: bool) -> torch.Tensor:
    # offsets are fractions of the box size; the reference uses inclusive (+1) sizes after P-Net
    extra = 1.0 if plus_one else 0.0
    w = boxes[:, 2] - boxes[:, 0] + extra
    h = boxes[:, 3] - boxes[:, 1] + extra
    return boxes + offsets * torch.stack([w, h, w, h], dim=1)


def nms_min(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS with overlap = intersection / smaller area (the reference's last step), per group."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    b, g = boxes[order], groups[order]
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    iw = (torch.minimum(b[:, None, 2], b[None, :, 2]) - torch.maximum(b[:, None, 0], b[None, :, 0]) + 1).clamp(min=0)
    ih = (torch.minimum(b[:, None, 3], b[None, :, 3]) - torch.maximum(b[:, None, 1], b[None, :, 1]) + 1).clamp(min=0)
    overlap = iw * ih / torch.minimum(area[:, None], area[None, :])
    suppress = ((overlap > threshold) & (g[:, None] == g[None, :])).cpu().numpy()
    alive = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if alive[i]:
            alive[i + 1:] &= ~suppress[i, i + 1:]
    return order[torch.from_numpy(np.flatnonzero(alive)).to(order.device)]


def _pyramid_level(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, h, w, 3) uint8 with cv2.INTER_AREA on uint8, the reference's resize."""
    h, w = size
    out = np.empty((len(frames), h, w, 3), dtype=np.uint8)
    for k, frame in enumerate(frames):
        cv2.resize(frame, (w, h), dst=out[k], interpolation=cv2.INTER_AREA)
    return out


def crop_patches(frames: np.ndarray, image_idx: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(K, size, size, 3) float32 crops of integer boxes, resized with cv2.INTER_AREA.

    Box corners are inclusive pixel indices in the reference's 1-based convention (P-Net's ``+1``
    cell origin comes from MATLAB), so a box covers 0-based pixels x1-1 .. x2-1; cropping at
    x1 .. x2 instead moves Grace Hopper's final box by over 10 px. Parts of a box outside the frame
    read as black (value 0), as the reference's zero padding.
    """
    _, height, width, _ = frames.shape
    out = np.empty((len(boxes), size, size, 3), dtype=np.float32)
    for k, (n, (x1, y1, x2, y2)) in enumerate(zip(image_idx.tolist(), boxes.astype(np.int64).tolist())):
        x1, y1 = x1 - 1, y1 - 1  # to 0-based; x2, y2 become exclusive ends
        sx, sy, ex, ey = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx == x1 and sy == y1 and ex == x2 and ey == y2:
            patch = frames[n, y1:y2, x1:x2].astype(np.float32)
        else:
            patch = np.zeros((max(y2 - y1, 1), max(x2 - x1, 1), 3), dtype=np.float32)
            if ex > sx and ey > sy:
                patch[sy - y1:ey - y1, sx - x1:ex - x1] = frames[n, sy:ey, sx:ex]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


# --------------------------------------------------------------------------------------------------
# Detector


@dataclass(frozen=True)
class Face:
    """One detection: box corners in full-image pixels (floats, may leave the image), O-Net probability,
    landmarks (5, 2) as (x, y) of left eye, right eye, nose, left and right mouth corner (image left/right)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    landmarks: np.ndarray

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    def scaled(self, sx: float, sy: float) -> "Face":
        """The same face with x coordinates times ``sx`` and y times ``sy`` (a detection on a resized
        frame back in the original frame's pixels)."""
        return Face(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy, self.score,
                    self.landmarks * np.array([sx, sy], dtype=self.landmarks.dtype))

    def to_box(self) -> Box:
        """The project's ``x y w h score`` box (data/boxes.py). Rounded, not clamped to the image,
        so that crops scaled about the centre keep the detector's centre."""
        x, y = int(round(self.x1)), int(round(self.y1))
        w = max(1, int(round(self.x2)) - x)
        h = max(1, int(round(self.y2)) - y)
        return Box(x, y, w, h, float(self.score))


FACE_RULES = ("first", "area")


def select_face(faces: Sequence[Face], rule: str = "first") -> Face | None:
    """The face to keep when several are found (``faces`` most probable first, as detect returns them).

    ``"first"`` (default): the most probable face, as the original kept the ``mtcnn`` package's first
    detection. ``"area"``: the largest ``area * probability``, for videos whose subject fills the
    frame while a sharper small face sits in the background; it can also pick a large doubtful box
    (a 0.73 box on a hand over a 0.997 face on a printed photo), which is why it is not the default."""
    if rule not in FACE_RULES:
        raise ValueError(f"face rule must be one of {FACE_RULES}, got {rule!r}")
    if not faces:
        return None
    if rule == "first":
        return max(faces, key=lambda f: f.score)  # faces[0] for detect's output; stable on ties
    return max(faces, key=lambda f: (max(f.width, 0.0) * max(f.height, 0.0) * f.score, f.score))


def _as_rgb(image, i: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image {i}: expected an (H, W, 3) RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def fit_max_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
    """``image`` shrunk (cv2.INTER_AREA) so its longer side is ``max_side``, and the factors (sx, sy)
    that take its coordinates back to ``image``'s; unchanged with (1, 1) when ``max_side`` is 0 or the
    image is no larger. The factors are per axis: rounding the short side changes its aspect slightly."""
    h, w = image.shape[:2]
    if max_side <= 0 or max(h, w) <= max_side:
        return image, 1.0, 1.0
    s = max_side / max(h, w)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return small, w / nw, h / nh


def _to_input(patches: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, h, w, 3) 0-255 -> (N, 3, h, w) float 0-255 in channels_last memory (the permuted NHWC
    buffer as is), the layout in which oneDNN runs these thin convolutions about twice as fast."""
    return torch.from_numpy(patches).to(device).permute(0, 3, 1, 2).float()


class MTCNN(nn.Module):
    """P-Net -> R-Net -> O-Net cascade over a batch of RGB uint8 images.

    Args:
        min_face_size: smallest face (px) the pyramid looks for; larger is faster.
        scale_factor: ratio between pyramid levels (0.709, about 1/sqrt(2), from the paper's code).
        thresholds: face-probability thresholds of P-Net, R-Net and O-Net.
        nms_thresholds: IoU for P-Net within a scale, P-Net across scales, R-Net (union), and the
            O-Net overlap over the smaller box.
        device: torch device or "auto" (the networks run there; resizing and cropping use cv2 on
            the CPU, as the reference did).
        weights_dir: folder with pnet/rnet/onet.lz4; default the installed mtcnn package.
        chunk: crops per R-Net/O-Net forward (bounds memory).
        max_side: 0 (off) or the longest side (px) an image is detected at: larger images are shrunk
            with cv2.INTER_AREA first and their faces (boxes, landmarks) scaled back to the image's
            pixels. ``min_face_size`` then counts in pixels of the shrunk image. Time goes roughly
            with the pixels detected on, so 1920x1080 at 960 takes about a quarter of the time.
    """

    def __init__(self, min_face_size: float = 20.0, scale_factor: float = 0.709,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 nms_thresholds: Sequence[float] = (0.5, 0.7, 0.7, 0.7),
                 device=None, weights_dir=None, chunk: int = 1024, max_side: int = 0):
        super().__init__()
        if min_face_size <= 0 or not (0.0 < scale_factor < 1.0):
            raise ValueError(f"need min_face_size > 0 and 0 < scale_factor < 1, got {min_face_size}, {scale_factor}")
        if len(thresholds) != 3 or len(nms_thresholds) != 4:
            raise ValueError("thresholds needs 3 values (P, R, O) and nms_thresholds 4")
        if max_side < 0 or int(max_side) != max_side:
            raise ValueError(f"max_side must be 0 (off) or a positive integer, got {max_side}")
        self.pnet, self.rnet, self.onet = (fold_input_normalization(net) for net in load_mtcnn_nets(weights_dir))
        self.min_face_size = float(min_face_size)
        self.scale_factor = float(scale_factor)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.nms_thresholds = tuple(float(t) for t in nms_thresholds)
        self.chunk = int(chunk)
        self.max_side = int(max_side)
        self.device = resolve_device(str(device) if device is not None else None)
        self.to(self.device, memory_format=torch.channels_last).eval()
        for p in self.parameters():
            p.requires_grad_(False)

    # public API ----------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in one RGB uint8 image (H, W, 3), most probable first."""
        return self.detect_batch([image])[0]

    @torch.inference_mode()
    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces per image, most probable first, in the image's pixels. Images of the same size (after
        the ``max_side`` shrink) run as one batch."""
        fitted = [fit_max_side(_as_rgb(image, i), self.max_side) for i, image in enumerate(images)]
        arrays = [image for image, _, _ in fitted]
        results: list[list[Face]] = [[] for _ in arrays]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(arrays):
            groups.setdefault(image.shape[:2], []).append(i)
        for members in groups.values():
            frames = np.stack([arrays[i] for i in members])  # (N, H, W, 3)
            for local, faces in enumerate(self._cascade(frames)):
                results[members[local]] = faces
        for i, (_, sx, sy) in enumerate(fitted):
            if sx != 1.0 or sy != 1.0:
                results[i] = [face.scaled(sx, sy) for face in results[i]]
        return results

    # stages ----------------------------------------------------------------------------------------

    def _cascade(self, frames: np.ndarray) -> list[list[Face]]:
        idx, boxes = self._stage_pnet(frames)
        if len(boxes):
            idx, boxes = self._stage_rnet(frames, idx, boxes)
        scores, marks = boxes.new_zeros(0), boxes.new_zeros((0, 5, 2))
        if len(boxes):
            idx, boxes, scores, marks = self._stage_onet(frames, idx, boxes)
        idx, boxes, scores, marks = (t.numpy() for t in (idx, boxes, scores, marks))
        out: list[list[Face]] = [[] for _ in range(len(frames))]
        for k in np.argsort(-scores, kind="stable"):
            out[int(idx[k])].append(Face(*(float(v) for v in boxes[k]), float(scores[k]), marks[k].copy()))
        return out

    def _stage_pnet(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Proposals as (image index (K,), square integer boxes (K, 4)) on the CPU."""
        t_p = self.thresholds[0]
        nms_scale, nms_all = self.nms_thresholds[:2]
        h, w = frames.shape[1:3]
        found = []
        for scale in pyramid_scales(h, w, self.min_face_size, self.scale_factor):
            size = (int(math.ceil(h * scale)), int(math.ceil(w * scale)))
            x = _to_input(_pyramid_level(frames, size), self.device)
            prob, reg = self.pnet(x)
            n, i, j = torch.nonzero(prob >= t_p, as_tuple=True)
            if n.numel() == 0:
                continue
            score, offsets = prob[n, i, j].float().cpu(), reg[n, :, i, j].float().cpu()
            n, i, j = n.cpu(), i.cpu(), j.cpu()
            # each output cell sees a 12x12 window at stride 2 of the scaled image
            cell = torch.stack([j, i, j, i], dim=1).float() * 2 + torch.tensor([1.0, 1.0, 12.0, 12.0])
            boxes = torch.floor(cell / scale)
            keep = batched_nms(boxes, score, n, nms_scale)
            found.append((n[keep], boxes[keep], score[keep], offsets[keep]))
        if not found:
            return torch.zeros(0, dtype=torch.long), torch.zeros((0, 4))
        idx, boxes, scores, offsets = (torch.cat(parts) for parts in zip(*found))
        keep = batched_nms(boxes, scores, idx, nms_all)
        boxes = torch.floor(_square(_regress(boxes[keep], offsets[keep], plus_one=False)))
        return idx[keep], boxes

    def _run_crops(self, net: nn.Module, frames: np.ndarray, idx: torch.Tensor, boxes: torch.Tensor, size: int):
        outs = []
        for start in range(0, len(boxes), self.chunk):
            sl = slice(start, start + self.chunk)
            patches = crop_patches(frames, idx[sl].numpy(), boxes[sl].numpy(), size)
            x = _to_input(patches, self.device)
            outs.append([o.float().cpu() for o in net(x)])
        return [torch.cat(parts) for parts in zip(*outs)]

    def _stage_rnet(self, frames, idx, boxes):
        prob, offsets = self._run_crops(self.rnet, frames, idx, boxes, 24)
        keep = prob > self.thresholds[1]
        idx, boxes, prob, offsets = idx[keep], boxes[keep], prob[keep], offsets[keep]
        keep = batched_nms(boxes, prob, idx, self.nms_thresholds[2])
        boxes = torch.floor(_square(_regress(boxes[keep], offsets[keep], plus_one=True)))
        return idx[keep], boxes

    def _stage_onet(self, frames, idx, boxes):
        prob, offsets, marks = self._run_crops(self.onet, frames, idx, boxes, 48)
        keep = prob > self.thresholds[2]
        idx, boxes, prob, offsets, marks = idx[keep], boxes[keep], prob[keep], offsets[keep], marks[keep]
        # landmarks are fractions of the inclusive input box, placed as the reference does (its -1
        # and the 1-based boxes cancel, so they land on 0-based pixels of the box's content)
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        lx = boxes[:, 0:1] + w * marks[:, 0:5] - 1
        ly = boxes[:, 1:2] + h * marks[:, 5:10] - 1
        marks = torch.stack([lx, ly], dim=2)  # (K, 5, 2)
        boxes = _regress(boxes, offsets, plus_one=True)
        keep = nms_min(boxes, prob, idx, self.nms_thresholds[3])
        return idx[keep], boxes[keep], prob[keep], marks[keep]

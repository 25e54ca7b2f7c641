"""Use a trained depth network on new images and videos: load, crop faces as the data stages did, score.

One library for ``predict.py``, ``export_onnx.py`` and ``bench/bench_predict.py``:

* :func:`load_depth_model` opens our checkpoints (``best.pt``/``last.pt`` of DUM/train.py, whose
  ``config`` names the architecture and whose ``threshold``/``threshold_source`` hold the dev
  threshold chosen by DUM/train.py or DUM/test.py), the released ``CDCN_U_P1.pkl`` (a plain
  ``module.``-prefixed state_dict, so no threshold) or an ONNX file written by ``export_onnx.py``
  (its metadata carries image size, map size and threshold), run by ONNX Runtime.
* :class:`FaceCropper` turns full frames into what DUM/test.py reads, with the settings of the data
  stages: the face box of ``data/bbox.py`` (our MTCNN, ``min_face`` 40, the face with the largest
  area x probability), the crop of ``DUM/make_dataset/crop_dataset.py`` at the dev/test scale 1.3
  resized to the network's input, and the depth map of ``data/depth.py`` (MediaPipe mesh steered by
  the box) cropped with the same box and scale and resized to the map size. With ``jpeg_quality``
  (default 95) every image passes through the same JPEG encodings the stages store on disk (the
  video frame, the full-frame depth map, both crops), so a frame scores exactly as DUM/test.py would
  score it after the whole data pipeline (tests/test_predict.py checks this).
* :func:`frame_scores` is DUM/test.py's score (docs/ORIGINAL.md 3.8): frame score = sum(mu) / sum(depth
  crop, raw 0-255); a video's score is the mean of its frame scores. A face without a mesh, or with
  an all-black depth crop, is divided by the face template's depth sum (DUM/denominator.py), as
  DUM/test.py does, and ``FaceCrop.note`` says so.

Decision rule (docs/ORIGINAL.md 4.2, the threshold's own rule): live iff score > threshold.
"""
from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from data.boxes import Box, crop_face
from data.face_depth import FaceDepthEstimator
from data.media import JPEG_QUALITY, jpeg_roundtrip
from data.mtcnn import MTCNN, select_face
from DUM.dataset import normalize_image
from DUM.denominator import FALLBACK_NOTE, frame_score
from DUM.engine import depth_outputs
from networks.registry import load_model
from utils.checkpoint import CheckpointError
from utils.io import InputError

log = logging.getLogger(__name__)

TEST_SCALE = 1.3       # crop_dataset.py --test-scale: the dev/test crop scale (CDCN's fixed 1.3)
DECISION_RULE = "live iff score > threshold"


# --------------------------------------------------------------------------------------------------
# Models


@contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch CPU threads (n <= 0: leave the setting alone), restored afterwards."""
    old = torch.get_num_threads()
    if n and n > 0:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class DepthModel:
    """A depth network ready for inference. ``forward`` takes the normalised ``[B,3,S,S]`` float32 batch
    on the CPU and returns ``(mu [B,M,M], logvar [B,M,M] or None)`` as float32 CPU tensors."""

    source: str
    kind: str                      # "torch" or "onnx"
    image_size: int
    map_size: int
    arch: dict
    threshold: float | None = None
    threshold_source: str | None = None
    info: dict = field(default_factory=dict)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def decision_threshold(self, override: float | None = None) -> tuple[float, str]:
        """(threshold, where it came from): ``override`` (--threshold) wins; otherwise the stored one,
        and a model without one is an error the user must fix."""
        if override is not None:
            if not math.isfinite(float(override)):
                raise InputError(f"--threshold must be a finite number, got {override}")
            note = "" if self.threshold is None else f" (overrides the stored {self.threshold:.6g} " \
                                                     f"from {self.threshold_source or 'an unknown dev set'})"
            return float(override), "--threshold on the command line" + note
        if self.threshold is None:
            raise InputError(
                f"{self.source} holds no decision threshold (a plain state_dict such as the released "
                f"CDCN_U_P1.pkl, or a checkpoint saved before any dev evaluation): pass --threshold T, e.g. "
                f"the 'threshold' of the threshold.json that DUM/test.py writes, or run DUM/test.py "
                f"--save-threshold on this checkpoint")
        return float(self.threshold), str(self.threshold_source or "unknown dev set")


class TorchDepthModel(DepthModel):
    def __init__(self, net: torch.nn.Module, device: torch.device, **kwargs):
        super().__init__(kind="torch", **kwargs)
        self.net = net.to(device).eval()
        self.device = device

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, mu, logvar = depth_outputs(self.net(x.to(self.device)))
        return mu.float().cpu(), None if logvar is None else logvar.float().cpu()


class OnnxDepthModel(DepthModel):
    def __init__(self, session, **kwargs):
        super().__init__(kind="onnx", **kwargs)
        self.session = session
        self.input_name = session.get_inputs()[0].name
        names = [o.name for o in session.get_outputs()]
        if "mu" not in names:
            raise CheckpointError(f"{self.source}: ONNX model has no output named 'mu' (outputs {names}); "
                                  f"export it with export_onnx.py")
        self.outputs = ["mu"] + (["logvar"] if "logvar" in names else [])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        res = self.session.run(self.outputs, {self.input_name: x.detach().cpu().numpy().astype(np.float32)})
        mu = torch.from_numpy(np.asarray(res[0], np.float32))
        return mu, torch.from_numpy(np.asarray(res[1], np.float32)) if len(res) > 1 else None


def _opt_float(value) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    return float(value)


def load_torch_model(path, device="cpu", **overrides) -> TorchDepthModel:
    """Our training checkpoint or an original plain state_dict (``CDCN_U_P1.pkl``), built by
    networks/registry.py from what the file records; ``overrides`` (model, theta, width, image_size;
    None = from the file) serve plain state_dicts saved at other settings."""
    path = Path(path)
    net, arch, obj = load_model(path, **overrides)
    plain = all(isinstance(v, torch.Tensor) for v in obj.values())
    threshold = None if plain else _opt_float(obj.get("threshold"))
    info = {"epoch": obj.get("epoch"), "threshold_eer": None if plain else _opt_float(obj.get("threshold_eer")),
            "format": "plain state_dict" if plain else "training checkpoint"}
    if not plain and isinstance(obj.get("threshold_info"), dict):
        info["threshold_info"] = obj["threshold_info"]
    return TorchDepthModel(net, torch.device(device), source=str(path), image_size=arch["image_size"],
                           map_size=int(getattr(net, "map_size", arch["image_size"] // 8)), arch=arch,
                           threshold=threshold, threshold_source=None if plain else obj.get("threshold_source"),
                           info=info)


def load_onnx_model(path, threads: int = 0, device="cpu") -> OnnxDepthModel:
    """An ONNX file of export_onnx.py, run by ONNX Runtime (CPU unless ``device`` is CUDA and the
    installed onnxruntime has the CUDA provider)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX model not found: {path}")
    opts = ort.SessionOptions()
    if threads and threads > 0:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise CheckpointError(f"{path}: not a loadable ONNX model: {str(exc).splitlines()[0]}") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    shape = session.get_inputs()[0].shape
    try:
        image_size = int(meta.get("image_size") or shape[-1])
        map_size = int(meta.get("map_size") or image_size // 8)
    except (TypeError, ValueError):
        raise CheckpointError(f"{path}: no image_size in its metadata and no fixed input size; "
                              f"export it with export_onnx.py") from None
    arch = {"model": meta.get("model", "cdcn_u"), "width": _opt_float(meta.get("width")), "image_size": image_size}
    if _opt_float(meta.get("theta")) is not None:  # CDCN family only
        arch["theta"] = _opt_float(meta.get("theta"))
    return OnnxDepthModel(session, source=str(path), image_size=image_size, map_size=map_size, arch=arch,
                          threshold=_opt_float(meta.get("threshold")),
                          threshold_source=meta.get("threshold_source") or None,
                          info={"metadata": meta, "providers": session.get_providers()})


def load_depth_model(path, device="cpu", threads: int = 0, **overrides) -> DepthModel:
    """By extension: ``.onnx`` through ONNX Runtime, anything else as a PyTorch checkpoint."""
    if Path(path).suffix.lower() == ".onnx":
        return load_onnx_model(path, threads=threads, device=device)
    return load_torch_model(path, device=device, **overrides)


# --------------------------------------------------------------------------------------------------
# Faces: box, crop and depth exactly as the data stages make them


@dataclass
class FaceCrop:
    face: int                    # 0-based index among the faces kept in the frame
    box: Box                     # full-frame box (data/boxes.py format, with the detector score)
    image: np.ndarray | None     # [S,S,3] uint8 RGB, the network input before normalisation
    depth: np.ndarray | None     # [M,M] float32 raw 0-255 mesh depth crop (score denominator); None = no mesh
    problem: str = ""            # why this face cannot be scored ("" = scorable)
    note: str = ""               # set when the face is scored with the face template's depth (no usable map)


class FaceCropper:
    """Full BGR frames -> face crops and depth crops as ``data/bbox.py`` + ``data/depth.py`` +
    ``crop_dataset.py`` (dev/test) make them. Detection runs batched over the frames given; ``max_side``
    is ``data/bbox.py --max-side`` (detect on frames shrunk to that longer side; boxes in full-frame pixels)."""

    def __init__(self, image_size: int = 256, map_size: int = 32, scale: float = TEST_SCALE,
                 jpeg_quality: int = JPEG_QUALITY, all_faces: bool = False, min_face: float = 40.0,
                 scale_factor: float = 0.709, thresholds: Sequence[float] = (0.6, 0.7, 0.7), device="cpu",
                 detector=None, depth_estimator=None, max_side: int = 0, face_rule: str = "first"):

        self.image_size, self.map_size, self.scale = int(image_size), int(map_size), float(scale)
        self.jpeg_quality, self.all_faces, self.face_rule = int(jpeg_quality), bool(all_faces), face_rule
        self.detector = detector or MTCNN(min_face_size=min_face, scale_factor=scale_factor,
                                          thresholds=thresholds, device=device, max_side=max_side)
        # static mode: data/depth.py's default, so a frame's map does not depend on the frames before it
        self.depth_estimator = depth_estimator or FaceDepthEstimator()

    def store(self, image: np.ndarray) -> np.ndarray:
        return jpeg_roundtrip(image, self.jpeg_quality) if self.jpeg_quality > 0 else image

    def boxes(self, frames_bgr: Sequence[np.ndarray]) -> list[list[Box]]:
        """Per frame, the boxes kept: the data stage's one face (``face_rule``, data/bbox.py), or all."""
        found = self.detector.detect_batch([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames_bgr])
        out = []
        for faces in found:
            if self.all_faces:
                out.append([f.to_box() for f in faces])
            else:
                face = select_face(faces, self.face_rule)
                out.append([] if face is None else [face.to_box()])
        return out

    def face_image(self, frame_bgr: np.ndarray, box: Box) -> np.ndarray:
        """[S,S,3] uint8 RGB network input: crop_dataset.py's dev/test crop, read back as DUM/test.py reads it."""
        image = self.store(crop_face(frame_bgr, box, scale=self.scale, size=self.image_size))
        return np.ascontiguousarray(image[:, :, ::-1])

    def crop(self, frame_bgr: np.ndarray, box: Box, face: int = 0) -> FaceCrop:
        try:
            rgb = self.face_image(frame_bgr, box)
        except InputError as exc:
            return FaceCrop(face, box, None, None, f"face box unusable: {exc}")
        full_depth, why = self.depth_estimator.estimate_with_reason(frame_bgr, box)
        if full_depth is None:
            return FaceCrop(face, box, rgb, None, note=f"{why}: {FALLBACK_NOTE}")
        depth = self.store(crop_face(self.store(full_depth), box, scale=self.scale, size=self.map_size))
        depth = depth.astype(np.float32)
        if not depth.sum() > 0:
            return FaceCrop(face, box, rgb, depth, note=f"all-black depth crop: {FALLBACK_NOTE}")
        return FaceCrop(face, box, rgb, depth)

    def __call__(self, frames_bgr: Sequence[np.ndarray]) -> list[list[FaceCrop]]:
        """Face crops per frame (an empty list: no face found)."""
        return [[self.crop(frame, box, k) for k, box in enumerate(boxes)]
                for frame, boxes in zip(frames_bgr, self.boxes(frames_bgr))]


def normalize(images_rgb: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 RGB [S,S,3] list -> ``[B,3,S,S]`` float32, (x - 127.5) / 128 as DUM/test.py feeds it."""
    x = torch.from_numpy(np.ascontiguousarray(np.stack(images_rgb).transpose(0, 3, 1, 2)))
    return normalize_image(x)


def frame_scores(mu: torch.Tensor, depth: torch.Tensor) -> list[float]:
    """sum(mu) / sum(depth) per frame, summed as DUM/engine.py does (float32 sum of mu, float64 ratio);
    a frame whose depth sums to 0 is divided by the face template's depth sum (DUM/denominator.py),
    a non-finite network output gives NaN."""
    mu_sum = mu.float().flatten(1).sum(1).double()
    depth = torch.as_tensor(depth)
    depth_sum = depth.double().flatten(1).sum(1)
    h, w = depth.shape[-2:]
    out = []
    for m, d in zip(mu_sum.tolist(), depth_sum.tolist()):
        score, _ = frame_score(m, d, h, w)
        out.append(float("nan") if score is None else score)
    return out


@dataclass
class FaceScore:
    crop: FaceCrop
    score: float | None          # None: not scorable (crop.problem says why)
    mu: np.ndarray | None = None  # [M,M] predicted depth mean (kept for --save-depth)
    logvar: np.ndarray | None = None  # [M,M] its log-variance (None: a network without the DUM head)


def score_crops(model: DepthModel, crops: Sequence[FaceCrop], batch_size: int = 32,
                keep_maps: bool = False) -> list[FaceScore]:
    """Run the network on every scorable crop (in chunks of ``batch_size``) and score it."""
    results = [FaceScore(c, None) for c in crops]
    todo = [i for i, c in enumerate(crops) if not c.problem]
    for start in range(0, len(todo), max(1, batch_size)):
        idx = todo[start:start + max(1, batch_size)]
        x = normalize([crops[i].image for i in idx])
        mu, logvar = model.forward(x)
        m_h, m_w = mu.shape[-2:]
        depth = torch.from_numpy(np.stack([crops[i].depth if crops[i].depth is not None
                                           else np.zeros((m_h, m_w), np.float32) for i in idx]))
        for j, (i, m, s) in enumerate(zip(idx, mu, frame_scores(mu, depth))):
            if math.isfinite(s):
                results[i].score = float(s)
            else:
                results[i].crop.problem = "non-finite network output: face not scored"
            if keep_maps:
                results[i].mu = m.numpy()
                results[i].logvar = None if logvar is None else logvar[j].numpy()
    return results


def decide(score: float, threshold: float) -> str:
    return "live" if score > threshold else "spoof"


def depth_panel(crop_rgb: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """BGR picture: the face crop with the predicted depth mean beside it, upsampled to the crop size
    (mu is trained toward depth/255, so x255 shows it on the depth labels' scale)."""
    size = crop_rgb.shape[0]
    grey = np.clip(np.asarray(mu, np.float32) * 255.0, 0, 255).astype(np.uint8)
    grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.hstack([crop_rgb[:, :, ::-1], cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)])


# --------------------------------------------------------------------------------------------------
# Inputs: image files, folders, videos


__all__ = ["DECISION_RULE", "TEST_SCALE", "DepthModel", "FaceCrop", "FaceCropper", "FaceScore", "OnnxDepthModel",
           "TorchDepthModel", "decide", "depth_panel", "frame_scores", "load_depth_model", "load_onnx_model",
           "load_torch_model", "normalize", "score_crops", "torch_threads"]

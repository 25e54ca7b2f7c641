"""Live/spoof prediction with a trained CDCN+DUM on image files, folders and videos.

Each frame goes through the data stages' own steps (DUM/inference.py): MTCNN box, face crop at the
dev/test scale 1.3, MediaPipe depth map cropped with the same box, then DUM/test.py's score
sum(mu) / sum(depth). A face is live iff its score > the threshold stored in the checkpoint (the dev
threshold of DUM/train.py / DUM/test.py; the dev list it came from is printed), or ``--threshold``.
A video's score is the mean of its frame scores. Results go to stdout, one line per face and per
video, and to a CSV; files that cannot be read, frames without a face and faces without a depth
map are reported (output, CSV and ``skipped.csv``) and skipped.

    python predict.py --checkpoint runs/CDCN_U_P1/best.pt photo.jpg clips/ talk.mp4 --every 5
    python predict.py --checkpoint cdcn_u.onnx photos/ --save-depth depth_png/
    python predict.py --checkpoint CDCN_U_P1.pkl --threshold 0.32 photo.jpg

Exit status: 0 when at least one face was scored; 1 when nothing could be scored; 2 for bad input
(a path that does not exist, an unusable checkpoint, a checkpoint without threshold and no --threshold).
"""
from __future__ import annotations

import argparse
import csv
import io
import itertools
import logging
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data.media import JPEG_QUALITY, collect_inputs, iter_frames
from DUM.inference import (DECISION_RULE, TEST_SCALE, FaceCropper, decide, load_depth_model, score_crops,
                           torch_threads)
from DUM.panels import SIGMA_MAX, write_panel
from networks.fold import fold_for_inference
from networks.registry import DEPTH_NETS
from utils.checkpoint import CheckpointError
from utils.io import InputError, SkipReport, atomic_write_text
from utils.run import resolve_device, run_stage, save_config

log = logging.getLogger("predict")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("inputs", nargs="+", help="image files, videos (.avi/.mp4/.mov) or folders (searched recursively)")
    p.add_argument("--checkpoint", required=True,
                   help="best.pt/last.pt of DUM/train.py, the released CDCN_U_P1.pkl, or an .onnx of export_onnx.py")
    p.add_argument("--threshold", type=float, default=None,
                   help="decision threshold (live iff score > threshold); default: the one stored in the checkpoint")
    p.add_argument("--batch-size", type=int, default=16, help="frames per detection batch and faces per network batch")
    p.add_argument("--every", type=int, default=1, help="videos: score frames 1, 1+K, 1+2K, ...")
    p.add_argument("--max-frames", type=int, default=0, help="videos: at most this many frames each (0 = all)")
    p.add_argument("--all-faces", action="store_true",
                   help="score every face MTCNN finds (default: the one face the box stage keeps, see --face-rule)")
    p.add_argument("--face-rule", choices=("first", "area"), default="first",
                   help="the face kept without --all-faces: first = the most probable (data/bbox.py's default), "
                        "area = the largest area x probability")
    p.add_argument("--out-dir", default="predictions", help="run folder: config.json, log.txt, skipped.csv, predictions.csv")
    p.add_argument("--out", default=None, help="CSV of every row (default <out-dir>/predictions.csv)")
    p.add_argument("--save-depth", default=None, metavar="DIR",
                   help="write each scored face as a PNG panel: the crop, mu (predicted depth), sigma = exp(logvar/2) on a "
                        "fixed colour scale, score and decision (docs/REPORT.md)")
    p.add_argument("--sigma-max", type=float, default=SIGMA_MAX, help="top of the panels' fixed sigma colour scale")
    p.add_argument("--scale", type=float, default=TEST_SCALE, help="crop scale of the box (crop_dataset.py's dev/test scale)")
    p.add_argument("--jpeg-quality", type=int, default=JPEG_QUALITY,
                   help="re-encode video frames, crops and depth maps as the data stages store them, so scores "
                        "match DUM/test.py (0 = use the raw pixels)")
    p.add_argument("--min-face", type=float, default=40.0, help="MTCNN smallest face in pixels (data/bbox.py's default)")
    p.add_argument("--max-side", type=int, default=0,
                   help="detect faces on frames shrunk to this longer side, boxes scaled back (0 = full size; "
                        "use the value data/bbox.py ran with, e.g. 960 for 1920x1080 video)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ... (detector and PyTorch model)")
    p.add_argument("--fold-bn", action=argparse.BooleanOptionalAction, default=True,
                   help="PyTorch models: fold BatchNorm (and the central differences) into plain convolutions "
                        "before predicting (same scores to ~1e-6, faster; networks/fold.py)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch / ONNX Runtime (0 = library default)")
    a = p.add_argument_group("network of a plain state_dict saved at other settings (default: what the checkpoint "
                             "records, else recognised from its keys, at the published settings)")
    a.add_argument("--model", default=None, choices=DEPTH_NETS, help="network (networks/registry.py)")
    a.add_argument("--theta", type=float, default=None, help="Conv2d_cd theta (CDCN family)")
    a.add_argument("--width", type=float, default=None, help="channel width multiplier")
    a.add_argument("--image-size", type=int, default=None, help="input side (map side = image size / 8)")
    return p


@dataclass
class Row:
    kind: str                    # face | video | skip
    file: str
    frame: str = ""              # 1-based video frame index ("" for images and video rows)
    face: str = ""
    box: str = ""                # x y w h (data/boxes.py)
    detector_score: str = ""
    score: str = ""
    decision: str = ""           # live | spoof ("" when not scored)
    status: str = ""             # scored | no_face | no_depth | unreadable | no_scorable_frame
    detail: str = ""
    frames_scored: str = ""      # video rows
    frames_read: str = ""
    depth_png: str = ""


def format_row(row: Row) -> str:
    where = row.file + (f" frame {row.frame}" if row.frame else "") + (f" face {row.face}" if row.face else "")
    if row.kind == "video":
        if row.score:
            return f"VIDEO {row.file}: score {float(row.score):.6g} -> {row.decision} " \
                   f"(mean of {row.frames_scored} scored frames of {row.frames_read})"
        return f"VIDEO {row.file}: not scored ({row.detail})"
    if row.status == "scored":
        return f"{where}: box {row.box}  score {float(row.score):.6g} -> {row.decision}"
    return f"{where}: SKIPPED {row.status}: {row.detail}"


def png_name(file: str, frame: int | None, face: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(file).with_suffix(""))).strip("_.")
    return f"{stem}{f'_f{frame:06d}' if frame else ''}_face{face}.png"


class VideoTally:
    def __init__(self, file: str):
        self.file, self.read, self.scored, self.scores = file, 0, set(), []

    def row(self, threshold: float) -> Row:
        if not self.scores:
            return Row("video", self.file, status="no_scorable_frame", frames_scored="0", frames_read=str(self.read),
                       detail=f"no face could be scored in the {self.read} frames read")
        score = sum(self.scores) / len(self.scores)
        return Row("video", self.file, score=repr(score), decision=decide(score, threshold), status="scored",
                   frames_scored=str(len(self.scored)), frames_read=str(self.read))


def face_row(frame, crop, result, threshold: float, save_depth, sigma_max: float = SIGMA_MAX) -> Row:
    b = crop.box
    row = Row("face", frame.file, str(frame.frame or ""), str(crop.face), f"{b.x} {b.y} {b.w} {b.h}",
              "" if b.score is None else f"{b.score:.6f}")
    if result.score is None:
        row.status, row.detail = "no_depth", crop.problem
        return row
    row.score, row.decision, row.status = repr(result.score), decide(result.score, threshold), "scored"
    row.detail = crop.note  # set when the face template's depth was the denominator
    if save_depth:
        path = Path(save_depth) / png_name(frame.file, frame.frame, crop.face)
        where = Path(frame.file).name + (f" frame {frame.frame}" if frame.frame else "") + f" face {crop.face}"
        write_panel(path, crop.image, result.mu, result.logvar,
                    title=f"{where} | score {result.score:.4g} vs t {threshold:.4g} -> {row.decision}",
                    sigma_max=sigma_max)
        row.depth_png = str(path)
    return row


def write_csv(rows: list[Row], path: Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(Row.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    atomic_write_text(path, buf.getvalue())
    return path


def run(args) -> dict:
    out_dir = Path(args.out_dir)
    for flag in ("batch_size", "every"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be >= 1")
    if args.max_side < 0:
        raise InputError(f"--max-side must be 0 (off) or a positive number of pixels, got {args.max_side}")
    files = collect_inputs(args.inputs)  # before the slow model/detector loads: a typo fails at once
    save_config(args, out_dir)
    device = resolve_device(args.device)
    with torch_threads(args.threads):
        return predict_files(args, files, out_dir, device)


def load_model(args, device):
    """The depth model of --checkpoint (BatchNorm folded unless --no-fold-bn) and its decision threshold."""
    model = load_depth_model(args.checkpoint, device=device, threads=args.threads, model=args.model,
                             theta=args.theta, width=args.width, image_size=args.image_size)
    if model.kind == "torch" and args.fold_bn:
        model.net = fold_for_inference(model.net)
    threshold, source = model.decision_threshold(args.threshold)
    log.info("model %s (%s, %s, input %d, map %d)", model.source, model.kind, model.arch, model.image_size, model.map_size)
    print(f"threshold {threshold:.6g} ({DECISION_RULE}) from {source}", flush=True)
    return model, threshold, source


def predict_files(args, files, out_dir: Path, device) -> dict:
    """Every frame of ``files`` in batches: faces cropped, scored and decided, one row each (plus a row
    per video and per skipped frame), printed as they come and written to predictions.csv."""
    model, threshold, source = load_model(args, device)
    cropper = FaceCropper(model.image_size, model.map_size, scale=args.scale, jpeg_quality=args.jpeg_quality,
                          all_faces=args.all_faces, min_face=args.min_face, device=device,
                          max_side=args.max_side, face_rule=args.face_rule)
    report = SkipReport(out_dir / "skipped.csv")
    rows: list[Row] = []

    def emit(row: Row) -> None:
        rows.append(row)
        if row.kind == "skip" or row.status not in ("scored", ""):
            report.add(row.file + (f"#frame{row.frame}" if row.frame else "") + (f"#face{row.face}" if row.face else ""),
                       f"{row.status}: {row.detail}")
        tqdm.write(format_row(row), file=sys.stdout)

    video: VideoTally | None = None
    frames = iter_frames(files, args.every, args.max_frames, args.jpeg_quality)
    with logging_redirect_tqdm(), tqdm(desc="predict", unit="frame", file=sys.stderr, leave=False) as bar:
        while batch := list(itertools.islice(frames, args.batch_size)):
            readable = [f for f in batch if f.image is not None]
            crops = dict(zip(map(id, readable), cropper([f.image for f in readable])))
            flat = [c for f in readable for c in crops[id(f)]]
            scored = iter(score_crops(model, flat, args.batch_size, keep_maps=bool(args.save_depth)))
            for f in batch:
                if video is not None and video.file != f.file:
                    emit(video.row(threshold))
                    video = None
                if f.video and f.image is not None:
                    video = video or VideoTally(f.file)
                    video.read += 1
                frame = str(f.frame or "")
                if f.image is None:
                    emit(Row("skip", f.file, frame, status="unreadable", detail=f.problem))
                    continue
                if not crops[id(f)]:
                    emit(Row("skip", f.file, frame, status="no_face", detail="no face found by MTCNN"))
                for c in crops[id(f)]:
                    row = face_row(f, c, next(scored), threshold, args.save_depth, args.sigma_max)
                    if row.status == "scored" and video is not None:
                        video.scores.append(float(row.score))
                        video.scored.add(f.frame)
                    emit(row)
            bar.update(len(batch))
    if video is not None:
        emit(video.row(threshold))
    out_csv = write_csv(rows, Path(args.out) if args.out else out_dir / "predictions.csv")
    report.write()
    faces = [r for r in rows if r.kind == "face" and r.status == "scored"]
    summary = {"files": len(files), "faces_scored": len(faces), "live": sum(r.decision == "live" for r in faces),
               "spoof": sum(r.decision == "spoof" for r in faces), "skipped": len(report),
               "videos": sum(r.kind == "video" for r in rows), "threshold": threshold, "threshold_source": source,
               "csv": str(out_csv), "rows": rows}
    log.info("%d faces scored (%d live, %d spoof) in %d files; %d skipped (%s); rows in %s", summary["faces_scored"],
             summary["live"], summary["spoof"], len(files), len(report), report.path, out_csv)
    return summary


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    summary = run_stage(run, args, args.out_dir, errors=(CheckpointError,))
    if summary["faces_scored"] == 0:
        log.error("nothing could be scored (see %s)", Path(args.out_dir) / "skipped.csv")
        raise SystemExit(1)
    return summary


if __name__ == "__main__":
    main()

"""Drawing paired live/spoof faces from a trained generator (docs/ORIGINAL.md 2.11) and the generated.py stage.

One pair = decoder([noise_t, noise_I, noise_I]): one identity code shared by both outputs, an
independent spoof-pattern code; channels 0-2 spoof, 3-5 live (the original ``generated.py``).

The stage does in code what the original left as a manual step (docs/ORIGINAL.md 1.7, 1.9):
* pair ``j`` (0-based) goes to folder ``k = j // F`` as frame id ``j % F + 1`` (``F`` =
  ``--frames-per-folder``, 99 as the depth loader expects): live ``<crop-root>/train_img_flod/
  p<P>_0_1_<k>/<id>_scene.jpg``, spoof ``.../p<P>_0_0_<k>/<id>_scene.jpg``, the live image's depth
  label ``train_depth_flod/p<P>_0_1_<k>/<id>_depth1D.jpg`` (docs/DATA_LAYOUT.md); for the folds of
  protocols 3 and 4 the prefix is ``p<P>f<fold>`` (one generator per fold, so one id space per fold);
* the depth label is the MediaPipe face-mesh depth (data.face_depth.FaceDepthEstimator) of the whole
  256x256 generated face, resized to 32x32 (cv2 bilinear, as the original crop script resized its
  PRNet maps);
* the merged protocol is the input protocol, byte for byte, then one line per complete generated
  folder (``1,p<P>_0_1_<k>`` / ``0,p<P>_0_0_<k>``), shuffled with the seed: real lines first, as the
  DUM batch sampler requires (docs/ORIGINAL.md 1.9, 3.6).

Determinism and resume: the noise of pair ``j`` comes from its own generator seeded by
``(seed, j, attempt)``, so a folder's content depends on nothing but the seed and the generator
weights: a rerun skips folders whose completion marker matches and redoes any other.

Generated live faces on which no face mesh is found (``--on-no-face``):
* ``resample`` (default): the pair (live and spoof together) is drawn again with the next attempt
  number, up to ``--max-resample`` times; a folder that still lacks a pair is not written, not
  listed in the protocol, and every missing pair is in ``skipped.csv``;
* ``zero``: the pair is kept with an all-zero depth map (what the original loader fed for a missing
  map) and listed in ``skipped.csv``.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import random
import re
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from data.face_depth import FaceDepthEstimator
from data.frames import depth_name, split_dirs
from data.protocols import read_protocol
from generation.checkpoint import load_generator, parameter_checksum
from networks.vae import decode_pairs
from utils.io import InputError, SkipReport, atomic_imwrite, atomic_write_json, atomic_write_text
from utils.run import resolve_device

log = logging.getLogger(__name__)

DEPTH_SIZE = 32
MARKER = ".complete.json"
RAW_PAIRS_PER_FOLDER = 100  # the original generated.py: rounds of 100 pairs, ids 0..99


def pair_noise(seed: int, pair_index: int, attempt: int, hdim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (spoof-pattern, identity) noise of one pair, each [hdim], from its own seeded generator."""
    state = np.random.SeedSequence([int(seed), int(pair_index), int(attempt)]).generate_state(2, dtype=np.uint32)
    g = torch.Generator()
    g.manual_seed(int(state[0]) << 31 ^ int(state[1]))
    noise = torch.randn(2, hdim, generator=g)
    return noise[0], noise[1]


def to_uint8_rgb(images: torch.Tensor, size: int) -> np.ndarray:
    """[n,3,S,S] in [0,1] -> [n,size,size,3] uint8 RGB, truncated like the original ``uint8(255*x)``."""
    images = images.float()
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return (images.clamp(0, 1) * 255.0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def depth_label(estimator, image_rgb: np.ndarray, size: int = DEPTH_SIZE) -> np.ndarray | None:
    """32x32 uint8 depth label of a generated face (whole image = the face crop), or None: no mesh."""
    depth = estimator.estimate(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), box=None)
    if depth is None:
        return None
    return cv2.resize(depth, (size, size), interpolation=cv2.INTER_LINEAR)


_FOLD_FILE_RE = re.compile(r"_(\d+)\.(txt|csv)$")


def check_fold(protocol, fold: int | None, protocol_in=None) -> None:
    """Every fold of OULU-NPU protocols 3 and 4 trains its own generator, so its folders need their own
    ids (``p<P>f<fold>``, data.protocol_args.generated_prefix). Refuses a missing or out-of-range fold
    there, a fold for protocols 1 and 2, and an input list named for another fold (``Train_<k>``)."""
    if not str(protocol).strip().isdigit():
        return  # a CSV protocol: one generator per CSV file
    if int(protocol) not in (3, 4):
        if fold is not None:
            raise InputError(f"--fold {fold}: protocol {protocol} has no folds (folds are for protocols 3 and 4)")
        return
    if fold is None or not 1 <= int(fold) <= 6:
        raise InputError(f"protocol {protocol} has six folds: pass --fold 1..6 (got {fold}), so each fold's "
                         f"generated folders get their own ids")
    m = _FOLD_FILE_RE.search(Path(protocol_in).name) if protocol_in is not None else None
    if m is not None and int(m.group(1)) != int(fold):
        raise InputError(f"{protocol_in}: a list of fold {m.group(1)}, but --fold is {fold}")


def folder_names(prefix: str, k: int) -> tuple[str, str]:
    """(live, spoof) folder names of generated folder ``k``: ``<prefix>_0_1_<k>``, ``<prefix>_0_0_<k>``."""
    return f"{prefix}_0_1_{k}", f"{prefix}_0_0_{k}"


# ----------------------------------------------------------------------------------------------
# protocol merge
def merge_protocol(protocol_in, protocol_out, live_spoof_folders: list[tuple[str, str]], seed: int) -> dict:
    """Input protocol unchanged, then each generated folder once (live ``1,<id>``, spoof ``0,<id>``), shuffled."""
    protocol_in, protocol_out = Path(protocol_in), Path(protocol_out)
    items = read_protocol(protocol_in)  # validates every line (file:line errors)
    listed = {item.video_id: item.where for item in items}
    new_ids = [v for pair in live_spoof_folders for v in pair]
    clash = [f"{v} (already at {listed[v]})" for v in new_ids if v in listed]
    if clash:
        raise InputError(f"{protocol_in}: already lists generated folder(s) {', '.join(clash[:5])}; "
                         f"pass the protocol without generated lines (e.g. Train.txt) as --protocol-in")
    text = protocol_in.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    generated = [(1, live) for live, _ in live_spoof_folders] + [(0, spoof) for _, spoof in live_spoof_folders]
    random.Random(seed).shuffle(generated)
    if items[0].fmt == "csv":
        header = next(line for line in text.lstrip("\ufeff").splitlines() if line.strip() and not line.startswith("#"))
        columns = [c.strip().lower() for c in next(csv.reader([header]))]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for label, video in generated:
            cells = {"path": video, "label": str(label), "attack_type": "" if label else "generated",
                     "subject": "", "split": "train"}
            w.writerow([cells[c] for c in columns])
        text += buf.getvalue()
    else:
        text += "".join(f"{label},{video}\n" for label, video in generated)
    atomic_write_text(protocol_out, text)
    merged = read_protocol(protocol_out)  # what every later stage will read
    return {"protocol": str(protocol_out), "real_lines": len(items), "generated_lines": len(generated),
            "total": len(merged)}


# ----------------------------------------------------------------------------------------------
def _marker_content(args, generator_checksum: str, k: int) -> dict:
    return {"seed": int(args.seed), "generator": generator_checksum, "frames": int(args.frames_per_folder),
            "first_pair": k * int(args.frames_per_folder), "output_size": int(args.output_size),
            "on_no_face": args.on_no_face, "jpeg_quality": int(args.jpeg_quality)}


def _read_marker(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class FolderGenerator:
    """Draws, checks and writes one generated live/spoof folder pair."""

    def __init__(self, decoder, hdim: int, args, estimator, report: SkipReport, device):
        self.decoder, self.hdim, self.args = decoder, hdim, args
        self.estimator, self.report, self.device = estimator, report, device
        dirs = split_dirs(args.crop_root, "train")
        self.img_dir, self.depth_dir = dirs["img"], dirs["depth"]
        self.prefix = getattr(args, "prefix", None) or f"p{args.protocol}"

    def _draw(self, pairs: list[tuple[int, int]]):
        """[(pair index, attempt)] -> (spoof uint8 [n,S,S,3], live uint8 [n,S,S,3])."""
        spoofs, lives = [], []
        bs = self.args.batch_size
        for start in range(0, len(pairs), bs):
            chunk = pairs[start:start + bs]
            noise = [pair_noise(self.args.seed, j, a, self.hdim) for j, a in chunk]
            noise_t = torch.stack([n[0] for n in noise]).to(self.device)
            noise_id = torch.stack([n[1] for n in noise]).to(self.device)
            spoof, live = decode_pairs(self.decoder, noise_t, noise_id)
            spoofs.append(to_uint8_rgb(spoof, self.args.output_size))
            lives.append(to_uint8_rgb(live, self.args.output_size))
        return np.concatenate(spoofs), np.concatenate(lives)

    def generate(self, k: int) -> dict[int, tuple]:
        """{frame id: (spoof rgb, live rgb, depth 32x32, pair index, attempt)}; missing ids could not be filled."""
        fpf = self.args.frames_per_folder
        pending = [(k * fpf + i, 0) for i in range(fpf)]
        done: dict[int, tuple] = {}
        while pending:
            spoof, live = self._draw(pending)
            retry = []
            for (j, attempt), s, l in zip(pending, spoof, live):
                depth = depth_label(self.estimator, l)
                frame_id = j - k * fpf + 1
                if depth is None:
                    where = f"{folder_names(self.prefix, k)[0]}/{frame_id}_scene.jpg"
                    if self.args.on_no_face == "zero":
                        self.report.add(where, f"pair {j}: no face mesh on the generated live face; depth label "
                                               f"set to zeros (--on-no-face zero)")
                        depth = np.zeros((DEPTH_SIZE, DEPTH_SIZE), np.uint8)
                    elif attempt < self.args.max_resample:
                        retry.append((j, attempt + 1))
                        continue
                    else:
                        self.report.add(where, f"pair {j}: no face mesh on the generated live face in "
                                               f"{attempt + 1} draws; folder {k} left incomplete")
                        continue
                done[frame_id] = (s, l, depth, j, attempt)
            pending = retry
        return done

    def write(self, k: int, done: dict[int, tuple], marker: dict, raw_dir: Path | None) -> None:
        live_name, spoof_name = folder_names(self.prefix, k)
        q = self.args.jpeg_quality
        for frame_id, (s, l, depth, j, _attempt) in sorted(done.items()):
            name = f"{frame_id}_scene.jpg"
            atomic_imwrite(self.img_dir / spoof_name / name, s[:, :, ::-1], jpeg_quality=q)
            atomic_imwrite(self.img_dir / live_name / name, l[:, :, ::-1], jpeg_quality=q)
            atomic_imwrite(self.depth_dir / live_name / depth_name(name), depth)
            if raw_dir is not None:
                n, i = divmod(j, RAW_PAIRS_PER_FOLDER)
                atomic_imwrite(raw_dir / f"{self.prefix}_0_{n}" / f"{i}_scene.jpg", s[:, :, ::-1], jpeg_quality=q)
                atomic_imwrite(raw_dir / f"{self.prefix}_1_{n}" / f"{i}_scene.jpg", l[:, :, ::-1], jpeg_quality=q)
        # Markers last: a folder without both markers is redone on the next run.
        for folder in (self.img_dir / spoof_name, self.img_dir / live_name):
            atomic_write_json(folder / MARKER, marker)


def check_counts(args) -> None:
    if args.num_pairs <= 0 or args.frames_per_folder <= 0:
        raise InputError("--num-pairs and --frames-per-folder must be positive")
    if args.num_pairs % args.frames_per_folder:
        raise InputError(f"--num-pairs {args.num_pairs} is not a multiple of --frames-per-folder "
                         f"{args.frames_per_folder}: the depth loader expects every folder to hold ids 1.."
                         f"{args.frames_per_folder}")


def generate_folders(worker: FolderGenerator, args, checksum: str, raw_dir: Path | None) -> dict:
    """Write every folder pair not already complete with the same settings; which are complete/incomplete."""
    num_folders = args.num_pairs // args.frames_per_folder
    complete, incomplete, skipped_done = [], [], 0
    with logging_redirect_tqdm():
        for k in tqdm(range(num_folders), desc="generated folders", dynamic_ncols=True):
            names = folder_names(worker.prefix, k)
            marker = _marker_content(args, checksum, k)
            found = [_read_marker(worker.img_dir / n / MARKER) for n in names]
            if all(m == marker for m in found):
                complete.append(names)
                skipped_done += 1
                continue
            if any(m is not None and m != marker for m in found) and not args.overwrite:
                raise InputError(
                    f"{worker.img_dir / names[0]}: generated earlier with other settings or another generator "
                    f"({next(m for m in found if m is not None and m != marker)}); use a fresh --crop-root, "
                    f"or --overwrite to replace it")
            done = worker.generate(k)
            if len(done) < args.frames_per_folder:
                incomplete.append(k)
                continue
            worker.write(k, done, marker, raw_dir)
            complete.append(names)
    return {"folders": num_folders, "complete": complete, "incomplete": incomplete, "already_done": skipped_done}


def generate(args) -> dict:
    """The generated.py stage (see generated.build_parser for the flags)."""
    check_counts(args)
    check_fold(args.protocol, getattr(args, "fold", None), args.protocol_in)  # before anything is loaded
    device = resolve_device(args.device)
    out_path = Path(args.out_path)
    vae, ckpt = load_generator(args.checkpoint, device)
    checksum = parameter_checksum(vae)
    log.info("generator %s (epoch %s, %s, checksum %s...)", args.checkpoint, ckpt.get("epoch"), ckpt["model"],
             checksum[:12])

    estimator = FaceDepthEstimator()
    report = SkipReport(out_path / "skipped.csv")
    worker = FolderGenerator(vae.decoder, int(ckpt["model"]["hdim"]), args, estimator, report, device)
    t0 = time.time()
    try:
        done = generate_folders(worker, args, checksum, out_path if args.save_raw else None)
    finally:
        estimator.close()
        report.write()
    complete, incomplete = done["complete"], done["incomplete"]
    if incomplete:
        log.warning("%d folder(s) incomplete (no face mesh after %d redraws) and left out of the protocol: %s; "
                    "see %s", len(incomplete), args.max_resample, incomplete[:10], report.path)
    if not complete:
        raise InputError(f"no generated folder is complete, so nothing can be added to the protocol (see {report.path})")
    merged = merge_protocol(args.protocol_in, args.protocol_out, complete, args.seed)
    result = {"folders": done["folders"], "complete": len(complete), "already_done": done["already_done"],
              "incomplete": incomplete, "skipped_report": str(report.path), "reported": len(report),
              "seconds": round(time.time() - t0, 2), **merged}
    atomic_write_json(out_path / "generate_summary.json", result)
    log.info("generated %d folder pairs (%d already done), %d reported items; protocol %s (%d lines)",
             len(complete), done["already_done"], len(report), merged["protocol"], merged["total"])
    return result

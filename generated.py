"""Sample paired live/spoof faces from a trained generator into the crop tree and merge the protocol.

    python generated.py --checkpoint model_oulu_p1/last.pt --num-pairs 34650 --frames-per-folder 99 \\
        --crop-root oulu_images_crop --protocol-in oulu_images/protocols/Protocol_1/Train.txt \\
        --protocol-out oulu_images_crop/protocols/Protocol_1/Train_g.txt --seed 0

Writes live folders p<P>_0_1_<k> and spoof folders p<P>_0_0_<k> (<id>_scene.jpg, ids 1..F) under
<crop-root>/train_img_flod/, 32x32 depth labels of the live faces under train_depth_flod/, and the
protocol: the input lines unchanged, then each generated folder once, shuffled with the seed (the
original's manual "move the data and upgrade the protocol", spec 1.9). Defaults give the 350 + 350
folders of the shipped Train_g.txt. Deterministic with --seed; a rerun skips finished folders.
--save-raw also writes the original generated.py layout (p1_0_<n>/p1_1_<n>, ids 0..99) to --out-path.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from utils.checkpoint import CheckpointError  # noqa: E402
  # noqa: E402
from utils.run import run_stage, save_config  # noqa: E402

log = logging.getLogger("generated")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--checkpoint", default="model_oulu_p1/last.pt", help="generator checkpoint written by train_generator.py")
    a("--num-pairs", type=int, default=34650, help="live/spoof pairs to draw (350 folders x 99 = the shipped Train_g.txt)")
    a("--frames-per-folder", type=int, default=99, help="pairs per generated folder (ids 1..F; the DUM loader picks 1..99)")
    a("--protocol", default="1", help="OULU protocol number: generated ids are p<P>_0_<d>_<k>")
    a("--crop-root", default="oulu_images_crop", help="crop tree the depth network reads (train_img_flod/, train_depth_flod/)")
    a("--protocol-in", default="oulu_images/protocols/Protocol_1/Train.txt", help="training protocol of the real videos")
    a("--protocol-out", default="oulu_images_crop/protocols/Protocol_1/Train_g.txt", help="merged protocol to write")
    a("--out-path", default="fake_images/oulu_p1", help="run folder (config, log, skipped.csv) and --save-raw output")
    a("--save-raw", action="store_true", help="also write the original layout p<P>_0_<n>/ (spoof), p<P>_1_<n>/ (live), ids 0..99")
    a("--output-size", type=int, default=256, help="saved image size (a smaller generator is resized up)")
    a("--jpeg-quality", type=int, default=75, help="JPEG quality of the generated faces (75 = PIL's default, as the original)")
    a("--on-no-face", choices=("resample", "zero"), default="resample",
      help="live face without a face mesh: draw the pair again, or keep it with an all-zero depth label (reported)")
    a("--max-resample", type=int, default=10, help="redraws per pair before its folder is given up (reported)")
    a("--batch-size", type=int, default=100, help="pairs decoded at once (the original drew rounds of 100)")
    a("--seed", type=int, default=0, help="seed of the noise and of the protocol shuffle")
    a("--overwrite", action="store_true", help="regenerate folders made with other settings or another generator")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    return p


def run(args) -> dict:
    from generation.sampling import generate

    save_config(args, args.out_path)
    return generate(args)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    return run_stage(run, args, args.out_path, errors=(CheckpointError,))


if __name__ == "__main__":
    main()

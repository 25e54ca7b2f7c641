"""Sample paired live/spoof faces from a trained generator into the crop tree and merge the protocol.

    python generated.py --checkpoint model_oulu_p1/last.pt --num-pairs 34650 --frames-per-folder 99 \\
        --crop-root oulu_images_crop --protocol-in oulu_images/protocols/Protocol_1/Train.txt \\
        --protocol-out oulu_images_crop/protocols/Protocol_1/Train_g.txt --seed 0

Writes live folders p<P>_0_1_<k> and spoof folders p<P>_0_0_<k> (<id>_scene.jpg, ids 1..F) under
<crop-root>/train_img_flod/, 32x32 depth labels of the live faces under train_depth_flod/, and the
protocol: the input lines unchanged, then each generated folder once, shuffled with the seed (the
original's manual "move the data and upgrade the protocol", docs/ORIGINAL.md 1.9). Defaults give the 350 + 350
folders of the shipped Train_g.txt. Deterministic with --seed; a rerun skips finished folders.
--save-raw also writes the original generated.py layout (p1_0_<n>/p1_1_<n>, ids 0..99) to --out-path.
Protocols 3 and 4 need --fold: each fold has its own generator, so its folders are p<P>f<fold>_0_<d>_<k>
and the six folds can share one crop tree without one fold's list pointing at another's images.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from data.protocol_args import default_out_dir, generated_list_name, generated_prefix, is_oulu  # noqa: E402
from data.protocol_args import protocol_arg, resolve_list  # noqa: E402
from utils.checkpoint import CheckpointError  # noqa: E402
from utils.io import InputError  # noqa: E402
from utils.run import resolve_device, run_stage, save_config  # noqa: E402

log = logging.getLogger("generated")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--checkpoint", default=None,
      help="generator checkpoint written by train_generator.py (default model_oulu_p<P>/last.pt, "
           "runs/<csv stem>/generator/last.pt for a CSV)")
    a("--num-pairs", type=int, default=34650, help="live/spoof pairs to draw (350 folders x 99 = the shipped Train_g.txt)")
    a("--frames-per-folder", type=int, default=99, help="pairs per generated folder (ids 1..F; the DUM loader picks 1..99)")
    a("--protocol", type=protocol_arg, default=1,
      help="OULU-NPU protocol 1-4 (generated ids p<P>_0_<d>_<k>) or a CSV protocol (ids p0_0_<d>_<k>)")
    a("--fold", type=int, default=None,
      help="fold 1-6, required for OULU-NPU protocols 3 and 4: generated ids become p<P>f<fold>_0_<d>_<k>")
    a("--crop-root", default="oulu_images_crop", help="crop tree the depth network reads (train_img_flod/, train_depth_flod/)")
    a("--protocol-dir", default="oulu_images/protocols", help="folder holding Protocol_<p>/ (OULU-NPU only)")
    a("--protocol-in", default=None,
      help="training protocol of the real videos (default Protocol_<p>/Train[_<fold>].txt in --protocol-dir, "
           "or the CSV itself)")
    a("--protocol-out", default=None,
      help="merged protocol to write (default <crop-root>/protocols/Protocol_<p>/Train_g[_<fold>].txt, "
           "or <crop-root>/protocols/<csv stem>_g.csv, where DUM/train.py looks for it)")
    a("--out-path", default=None,
      help="run folder (config, log, skipped.csv) and --save-raw output "
           "(default fake_images/oulu_p<P>, runs/<csv stem>/generated for a CSV)")
    a("--save-raw", action="store_true", help="also write the original layout p<P>_0_<n>/ (spoof), p<P>_1_<n>/ (live), ids 0..99")
    a("--output-size", type=int, default=256, help="saved image size (a smaller generator is resized up)")
    a("--jpeg-quality", type=int, default=95,
      help="JPEG quality of the generated faces: 95 as the real crops (the original saved at PIL's 75)")
    a("--on-no-face", choices=("resample", "zero"), default="resample",
      help="live face without a face mesh: draw the pair again, or keep it with an all-zero depth label (reported)")
    a("--max-resample", type=int, default=10, help="redraws per pair before its folder is given up (reported)")
    a("--batch-size", type=int, default=100, help="pairs decoded at once (the original drew rounds of 100)")
    a("--seed", type=int, default=0, help="seed of the noise and of the protocol shuffle")
    a("--overwrite", action="store_true", help="regenerate folders made with other settings or another generator")
    a("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    a("--diagnostics-pairs", type=int, default=64,
      help="identity diagnostics (LightCNN cosine within generated pairs vs real pairs, diversity) on the first N "
           "pairs, written to <out-path>/metrics.csv with a labelled grid (0 = off; needs the generator's --ip-model)")
    a("--ip-model", default="auto", help="LightCNN checkpoint for the diagnostics (auto = the generator's own)")
    return p


def resolve_paths(args) -> None:
    """Fill the paths left at their defaults from --protocol (original names for OULU-NPU)."""
    tag = f"p{args.protocol}" + (f"_{args.fold}" if args.fold else "")
    if args.checkpoint is None:
        args.checkpoint = str(default_out_dir(args.protocol, args.fold, f"model_oulu_{tag}", "generator") / "last.pt")
    if args.out_path is None:
        args.out_path = str(default_out_dir(args.protocol, args.fold, f"fake_images/oulu_{tag}", "generated"))


def resolve_protocols(args) -> None:
    """--protocol-in/--protocol-out from --protocol when not given (checks the files exist)."""
    if args.protocol_in is None:
        args.protocol_in = str(resolve_list(args.protocol, "train", args.protocol_dir, args.fold))
    if args.protocol_out is None:
        sub = f"Protocol_{args.protocol}" if is_oulu(args.protocol) else ""
        args.protocol_out = str(Path(args.crop_root) / "protocols" / sub / generated_list_name(args.protocol, args.fold))
    args.prefix = generated_prefix(args.protocol, args.fold)


def run(args) -> dict:
    # deferred: torch and the generator stack load only when the stage runs (--help answers at once)
    from generation.sampling import generate

    resolve_protocols(args)
    save_config(args, args.out_path)
    result = generate(args)
    if args.diagnostics_pairs > 0:
        result["diagnostics"] = diagnostics(args)
    return result


def diagnostics(args) -> dict | None:
    """Identity diagnostics of the pairs drawn (generation/diagnostics.py), real pairs from the
    generator's own training list when it is still where the generator was trained."""
    # deferred like generate(): the generator and LightCNN stacks load only when the stage runs
    from generation.dataset import GenDataset
    from generation.diagnostics import real_pairs, sampled_pair_diagnostics
    from generation.trainer import load_generator, load_identity_net

    device = resolve_device(args.device)
    vae, ckpt = load_generator(args.checkpoint, device)
    cfg = ckpt.get("config") or {}
    ip_model = cfg.get("ip_model") if args.ip_model == "auto" else args.ip_model
    if not ip_model or cfg.get("no_identity_loss") and args.ip_model == "auto" or not Path(ip_model).is_file():
        log.warning("identity diagnostics skipped: no LightCNN checkpoint (%s); pass --ip-model", ip_model)
        return None
    identity_net = load_identity_net(ip_model, device, float(cfg.get("ip_width", 1.0)))
    real = None
    try:
        dataset = GenDataset(cfg["img_root"], cfg["train_list"], image_size=int(ckpt["model"]["image_size"]))
        real = real_pairs(dataset, args.diagnostics_pairs, args.seed)
    except (KeyError, InputError) as exc:
        log.warning("identity diagnostics without real pairs (%s)", exc)
    return sampled_pair_diagnostics(vae, identity_net, args.diagnostics_pairs, args.seed, device, real, args.out_path)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    resolve_paths(args)
    return run_stage(run, args, args.out_path, errors=(CheckpointError,))


if __name__ == "__main__":
    main()

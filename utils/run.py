"""Run folders: logging to console and ``log.txt``, the resolved ``config.json``, device choice, shards."""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TypeVar

if TYPE_CHECKING:  # torch is imported lazily: CLI tools such as DUM.metrics never need it
    import torch

from utils.io import InputError, atomic_write_json

T = TypeVar("T")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(out_dir=None, rank: int = 0, filename: str = "log.txt", level=logging.INFO) -> None:
    """Console on rank 0 only; every rank appends to its own log file in ``out_dir``."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_fas_handler", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    formatter = logging.Formatter(_FORMAT, datefmt="%H:%M:%S")
    if rank == 0:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(formatter)
        console._fas_handler = True
        root.addHandler(console)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        name = filename if rank == 0 else f"{Path(filename).stem}_rank{rank}{Path(filename).suffix}"
        fileh = logging.FileHandler(out_dir / name, mode="a", encoding="utf-8")
        fileh.setFormatter(formatter)
        fileh._fas_handler = True
        root.addHandler(fileh)


def git_sha() -> str:
    """The project's git commit (with ``-dirty`` when the tree has changes), or ``unknown``."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_dict(args) -> dict:
    """A plain, JSON- and ``weights_only``-safe dict of the resolved arguments."""
    raw = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    out = {}
    for key, value in raw.items():
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, (list, tuple)):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        elif value is not None and not isinstance(value, (bool, int, float, str, dict)):
            value = str(value)
        out[key] = value
    return out


def save_config(args, out_dir, filename: str = "config.json") -> Path:
    """Write every resolved value plus the git SHA to ``out_dir/config.json`` and log it."""
    cfg = config_dict(args)
    cfg["git_sha"] = git_sha()
    path = Path(out_dir) / filename
    atomic_write_json(path, cfg)
    logging.getLogger(__name__).info("config: %s", cfg)
    return path


def resolve_device(name: str | None = None) -> "torch.device":
    """``None``/"auto" picks CUDA when available, else CPU."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name} asked for CUDA but no GPU is visible")
    return device


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (1-based K) -> (K, N). Lets a stage split its work across machines."""
    try:
        k, n = (int(p) for p in str(text).split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like K/N (e.g. 2/8), got {text!r}") from None
    if not (n >= 1 and 1 <= k <= n):
        raise argparse.ArgumentTypeError(f"--shard {text}: need 1 <= K <= N")
    return k, n


def select_shard(items: Sequence[T], shard: tuple[int, int]) -> list[T]:
    """Every N-th item starting at K-1: shards are disjoint and together cover ``items``."""
    k, n = shard
    return list(items[k - 1::n])


def run_stage(run_fn, args, log_dir=None, errors: tuple = (), log_file: str = "log.txt"):
    """The body of a stage script's ``main()``: log to the console and ``<log_dir>/<log_file>`` (when
    ``log_dir`` is given), call ``run_fn(args)``, and turn a user error (InputError, plus ``errors``
    such as CheckpointError) into its message and exit status 2 instead of a traceback."""
    if log_dir is not None:
        setup_logging(log_dir, filename=log_file)
    try:
        return run_fn(args)
    except (InputError, *errors) as exc:
        logging.getLogger(getattr(run_fn, "__module__", None) or "main").error("%s", exc)
        # The exception stays reachable from SystemExit's context: drop the locals of the frames it
        # went through, so what they held (a DDP wrapper) can be freed before the process group is.
        traceback.clear_frames(exc.__traceback__)
        raise SystemExit(2) from None

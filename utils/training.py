"""What every trainer shares: precision policy, the all-ranks non-finite-loss guard, resume, saving on
the main process, and the metrics CSV / TensorBoard logger.

The trainers (``DUM/train.py``, ``generation/trainer.py``, ``generation/lightcnn_trainer.py``) each
keep their own model, data and loss; everything here behaves the same for all three.
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
import torch.distributed as dist

from utils.checkpoint import save_checkpoint
from utils.dist import all_gather_object, is_main_process
from utils.io import InputError, atomic_write_text

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ precision
PRECISIONS = ("off", "bf16", "fp16")
_DTYPES = {"off": None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` ("off"/"fp32", "bf16", "fp16"; "auto" = bf16 where the GPU
    has it) on ``device``, or None for float32. Mixed precision is CUDA only: elsewhere it is float32
    with a warning when it was asked for explicitly."""
    if precision not in (*_DTYPES, "auto"):
        raise ValueError(f"unknown precision {precision!r}; pick one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if precision in ("bf16", "fp16"):
            log.warning("--amp %s needs CUDA; running in float32 on %s", precision, device)
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return _DTYPES[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for a mixed-precision dtype, a no-op context for float32."""
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """Loss scaling for float16 only (bfloat16 has float32's range); disabled otherwise."""
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cuda", enabled=dtype == torch.float16)


# ------------------------------------------------------------------------------ non-finite loss guard
class NonFiniteLossError(Exception):
    """A loss became NaN or infinite; every process raises it at the same step."""


def check_finite(loss: torch.Tensor, epoch: int, step: int, detail: Callable[[], str] | None = None) -> None:
    """Stop every process together when the loss of any of them is not finite.

    Under DDP one rank raising alone would leave the others waiting in the next all-reduce until the
    timeout; so every rank contributes a flag to one all-reduce per step and all of them raise the
    same error (rank 0 prints it), naming the epoch, the step and the processes whose loss was bad.
    ``detail`` builds extra text (e.g. the loss terms) only when needed.
    """
    bad = not bool(torch.isfinite(loss.detach()).all())
    ranks, details = ([0] if bad else []), [detail() if bad and detail is not None else ""]
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed:
        flags = torch.zeros(dist.get_world_size(), device=loss.device)
        flags[dist.get_rank()] = float(bad)
        dist.all_reduce(flags)
        ranks = [r for r, f in enumerate(flags.tolist()) if f > 0]
        if ranks:  # only on the way out: every rank gets the same text
            details = all_gather_object(details[0])
    if not ranks:
        return
    where = f" on process(es) {', '.join(map(str, ranks))}" if distributed else ""
    extra = "; ".join(f"process {r}: {details[r]}" if distributed else details[r] for r in ranks if details[r])
    raise NonFiniteLossError(f"loss is not finite at epoch {epoch}, step {step}{where}"
                             f"{f' ({extra})' if extra else ''}; all processes stopped. "
                             f"Resume from the last checkpoint with a lower --lr, or check the inputs")


# ------------------------------------------------------------------------------------ resume and save
def resume_path(spec: str | None, out_dir, no_resume: bool = False) -> Path | None:
    """The checkpoint to resume from: ``""``/None none; ``auto`` <out_dir>/last.pt when it exists;
    ``last`` <out_dir>/last.pt, which must exist; anything else a path that must exist."""
    out_dir = Path(out_dir)
    if no_resume or not spec:
        if no_resume and (out_dir / "last.pt").is_file():
            log.warning("--no-resume: starting over; %s will be overwritten", out_dir / "last.pt")
        return None
    if spec == "auto":
        path = out_dir / "last.pt"
        return path if path.is_file() else None
    path = out_dir / "last.pt" if spec == "last" else Path(spec)
    if not path.is_file():
        raise InputError(f"--resume {spec}: no such checkpoint ({path})")
    return path


def check_same_settings(path, saved: Mapping, args, keys: Iterable[str]) -> None:
    """Refuse a resume whose settings in ``keys`` differ from those the checkpoint was trained with."""
    changed = [k for k in keys if k in saved and str(saved[k]) != str(getattr(args, k))]
    if changed:
        raise InputError(f"{path}: cannot resume with changed settings: "
                         + ", ".join(f"{k} {saved[k]} -> {getattr(args, k)}" for k in changed))


def save_on_master(state: Mapping | Callable[[], Mapping], *paths) -> None:
    """Rank 0 writes ``state`` atomically to each path; other ranks do nothing. ``state`` may be a
    function that builds it, so that only rank 0 pays for building it."""
    if is_main_process():
        state = state() if callable(state) else state
        for path in paths:
            save_checkpoint(state, path)


# ------------------------------------------------------------------------------------ metrics logging
class MetricsCSV:
    """A metrics CSV that survives resumes and grows columns.

    Rows are appended; on resume rows of epochs after ``keep_through_epoch`` are dropped (they will be
    replayed). A row may carry keys beyond ``fields`` (e.g. an extra per-epoch statistic): they become
    new columns, after the existing ones, and the file is rewritten once with the wider header.
    ``float_format`` formats floats (None: Python's ``str``).
    """

    def __init__(self, path, fields: Iterable[str], keep_through_epoch: int | None,
                 float_format: str | None = "{:.6g}"):
        self.path, self.fields, self.float_format = Path(path), list(fields), float_format
        rows: list[dict] = []
        if keep_through_epoch is not None and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                old = list(reader.fieldnames or [])
                if old[:len(self.fields)] == self.fields:
                    self.fields = old  # keep the extra columns of the earlier run
                    rows = [r for r in reader if int(r["epoch"]) <= keep_through_epoch]
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, self.fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def _format(self, value):
        return self.float_format.format(value) if self.float_format and isinstance(value, float) else value

    def append(self, row: Mapping) -> None:
        new = [k for k in row if k not in self.fields]
        if new:
            with open(self.path, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            self.fields += new
            self._rewrite(rows)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, self.fields, lineterminator="\n").writerow(
                {k: self._format(v) for k, v in row.items()})

    def close(self) -> None:
        """Nothing is held open between rows; kept so callers can treat it like a file."""


def tensorboard_writer(out_dir, enabled: bool):
    """A SummaryWriter under ``<out_dir>/tensorboard``, or None (disabled or TensorBoard absent)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional dependency, imported only when asked for
    except ImportError:
        log.info("TensorBoard not installed: losses go to metrics.csv only")
        return None
    return SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))

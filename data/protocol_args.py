"""``--protocol`` of every stage: an OULU-NPU protocol number (1-4) or a CSV protocol file.

One CSV with a ``split`` column (docs/DATA_LAYOUT.md) is enough for every stage: the training
stages read its ``train`` rows, model selection its ``dev`` rows, testing its ``test`` rows. The
functions here turn ``--protocol`` (and the optional ``--train-list``/``--dev-list``/``--test-list``
overrides) into list files, and give each stage a default output folder: the original OULU-NPU names
(``CDCN_U_P1``, ``model_oulu_p1``) for a protocol number, ``runs/<csv stem>/<stage>`` for a CSV, so
two datasets never write into one folder. Every error names the flag to change.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from data.oulu_protocols import oulu_file_name, oulu_protocol_dir
from data.protocols import filter_split, read_protocol
from utils.io import InputError

OULU_PROTOCOLS = (1, 2, 3, 4)
RUNS_DIR = "runs"  # CSV datasets: runs/<csv stem>/<stage>


def protocol_arg(text) -> int | str:
    """argparse ``type=``: ``"1"`` .. ``"4"`` -> int (OULU-NPU), anything else -> a protocol file path."""
    text = str(text).strip()
    if not text:
        raise argparse.ArgumentTypeError("empty --protocol: give an OULU-NPU protocol number 1-4 or a CSV file")
    if text.isdigit():
        if int(text) not in OULU_PROTOCOLS:
            raise argparse.ArgumentTypeError(f"OULU-NPU protocol must be 1-4, got {text} (or give a CSV file)")
        return int(text)
    return text


def is_oulu(protocol) -> bool:
    return isinstance(protocol, int) or str(protocol).strip().isdigit()


def protocol_tag(protocol, fold: int | None = None) -> str:
    """``p1`` / ``p3_2`` (OULU-NPU protocol and fold) or the CSV file's stem."""
    if is_oulu(protocol):
        return f"p{int(protocol)}" + (f"_{fold}" if fold else "")
    return Path(str(protocol)).stem


def default_out_dir(protocol, fold: int | None, oulu_name: str, stage: str) -> Path:
    """``oulu_name`` (the original folder name) for OULU-NPU, ``runs/<csv stem>/<stage>`` for a CSV."""
    if is_oulu(protocol):
        return Path(oulu_name)
    return Path(RUNS_DIR) / protocol_tag(protocol) / stage


def generated_prefix(protocol, fold: int | None = None) -> str:
    """Prefix of generated video ids ``p<P>_0_<d>_<k>``: ``p<P>`` for OULU-NPU, ``p<P>f<fold>`` for a fold
    of protocols 3 and 4 (each fold has its own generator, so its own ids), ``p0`` for a CSV."""
    if not is_oulu(protocol):
        return "p0"
    return f"p{int(protocol)}" + (f"f{int(fold)}" if fold else "")


def generated_list_name(protocol, fold: int | None = None) -> str:
    """Name of the training list with generated rows: ``Train_g[_<fold>].txt`` or ``<csv stem>_g.csv``."""
    if is_oulu(protocol):
        return oulu_file_name("train", fold).replace("Train", "Train_g")
    return f"{protocol_tag(protocol)}_g.csv"


def csv_protocol(protocol, flag: str = "--protocol") -> Path:
    path = Path(str(protocol))
    if not path.is_file():
        raise InputError(f"{flag} {protocol}: no such file (give an OULU-NPU protocol number 1-4 or a CSV "
                         "protocol file with a split column, docs/DATA_LAYOUT.md)")
    return path


def check_split(path: Path, split: str, flag: str) -> Path:
    """``path`` when it lists at least one row of ``split`` (rows without a split count), else InputError."""
    if not filter_split(read_protocol(path), split):
        raise InputError(f"{flag} {path}: no row with split '{split}' (fill the split column with "
                         f"train/dev/test, or pass --{split}-list FILE)")
    return path


def _find(folder: Path, name: str) -> Path | None:
    """``folder/name``, matching the name case-insensitively (copies of OULU-NPU differ in case)."""
    if not folder.is_dir():
        return None
    hits = sorted(p for p in folder.iterdir() if p.name.lower() == name.lower() and p.is_file())
    return hits[0] if hits else None


def _oulu_folder(protocol: int, fold: int | None, protocol_dir, split: str) -> Path:
    if protocol in (3, 4) and fold is None:
        raise InputError(f"--protocol {protocol} has six folds: pass --fold 1..6")
    if protocol in (1, 2) and fold is not None:
        raise InputError(f"--protocol {protocol} has no folds (drop --fold {fold})")
    try:
        return oulu_protocol_dir(Path(protocol_dir), protocol)
    except InputError as exc:
        raise InputError(f"{exc}; pass --protocol-dir DIR (the folder holding Protocol_{protocol}/), "
                         f"--{split}-list FILE, or a CSV protocol as --protocol") from None


def resolve_list(protocol, split: str, protocol_dir, fold: int | None = None, explicit=None,
                 prefer_generated: bool = False) -> Path:
    """The list file a stage reads for ``split`` (train/dev/test).

    ``explicit`` (``--<split>-list``) wins. An OULU-NPU number looks up ``Train``/``Dev``/``Test``
    (``_<fold>``) in ``<protocol_dir>/Protocol_<p>/``; a CSV is its own list for every split. With
    ``prefer_generated`` the training list with generated rows, written by generated.py, is used when
    it exists: ``Train_g[_<fold>].txt`` beside ``Train.txt``, or ``<protocol_dir>/<csv stem>_g.csv``.
    """
    flag = f"--{split}-list"
    if explicit not in (None, "", "auto"):
        path = Path(explicit)
        if not path.is_file():
            raise InputError(f"{flag} {explicit}: no such file")
        return path
    if not is_oulu(protocol):
        if prefer_generated:  # <protocol_dir>/<csv stem>_g.csv
            found = _find(Path(protocol_dir), generated_list_name(protocol, fold))
            if found is not None:
                return found
        return check_split(csv_protocol(protocol), split, "--protocol")
    folder = _oulu_folder(int(protocol), fold, protocol_dir, split)
    found = _find(folder, generated_list_name(protocol, fold)) if prefer_generated else None
    found = found or _find(folder, oulu_file_name(split, fold))
    if found is None:
        raise InputError(f"{folder}: no {oulu_file_name(split, fold)} for --protocol {protocol}"
                         f"{f' --fold {fold}' if fold else ''} (pass {flag} FILE)")
    return found

__all__ = ["protocol_arg", "is_oulu", "protocol_tag", "default_out_dir", "generated_prefix", "generated_list_name",
           "csv_protocol", "check_split", "resolve_list"]

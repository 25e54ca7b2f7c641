"""Per-video score files shared by every stage that writes or reads scores (docs/DATA_LAYOUT.md).

Our CSV ``video_id,label,attack_type,score`` (label 1 bona fide / 0 attack, attack_type empty for
bona fide, NaN score = failure to acquire), plus the two-column files of bob.measure
(``label score``, 1/-1) and of the original DSDG/CDCN code (``score label``, 1/0).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterable, NamedTuple

from utils.io import InputError, atomic_write_text, read_text_file

CSV_HEADER = ("video_id", "label", "attack_type", "score")
DEFAULT_ATTACK_TYPE = "attack"  # two-column files carry no attack type
FORMATS = ("auto", "csv", "bob", "cdcn")


class ScoreRow(NamedTuple):
    """One scored video. ``label`` 1 bona fide / 0 attack; ``attack_type`` '' for bona fide;
    ``score`` is NaN when the video could not be scored (failure to acquire)."""

    video_id: str
    label: int
    attack_type: str
    score: float


def _parse_score(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{where}: score {text!r} is not a number") from None
    if math.isinf(value):
        raise InputError(f"{where}: score {text!r} is infinite")
    return value


def _detect_format(path: Path, lines: list[str]) -> str:
    for line in lines:
        if line.strip():
            fields = [f.strip().lstrip("\ufeff") for f in line.split(",")]
            if "video_id" in fields and "score" in fields:
                return "csv"
            break
    raise InputError(
        f"{path}: no CSV header {','.join(CSV_HEADER)!r}; for a two-column file say which one with "
        f"--format bob ('label score', labels 1/-1, bob.measure) or --format cdcn ('score label', "
        f"labels 1/0, the original DSDG/CDCN score files)")


def _read_csv(path: Path, text: str) -> list[ScoreRow]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise InputError(f"{path}: empty score file")
    header = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in CSV_HEADER if c not in header]
    if missing:
        raise InputError(f"{path}:1: header lacks column(s) {missing}; expected {','.join(CSV_HEADER)}")
    col = {name: header.index(name) for name in CSV_HEADER}
    rows, seen = [], {}
    for fields in reader:
        where = f"{path}:{reader.line_num}"
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            raise InputError(f"{where}: expected {len(header)} fields, got {len(fields)}: {fields!r}")
        video_id = fields[col["video_id"]].strip()
        label_text = fields[col["label"]].strip()
        attack_type = fields[col["attack_type"]].strip()
        if not video_id:
            raise InputError(f"{where}: empty video_id")
        if video_id in seen:
            raise InputError(f"{where}: video_id {video_id!r} already on line {seen[video_id]}")
        seen[video_id] = reader.line_num
        if label_text not in ("0", "1"):
            raise InputError(f"{where}: label must be 1 (bona fide) or 0 (attack), got {label_text!r}")
        label = int(label_text)
        if label == 1 and attack_type:
            raise InputError(f"{where}: bona fide row with attack_type {attack_type!r} (leave it empty)")
        if label == 0 and not attack_type:
            attack_type = DEFAULT_ATTACK_TYPE
        rows.append(ScoreRow(video_id, label, attack_type, _parse_score(fields[col["score"]].strip(), where)))
    return rows


def _read_two_column(path: Path, lines: list[str], fmt: str) -> list[ScoreRow]:
    rows = []
    for lineno, line in enumerate(lines, start=1):
        where = f"{path}:{lineno}"
        content = line.split("#", 1)[0].strip()  # numpy.loadtxt (bob) skips comments and blanks
        if not content:
            continue
        fields = content.split()
        if len(fields) != 2:
            layout = "'label score'" if fmt == "bob" else "'score label'"
            raise InputError(f"{where}: expected two fields {layout} (--format {fmt}), got {line.strip()!r}")
        label_text, score_text = fields if fmt == "bob" else fields[::-1]
        try:
            label_value = float(label_text)
        except ValueError:
            label_value = None
        allowed = {1.0: 1, -1.0: 0} if fmt == "bob" else {1.0: 1, 0.0: 0}
        if label_value not in allowed:
            wanted = "1 or -1" if fmt == "bob" else "1 or 0"
            raise InputError(f"{where}: label must be {wanted} (--format {fmt}), got {label_text!r}")
        label = allowed[label_value]
        rows.append(ScoreRow(f"{path.name}:{lineno}", label, "" if label else DEFAULT_ATTACK_TYPE,
                             _parse_score(score_text, where)))
    return rows


def read_scores(path, fmt: str | None = None) -> list[ScoreRow]:
    """Read a score file: our CSV (``video_id,label,attack_type,score``, found by its header), a
    bob.measure two-column file (``fmt='bob'``: ``label score``, 1/-1) or an original DSDG/CDCN file
    (``fmt='cdcn'``: ``score label``, 1/0). NaN scores are kept (they count as failures to acquire).
    Raises InputError naming the file and line on anything malformed."""
    path = Path(path)
    fmt = "auto" if fmt in (None, "auto") else fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown score format {fmt!r}; one of {FORMATS}")
    text = read_text_file(path, "no such score file")
    lines = text.splitlines()
    if fmt == "auto":
        fmt = _detect_format(path, lines)
    rows = _read_csv(path, text) if fmt == "csv" else _read_two_column(path, lines, fmt)
    if not rows:
        raise InputError(f"{path}: no scores in file")
    return rows


def write_scores(path, rows: Iterable[ScoreRow]) -> Path:
    """Write rows atomically as our CSV; scores in shortest round-trip form so reading back is exact."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        label = int(row.label)
        writer.writerow([row.video_id, label, "" if label == 1 else (row.attack_type or DEFAULT_ATTACK_TYPE),
                         repr(float(row.score))])
    atomic_write_text(path, buf.getvalue())
    return Path(path)

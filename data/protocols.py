"""Protocol lists: OULU-NPU's ``<label>,<video id>`` files and a plain CSV protocol (OULU-NPU's
protocol folders, folds and subsets: data/oulu_protocols.py).

Every stage reads its video lists through :func:`read_protocol`, so the label, the attack type and
the subject of a video are decided here once (docs/DATA_LAYOUT.md, docs/ORIGINAL.md 5).

OULU-NPU format, one ``<label>,<video id>`` per line, no header (``+1,1_1_01_1``):

* a real video id is ``P_S_UU_F`` (phone 1-6, session 1-3, two-digit user 01-55, file 1-5); the
  **file id decides label and attack type**: 1 bona fide, 2/3 ``print`` (``print1``/``print2``),
  4/5 ``replay`` (``replay1``/``replay2``);
* labels: ``+1`` (or ``1``) live, ``-1`` print, ``-2`` replay, ``0`` attack. The shipped Train/Dev
  files write ``-1`` for replay videos too, so -1/-2 are never used to tell print from replay. A
  label that says live for an attack file id (or attack for file id 1) is an error: it would
  train the network on the wrong class.
* generated items (``p<P>_0_<d>_<k>``, ``d`` 1 live / 0 spoof; docs/ORIGINAL.md 1.9) carry ``1``/``0``;
  the label must agree with ``d``. Their attack type is ``generated``.

CSV format, for any other dataset: a header naming the columns ``path,label,attack_type,subject``
and optionally ``split`` (any order), then one row per video. ``label`` is 1 bona fide / 0 attack;
``attack_type`` is the presentation attack instrument (free text, e.g. ``print``, ``replay``,
``mask``), empty for bona fide rows and required for attacks; ``split`` is train/dev/test or empty.
The video id of a row is the last component of ``path`` without a video or image extension, which
is the folder name ``data/extract_frame.py`` gives that row (a video, an image folder or one image).

In both formats blank lines and lines starting with ``#`` are ignored, and a video listed twice is
an error. Every error names the file and the line.
"""
from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from utils.io import InputError, atomic_write_text, read_text_file

log = logging.getLogger(__name__)

PHONES = range(1, 7)
SESSIONS = range(1, 4)
USERS = range(1, 56)
FILE_IDS = range(1, 6)
ATTACK_TYPE = {1: "", 2: "print", 3: "print", 4: "replay", 5: "replay"}
PAI = {1: "", 2: "print1", 3: "print2", 4: "replay1", 5: "replay2"}
GENERATED = "generated"
OULU_LABEL_TEXT = {"": "+1", "print": "-1", "replay": "-2"}  # what write_protocol uses for new items
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
CSV_COLUMNS = ("path", "label", "attack_type", "subject")
SPLIT_NAMES = ("train", "dev", "test")

_OULU_RE = re.compile(r"^(\d)_(\d)_(\d{2})_(\d)$")
# p<P>_0_<d>_<k>; <P> may carry more than the protocol number (p3f2, p4_6) as long as it starts with a digit
_GENERATED_RE = re.compile(r"^p\d[0-9A-Za-z_-]*?_(\d+)_([01])_(\d+)$")
_LIVE_LABELS = ("+1", "1")
_ATTACK_LABELS = ("-1", "-2", "0")
_BONA_FIDE_WORDS = ("", "live", "real", "bonafide", "bona fide", "bona_fide", "none")


class OuluId(NamedTuple):
    phone: int
    session: int
    user: str  # two digits, as the generator list writes it ("01")
    file_id: int


@dataclass(frozen=True)
class ProtocolItem:
    """One video of a protocol. ``label`` 1 bona fide, 0 attack."""

    video_id: str
    label: int
    attack_type: str = ""  # "" bona fide; "print"/"replay" (OULU), "generated", or the CSV column
    pai: str = ""  # finer instrument: "print1".."replay2" (OULU), the CSV attack_type, "generated"
    subject: str = ""  # OULU user "UU"; CSV subject; "" when unknown
    generated: bool = False
    split: str = ""  # CSV split column, "" otherwise
    file_id: int = 0  # OULU file id 1..5, 0 when not an OULU video
    path: str = ""  # CSV path column as written; the video id for OULU lines
    raw_label: str = ""  # label text as read, written back unchanged
    fmt: str = "oulu"  # "oulu" or "csv": the format write_protocol uses by default
    source: str = ""
    line: int = 0

    @property
    def is_live(self) -> bool:
        return self.label == 1

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.source else self.video_id


def parse_oulu_id(video_id: str, where: str = "") -> OuluId:
    """``'P_S_UU_F'`` -> OuluId(phone, session, user 'UU', file_id); InputError when it is not one."""
    prefix = f"{where}: " if where else ""
    m = _OULU_RE.match(str(video_id).strip())
    if m is None:
        raise InputError(f"{prefix}{video_id!r} is not an OULU-NPU video id P_S_UU_F "
                         "(one-digit phone and session, two-digit user, one-digit file id, e.g. 1_1_01_1)")
    phone, session, user, file_id = int(m[1]), int(m[2]), m[3], int(m[4])
    for name, value, allowed in (("phone", phone, PHONES), ("session", session, SESSIONS),
                                 ("user", int(user), USERS), ("file id", file_id, FILE_IDS)):
        if value not in allowed:
            raise InputError(f"{prefix}{video_id!r}: OULU-NPU {name} must be {allowed.start}..{allowed.stop - 1}, "
                             f"got {value}")
    return OuluId(phone, session, user, file_id)


def is_oulu_id(video_id: str) -> bool:
    try:
        parse_oulu_id(video_id)
    except InputError:
        return False
    return True


def is_generated_id(video_id: str) -> bool:
    """Generated items are named ``p<P>_0_<d>_<k>`` (d 1 live, 0 spoof), see docs/DATA_LAYOUT.md."""
    return _GENERATED_RE.match(str(video_id)) is not None


def generated_domain(video_id: str) -> int:
    """1 for a generated live id, 0 for a generated spoof id."""
    m = _GENERATED_RE.match(str(video_id))
    if m is None:
        raise InputError(f"{video_id!r} is not a generated id p<P>_0_<d>_<k>")
    return int(m[2])


def oulu_label_and_type(video_id: str) -> tuple[int, str]:
    """(label 1/0, attack type "" / "print" / "replay") from the file id of an OULU-NPU video id."""
    file_id = parse_oulu_id(video_id).file_id
    return int(file_id == 1), ATTACK_TYPE[file_id]


def oulu_pai(video_id: str) -> str:
    """The instrument of an OULU-NPU video: "" (bona fide), print1, print2, replay1, replay2."""
    return PAI[parse_oulu_id(video_id).file_id]


def video_id_from_path(path: str) -> str:
    """Last path component without a video or image extension: the folder name of the row's frames."""
    name = str(path).strip().replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if name.lower().endswith(VIDEO_SUFFIXES + IMAGE_SUFFIXES):
        name = name[: name.rfind(".")]
    return name


# ---------------------------------------------------------------------------------------------------
# reading


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


def _generated_item(video_id: str, label: int, where: str, **kw) -> ProtocolItem:
    domain = generated_domain(video_id)
    if domain != label:
        raise InputError(f"{where}: generated id {video_id!r} is a {'live' if domain else 'spoof'} item "
                         f"(p<P>_0_{domain}_<k>) but its label says {'live' if label else 'attack'}")
    kind = "" if label else GENERATED
    return ProtocolItem(video_id=video_id, label=label, attack_type=kind, pai=kind, generated=True, **kw)


def _parse_oulu_line(line: str, source: str, number: int) -> tuple[ProtocolItem, bool]:
    """One ``<label>,<video>`` line -> (item, label disagrees with print/replay of the file id)."""
    where = f"{source}:{number}"
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 2 or not parts[1]:
        raise InputError(f"{where}: expected '<label>,<video id>' (e.g. '+1,1_1_01_1'), got {line!r}")
    raw, video_id = parts
    if raw not in _LIVE_LABELS + _ATTACK_LABELS:
        raise InputError(f"{where}: label must be +1/1 (live) or -1/-2/0 (attack), got {raw!r}")
    label = int(raw in _LIVE_LABELS)
    common = dict(path=video_id, raw_label=raw, fmt="oulu", source=source, line=number)
    if is_generated_id(video_id):
        return _generated_item(video_id, label, where, **common), False
    if video_id.startswith("p") and not is_oulu_id(video_id):
        raise InputError(f"{where}: {video_id!r} is neither an OULU-NPU id P_S_UU_F nor a generated id p<P>_0_<d>_<k>")
    oid = parse_oulu_id(video_id, where)
    true_label = int(oid.file_id == 1)
    if label != true_label:
        raise InputError(f"{where}: label {raw} says {'live' if label else 'attack'} but file id {oid.file_id} "
                         f"of {video_id} is {'live' if true_label else ATTACK_TYPE[oid.file_id] + ' attack'}")
    item = ProtocolItem(video_id=video_id, label=label, attack_type=ATTACK_TYPE[oid.file_id],
                        pai=PAI[oid.file_id], subject=oid.user, file_id=oid.file_id, **common)
    return item, raw == "-2" and item.attack_type == "print"


def _parse_csv_row(cells: list[str], columns: list[str], source: str, number: int) -> ProtocolItem:
    where = f"{source}:{number}"
    if len(cells) != len(columns):
        raise InputError(f"{where}: expected {len(columns)} comma-separated fields ({','.join(columns)}), "
                         f"got {len(cells)}")
    row = {c: v.strip() for c, v in zip(columns, cells)}
    if not row["path"]:
        raise InputError(f"{where}: empty path")
    if row["label"] not in ("1", "+1", "0"):
        raise InputError(f"{where}: label must be 1 (bona fide) or 0 (attack), got {row['label']!r}")
    label = int(row["label"] != "0")
    split = row.get("split", "").lower()
    if split not in ("",) + SPLIT_NAMES:
        raise InputError(f"{where}: split must be one of {', '.join(SPLIT_NAMES)} or empty, got {row['split']!r}")
    video_id = video_id_from_path(row["path"])
    common = dict(subject=row["subject"], split=split, path=row["path"], raw_label=row["label"], fmt="csv",
                  source=source, line=number)
    if is_generated_id(video_id):
        return _generated_item(video_id, label, where, **common)
    attack = row["attack_type"]
    if label == 1:
        if attack.lower() not in _BONA_FIDE_WORDS:
            raise InputError(f"{where}: a bona fide row (label 1) has attack_type {attack!r}; leave it empty")
        attack = ""
    elif not attack:
        raise InputError(f"{where}: an attack row (label 0) needs an attack_type (e.g. print, replay, mask)")
    return ProtocolItem(video_id=video_id, label=label, attack_type=attack, pai=attack, **common)


def _csv_header(cells: list[str], where: str) -> list[str]:
    columns = [c.strip().lower() for c in cells]
    unknown = [c for c in columns if c not in CSV_COLUMNS + ("split",)]
    missing = [c for c in CSV_COLUMNS if c not in columns]
    if unknown or missing or len(set(columns)) != len(columns):
        raise InputError(f"{where}: first line {','.join(cells)!r} is neither an OULU line '<label>,<video id>' "
                         "nor a CSV protocol header naming path,label,attack_type,subject[,split] once each")
    return columns


def parse_protocol_text(text: str, source: str = "<protocol>") -> list[ProtocolItem]:
    """Parse protocol text (OULU or CSV, detected from the first line); see the module docstring."""
    lines = list(_content_lines(text.lstrip("\ufeff")))
    if not lines:
        raise InputError(f"{source}: protocol file has no lines")
    first = next(csv.reader([lines[0][1]]))
    items: list[ProtocolItem] = []
    mislabelled = 0
    if first and first[0].strip() not in _LIVE_LABELS + _ATTACK_LABELS:  # not an OULU line: a CSV header
        columns = _csv_header(first, f"{source}:{lines[0][0]}")
        for number, line in lines[1:]:
            items.append(_parse_csv_row(next(csv.reader([line])), columns, source, number))
    else:
        for number, line in lines:
            item, odd = _parse_oulu_line(line, source, number)
            items.append(item)
            mislabelled += odd
    if not items:
        raise InputError(f"{source}: protocol file has a header but no rows")
    seen: dict[str, int] = {}
    for item in items:
        if item.video_id in seen:
            raise InputError(f"{source}:{item.line}: video {item.video_id} is already listed at line "
                             f"{seen[item.video_id]}")
        seen[item.video_id] = item.line
    if mislabelled:
        log.warning("%s: %d print videos (file id 2/3) are labelled -2 (replay); the attack type is taken from "
                    "the file id", source, mislabelled)
    return items


def read_protocol(path) -> list[ProtocolItem]:
    """Read an OULU-NPU or CSV protocol file; InputError "file:line: reason" on any malformed line."""
    return parse_protocol_text(read_text_file(path, "protocol file not found"), str(path))


# ---------------------------------------------------------------------------------------------------
# writing


def _oulu_line(item: ProtocolItem) -> str:
    if item.raw_label in _LIVE_LABELS + _ATTACK_LABELS and item.fmt == "oulu":
        raw = item.raw_label
    elif item.generated:
        raw = str(item.label)
    else:
        if not is_oulu_id(item.video_id):
            raise InputError(f"{item.where}: {item.video_id!r} is not an OULU-NPU id; write this protocol as CSV")
        raw = OULU_LABEL_TEXT[oulu_label_and_type(item.video_id)[1]]
    return f"{raw},{item.video_id}"


def format_protocol(items: Iterable[ProtocolItem], fmt: str | None = None) -> str:
    items = list(items)
    if not items:
        raise ValueError("cannot write an empty protocol (readers reject it)")
    if fmt is None:
        formats = {item.fmt for item in items}
        fmt = formats.pop() if len(formats) == 1 else "csv"  # CSV can hold any item, OULU lines cannot
    if fmt == "oulu":
        return "".join(_oulu_line(item) + "\n" for item in items)
    if fmt != "csv":
        raise ValueError(f"unknown protocol format {fmt!r} (oulu or csv)")
    with_split = any(item.split for item in items)
    rows = [list(CSV_COLUMNS) + (["split"] if with_split else [])]
    for item in items:
        row = [item.path or item.video_id, str(item.label), item.attack_type, item.subject]
        rows.append(row + ([item.split] if with_split else []))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_protocol(path, items: Iterable[ProtocolItem], fmt: str | None = None) -> Path:
    """Write items atomically, in the format they were read from (``fmt`` overrides: oulu/csv)."""
    path = Path(path)
    atomic_write_text(path, format_protocol(items, fmt))
    return path


def filter_split(items: Iterable[ProtocolItem], split: str) -> list[ProtocolItem]:
    """Items of one split of a CSV protocol with a split column (items without a split are kept)."""
    return [item for item in items if item.split in ("", split)]


def describe(items: Iterable[ProtocolItem]) -> str:
    """One log line: counts of live, each attack type and generated items."""
    items = list(items)
    counts: dict[str, int] = {}
    for item in items:
        key = "live" if item.is_live else (item.pai or item.attack_type)
        key = f"generated {key}" if item.generated and item.is_live else key
        counts[key] = counts.get(key, 0) + 1
    return f"{len(items)} videos (" + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")"


__all__ = [
    "ATTACK_TYPE", "PAI", "GENERATED", "OuluId", "ProtocolItem", "parse_oulu_id", "is_oulu_id", "is_generated_id",
    "generated_domain", "oulu_label_and_type", "oulu_pai", "video_id_from_path", "parse_protocol_text",
    "read_protocol", "format_protocol", "write_protocol", "filter_split", "describe",
]

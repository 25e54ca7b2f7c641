"""Tiny fake copies of the benchmark datasets, with each release's exact folder layout and file names
(empty files: the protocol builders only read names). docs/DATASETS.md describes the layouts."""
from __future__ import annotations

from pathlib import Path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


# SiW: per subject 2 live (sensors 1, 2), 2 print (media 1, 2), 4 replay (media 1-4), each with a .face file
SIW_PER_SUBJECT = {"live": 2, "print": 2, "replay": 4}


def siw_names(subject: str) -> dict[str, list[str]]:
    return {"live": [f"{subject}-{s}-1-1-1.mov" for s in (1, 2)],
            "spoof": [f"{subject}-1-2-{m}-1.mov" for m in (1, 2)] + [f"{subject}-2-3-{m}-2.mov" for m in (1, 2, 3, 4)]}


def make_siw(root: Path, train=("001", "002", "003", "004", "005"), test=("091", "092", "093")) -> Path:
    for folder, subjects in (("Train", train), ("Test", test)):
        for subject in subjects:
            for kind, names in siw_names(subject).items():
                for name in names:
                    touch(root / folder / kind / subject / name)
                    touch(root / folder / kind / subject / name.replace(".mov", ".face"))
    return root


CASIA_FILES = ("1", "2", "HR_1", "3", "4", "HR_2", "5", "6", "HR_3", "7", "8", "HR_4")


def make_casia(root: Path, train=3, test=2) -> Path:
    for folder, n in (("train_release", train), ("test_release", test)):
        for subject in range(1, n + 1):
            for name in CASIA_FILES:
                touch(root / folder / str(subject) / f"{name}.avi")
    return root


REPLAY_CLIENTS = {"train": ("001", "002"), "devel": ("003",), "test": ("004", "005")}
REPLAY_ATTACKS = {"fixed": ("attack_print_client{c}_session01_highdef_photo_controlled.mov",
                            "attack_mobile_client{c}_session01_mobile_video_adverse.mov"),
                  "hand": ("attack_highdef_client{c}_session01_highdef_video_controlled.mov",
                           "attack_mobile_client{c}_session01_mobile_photo_adverse.mov")}


def make_replay(root: Path, clients=REPLAY_CLIENTS) -> Path:
    for folder, cs in clients.items():
        for c in cs:
            for light in ("controlled", "adverse"):
                touch(root / folder / "real" / f"client{c}_session01_webcam_authenticate_{light}_1.mov")
            for support, names in REPLAY_ATTACKS.items():
                for name in names:
                    touch(root / folder / "attack" / support / name.format(c=c))
    touch(root / "enroll" / "train" / "client001_session01_webcam_enroll_controlled.mov")  # not part of PAD
    return root


SIWM_FOLDERS = ("Replay", "Paper", "Mask/HalfMask", "Mask/SiliconeMask", "Mask/TransparentMask", "Mask/PaperMask",
                "Mask/MannequinHead", "Makeup/Obfuscation", "Makeup/Impersonation", "Makeup/Cosmetic",
                "Partial/FunnyeyeGlasses", "Partial/PaperGlasses", "Partial/PaperCut")


def make_siwm(root: Path, live_train=4, live_test=2, per_type=1) -> Path:
    for k in range(1, live_train + live_test + 1):
        touch(root / "Live" / ("Train" if k <= live_train else "Test") / f"Live_{k}.mov")
    for folder in SIWM_FOLDERS:
        stem = folder.replace("/", "_")
        for k in range(1, per_type + 1):
            touch(root / folder / f"{stem}_{k}.mov")
    return root


def make_oulu(root: Path, users=None) -> Path:
    """Protocol 1 lists over phone 1 and the given users {split: [user, ...]} (sessions 1-2 / 3)."""
    users = users or {"train": [1, 2], "dev": [21], "test": [36, 37]}
    folders = {"train": "Train_files", "dev": "Dev_files", "test": "Test_files"}
    for split, us in users.items():
        lines = []
        sessions = (3,) if split == "test" else (1, 2)
        for u in us:
            for s in sessions:
                for f in range(1, 6):
                    vid = f"1_{s}_{u:02d}_{f}"
                    touch(root / folders[split] / f"{vid}.avi")
                    lines.append(f"{'+1' if f == 1 else '-1'},{vid}")
        path = root / "Protocols" / "Protocol_1" / f"{split.capitalize()}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return root

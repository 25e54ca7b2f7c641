"""End to end on a dataset of image folders described by one CSV: ``bash run_demo.sh --protocol X.csv``
runs every stage (frames, MTCNN boxes, depth, generator list, identity net, generator, crops,
generated pairs, CDCN+DUM, test) with no other input, names nothing after OULU-NPU, and resumes.

The dataset: the three sample photos (a live face, a printed poster, a tablet replay) and
scikit-image's public-domain astronaut portrait as a second live subject, each shown as a folder of
a few shifted frames per split. It checks the chain of stages, not accuracy.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.protocols import read_protocol

ROWS = {  # photo -> (label, attack type, subject)
    "T1": (1, "", "s1"), "F1": (0, "print", "s1"), "astronaut": (1, "", "s2"), "F2": (0, "replay", "s2")}
SHIFTS = {"train": (0, 8), "dev": (3,), "test": (9,)}  # one image per shift, shifted right/down by that many px


def build_folder_dataset(root: Path, samples_dir: Path) -> Path:
    """Image folders ``<split>/<split>_<photo>/img<k>.png`` and ``faces.csv`` with a split column."""
    import skimage.data

    photos = {k: cv2.imread(str(samples_dir / f"image_{k}.jpg")) for k in ("T1", "F1", "F2")}
    photos["astronaut"] = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), (960, 960))
    rows = ["path,label,attack_type,subject,split"]
    for split, shifts in SHIFTS.items():
        for name, (label, attack, subject) in ROWS.items():
            folder = root / split / f"{split}_{name}"
            folder.mkdir(parents=True)
            small = cv2.resize(photos[name], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
            for k, shift in enumerate(shifts, 1):
                m = np.float32([[1, 0, shift], [0, 1, shift // 2]])
                frame = cv2.warpAffine(small, m, (small.shape[1], small.shape[0]), borderMode=cv2.BORDER_REFLECT)
                cv2.imwrite(str(folder / f"img{k}.png"), frame)
            rows.append(f"{split}/{split}_{name},{label},{attack},{subject},{split}")
    csv_path = root / "faces.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    return csv_path


def run_demo(repo_root: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEMO_PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "WORKERS": "1"}  # tiny data: 1 process
    return subprocess.run(["bash", str(repo_root / "run_demo.sh"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_folder_dataset_runs_every_stage_from_one_csv(tmp_path, samples_dir, repo_root):
    csv_path = build_folder_dataset(tmp_path / "faces", samples_dir)
    done = run_demo(repo_root, tmp_path, "--protocol", str(csv_path), "--smoke")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    work = tmp_path / "runs" / "faces"  # default work folder of a CSV: runs/<csv stem>
    assert work.is_dir()
    assert not [p for p in work.rglob("*") if "oulu" in p.name.lower() or p.name.startswith("CDCN_U_P")]

    # frames: each row in its split's tree, numbered 1.. in file-name order
    for split, shifts in SHIFTS.items():
        for name in ROWS:
            video = f"{split}_{name}"
            frames = sorted(p.name for p in (work / "frames" / f"{split}_img_flod" / video).glob("*_scene.jpg"))
            assert frames == [f"{video}_{k}_scene.jpg" for k in range(1, len(shifts) + 1)]
    # generated rows were merged into <crops>/protocols/<stem>_g.csv and trained on
    merged = read_protocol(work / "crops" / "protocols" / "faces_g.csv")
    assert sum(item.generated for item in merged) > 0 and all(i.video_id.startswith("p0_") for i in merged
                                                              if i.generated)
    train_config = json.loads((work / "cdcn_u" / "config.json").read_text())
    assert train_config["protocol"] == str(csv_path) and train_config["train_list"].endswith("faces_g.csv")
    gen_config = json.loads((work / "generator" / "config.json").read_text())
    assert gen_config["attack_types"] == 2  # print and replay, from the data
    metrics = json.loads((work / "test" / "metrics.json").read_text())
    assert metrics["inputs"]["protocol"] == str(csv_path) and metrics["inputs"]["eval"] == str(csv_path)
    scores = (work / "test" / "scores_test.csv").read_text().splitlines()
    assert len(scores) == 1 + len(ROWS)  # header + one score per test row

    again = run_demo(repo_root, tmp_path, "--protocol", str(csv_path), "--smoke")
    assert again.returncode == 0 and again.stdout.count("done earlier") >= 8

"""data/make_identity_folder.py: identity faces cropped from a generator list; bad lists are refused."""
from __future__ import annotations

import cv2
import pytest
import skimage.data

from data import make_identity_folder
from data.boxes import Box, write_box
from data.frames import split_dirs


def _tree(tmp_path):
    dirs = split_dirs(tmp_path / "data", "train")
    face = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    lines = []
    for user, video in (("01", "1_1_01_1"), ("02", "1_1_02_2")):
        for n in (1, 2):
            frame = f"{video}_{n}_scene.jpg"
            (dirs["img"] / video).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dirs["img"] / video / frame), face)
            write_box(dirs["bbox"] / video / frame.replace(".jpg", ".dat"), Box(181, 62, 87, 110))
            lines.append(f"{video}/{frame} {user} {int(video.endswith('_1'))} {video[-1]}")
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(lines) + "\n")
    return tmp_path / "data", lst


def test_faces_per_identity_and_rerun(tmp_path):
    data, lst = _tree(tmp_path)
    out = tmp_path / "faces"
    args = ["--data-root", str(data), "--train-list", str(lst), "--out", str(out), "--size", "48"]
    first = make_identity_folder.main(args)
    assert first == {"written": 4, "existing": 0, "skipped": 0, "identities": 2}
    assert sorted(p.name for p in out.iterdir()) == ["01", "02"]  # the run folder is not an identity
    assert cv2.imread(str(out / "01" / "1_1_01_1_1_scene.jpg")).shape == (48, 48, 3)
    assert make_identity_folder.main(args)["existing"] == 4


def test_malformed_and_binary_lists_are_refused(tmp_path):
    data, lst = _tree(tmp_path)
    lst.write_text(lst.read_text() + "just-one-field\n")
    with pytest.raises(SystemExit) as err:
        make_identity_folder.main(["--data-root", str(data), "--train-list", str(lst), "--out", str(tmp_path / "f")])
    assert err.value.code == 2
    with pytest.raises(make_identity_folder.InputError, match=r"list.txt:5"):
        make_identity_folder.parse_list(lst)
    lst.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(make_identity_folder.InputError, match="not a text file"):
        make_identity_folder.parse_list(lst)

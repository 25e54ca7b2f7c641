"""data/protocols.py: OULU-NPU protocol files of every protocol and fold, the CSV protocol, errors."""
from __future__ import annotations

import logging

import pytest

from data.oulu_protocols import make_oulu_protocol, oulu_file_name, oulu_folds, oulu_protocol_files, oulu_protocol_subset
from data.protocols import ProtocolItem, describe, filter_split, format_protocol, generated_domain, is_generated_id, oulu_label_and_type, oulu_pai, parse_oulu_id, read_protocol, video_id_from_path, write_protocol
from utils.io import InputError

OULU_TEXT = "+1,1_1_01_1\n-1,1_1_01_2\n-1,1_1_01_3\n-1,1_1_01_4\n-2,1_1_01_5\n+1,6_3_55_1\n"


def write(tmp_path, text, name="list.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_parse_oulu_id_and_types():
    assert parse_oulu_id("1_2_07_3") == (1, 2, "07", 3)
    assert [oulu_label_and_type(f"1_1_01_{f}") for f in range(1, 6)] == [
        (1, ""), (0, "print"), (0, "print"), (0, "replay"), (0, "replay")]
    assert [oulu_pai(f"1_1_01_{f}") for f in range(1, 6)] == ["", "print1", "print2", "replay1", "replay2"]
    for bad, word in [("1_1_1_1", "P_S_UU_F"), ("7_1_01_1", "phone"), ("1_4_01_1", "session"),
                      ("1_1_56_1", "user"), ("1_1_00_1", "user"), ("1_1_01_6", "file id"), ("x", "P_S_UU_F")]:
        with pytest.raises(InputError, match=word):
            parse_oulu_id(bad)


def test_read_oulu_protocol_labels_types_subjects(tmp_path):
    items = read_protocol(write(tmp_path, OULU_TEXT))
    assert [i.video_id for i in items] == ["1_1_01_1", "1_1_01_2", "1_1_01_3", "1_1_01_4", "1_1_01_5", "6_3_55_1"]
    assert [i.label for i in items] == [1, 0, 0, 0, 0, 1]
    assert [i.attack_type for i in items] == ["", "print", "print", "replay", "replay", ""]
    assert [i.pai for i in items] == ["", "print1", "print2", "replay1", "replay2", ""]
    assert [i.subject for i in items] == ["01"] * 5 + ["55"]
    assert [i.file_id for i in items] == [1, 2, 3, 4, 5, 1]
    assert items[3].raw_label == "-1" and items[4].raw_label == "-2"  # shipped Train/Dev write -1 for replay
    assert items[2].line == 3 and items[2].where.endswith("list.txt:3")
    assert not any(i.generated for i in items)


def test_blank_lines_crlf_bom_and_comments(tmp_path):
    text = "\ufeff# OULU P1 excerpt\r\n\r\n+1,1_1_01_1\r\n   \r\n-1 , 1_1_01_2 \r\n"
    items = read_protocol(write(tmp_path, text))
    assert [(i.video_id, i.label, i.line) for i in items] == [("1_1_01_1", 1, 3), ("1_1_01_2", 0, 5)]


def test_generated_items(tmp_path):
    items = read_protocol(write(tmp_path, "+1,1_1_01_1\n1,p1_0_1_0\n0,p1_0_0_12\n"))
    live, spoof = items[1], items[2]
    assert live.generated and live.label == 1 and live.attack_type == ""
    assert spoof.generated and spoof.label == 0 and spoof.attack_type == "generated"
    assert is_generated_id("p3_0_1_7") and not is_generated_id("1_1_01_1") and not is_generated_id("person_1")
    assert not is_generated_id("photo_12_1_3") and not is_generated_id("p1_0_2_3")
    assert generated_domain("p3f2_0_0_7") == 0 and generated_domain("p4_6_0_1_12") == 1
    with pytest.raises(InputError, match=r"list\.txt:2: generated id 'p1_0_0_3' is a spoof item"):
        read_protocol(write(tmp_path, "+1,1_1_01_1\n1,p1_0_0_3\n"))


@pytest.mark.parametrize("line, reason", [
    ("+1;1_1_01_1", "expected '<label>,<video id>'"),
    ("+1,", "expected '<label>,<video id>'"),
    ("+1,1_1_01_1,x", "expected '<label>,<video id>'"),
    ("+3,1_1_01_1", "label must be"),
    ("live,1_1_01_1", "label must be"),
    ("+1,1_1_1_1", "not an OULU-NPU video id"),
    ("+1,1_1_01_2", "says live but file id 2"),
    ("-1,1_1_01_1", "says attack but file id 1"),
    ("1,person_1", "neither an OULU-NPU id"),
])
def test_malformed_oulu_line_names_file_and_line(tmp_path, line, reason):
    path = write(tmp_path, f"+1,6_1_02_1\n\n{line}\n")
    with pytest.raises(InputError) as err:
        read_protocol(path)
    assert f"{path}:3:" in str(err.value) and reason in str(err.value)


def test_duplicates_empty_missing(tmp_path):
    with pytest.raises(InputError, match=r"list\.txt:3: video 1_1_01_1 is already listed at line 1"):
        read_protocol(write(tmp_path, "+1,1_1_01_1\n-1,1_1_01_2\n+1,1_1_01_1\n"))
    with pytest.raises(InputError, match="no lines"):
        read_protocol(write(tmp_path, "\n\n", "empty.txt"))
    with pytest.raises(InputError, match="not found"):
        read_protocol(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="header but no rows"):
        read_protocol(write(tmp_path, "path,label,attack_type,subject\n", "h.csv"))


def test_replay_label_on_print_warns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        items = read_protocol(write(tmp_path, "-2,1_1_01_2\n-1,1_1_01_4\n"))
    assert [i.attack_type for i in items] == ["print", "replay"]  # the file id decides
    assert "1 print videos" in caplog.text


def test_oulu_round_trip_is_byte_identical(tmp_path):
    src = write(tmp_path, OULU_TEXT + "1,p1_0_1_0\n0,p1_0_0_0\n")
    out = write_protocol(tmp_path / "out" / "Train_g.txt", read_protocol(src))
    assert out.read_bytes() == src.read_bytes()
    assert not list(out.parent.glob("*.tmp"))


CSV_TEXT = ("path,label,attack_type,subject,split\n"
            "live/sub01_a.mov,1,,s01,train\n"
            "attack/sub01_b.MP4,0,mask,s01,Train\n"
            "\"attack/sub02, c\",0,print,s02,dev\n"
            "sub03_d,1,live,s03,\n")


def test_csv_protocol(tmp_path):
    items = read_protocol(write(tmp_path, CSV_TEXT, "siw.csv"))
    assert [i.video_id for i in items] == ["sub01_a", "sub01_b", "sub02, c", "sub03_d"]
    assert [i.label for i in items] == [1, 0, 0, 1]
    assert [i.attack_type for i in items] == ["", "mask", "print", ""]
    assert [i.pai for i in items] == ["", "mask", "print", ""]
    assert [i.subject for i in items] == ["s01", "s01", "s02", "s03"]
    assert [i.split for i in items] == ["train", "train", "dev", ""]
    assert all(i.fmt == "csv" and i.file_id == 0 for i in items)
    assert [i.video_id for i in filter_split(items, "train")] == ["sub01_a", "sub01_b", "sub03_d"]
    # round trip keeps every field that the format holds
    again = read_protocol(write_protocol(tmp_path / "again.csv", items))
    assert [(i.path, i.label, i.attack_type, i.subject, i.split) for i in again] == \
           [(i.path, i.label, i.attack_type, i.subject, i.split) for i in items]


def test_csv_columns_in_any_order_without_split(tmp_path):
    items = read_protocol(write(tmp_path, "subject,label,path,attack_type\nu1,0,v1,replay\nu1,1,v2,\n", "x.csv"))
    assert [(i.video_id, i.label, i.attack_type, i.subject, i.split) for i in items] == [
        ("v1", 0, "replay", "u1", ""), ("v2", 1, "", "u1", "")]
    assert format_protocol(items).splitlines()[0] == "path,label,attack_type,subject"


@pytest.mark.parametrize("row, reason", [
    ("v,1,print,u", "bona fide row"),
    ("v,0,,u", "needs an attack_type"),
    ("v,-1,print,u", "label must be 1"),
    ("v,0,print", "expected 4 comma-separated fields"),
    (",0,print,u", "empty path"),
])
def test_malformed_csv_row_names_file_and_line(tmp_path, row, reason):
    path = write(tmp_path, f"path,label,attack_type,subject\nok,1,,u\n{row}\n", "p.csv")
    with pytest.raises(InputError) as err:
        read_protocol(path)
    assert f"{path}:3:" in str(err.value) and reason in str(err.value)


def test_bad_csv_header_and_split(tmp_path):
    with pytest.raises(InputError, match=r"h\.csv:1: first line 'path,label,kind,subject' is neither"):
        read_protocol(write(tmp_path, "path,label,kind,subject\nv,1,,u\n", "h.csv"))
    with pytest.raises(InputError, match=r"s\.csv:2: split must be"):
        read_protocol(write(tmp_path, "path,label,attack_type,subject,split\nv,1,,u,val\n", "s.csv"))


def test_video_id_from_path():
    assert video_id_from_path("a/b/1_1_01_1.avi") == "1_1_01_1"
    assert video_id_from_path("a\\b\\x.MOV") == "x"
    assert video_id_from_path("a/b/frames.v2/") == "frames.v2"


def _make_oulu_tree(root, pairs, name_case=str):
    for protocol, fold in pairs:
        folder = root / name_case(f"Protocol_{protocol}")
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("train", "dev", "test"):
            (folder / name_case(oulu_file_name(split, fold))).write_text("+1,1_1_01_1\n")


def test_every_oulu_protocol_and_fold_file(tmp_path):
    pairs = list(oulu_folds())
    assert pairs == [(1, None), (2, None)] + [(3, k) for k in range(1, 7)] + [(4, k) for k in range(1, 7)]
    _make_oulu_tree(tmp_path, pairs)
    for protocol, fold in pairs:
        files = oulu_protocol_files(tmp_path, protocol, fold)
        suffix = "" if fold is None else f"_{fold}"
        assert files == {s: tmp_path / f"Protocol_{protocol}" / f"{s.capitalize()}{suffix}.txt"
                         for s in ("train", "dev", "test")}
        assert read_protocol(files["test"])[0].video_id == "1_1_01_1"
    # the Protocol_<p> folder itself may be given
    assert oulu_protocol_files(tmp_path / "Protocol_3", 3, 6)["dev"].name == "Dev_6.txt"


def test_protocol_names_match_any_case(tmp_path):
    _make_oulu_tree(tmp_path, [(1, None), (4, 2)], name_case=str.lower)
    assert oulu_protocol_files(tmp_path, 1)["train"] == tmp_path / "protocol_1" / "train.txt"
    assert oulu_protocol_files(tmp_path, 4, 2)["test"] == tmp_path / "protocol_4" / "test_2.txt"


def test_protocol_and_fold_errors(tmp_path):
    _make_oulu_tree(tmp_path, [(1, None), (3, 1)])
    for protocol, fold, reason in [(1, 1, "has no folds"), (3, None, "needs a fold"), (3, 7, "needs a fold"),
                                   (5, None, "must be 1, 2, 3 or 4"), (2, None, "no Protocol_2 folder"),
                                   (3, 2, r"missing protocol file\(s\) Train_2.txt, Dev_2.txt, Test_2.txt")]:
        with pytest.raises(InputError, match=reason):
            oulu_protocol_files(tmp_path, protocol, fold)
    (tmp_path / "Protocol_1" / "Dev.txt").unlink()
    with pytest.raises(InputError, match=r"missing protocol file\(s\) Dev.txt for protocol 1"):
        oulu_protocol_files(tmp_path, 1)


def test_oulu_protocol_subsets():
    p1 = oulu_protocol_subset(1, None, "test")
    assert p1["sessions"] == [3] and p1["phones"] == [1, 2, 3, 4, 5, 6] and p1["users"] == list(range(36, 56))
    assert oulu_protocol_subset(1, None, "dev")["users"] == list(range(21, 36))
    assert oulu_protocol_subset(2, None, "train")["files"] == [1, 2, 4]
    assert oulu_protocol_subset(2, None, "test")["files"] == [1, 3, 5]
    p3 = oulu_protocol_subset(3, 2, "train")
    assert p3["phones"] == [1, 3, 4, 5, 6] and p3["sessions"] == [1, 2, 3]
    p4 = oulu_protocol_subset(4, 5, "test")
    assert p4 == {"phones": [5], "sessions": [3], "users": list(range(36, 56)), "files": [1, 3, 5]}


def test_make_oulu_protocol_writes_a_dataset_style_file(tmp_path):
    ids = [f"{p}_{s}_{u:02d}_{f}" for p in (2, 1) for s in (3, 1) for u in (40, 3) for f in (5, 1, 2, 3, 4)]
    items = make_oulu_protocol(ids, **oulu_protocol_subset(1, None, "train"))
    assert [i.video_id for i in items[:5]] == ["1_1_03_1", "1_1_03_2", "1_1_03_3", "1_1_03_4", "1_1_03_5"]
    assert [i.video_id for i in items[5:7]] == ["2_1_03_1", "2_1_03_2"] and len(items) == 10
    path = write_protocol(tmp_path / "Train.txt", items)
    assert path.read_text().splitlines()[:5] == ["+1,1_1_03_1", "-1,1_1_03_2", "-1,1_1_03_3", "-2,1_1_03_4",
                                                 "-2,1_1_03_5"]
    back = read_protocol(path)
    assert [(i.video_id, i.label, i.attack_type, i.pai, i.subject) for i in back] == \
           [(i.video_id, i.label, i.attack_type, i.pai, i.subject) for i in items]
    assert make_oulu_protocol(ids, users=["40"], sessions=[3], phones=[2], files=[1])[0].video_id == "2_3_40_1"
    with pytest.raises(InputError, match="not an OULU-NPU video id"):
        make_oulu_protocol(["1_1_01_1", "holiday"])


def test_write_oulu_refuses_non_oulu_items_and_describe(tmp_path):
    item = ProtocolItem(video_id="clip7", label=0, attack_type="mask", pai="mask", fmt="csv")
    with pytest.raises(InputError, match="not an OULU-NPU id"):
        write_protocol(tmp_path / "x.txt", [item], fmt="oulu")
    items = read_protocol(write(tmp_path, OULU_TEXT + "1,p1_0_1_0\n"))
    assert describe(items) == ("7 videos (generated live 1, live 2, print1 1, print2 1, replay1 1, replay2 1)")


def test_bad_first_line_is_explained(tmp_path):
    path = write(tmp_path, "+3,1_1_01_1\n+1,1_1_01_1\n")
    with pytest.raises(InputError, match=r"list\.txt:1: first line '\+3,1_1_01_1' is neither an OULU line"):
        read_protocol(path)

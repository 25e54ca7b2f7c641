"""DUM.metrics against the golden values in tests/fixtures/reference/metrics (bob.measure, bob.pad.base and the
original CDCN performances()), hand-computed tie cases, the score-file readers and the command."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from DUM import metrics as M
from DUM.metrics.command import main as metrics_main
from utils.io import InputError

THRESHOLD_KEYS = {"threshold", "roc_thresholds", "val_threshold", "best_test_threshold"}
SKIP_KEYS = {"dev_file", "eval_file"}


@pytest.fixture(scope="module")
def ref(reference_dir) -> Path:
    return reference_dir / "metrics"


@pytest.fixture(scope="module")
def expected(ref) -> dict:
    return json.loads((ref / "expected.json").read_text())["experiments"]


def _fmt(name: str):
    return "bob" if name.startswith("bob") else None


@pytest.fixture(scope="module")
def results(ref, expected) -> dict:
    out = {}
    for name, exp in expected.items():
        dev = M.read_scores(ref / exp["dev_file"], _fmt(name))
        ev = M.read_scores(ref / exp["eval_file"], _fmt(name))
        out[name] = M.score_metrics(dev, ev)
    return out


def compare(exp, got, path="", exact=False, problems=None):
    """Every expected value present in ``got``: thresholds bit-exact, ints exact, other floats to 1e-12."""
    problems = [] if problems is None else problems
    if isinstance(exp, dict):
        if not isinstance(got, dict):
            problems.append(f"{path}: expected a mapping, got {got!r}")
            return problems
        for key, value in exp.items():
            if key in SKIP_KEYS:
                continue
            if key not in got:
                problems.append(f"{path}/{key}: missing")
                continue
            compare(value, got[key], f"{path}/{key}",
                    exact or key in THRESHOLD_KEYS or path.endswith("per_attack_type_threshold"), problems)
    elif isinstance(exp, list):
        if not isinstance(got, list) or len(got) != len(exp):
            problems.append(f"{path}: expected {len(exp)} items, got {got!r:.80}")
            return problems
        for i, (a, b) in enumerate(zip(exp, got)):
            compare(a, b, f"{path}[{i}]", exact, problems)
    elif isinstance(exp, str):
        if path.endswith("attack_types") or "attack_types[" in path:
            if exp != got:
                problems.append(f"{path}: {exp!r} != {got!r}")
    elif isinstance(exp, bool) or isinstance(exp, int):
        if type(got) is not int or exp != got:
            problems.append(f"{path}: {exp!r} != {got!r}")
    else:
        if not isinstance(got, float):
            problems.append(f"{path}: {got!r} is not a float")
        elif exact or path.rsplit("/", 2)[-2:-1] == ["per_attack_type_threshold"]:
            if not (exp == got or (math.isnan(exp) and math.isnan(got))):
                problems.append(f"{path}: threshold {exp!r} != {got!r}")
        elif not abs(exp - got) <= 1e-12:
            problems.append(f"{path}: {exp!r} != {got!r}")
    return problems


# ------------------------------------------------------------------------------------------------
# Golden values
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bob-1", "bob-2", "pai"])
def test_reference_experiment_reproduced(name, expected, results):
    exp, got = expected[name], results[name]
    problems = compare(exp, got)
    assert not problems, "\n".join(problems[:30])
    # every threshold criterion of the README is present and compared
    assert len(exp["thresholds"]) == 11 and set(exp["thresholds"]) == set(got["thresholds"])
    assert len(got["dev_curves"]["roc_thresholds"]) == 100
    # AUC: the stored "exact" value is sklearn's float; ours is the correctly rounded Mann-Whitney ratio
    for split in ("dev", "eval"):
        auc = got["auc"][split]
        assert auc["sklearn_roc_auc_score"] == exp["auc"][split]["exact"]
        n_neg, n_pos = got[f"{split}_counts"]["n_attack"], got[f"{split}_counts"]["n_bona_fide"]
        assert auc["exact"] == float(Fraction(auc["mann_whitney_2u"], 2 * n_neg * n_pos))
        assert abs(auc["bob_measure_roc_auc_score"] - exp["auc"][split]["bob_measure_roc_auc_score"]) <= 1e-12


def test_reference_rates_equal_their_counts(results):
    for got in results.values():
        for entry in got["thresholds"].values():
            for split in ("dev", "eval"):
                block, c = entry[split], entry[split]["counts"]
                for t, n in c["n_attack_per_attack_type"].items():
                    assert block["apcer_per_attack_type"][t] == c["false_accepts_per_attack_type"][t] / n
                assert block["apcer_pooled"] == c["false_accepts_pooled"] / sum(c["n_attack_per_attack_type"].values())
                assert block["bpcer"] == c["false_rejects"] / c["n_bona_fide"]
                assert block["acer"] == (block["apcer_max"] + block["bpcer"]) / 2


def test_eval_eer_own_threshold_is_labelled(results):
    for got in results.values():
        assert "NOT a reportable number" in got["eval_eer_own_threshold"]["note"]
        text = M.format_report(got)
        assert "NOT a reportable number" in text and "not reportable" in text


def test_pai_iso_row_is_per_attack_max(results, expected):
    row = results["pai"]["rows"]["iso_30107_3"]
    e = expected["pai"]["eval_at_dev_eer_threshold"]
    assert row["APCER_max"] == max(e["apcer_per_attack_type"].values()) == e["apcer_per_attack_type"]["mask"]
    assert row["ACER"] == pytest.approx((row["APCER_max"] + row["BPCER"]) / 2, abs=1e-15)
    assert row["APCER_max"] > row["APCER_pooled"]  # pooling hides the mask attacks
    for pct, key in (("1%", "apcer_max_1%"), ("5%", "apcer_max_5%"), ("10%", "apcer_max_10%")):
        assert row[f"BPCER@APCER{pct}"] == pytest.approx(expected["pai"]["thresholds"][key]["eval"]["bpcer"], abs=1e-12)
    cdcn = results["pai"]["rows"]["cdcn_compatible"]
    assert cdcn["threshold"] == 0.618 and cdcn["APCER"] == pytest.approx(0.1745, abs=1e-12)


# ------------------------------------------------------------------------------------------------
# Independent oracles for bob's threshold rules
# ------------------------------------------------------------------------------------------------

def bob_search_loop(neg, pos, criterion, exact=True):
    """A literal walk through bob.measure's minimising search (README 'How bob picks thresholds').
    exact=False keeps bob's running float FAR/FRR sums."""
    neg, pos = sorted(neg), sorted(pos)
    n_neg, n_pos = len(neg), len(pos)
    one = Fraction(1) if exact else 1.0
    far, frr = one, 0 * one
    step_far, step_frr = (Fraction(1, n_neg), Fraction(1, n_pos)) if exact else (1.0 / n_neg, 1.0 / n_pos)

    def crit(a, r):
        return abs(a - r) if criterion == "eer" else (a + r) / 2

    best, best_t = None, None
    i = j = 0
    cur = min(neg[0], pos[0])
    while i < n_neg and j < n_pos:
        c = crit(far, frr)
        if best is None or c <= best:
            best, best_t = c, cur
        if pos[j] >= neg[i]:
            cur = neg[i]
            i, far = i + 1, far - step_far
        else:
            cur = pos[j]
            j, frr = j + 1, frr + step_frr
        while i < n_neg and neg[i] == cur:
            i, far = i + 1, far - step_far
        while j < n_pos and pos[j] == cur:
            j, frr = j + 1, frr + step_frr
        if i < n_neg or j < n_pos:
            nxt = min(neg[i], pos[j]) if (i < n_neg and j < n_pos) else (neg[i] if i < n_neg else pos[j])
            cur = (cur + nxt) / 2
    c = crit(far, frr)
    if c < best:
        best, best_t = c, cur
    if i < n_neg or j < n_pos:
        last = neg[-1] if i < n_neg else pos[-1]
        if crit(0 * one, one) < best:
            best_t = float(np.nextafter(last, np.inf))
    return float(best_t)


def far_threshold_scan(neg, v):
    neg = sorted(neg, reverse=True)
    if v >= 1 - np.finfo(float).eps:
        return float(np.nextafter(neg[-1], -np.inf))
    valid, k = float(np.nextafter(neg[0], np.inf)), 0
    while k < len(neg):
        s = neg[k]
        while k + 1 < len(neg) and neg[k + 1] == s:
            k += 1
        if (k + 1) / len(neg) > v:
            break
        valid, k = s, k + 1
    return valid


def frr_threshold_scan(pos, v):
    pos = sorted(pos)
    if v >= 1 - np.finfo(float).eps:
        return float(np.nextafter(pos[-1], np.inf))
    valid, k = float(np.nextafter(pos[0], np.inf)), 0
    while k < len(pos):
        s = pos[k]
        while k + 1 < len(pos) and pos[k + 1] == s:
            k += 1
        if k / len(pos) > v:
            break
        valid, k = s, k + 1
    return valid


def test_threshold_rules_match_literal_scans_on_tie_heavy_data():
    rng = np.random.default_rng(7)
    for _ in range(300):
        neg = list(rng.integers(0, 7, rng.integers(1, 9)) / 4.0)
        pos = list(rng.integers(2, 9, rng.integers(1, 9)) / 4.0)
        for criterion in ("eer", "min_hter"):
            fn = M.eer_threshold if criterion == "eer" else M.min_hter_threshold
            assert fn(neg, pos) == bob_search_loop(neg, pos, criterion), (criterion, neg, pos)
        for v in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0):
            assert M.far_threshold(neg, v) == far_threshold_scan(neg, v), (neg, v)
            assert M.frr_threshold(pos, v) == frr_threshold_scan(pos, v), (pos, v)


def test_reference_thresholds_agree_with_bob_float_search(ref, expected):
    """bob's own float running sums and our integer counts pick the same thresholds on every reference set."""
    for name, exp in expected.items():
        for split, key in (("dev", "dev_file"), ("eval", "eval_file")):
            rows = [r for r in M.read_scores(ref / exp[key], _fmt(name)) if not math.isnan(r.score)]
            neg = [r.score for r in rows if r.label == 0]
            pos = [r.score for r in rows if r.label == 1]
            for criterion in ("eer", "min_hter"):
                ours = (M.eer_threshold if criterion == "eer" else M.min_hter_threshold)(neg, pos)
                assert ours == bob_search_loop(neg, pos, criterion, exact=False)
            if split == "dev":
                assert M.eer_threshold(neg, pos) == exp["dev_eer"]["threshold"]
                assert M.min_hter_threshold(neg, pos) == exp["dev_min_hter"]["threshold"]
            else:
                assert M.eer_threshold(neg, pos) == exp["eval_eer_own_threshold"]["threshold"]


# ------------------------------------------------------------------------------------------------
# Hand-computed tiny cases
# ------------------------------------------------------------------------------------------------

def tiny_rows():
    bona_fide = [0.2, 0.5, 0.6, 0.9]
    attacks = [("print", 0.1), ("print", 0.5), ("replay", 0.3), ("replay", 0.6)]
    rows = [M.ScoreRow(f"b{i}", 1, "", s) for i, s in enumerate(bona_fide)]
    rows += [M.ScoreRow(f"a{i}", 0, t, s) for i, (t, s) in enumerate(attacks)]
    return rows


def test_tiny_case_ties_at_threshold_both_rules():
    rows = tiny_rows()
    res = M.score_metrics(rows, rows, targets=(0.5,))
    # bob EER search: |FAR-FRR| is 1/4 at 0.4 and at 0.55; ties go to the later candidate
    assert res["dev_eer"]["threshold"] == (0.5 + 0.6) / 2
    assert (res["dev_eer"]["far"], res["dev_eer"]["frr"], res["dev_eer"]["eer"]) == (0.25, 0.5, 0.375)
    # min-HTER: HTER 3/8 at 0.15, 0.4, 0.55 (later wins) and at 0.75, which comes after the attacks
    # run out and so only replaces on strict improvement
    assert res["dev_min_hter"]["threshold"] == (0.5 + 0.6) / 2
    # far_threshold(0.5): 0.6 -> 1/4, 0.5 -> 2/4 <= 0.5, 0.3 -> 3/4: stop -> 0.5, a score both classes hold
    far = res["thresholds"]["far_pooled_50%"]
    assert far["threshold"] == 0.5
    # bob rule at t = 0.5: bona fide 0.5 accepted (correct), print 0.5 accepted (error)
    assert far["dev"]["apcer_per_attack_type"] == {"print": 0.5, "replay": 0.5}
    assert far["dev"]["apcer_pooled"] == 0.5 and far["dev"]["bpcer"] == 0.25
    assert far["dev"]["acer"] == 0.375 and far["dev"]["hter"] == 0.375
    # per-type: print -> 0.5, replay -> 0.6; the max 0.6 keeps every type at APCER <= 50 %
    amax = res["thresholds"]["apcer_max_50%"]
    assert amax["per_attack_type_threshold"] == {"print": 0.5, "replay": 0.6}
    assert amax["threshold"] == 0.6
    assert amax["dev"]["apcer_per_attack_type"] == {"print": 0.0, "replay": 0.5}
    assert amax["dev"]["bpcer"] == 0.5
    # frr_threshold(0.5): 0.2 -> 0/4, 0.5 -> 1/4, 0.6 -> 2/4, 0.9 -> 3/4: stop -> 0.6
    assert res["thresholds"]["frr_50%"]["threshold"] == 0.6
    # AUC: 1 + 2.5 + 3.5 + 4 of 16 pairs
    assert res["auc"]["dev"]["exact"] == 11 / 16 and res["auc"]["dev"]["mann_whitney_2u"] == 22

    # CDCN: sklearn keeps points 0.9, 0.5, 0.3, 0.2, 0.1 (0.6 is collinear); |tpr+fpr-1| is least at 0.5
    cd = res["cdcn_compatible"]
    assert cd["returned"]["val_threshold"] == 0.5
    assert cd["intermediate"]["val_roc_n_points"] == 6 and cd["intermediate"]["val_roc_index"] == 2
    # the original's rule at t = 0.5: bona fide 0.5 is an error (<= t), print 0.5 is not (> t fails)
    assert cd["intermediate"]["val_counts"] == {"type1": 2, "type2": 1}
    assert cd["intermediate"]["val_APCER"] == 0.25 and cd["intermediate"]["val_BPCER"] == 0.5
    assert cd["intermediate"]["val_err"] == 0.5  # sklearn's fpr counts the tied attack (>=)
    assert cd["returned"]["val_ACER"] == 0.375 and cd["returned"]["val_ACC"] == 0.625
    assert cd["extension_test_APCER_per_attack_type"] == {"print": 0.0, "replay": 0.5}
    assert cd["extension_test_APCER_max"] == 0.5


def test_cdcn_threshold_takes_first_index_on_ties():
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    scores = [0.2, 0.5, 0.7, 0.9, 0.1, 0.5, 0.3, 0.6]
    # ROC points (fpr, tpr): ..., (1/4, 1/2) at 0.6 and (1/2, 3/4) at 0.5: |tpr+fpr-1| = 1/4 at both
    thr = M.cdcn_threshold(labels, scores)
    assert (thr.threshold, thr.index, thr.n_points) == (0.6, 3, 8)
    err = M.cdcn_errors(labels, scores, thr.threshold, attack_types=["", "", "", "", "p", "p", "r", "r"])
    # the attack at 0.6 is not > 0.6, so APCER is 0 while sklearn's fpr there (val_err) is 1/4
    assert thr.err == 0.25 and (err["type1"], err["type2"]) == (2, 0)
    assert (err["APCER"], err["BPCER"], err["ACER"], err["ACC"]) == (0.0, 0.5, 0.25, 0.75)
    assert err["APCER_per_attack_type"] == {"p": 0.0, "r": 0.0}


def test_frr_and_far_threshold_edge_rules():
    pos = [0.5, 0.5, 0.7, 0.8]
    # ties: (#(<= 0.5) - 1) / 4 = 1/4, so 0.5 passes 25 % but not 20 %, although #(< 0.5) is 0
    assert M.frr_threshold(pos, 0.25) == 0.5
    assert M.frr_threshold(pos, 0.2) == float(np.nextafter(0.5, 1))
    assert M.frr_threshold(pos, 1.0) == float(np.nextafter(0.8, 1))
    neg = [0.1, 0.5]
    assert M.far_threshold(neg, 0.2) == float(np.nextafter(0.5, 1))  # even the top score breaks 20 %
    assert M.far_threshold(neg, 1.0) == float(np.nextafter(0.1, -1))
    assert M.far_threshold([0.3, 0.3, 0.3, 0.1], 0.5) == float(np.nextafter(0.3, 1))  # a tie is taken whole
    with pytest.raises(ValueError):
        M.far_threshold(neg, 1.5)


def test_cdcn_helpers_for_per_epoch_selection(ref, expected):
    rows = M.read_scores(ref / "pai-scores-dev.csv")
    labels = [r.label for r in rows]
    scores = [r.score for r in rows]
    thr = M.cdcn_threshold(labels, scores)
    exp = expected["pai"]["cdcn_compatible"]
    assert thr.threshold == exp["returned"]["val_threshold"] and thr.index == exp["intermediate"]["val_roc_index"]
    err = M.cdcn_errors(labels, scores, thr.threshold)
    assert err["ACER"] == exp["returned"]["val_ACER"] and err["ACC"] == exp["returned"]["val_ACC"]
    dev = M.dev_metrics(rows)
    assert dev["cdcn_threshold"] == 0.618 and dev["eer_threshold"] == expected["pai"]["dev_eer"]["threshold"]
    assert dev["eer"] == pytest.approx(expected["pai"]["dev_eer"]["eer"], abs=1e-12)
    with pytest.raises(ValueError, match="both bona fide"):
        M.cdcn_threshold([1, 1], [0.2, 0.3])


# ------------------------------------------------------------------------------------------------
# Score files
# ------------------------------------------------------------------------------------------------

BAD_FILES = [
    ("bad_label.csv", "video_id,label,attack_type,score\nv1,1,,0.5\nv2,2,print,0.3\n", None, ":3:", "label"),
    ("bad_score.csv", "video_id,label,attack_type,score\nv1,1,,0.5\nv2,0,print,abc\n", None, ":3:", "abc"),
    ("fields.csv", "video_id,label,attack_type,score\nv1,1,,0.5,9\n", None, ":2:", "fields"),
    ("dup.csv", "video_id,label,attack_type,score\nv1,1,,0.5\nv1,0,print,0.1\n", None, ":3:", "line 2"),
    ("live_type.csv", "video_id,label,attack_type,score\nv1,1,print,0.5\n", None, ":2:", "attack_type"),
    ("header.csv", "video_id,label,score\nv1,1,0.5\n", None, ":1:", "attack_type"),
    ("three.txt", "1 0.5\n-1 0.25 7\n", "bob", ":2:", "two fields"),
    ("bob_label.txt", "1 0.5\n0 0.25\n", "bob", ":2:", "1 or -1"),
    ("cdcn_label.txt", "0.5 1\n0.25 -1\n", "cdcn", ":2:", "1 or 0"),
    ("inf.txt", "0.5 1\ninf 0\n", "cdcn", ":2:", "infinite"),
]


@pytest.mark.parametrize("name,text,fmt,line,word", BAD_FILES)
def test_malformed_line_names_file_and_line(tmp_path, name, text, fmt, line, word):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as info:
        M.read_scores(path, fmt)
    msg = str(info.value)
    assert str(path) + line in msg and word in msg


def test_two_column_file_needs_explicit_format(tmp_path, ref):
    with pytest.raises(InputError, match="--format bob"):
        M.read_scores(ref / "dev-1.txt")
    with pytest.raises(InputError, match="no such score file"):
        M.read_scores(tmp_path / "missing.csv")


def test_bob_reader_counts_nan_rows(ref):
    rows = M.read_scores(ref / "dev-1.txt", "bob")
    assert len(rows) == 1000
    assert sum(math.isnan(r.score) for r in rows) == 54
    assert {r.attack_type for r in rows if r.label == 0} == {"attack"}


def test_write_read_round_trip_is_exact(tmp_path):
    rows = [M.ScoreRow("a", 1, "", 0.1 + 0.2), M.ScoreRow("b", 0, "print", 1e-300),
            M.ScoreRow("c", 0, "replay", float("nan")), M.ScoreRow("d", 1, "", -0.0)]
    path = M.write_scores(tmp_path / "s.csv", rows)
    back = M.read_scores(path)
    assert [r[:3] for r in back] == [r[:3] for r in rows]
    assert back[0].score == 0.1 + 0.2 and back[1].score == 1e-300 and math.isnan(back[2].score)
    assert path.read_text().splitlines()[0] == "video_id,label,attack_type,score"


def test_original_cdcn_score_files(tmp_path, ref, expected):
    """The original's '<score> <label>' files give the same CDCN row (attack types are lost)."""
    paths = {}
    for split in ("dev", "eval"):
        rows = M.read_scores(ref / f"pai-scores-{split}.csv")
        paths[split] = tmp_path / f"{split}_score.txt"
        paths[split].write_text("".join(f"{r.score} {r.label}\n" for r in rows))
    res = M.score_metrics(M.read_scores(paths["dev"], "cdcn"), M.read_scores(paths["eval"], "cdcn"))
    exp = expected["pai"]["cdcn_compatible"]
    assert not compare(exp["returned"], res["cdcn_compatible"]["returned"], exact=False)
    assert res["cdcn_compatible"]["returned"]["val_threshold"] == exp["returned"]["val_threshold"]
    assert res["dev_eer"]["threshold"] == expected["pai"]["dev_eer"]["threshold"]


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------

def test_main_bob_files_prints_and_writes_everything(tmp_path, ref, expected, capsys):
    out = tmp_path / "run"
    result = metrics_main(["--format", "bob", "--dev", str(ref / "dev-1.txt"), "--eval", str(ref / "test-1.txt"),
                     "--out-dir", str(out)])
    printed = capsys.readouterr().out
    exp = expected["bob-1"]
    assert repr(exp["dev_eer"]["threshold"]) in printed                      # ISO threshold
    assert repr(exp["cdcn_compatible"]["returned"]["val_threshold"]) in printed  # CDCN threshold
    assert "CDCN-compatible" in printed and "ISO/IEC 30107-3" in printed and "FTA" in printed
    for name in ("metrics.json", "report.txt", "config.json", "log.txt", "roc.png", "det.png", "score_hist.png"):
        assert (out / name).is_file(), name
    for name in ("roc.png", "det.png", "score_hist.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = json.loads((out / "metrics.json").read_text())
    problems = compare(exp, written)
    assert not problems, "\n".join(problems[:20])
    assert written["inputs"]["format"] == "bob" and result["inputs"]["dev"].endswith("dev-1.txt")
    assert (out / "report.txt").read_text() in printed


def test_main_folds_mean_and_std(tmp_path, ref, expected, capsys):
    out = tmp_path / "folds"
    res = metrics_main(["--format", "bob", "--dev", str(ref / "dev-1.txt"), str(ref / "dev-2.txt"),
                        "--eval", str(ref / "test-1.txt"), str(ref / "test-2.txt"), "--out-dir", str(out),
                        "--no-plots", "--fta-rule", "drop"])  # bob's rule, as the golden values
    assert "mean +- std over 2 folds" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    acer = [expected[n]["eval_at_dev_eer_threshold"]["acer"] for n in ("bob-1", "bob-2")]
    m = summary["metrics"]["iso_30107_3.ACER"]
    assert m["mean"] == pytest.approx(np.mean(acer), abs=1e-12)
    assert m["std"] == pytest.approx(np.std(acer, ddof=1), abs=1e-12)
    cd = summary["metrics"]["cdcn_compatible.ACER"]
    assert cd["values"] == pytest.approx([expected[n]["cdcn_compatible"]["returned"]["test_ACER"]
                                          for n in ("bob-1", "bob-2")], abs=1e-12)
    assert (out / "fold_2" / "metrics.json").is_file() and not (out / "fold_2" / "roc.png").exists()
    # summarize_folds keeps only per-type APCERs that every fold has
    pai_like = json.loads(json.dumps(res["folds"][0]))
    pai_like["rows"]["iso_30107_3"]["APCER_per_attack_type"] = {"print": 0.1}
    keys = M.summarize_folds([res["folds"][1], pai_like])["metrics"]
    assert "iso_30107_3.APCER_per_attack_type.attack" not in keys and "iso_30107_3.ACER" in keys


def test_main_rejects_bad_input_with_message(tmp_path, ref):
    bad = tmp_path / "bad.csv"
    bad.write_text("video_id,label,attack_type,score\nv1,1,,oops\n")
    with pytest.raises(SystemExit, match=r"bad\.csv:2:"):
        metrics_main(["--dev", str(bad), "--eval", str(ref / "pai-scores-eval.csv")])


def test_command_subprocess(tmp_path, ref, expected, repo_root):
    out = tmp_path / "cli"
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    proc = subprocess.run([sys.executable, "-m", "DUM.metrics", "--dev", str(ref / "pai-scores-dev.csv"),
                           "--eval", str(ref / "pai-scores-eval.csv"), "--out-dir", str(out), "--no-plots"],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    exp = expected["pai"]
    assert "0.6174999999999999" in proc.stdout and "0.618" in proc.stdout  # ISO and CDCN thresholds
    assert "APCER_max   43.000%" in proc.stdout
    problems = compare(exp, json.loads((out / "metrics.json").read_text()))
    assert not problems, "\n".join(problems[:20])

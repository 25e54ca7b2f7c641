"""The text report of ``score_metrics``'s result and of a fold summary."""
from __future__ import annotations


def _p(v) -> str:
    return "n/a" if v is None else f"{100 * v:8.3f}%"


def format_report(result: dict) -> str:
    """A readable table: both rows, per-attack APCER, and every threshold used (all chosen on dev)."""
    out = _count_lines(result) + _fta_lines(result) + [""] + _cdcn_lines(result) + [""] + _iso_lines(result) + [""]
    out += _threshold_lines(result)
    return "\n".join(out) + "\n"


def _count_lines(result: dict) -> list[str]:
    out = []
    add = out.append
    inputs = result.get("inputs")
    if inputs:
        add(f"dev:  {inputs['dev']}")
        add(f"eval: {inputs['eval']}")
    for name in ("dev", "eval"):
        c = result[f"{name}_counts"]
        types = ", ".join(f"{k} {v}" for k, v in c["n_attack_per_attack_type"].items())
        add(f"{name:4s} counts: {c['n_bona_fide']} bona fide, {c['n_attack']} attacks ({types}); "
            f"FTA {c['n_nan_bona_fide'] + c['n_nan_attack']}/{c['n_rows']} = {100 * c['fta']:.3f}%")
    return out


def _has_fta(result: dict) -> bool:
    return result["eval_counts"]["fta"] > 0 or result["dev_counts"]["fta"] > 0


def _fta_lines(result: dict) -> list[str]:
    """With failures to acquire: the rule that puts them into the reported rows (result["rows"])."""
    rule = result.get("fta_rule")
    if rule is None or not _has_fta(result):
        return []
    r = result["rows"]["iso_30107_3"]
    return [f"failures to acquire, rule '{rule['rule']}': {rule['description']}",
            f"  eval APNRR {_p(r['APNRR_eval']).strip()}  BPNRR {_p(r['BPNRR_eval']).strip()}"]


def _fta_row_line(result: dict, row: str) -> list[str]:
    """The reported row with failures to acquire counted as errors (only when there are any)."""
    rule = result.get("fta_rule")
    if rule is None or rule["rule"] != "error" or not _has_fta(result):
        return []
    r = result["rows"][row]
    apcer = r["APCER_max"] if row == "iso_30107_3" else r["APCER"]
    name = "APCER_max" if row == "iso_30107_3" else "APCER"
    return [f"  eval, failures to acquire as errors (the reported row): {name} {_p(apcer).strip()}  "
            f"BPCER {_p(r['BPCER']).strip()}  ACER {_p(r['ACER']).strip()}",
            "  (the lines below leave the videos without a score out, as the original and bob do)"]


def _cdcn_lines(result: dict) -> list[str]:
    out = []
    add = out.append
    cd = result["cdcn_compatible"]
    rv, im = cd["returned"], cd["intermediate"]
    add("Row 1  CDCN-compatible (original performances(): dev threshold argmin|TPR+FPR-1| on sklearn's ROC,")
    add("       bona fide iff score > t, APCER pooled over attacks)")
    add(f"  threshold (dev score)   {rv['val_threshold']!r}")
    out += _fta_row_line(result, "cdcn_compatible")
    add(f"  eval   APCER {_p(rv['test_APCER'])}  BPCER {_p(rv['test_BPCER'])}  ACER {_p(rv['test_ACER'])}  "
        f"ACC {_p(rv['test_ACC'])}   (type1 {im['test_counts']['type1']}, type2 {im['test_counts']['type2']})")
    add(f"  dev    APCER {_p(im['val_APCER'])}  BPCER {_p(im['val_BPCER'])}  ACER {_p(rv['val_ACER'])}  "
        f"ACC {_p(rv['val_ACC'])}   (val_err = fpr[i] {_p(im['val_err'])})")
    per = "  ".join(f"{k} {_p(v).strip()}" for k, v in cd["extension_test_APCER_per_attack_type"].items())
    add(f"  extension, eval APCER per attack type (score > t): {per}; max {_p(cd['extension_test_APCER_max']).strip()}")
    add(f"  eval ACER at eval's own threshold {rv['best_test_threshold']!r}: {_p(rv['test_threshold_ACER']).strip()}"
        "  (not reportable: threshold from eval)")
    return out


def _iso_lines(result: dict) -> list[str]:
    out = []
    add = out.append
    e = result["eval_at_dev_eer_threshold"]
    add("Row 2  ISO/IEC 30107-3 (bob rules: bona fide iff score >= t; t = dev EER threshold)")
    add(f"  threshold (dev EER)     {e['threshold']!r}    dev EER {_p(result['dev_eer']['eer']).strip()}")
    out += _fta_row_line(result, "iso_30107_3")
    per = "  ".join(f"{k} {_p(v).strip()}" for k, v in e["apcer_per_attack_type"].items())
    add(f"  eval   APCER per attack type: {per}")
    add(f"  eval   APCER_max {_p(e['apcer_max'])}  APCER_pooled {_p(e['apcer_pooled'])}  BPCER {_p(e['bpcer'])}")
    add(f"         ACER {_p(e['acer'])}  HTER {_p(e['hter'])}")
    rows = result["rows"]["iso_30107_3"]
    bp = "  ".join(f"{k.split('@')[1]}: {_p(v).strip()}" for k, v in rows.items() if k.startswith("BPCER@"))
    add(f"  eval   BPCER at APCER_max <= X on dev: {bp}")
    add(f"  AUC    dev {result['auc']['dev']['exact']:.6f}  eval {result['auc']['eval']['exact']:.6f}")
    f = result["fta_adjusted_at_dev_eer_threshold"]["eval"]
    if f["fta"] > 0:
        add(f"  eval with FTA: FAR {_p(f['far_with_fta']).strip()}  FRR {_p(f['frr_with_fta']).strip()} "
            f"(FTA {_p(f['fta']).strip()})")
    o = result["eval_eer_own_threshold"]
    add(f"  eval EER at eval's own threshold {o['threshold']!r}: {_p(o['eer']).strip()}  (for completeness; "
        "NOT a reportable number)")
    return out


def _threshold_lines(result: dict) -> list[str]:
    out = []
    add = out.append
    add("Thresholds (all chosen on dev; bob rule score >= t)")
    add(f"  {'criterion':16s} {'threshold':>22s} {'dev APCERmax':>12s} {'dev BPCER':>10s} {'eval APCERmax':>13s} "
        f"{'eval APCERpool':>14s} {'eval BPCER':>10s} {'eval ACER':>10s} {'eval HTER':>10s}")
    for name, entry in result["thresholds"].items():
        d, v = entry["dev"], entry["eval"]
        add(f"  {name:16s} {entry['threshold']!r:>22s} {_p(d['apcer_max']):>12s} {_p(d['bpcer']):>10s} "
            f"{_p(v['apcer_max']):>13s} {_p(v['apcer_pooled']):>14s} {_p(v['bpcer']):>10s} {_p(v['acer']):>10s} "
            f"{_p(v['hter']):>10s}")
        if "per_attack_type_threshold" in entry and len(entry["per_attack_type_threshold"]) > 1:
            add("      per type: " + ", ".join(f"{k} {t!r}" for k, t in entry["per_attack_type_threshold"].items()))
    return out


def format_fold_summary(summary: dict) -> str:
    lines = [f"mean +- std over {summary['n_folds']} folds (std with ddof={summary['std_ddof']})"]
    for key, m in summary["metrics"].items():
        lines.append(f"  {key:45s} {100 * m['mean']:8.3f} +- {100 * m['std']:7.3f} %")
    return "\n".join(lines) + "\n"

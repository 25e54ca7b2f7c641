"""Mean and standard deviation of the two rows over folds (OULU-NPU Protocols 3 and 4)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def summarize_folds(results: Sequence[dict], ddof: int = 1) -> dict:
    """Mean and standard deviation over folds (OULU-NPU Protocols 3 and 4: six folds) of every number
    in the two rows; per-attack-type APCERs only for types present in every fold."""
    if not results:
        raise ValueError("no fold results to summarise")
    flat = []
    for r in results:
        entry = {}
        for row, values in r["rows"].items():
            for key, value in values.items():
                if isinstance(value, dict):
                    entry.update({f"{row}.{key}.{k}": v for k, v in value.items()})
                elif key != "threshold":
                    entry[f"{row}.{key}"] = value
        flat.append(entry)
    common = [k for k in flat[0] if all(k in f for f in flat)]
    metrics = {}
    for key in common:
        values = np.array([f[key] for f in flat], dtype=np.float64)
        std = float(values.std(ddof=ddof)) if len(values) > ddof else float("nan")
        metrics[key] = {"mean": float(values.mean()), "std": std, "values": values.tolist()}
    return {"n_folds": len(results), "std_ddof": ddof, "metrics": metrics}

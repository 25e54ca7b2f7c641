"""Protocol builders for the paper's benchmarks: one module per dataset, each with
``build(root, protocol, fold, dev_fraction, seed) -> list[Built]`` (see ``common.Built``).
``data/make_protocol.py`` is the command; docs/DATASETS.md documents layouts, protocols and sources."""
from __future__ import annotations

from data.benchmarks import casia, folders, oulu, replay, siw, siwm

BUILDERS = {"oulu": oulu.build, "siw": siw.build, "siwm": siwm.build, "casia": casia.build,
            "replay": replay.build, "folders": folders.build}

__all__ = ["BUILDERS"]

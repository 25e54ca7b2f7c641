"""Shared fixtures: paths of the reference files and the real sample photos shipped beside the repo."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAS_SHARED", ROOT.parent / "shared"))

# One thread per test process: on 2 shared cores, two spinning OpenMP threads per process were
# several times slower than one (multi-process tests start their own processes anyway).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = SHARED / "reference"
    if not path.is_dir():
        pytest.fail(f"reference files not found at {path} (set FAS_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    path = SHARED / "samples"
    if not path.is_dir():
        pytest.fail(f"sample photos not found at {path} (set FAS_SHARED to the shared/ folder)")
    return path

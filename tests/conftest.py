"""Shared fixtures: the reference files and sample photos shipped in tests/fixtures/.

The repository carries everything the suite needs (tests/fixtures/README.md says where each file
came from). A few tests compare against files too large to ship (the full reference tensors); they
look beside the repository too (``../shared`` or ``$FAS_SHARED``, same layout as tests/fixtures/) and
skip with the reason when neither place has the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = Path(os.environ.get("FAS_SHARED", ROOT.parent / "shared"))

# One thread per test process: on 2 shared cores, two spinning OpenMP threads per process were
# several times slower than one (multi-process tests start their own processes anyway).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def find_fixture(relpath: str) -> Path:
    """The file ``relpath`` (e.g. ``reference/cdcn_dum_reference.pt``) from tests/fixtures/, else from
    the shared folder beside the repository; skips the calling test, naming the file, when neither
    has it. Files the repository ships are checked by tests/test_fixtures.py, so a missing shipped
    file fails there instead of skipping silently."""
    for base in (FIXTURES, SHARED):
        path = base / relpath
        if path.exists():
            return path
    pytest.skip(f"{relpath} is not shipped in tests/fixtures/ (too large) and {SHARED / relpath} is absent; "
                "set FAS_SHARED to a folder holding it to run this test")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """tests/fixtures/reference: key listings, trimmed reference tensors, metric reference files."""
    return FIXTURES / "reference"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """tests/fixtures/samples: the three real sample photos (Apache-2.0, licence beside them)."""
    return FIXTURES / "samples"

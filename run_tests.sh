#!/usr/bin/env bash
# The test command: sets up .venv from requirements.txt, then runs the whole pytest suite on the CPU.
# Extra arguments go to pytest (e.g. `bash run_tests.sh -k metrics`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
PYBIN="$(bash scripts/setup_env.sh)"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$PYBIN" -m pytest "$@"

#!/usr/bin/env bash
# Score dev and test with a CDCN(+DUM) checkpoint (DUM/test.py): both metric rows, score files,
# curves. Paths come from the environment, extra flags pass through ("$@"), e.g.
#   CHECKPOINT=runs/CDCN_U_P1/best.pt DUM/test.sh
#   CHECKPOINT='runs/CDCN_U_P3_F{fold}/best.pt' PROTOCOL=3 DUM/test.sh --all-folds
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python}"
CHECKPOINT="${CHECKPOINT:-DUM/checkpoint/CDCN_U_P1.pkl}"   # the released model's original location
CROP_ROOT="${CROP_ROOT:-oulu_images_crop}"
PROTOCOL="${PROTOCOL:-1}"
if [[ "${PROTOCOL}" =~ ^[0-9]+$ ]]; then OUT_DIR="${OUT_DIR:-CDCN_U_P${PROTOCOL}_test}"
else OUT_DIR="${OUT_DIR:-runs/$(basename "${PROTOCOL%.*}")/test}"; fi   # a CSV protocol
export CUDA_VISIBLE_DEVICES="${GPUS:-0}"

exec "${PYTHON}" "${HERE}/test.py" --checkpoint "${CHECKPOINT}" --crop-root "${CROP_ROOT}" \
  --protocol "${PROTOCOL}" --out-dir "${OUT_DIR}" "$@"

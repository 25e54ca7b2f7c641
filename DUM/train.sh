#!/usr/bin/env bash
# Train CDCN + DUM (DUM/train.py) with the original settings. Every value is a flag of train.py;
# paths come from the environment, extra flags pass through ("$@"), e.g.
#   CROP_ROOT=/data/oulu_images_crop PROTOCOL=1 GPUS=0,1,2,3 DUM/train.sh --amp
#   PROTOCOL=3 FOLD=2 DUM/train.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python}"
CROP_ROOT="${CROP_ROOT:-oulu_images_crop}"          # written by DUM/make_dataset/crop_dataset.py
PROTOCOL="${PROTOCOL:-1}"                            # OULU-NPU 1-4 or a CSV protocol file
FOLD="${FOLD:-}"                                     # 1..6 for protocols 3 and 4
MODEL="${MODEL:-cdcn_u}"                             # any --model of DUM/train.py (networks/registry.py)
GPUS="${GPUS:-0}"                                    # comma-separated; one process per GPU
if [[ "${PROTOCOL}" =~ ^[0-9]+$ ]]; then       # OULU-NPU number; a CSV protocol runs under runs/<csv stem>/
  OUT_DIR="${OUT_DIR:-${MODEL^^}_P${PROTOCOL}${FOLD:+_F${FOLD}}}"
else
  OUT_DIR="${OUT_DIR:-runs/$(basename "${PROTOCOL%.*}")/${MODEL}}"
fi

export CUDA_VISIBLE_DEVICES="${GPUS}"
IFS=',' read -r -a gpu_list <<< "${GPUS}"
NPROC="${NPROC:-${#gpu_list[@]}}"

args=(--crop-root "${CROP_ROOT}" --protocol "${PROTOCOL}" --model "${MODEL}" --out-dir "${OUT_DIR}"
      --epochs 1600 --batch-size 64 --ratio 0.75 --lr 1e-4 --weight-decay 5e-5 --step-size 500 --gamma 0.5
      --kl-lambda 0.001 --gen-weight 0.1)
if [[ -n "${FOLD}" ]]; then args+=(--fold "${FOLD}"); fi

if [[ "${NPROC}" -gt 1 ]]; then
  exec "${PYTHON}" -m torch.distributed.run --standalone --nproc_per_node "${NPROC}" "${HERE}/train.py" "${args[@]}" "$@"
fi
exec "${PYTHON}" "${HERE}/train.py" "${args[@]}" "$@"

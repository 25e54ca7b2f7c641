#!/usr/bin/env bash
# Train the DSDG generator with the values of the original train_generator.sh (OULU-NPU Protocol 1).
# Every path comes from the environment (defaults = the original folder names); extra flags pass
# through, e.g.  NPROC=4 ./train_generator.sh --amp bf16   or   ./train_generator.sh --image-size 128
set -euo pipefail

IMG_ROOT=${IMG_ROOT:-oulu_images}
TRAIN_LIST=${TRAIN_LIST:-./train_list/train_list_oulu_p1.txt}
IP_MODEL=${IP_MODEL:-./ip_checkpoint/LightCNN_29Layers_V2_checkpoint.pth.tar}
OUT=${OUT:-./model_oulu_p1}
NPROC=${NPROC:-1}              # processes (GPUs) for torchrun; --batch-size is the total over all of them

HERE=$(cd "$(dirname "$0")" && pwd)   # paths above stay relative to the caller's folder
PYTHON=${PYTHON:-python}

args=(
  --img-root "$IMG_ROOT"
  --train-list "$TRAIN_LIST"
  --ip-model "$IP_MODEL"
  --out-dir "$OUT"
  --batch-size 240
  --epochs 200
  --lr 0.0002
  --hdim 128
  --attack-types 4
  --workers 8
  --lambda-mmd 50
  --lambda-ip 1000
  --lambda-pair 5
  --lambda-type 10
  --lambda-ort 1
  --test-epoch 10
  --save-epoch 10
  --print-freq 20
)

if [ "$NPROC" -gt 1 ]; then
  exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" "$HERE/train_generator.py" "${args[@]}" "$@"
else
  exec "$PYTHON" "$HERE/train_generator.py" "${args[@]}" "$@"
fi

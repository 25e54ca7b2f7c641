#!/usr/bin/env bash
# Data preparation, stage by stage: frames -> MTCNN boxes -> depth labels -> generator training list,
# and (STAGES=crop) the face crops the depth network reads. Every path and value comes from the
# environment; defaults are the original folder names. Each stage skips work already done, so a
# rerun resumes. Examples:
#   VIDEO_ROOT=/data/Oulu_NPU scripts/prepare_data.sh                 # all stages but crop
#   STAGES="crop" CROP_ROOT=oulu_images_crop scripts/prepare_data.sh
#   SHARD=3/8 STAGES="frames boxes depth" scripts/prepare_data.sh     # machine 3 of 8
#   PROTOCOL=mydata.csv VIDEO_ROOT=/data/mydata scripts/prepare_data.sh  # any dataset: one CSV protocol
# With a CSV protocol (docs/DATA_LAYOUT.md) each row's path (videos, image folders or single images,
# under VIDEO_ROOT, default the CSV's folder) goes to the tree of its split.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
PROTOCOL="${PROTOCOL:-1}"                       # OULU-NPU 1-4, or a CSV protocol file
is_csv=0; [[ "$PROTOCOL" =~ ^[0-9]+$ ]] || is_csv=1
CSV_STEM="$(basename "${PROTOCOL%.*}")"
if [ "$is_csv" = 1 ]; then VIDEO_ROOT="${VIDEO_ROOT:-$(dirname "$PROTOCOL")}"; fi
VIDEO_ROOT="${VIDEO_ROOT:-Oulu_Origin}"         # OULU: holds Train_files/, Dev_files/, Test_files/
DATA_ROOT="${DATA_ROOT:-oulu_images}"           # full-frame tree (train_img_flod, ...)
CROP_ROOT="${CROP_ROOT:-oulu_images_crop}"      # crop tree for the depth network
PROTOCOL_DIR="${PROTOCOL_DIR:-$VIDEO_ROOT/protocols}"  # folder holding Protocol_1 ... Protocol_4
FOLD="${FOLD:-}"                                # 1..6 for protocols 3 and 4
SPLITS="${SPLITS:-train dev test}"
STAGES="${STAGES:-frames boxes depth list}"     # any of: frames boxes depth list crop
EVERY="${EVERY:-1}"                             # keep every K-th frame
MAX_FRAMES="${MAX_FRAMES:-0}"                   # per video, 0 = all
FRAMES_PER_VIDEO="${FRAMES_PER_VIDEO:-40}"      # generator list (the shipped list: 40)
if [ "$is_csv" = 1 ]; then TRAIN_LIST="${TRAIN_LIST:-train_list/train_list_${CSV_STEM}.txt}"
else TRAIN_LIST="${TRAIN_LIST:-train_list/train_list_oulu_p${PROTOCOL}${FOLD:+_${FOLD}}.txt}"; fi
IMAGE_SIZE="${IMAGE_SIZE:-256}"                 # crop side for the depth network
MAP_SIZE="${MAP_SIZE:-$((IMAGE_SIZE / 8))}"
WORKERS="${WORKERS:-2}"
SHARD="${SHARD:-1/1}"
SEED="${SEED:-0}"

has() { [[ " $STAGES " == *" $1 "* ]]; }
folder_of() { case "$1" in train) echo Train_files;; dev) echo Dev_files;; test) echo Test_files;; esac; }

if has frames && [ "$is_csv" = 1 ]; then
  echo "[prepare] frames: rows of $PROTOCOL"
  "$PYTHON" "$HERE/data/extract_frame.py" --protocol "$PROTOCOL" --video-root "$VIDEO_ROOT" \
    --data-root "$DATA_ROOT" --every "$EVERY" --max-frames "$MAX_FRAMES" --workers "$WORKERS" --shard "$SHARD"
elif has frames; then
  for split in $SPLITS; do
    echo "[prepare] frames: $split"
    "$PYTHON" "$HERE/data/extract_frame.py" --video-root "$VIDEO_ROOT/$(folder_of "$split")" \
      --data-root "$DATA_ROOT" --split "$split" --every "$EVERY" --max-frames "$MAX_FRAMES" \
      --workers "$WORKERS" --shard "$SHARD"
  done
fi
if has boxes; then
  echo "[prepare] MTCNN boxes: $SPLITS"
  # shellcheck disable=SC2086
  "$PYTHON" "$HERE/data/bbox.py" --data-root "$DATA_ROOT" --splits $SPLITS --shard "$SHARD"
fi
if has depth; then
  for split in $SPLITS; do
    echo "[prepare] depth labels: $split"
    "$PYTHON" "$HERE/data/depth.py" --data-root "$DATA_ROOT" --split "$split" --workers "$WORKERS" --shard "$SHARD"
  done
fi
if has list && [ "$is_csv" = 1 ]; then
  echo "[prepare] generator training list: $TRAIN_LIST"
  "$PYTHON" "$HERE/data/make_train_list.py" --data-root "$DATA_ROOT" --protocol "$PROTOCOL" --out "$TRAIN_LIST" \
    --frames-per-video "$FRAMES_PER_VIDEO" --seed "$SEED"
elif has list; then
  if [ -d "$PROTOCOL_DIR" ] && [ "$(cd "$PROTOCOL_DIR" && pwd)" != "$(mkdir -p "$DATA_ROOT/protocols" && cd "$DATA_ROOT/protocols" && pwd)" ]; then
    cp -r "$PROTOCOL_DIR/." "$DATA_ROOT/protocols/"
  fi
  train_file="Train${FOLD:+_${FOLD}}.txt"
  echo "[prepare] generator training list: $TRAIN_LIST"
  "$PYTHON" "$HERE/data/make_train_list.py" --data-root "$DATA_ROOT" \
    --protocol "$DATA_ROOT/protocols/Protocol_${PROTOCOL}/${train_file}" --out "$TRAIN_LIST" \
    --frames-per-video "$FRAMES_PER_VIDEO" --seed "$SEED"
fi
PROTOCOL_COPY=""; [ "$is_csv" = 1 ] || PROTOCOL_COPY="$DATA_ROOT/protocols"   # a CSV is read where it is
if has crop; then
  echo "[prepare] face crops for the depth network: $SPLITS -> $CROP_ROOT"
  # shellcheck disable=SC2086
  "$PYTHON" "$HERE/DUM/make_dataset/crop_dataset.py" --data-root "$DATA_ROOT" --crop-root "$CROP_ROOT" \
    --split $SPLITS --image-size "$IMAGE_SIZE" --map-size "$MAP_SIZE" --seed "$SEED" --shard "$SHARD" \
    ${PROTOCOL_COPY:+--protocol-dir "$PROTOCOL_COPY"}
fi

#!/usr/bin/env bash
# One benchmark of the paper, every fold, from the dataset as distributed to a row of the results table:
#   protocols (data/make_protocol.py) -> per fold: frames, boxes, depth, generator list -> generator
#   -> crops -> generated pairs + merged protocol -> CDCN + DUM -> test (threshold on dev) -> DUM.report
#
#   scripts/run_benchmark.sh --dataset siw --protocol 2 --root /data/SiW_release
#   scripts/run_benchmark.sh --dataset siwm --root /data/SiW-M --fold 5
#   scripts/run_benchmark.sh --dataset casia --root /data/CASIA_faceAntisp --target replay --target-root /data/replayattack
#
# Frames, boxes and depth maps are shared by the folds (<work-dir>/images); each fold has its own
# crops, generator and CDCN+DUM run under <work-dir>/folds/<name>/. A rerun resumes: finished phases
# are skipped (markers in <work-dir>/.done/), and every stage itself skips finished items.
# --target (cross-dataset): train on --dataset, threshold on its dev rows, HTER on the target's test rows.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATASET=""; DATA=""; PROTOCOL=""; FOLD=""; WORK=""; PROFILE="paper"; IP_MODEL=""; TARGET=""; TARGET_ROOT=""; FORCE=0
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; cat <<'EOT'
Options:
  --dataset NAME      oulu | siw | siwm | casia | replay | folders (docs/DATASETS.md)
  --root DIR          the dataset as its owners distribute it
  --protocol P        oulu 1-4, siw 1-3, siwm loo, replay grandtest, casia all (default: the first)
  --fold K            one fold only (default: every fold of the protocol)
  --work-dir DIR      where every output goes (default bench_work/<dataset>[_p<protocol>])
  --profile NAME      paper (the paper's settings, GPU) | smoke (tiny settings, no identity loss; checks the chain)
  --ip-model PATH     LightCNN-29 v2 checkpoint (default ip_checkpoint/LightCNN_29Layers_V2_checkpoint.pth.tar)
  --target NAME       cross-dataset: also test on this dataset's test rows (casia or replay)
  --target-root DIR   the target dataset's root
  --force             redo every phase (delete <work-dir>/.done)
EOT
}
while [ $# -gt 0 ]; do
  case "$1" in
    --dataset) DATASET="$2"; shift 2;;
    --root) DATA="$2"; shift 2;;
    --protocol) PROTOCOL="$2"; shift 2;;
    --fold) FOLD="$2"; shift 2;;
    --work-dir) WORK="$2"; shift 2;;
    --profile) PROFILE="$2"; shift 2;;
    --ip-model) IP_MODEL="$2"; shift 2;;
    --target) TARGET="$2"; shift 2;;
    --target-root) TARGET_ROOT="$2"; shift 2;;
    --force) FORCE=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "run_benchmark.sh: unknown option $1 (see --help)" >&2; exit 2;;
  esac
done
[ -n "$DATASET" ] && [ -n "$DATA" ] || { echo "run_benchmark.sh: --dataset and --root are required (see --help)" >&2; exit 2; }
[ -z "$TARGET" ] || [ -n "$TARGET_ROOT" ] || { echo "run_benchmark.sh: --target needs --target-root" >&2; exit 2; }

case "$PROFILE" in
  smoke) GEN_SIZE=64; GEN_WIDTH=0.125; GEN_BATCH=8; GEN_EPOCHS=1; GEN_LIMIT=2; PAIRS=12; PER_FOLDER=6; DUM_SIZE=64
         DUM_WIDTH=0.25; DUM_BATCH=8; DUM_EPOCHS=1; FRAMES_PER_VIDEO=3; NO_FACE=zero; EVAL_EVERY=1; EVAL_START=1
         LOADERS=0; IDENTITY=(--no-identity-loss);;
  paper) GEN_SIZE=256; GEN_WIDTH=1.0; GEN_BATCH=240; GEN_EPOCHS=200; GEN_LIMIT=0; PAIRS=34650; PER_FOLDER=99
         DUM_SIZE=256; DUM_WIDTH=1.0; DUM_BATCH=64; DUM_EPOCHS=1600; FRAMES_PER_VIDEO=40; NO_FACE=resample
         EVAL_EVERY=50; EVAL_START=200; LOADERS=8
         IP_MODEL="${IP_MODEL:-$HERE/ip_checkpoint/LightCNN_29Layers_V2_checkpoint.pth.tar}"
         [ -f "$IP_MODEL" ] || { echo "run_benchmark.sh: $IP_MODEL is missing: put the published LightCNN-29 v2 checkpoint there (ip_checkpoint/README.md) or pass --ip-model" >&2; exit 2; }
         IDENTITY=(--ip-model "$IP_MODEL");;
  *) echo "run_benchmark.sh: unknown profile $PROFILE (paper, smoke)" >&2; exit 2;;
esac

abspath() { case "$1" in /*|"") echo "$1";; *) echo "$PWD/$1";; esac; }
DATA="$(abspath "$DATA")"; TARGET_ROOT="$(abspath "$TARGET_ROOT")"; IP_MODEL="$(abspath "$IP_MODEL")"
PY="${PYTHON:-$(bash "$HERE/scripts/setup_env.sh")}"
export PYTHON="$PY" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
WORK="${WORK:-bench_work/${DATASET}${PROTOCOL:+_p$PROTOCOL}}"
mkdir -p "$WORK"; WORK="$(cd "$WORK" && pwd)"
[ "$FORCE" = 1 ] && rm -rf "$WORK/.done"
mkdir -p "$WORK/.done"
plan() { "$PY" -m data.benchmarks.plan "$@"; }
phase() {  # phase NAME COMMAND...: run unless its marker exists, then write the marker
  local name="$1"; shift
  if [ -f "$WORK/.done/$name" ]; then echo "== [$name] done earlier, skipped"; return; fi
  echo "== [$name] $(date +%T)"
  "$@"
  date +%s > "$WORK/.done/$name"
}
cd "$HERE"   # the stage scripts are addressed from the repository; every path below is absolute

phase "protocols" "$PY" data/make_protocol.py --dataset "$DATASET" --root "$DATA" ${PROTOCOL:+--protocol "$PROTOCOL"} \
  ${FOLD:+--fold "$FOLD"} --out "$WORK/protocols"
DATA_ROOT="$WORK/images"
prepare() {  # prepare CSV VIDEO_ROOT DATA_ROOT MAX_TRAIN_FRAMES STAGES [VAR=VALUE ...]
  local csv="$1" vroot="$2" droot="$3" maxf="$4" stages="$5"; shift 5
  if [[ " $stages " == *" frames "* ]] && [ "$maxf" != 0 ]; then   # SiW Protocol 1: train on the first frames only
    local lists; lists="$(dirname "$csv")/split_$(basename "${csv%.csv}")"; mkdir -p "$lists"
    plan subset "$csv" --splits train --out "$lists/train.csv" >/dev/null
    plan subset "$csv" --splits dev test --out "$lists/dev_test.csv" >/dev/null
    env PROTOCOL="$lists/train.csv" VIDEO_ROOT="$vroot" DATA_ROOT="$droot" MAX_FRAMES="$maxf" STAGES=frames \
      bash scripts/prepare_data.sh
    env PROTOCOL="$lists/dev_test.csv" VIDEO_ROOT="$vroot" DATA_ROOT="$droot" STAGES=frames bash scripts/prepare_data.sh
    stages="${stages/frames/}"
  fi
  env PROTOCOL="$csv" VIDEO_ROOT="$vroot" DATA_ROOT="$droot" STAGES="$stages" "$@" bash scripts/prepare_data.sh
}

target_data() {  # the target's test rows: frames, boxes, depth and crops of their own
  plan subset "$T_CSV" --splits test --out "$T_TEST" >/dev/null
  prepare "$T_TEST" "$T_VROOT" "$WORK/target/images" 0 "frames boxes depth crop" SPLITS=test CROP_ROOT="$T_CROPS" \
    IMAGE_SIZE="$DUM_SIZE"
}
if [ -n "$TARGET" ]; then
  phase "target_protocols" "$PY" data/make_protocol.py --dataset "$TARGET" --root "$TARGET_ROOT" --out "$WORK/target"
  T_NAME="$(plan folds --out "$WORK/target" --dataset "$TARGET" | head -n 1)"
  T_CSV="$WORK/target/$T_NAME.csv"; T_TEST="$WORK/target/${T_NAME}_test.csv"; T_CROPS="$WORK/target/crops"
  T_VROOT="$(plan get "$WORK/target/$T_NAME.json" video_root)"
  phase "target_data" target_data
fi

RUNS=()
for NAME in $(plan folds --out "$WORK/protocols" --dataset "$DATASET" ${PROTOCOL:+--protocol "$PROTOCOL"} ${FOLD:+--fold "$FOLD"}); do
  CSV="$WORK/protocols/$NAME.csv"; META="$WORK/protocols/$NAME.json"; F="$WORK/folds/$NAME"; CROPS="$F/crops"
  VROOT="$(plan get "$META" video_root)"; MAXF="$(plan get "$META" notes.train_max_frames --default 0)"
  TYPES="$(plan attack-types "$CSV")"
  phase "$NAME.data" prepare "$CSV" "$VROOT" "$DATA_ROOT" "$MAXF" "frames boxes depth list" \
    TRAIN_LIST="$F/train_list.txt" FRAMES_PER_VIDEO="$FRAMES_PER_VIDEO"
  phase "$NAME.generator" env IMG_ROOT="$DATA_ROOT" TRAIN_LIST="$F/train_list.txt" OUT="$F/generator" \
    bash train_generator.sh "${IDENTITY[@]}" --image-size "$GEN_SIZE" --width "$GEN_WIDTH" --batch-size "$GEN_BATCH" \
    --epochs "$GEN_EPOCHS" --limit-batches "$GEN_LIMIT" --workers "$LOADERS" --attack-types "$TYPES" \
    --test-epoch "$GEN_EPOCHS" --save-epoch "$GEN_EPOCHS"
  phase "$NAME.crop" prepare "$CSV" "$VROOT" "$DATA_ROOT" 0 "crop" CROP_ROOT="$CROPS" IMAGE_SIZE="$DUM_SIZE"
  phase "$NAME.generate" "$PY" generated.py --checkpoint "$F/generator/last.pt" --protocol "$CSV" --crop-root "$CROPS" \
    --num-pairs "$PAIRS" --frames-per-folder "$PER_FOLDER" --out-path "$F/generated" --output-size "$DUM_SIZE" \
    --on-no-face "$NO_FACE"
  phase "$NAME.train" env CROP_ROOT="$CROPS" PROTOCOL="$CSV" OUT_DIR="$F/cdcn_u" NPROC=1 bash DUM/train.sh \
    --image-size "$DUM_SIZE" --width "$DUM_WIDTH" --batch-size "$DUM_BATCH" --epochs "$DUM_EPOCHS" \
    --eval-every "$EVAL_EVERY" --eval-start "$EVAL_START" --workers "$LOADERS"
  phase "$NAME.test" env CHECKPOINT="$F/cdcn_u/best.pt" CROP_ROOT="$CROPS" PROTOCOL="$CSV" OUT_DIR="$F/test" \
    bash DUM/test.sh --workers "$LOADERS" --save-threshold
  plan mark "$F/test" --meta "$META" >/dev/null
  RUNS+=("$F/test")
  if [ -n "$TARGET" ]; then
    phase "$NAME.cross_$TARGET" env CHECKPOINT="$F/cdcn_u/best.pt" CROP_ROOT="$CROPS" PROTOCOL="$CSV" \
      OUT_DIR="$F/cross_$TARGET" bash DUM/test.sh --workers "$LOADERS" --test-list "$T_TEST" --test-crop-root "$T_CROPS"
    plan mark "$F/cross_$TARGET" --meta "$META" --target "$TARGET" >/dev/null
    RUNS+=("$F/cross_$TARGET")
  fi
done

"$PY" -m DUM.report "${RUNS[@]}" --out "$WORK/results.md"
echo "results: $WORK/results.md and $WORK/results.csv (profile $PROFILE)"
[ "$PROFILE" = paper ] || echo "The smoke profile checks the chain of stages; its numbers measure nothing."

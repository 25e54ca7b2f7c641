#!/usr/bin/env bash
# The whole DSDG pipeline in one command:
#   frames -> MTCNN boxes -> depth labels -> generator list -> (identity net) -> dual-VAE generator
#   -> sampling + protocol merge -> face crops -> CDCN + DUM training -> dev/test evaluation.
#
#   bash run_demo.sh                        # demo data made from public-domain portraits (~12 min, 2 CPUs)
#   bash run_demo.sh --smoke                # the smallest settings (CI)
#   bash run_demo.sh --data-root /data/Oulu_NPU --protocol 1 --profile paper \
#        --ip-model ip_checkpoint/LightCNN_29Layers_V2_checkpoint.pth.tar
#   bash run_demo.sh --protocol mydata.csv --data-root /data/mydata --profile demo   # any dataset
#
# --data-root holds Train_files/, Dev_files/, Test_files/ (videos) and protocols/Protocol_<p>/, or,
# with a CSV protocol (docs/DATA_LAYOUT.md), the files its path column names (default: its folder).
# Each phase is also its own script (scripts/prepare_data.sh, train_generator.sh, DUM/train.sh,
# DUM/test.sh); this one only chooses their settings. A rerun resumes: finished phases are skipped
# (their markers live in <work-dir>/.done/), and every stage itself skips finished items.
# The demo data shows the pipeline working; it measures nothing about accuracy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="demo_work"; VIDEO_ROOT=""; PROTOCOL_DIR=""; PROTOCOL=1; FOLD=""; PROFILE=""; IP_MODEL=""; FORCE=0; SEED=0
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; cat <<'EOT'
Options:
  --work-dir DIR      where every output goes (default demo_work)
  --data-root DIR     a real dataset (OULU-NPU layout) instead of the demo data
  --protocol-dir DIR  protocol folder (default <data-root>/protocols)
  --protocol P        OULU-NPU protocol 1-4 (default 1), or a CSV protocol file with a split column
                      (outputs then go to runs/<csv stem>/ unless --work-dir)
  --fold K            fold 1-6 of protocols 3 and 4
  --profile NAME      smoke | demo | paper (default: demo, or paper with --data-root)
  --smoke             same as --profile smoke
  --ip-model PATH     LightCNN-29 v2 checkpoint; without it the demo trains a small one on its own faces
  --seed N            seed of every stage that takes one (demo data, lists, crops, identity network,
                      generator, sampling, CDCN+DUM; default 0)
  --force             redo every phase (delete <work-dir>/.done)
EOT
}
while [ $# -gt 0 ]; do
  case "$1" in
    --work-dir) WORK="$2"; shift 2;;
    --data-root) VIDEO_ROOT="$2"; shift 2;;
    --protocol-dir) PROTOCOL_DIR="$2"; shift 2;;
    --protocol) PROTOCOL="$2"; shift 2;;
    --fold) FOLD="$2"; shift 2;;
    --profile) PROFILE="$2"; shift 2;;
    --smoke) PROFILE="smoke"; shift;;
    --ip-model) IP_MODEL="$2"; shift 2;;
    --seed) SEED="$2"; shift 2;;
    --force) FORCE=1; shift;;
    -h|--help) usage; exit 0;;
    *) echo "run_demo.sh: unknown option $1 (see --help)" >&2; exit 2;;
  esac
done
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "run_demo.sh: --seed takes a non-negative integer, got $SEED" >&2; exit 2; }
IS_CSV=0; [[ "$PROTOCOL" =~ ^[0-9]+$ ]] || IS_CSV=1
if [ "$IS_CSV" = 1 ]; then   # absolute paths: the phases below run inside the work folder
  [ -f "$PROTOCOL" ] || { echo "run_demo.sh: --protocol $PROTOCOL: no such file (an OULU-NPU number 1-4 or a CSV)" >&2; exit 2; }
  PROTOCOL="$(cd "$(dirname "$PROTOCOL")" && pwd)/$(basename "$PROTOCOL")"
  VIDEO_ROOT="${VIDEO_ROOT:-$(dirname "$PROTOCOL")}"
  [ "$WORK" != demo_work ] || WORK="runs/$(basename "${PROTOCOL%.*}")"
fi
[ -z "$VIDEO_ROOT" ] || VIDEO_ROOT="$(cd "$VIDEO_ROOT" && pwd)"
[ -n "$PROFILE" ] || { [ -n "$VIDEO_ROOT" ] && PROFILE=paper || PROFILE=demo; }
GEN_EVERY=""; DUM_EVAL=1; DUM_EVAL_START=1; DUM_LR=1e-4; DUM_STEP=500; LOADERS=0   # per-epoch previews/evaluation, no loader workers, unless set below

# Settings per profile: CPU-sized for smoke/demo, the paper's for real data.
case "$PROFILE" in
  smoke) USERS=6; FRAMES=3;  SIZE=320x240; GEN_SIZE=64;  GEN_WIDTH=0.125; GEN_BATCH=8;  GEN_EPOCHS=2; GEN_LIMIT=2;
         LCNN_WIDTH=0.125; LCNN_EPOCHS=2; PAIRS=24;  PER_FOLDER=6;  DUM_SIZE=64;  DUM_WIDTH=0.25; DUM_BATCH=8;
         DUM_EPOCHS=2; FRAMES_PER_VIDEO=3; NO_FACE=zero;;
  # demo: 30 users (10 per split: 100 train, 100 dev and 50 test videos); the generator list takes 5
  # frames per video, so the identity network and the generator see about as many faces as with 12
  # users. CDCN+DUM first predicts nearly flat maps for every face and only after several hundred
  # batches at 1e-3 lifts the live maps above the attacks' (README, "Demo results"): 150 epochs of 8.
  demo)  USERS=30; FRAMES=12; SIZE=320x240; GEN_SIZE=64;  GEN_WIDTH=0.25;  GEN_BATCH=16; GEN_EPOCHS=6; GEN_LIMIT=0;
         LCNN_WIDTH=0.25;  LCNN_EPOCHS=6; PAIRS=120; PER_FOLDER=10; DUM_SIZE=64; DUM_WIDTH=0.25; DUM_BATCH=16;
         DUM_EPOCHS=150; DUM_LR=1e-3; DUM_STEP=100; DUM_EVAL=10; DUM_EVAL_START=40; FRAMES_PER_VIDEO=5; NO_FACE=zero;;
  paper) GEN_SIZE=256; GEN_WIDTH=1.0; GEN_BATCH=240; GEN_EPOCHS=200; GEN_LIMIT=0; PAIRS=34650; PER_FOLDER=99;
         DUM_SIZE=256; DUM_WIDTH=1.0; DUM_BATCH=64; DUM_EPOCHS=1600; FRAMES_PER_VIDEO=40; NO_FACE=resample; GEN_EVERY=10; DUM_EVAL=50; DUM_EVAL_START=200; LOADERS=8;;
  *) echo "run_demo.sh: unknown profile $PROFILE (smoke, demo, paper)" >&2; exit 2;;
esac

PY="${DEMO_PYTHON:-$(bash "$ROOT/scripts/setup_env.sh")}"   # DEMO_PYTHON: an interpreter already set up (tests)
export PYTHON="$PY" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
[ "$FORCE" = 1 ] && rm -rf "$WORK/.done"
mkdir -p "$WORK/.done"
cd "$WORK"

DATA_ROOT="$WORK/oulu_images"; CROP_ROOT="$WORK/oulu_images_crop"
TAG="p${PROTOCOL}${FOLD:+_${FOLD}}"
TRAIN_LIST="$WORK/train_list/train_list_oulu_${TAG}.txt"
GEN_DIR="$WORK/model_oulu_${TAG}"; DUM_DIR="$WORK/CDCN_U_P${PROTOCOL}${FOLD:+_F${FOLD}}"
TEST_DIR="${DUM_DIR}_test"; PROTO_SUB="$CROP_ROOT/protocols/Protocol_${PROTOCOL}"; FAKE_DIR="$WORK/fake_images/oulu_${TAG}"
GEN_TYPES=""
if [ "$IS_CSV" = 1 ]; then  # names of any dataset: nothing named after OULU-NPU
  TAG="$(basename "${PROTOCOL%.*}")"; DATA_ROOT="$WORK/frames"; CROP_ROOT="$WORK/crops"
  TRAIN_LIST="$WORK/train_list.txt"; GEN_DIR="$WORK/generator"; DUM_DIR="$WORK/cdcn_u"; TEST_DIR="$WORK/test"
  PROTO_SUB="$CROP_ROOT/protocols"; FAKE_DIR="$WORK/generated"; GEN_TYPES=0   # 0: attack types from the data
fi
T0=$(date +%s)

phase() {  # phase NAME COMMAND...: run unless its marker exists, then write the marker
  local name="$1"; shift
  if [ -f "$WORK/.done/$name" ]; then echo "== [$name] done earlier (marker $WORK/.done/$name), skipped"; return; fi
  echo "== [$name] $(date +%T)"
  "$@"
  date +%s > "$WORK/.done/$name"
}

if [ -z "$VIDEO_ROOT" ]; then   # no --data-root: the demo data
  VIDEO_ROOT="$WORK/demo_data"
  phase demo_data "$PY" "$ROOT/demo/make_demo_data.py" --out "$VIDEO_ROOT" --users "$USERS" --frames "$FRAMES" --size "$SIZE" \
    --seed "$SEED"
fi
PROTOCOL_DIR="${PROTOCOL_DIR:-$VIDEO_ROOT/protocols}"
export VIDEO_ROOT DATA_ROOT CROP_ROOT PROTOCOL_DIR PROTOCOL FOLD TRAIN_LIST FRAMES_PER_VIDEO SEED
phase prepare env STAGES="frames boxes depth list" bash "$ROOT/scripts/prepare_data.sh"

if [ -z "$IP_MODEL" ]; then
  if [ "$PROFILE" = paper ]; then
    IP_MODEL="$ROOT/ip_checkpoint/LightCNN_29Layers_V2_checkpoint.pth.tar"
    [ -f "$IP_MODEL" ] || { echo "run_demo.sh: $IP_MODEL is missing: put the published LightCNN-29 v2 checkpoint there (see ip_checkpoint/README.md) or pass --ip-model" >&2; exit 2; }
    IP_WIDTH=1.0
  else
    # No published identity network ships with the project: train a small LightCNN-29 v2 on the
    # training users' faces (the real identity loss path, on demo identities).
    IP_MODEL="$WORK/lightcnn/LightCNN_29Layers_V2_checkpoint.pth.tar"; IP_WIDTH="$LCNN_WIDTH"
    phase identity_faces "$PY" "$ROOT/data/make_identity_folder.py" --data-root "$DATA_ROOT" \
      --train-list "$TRAIN_LIST" --out "$WORK/faces"
    phase lightcnn "$PY" "$ROOT/train_lightcnn.py" --data-root "$WORK/faces" --out-dir "$WORK/lightcnn" \
      --width "$LCNN_WIDTH" --epochs "$LCNN_EPOCHS" --batch-size 16 --optimizer adam --workers 0 --seed "$SEED"
  fi
else
  IP_WIDTH="${IP_WIDTH:-1.0}"
fi

phase generator env IMG_ROOT="$DATA_ROOT" TRAIN_LIST="$TRAIN_LIST" IP_MODEL="$IP_MODEL" OUT="$GEN_DIR" \
  bash "$ROOT/train_generator.sh" --image-size "$GEN_SIZE" --width "$GEN_WIDTH" --ip-width "$IP_WIDTH" \
  --batch-size "$GEN_BATCH" --epochs "$GEN_EPOCHS" --limit-batches "$GEN_LIMIT" --workers "$LOADERS" \
  --test-epoch "${GEN_EVERY:-$GEN_EPOCHS}" --save-epoch "${GEN_EVERY:-$GEN_EPOCHS}" --seed "$SEED" ${GEN_TYPES:+--attack-types "$GEN_TYPES"}

train_file="Train${FOLD:+_${FOLD}}.txt"; train_g="Train_g${FOLD:+_${FOLD}}.txt"
GEN_PROTOCOLS=(--protocol-in "$DATA_ROOT/protocols/Protocol_${PROTOCOL}/$train_file" --protocol-out "$PROTO_SUB/$train_g")
if [ "$IS_CSV" = 1 ]; then train_g="${TAG}_g.csv"; GEN_PROTOCOLS=(); fi   # generated.py: <crop-root>/protocols/<stem>_g.csv
phase crop env STAGES=crop IMAGE_SIZE="$DUM_SIZE" bash "$ROOT/scripts/prepare_data.sh"
phase generate "$PY" "$ROOT/generated.py" --checkpoint "$GEN_DIR/last.pt" --num-pairs "$PAIRS" \
  --frames-per-folder "$PER_FOLDER" --protocol "$PROTOCOL" ${FOLD:+--fold "$FOLD"} --crop-root "$CROP_ROOT" "${GEN_PROTOCOLS[@]}" \
  --out-path "$FAKE_DIR" --output-size "$DUM_SIZE" --on-no-face "$NO_FACE" --seed "$SEED"

phase dum_train env CROP_ROOT="$CROP_ROOT" PROTOCOL="$PROTOCOL" FOLD="$FOLD" OUT_DIR="$DUM_DIR" NPROC=1 \
  bash "$ROOT/DUM/train.sh" --image-size "$DUM_SIZE" --width "$DUM_WIDTH" --batch-size "$DUM_BATCH" \
  --epochs "$DUM_EPOCHS" --eval-every "$DUM_EVAL" --eval-start "$DUM_EVAL_START" --workers "$LOADERS" \
  --lr "$DUM_LR" --step-size "$DUM_STEP" --seed "$SEED"
phase dum_test env CHECKPOINT="$DUM_DIR/best.pt" CROP_ROOT="$CROP_ROOT" PROTOCOL="$PROTOCOL" OUT_DIR="$TEST_DIR" \
  bash "$ROOT/DUM/test.sh" ${FOLD:+--fold "$FOLD"} --save-threshold --workers "$LOADERS"
# one page for the whole run (cheap, so rebuilt every time): test metrics, training curves, sample grids
"$PY" "$ROOT/DUM/html_report.py" "$TEST_DIR" --train-dir "$DUM_DIR" --generator-dir "$GEN_DIR" \
  --title "DSDG pipeline ($PROFILE profile): $(basename "$TEST_DIR")"

echo
echo "================ DSDG pipeline finished ($(( $(date +%s) - T0 )) s this run; profile $PROFILE) ================"
[ -f "$TEST_DIR/report.txt" ] && cat "$TEST_DIR/report.txt"
echo
echo "Outputs:"
echo "  frames, boxes, depth maps   $DATA_ROOT/{train,dev,test}_{img,bbox,depth}_flod"
echo "  generator training list     $TRAIN_LIST"
echo "  generator run               $GEN_DIR"
for f in "$GEN_DIR"/previews/*fake_live*.png; do [ -f "$f" ] && echo "  generator sample grid       $f"; done
echo "  merged protocol             $PROTO_SUB/$train_g"
echo "  CDCN+DUM run                $DUM_DIR (best.pt, last.pt, metrics.csv)"
echo "  scores and metrics          $TEST_DIR"
for f in "$TEST_DIR"/*.png; do [ -f "$f" ] && echo "  plot                        $f"; done
if [ "$PROFILE" != paper ] && [ "$IS_CSV" = 1 ]; then
  echo "The $PROFILE profile checks the chain of stages on this data with CPU-sized networks; its numbers measure little."
elif [ "$PROFILE" != paper ]; then
  echo "The demo data shows the pipeline working; it measures nothing about accuracy."
fi
echo
echo "Report (open in a browser): $TEST_DIR/report.html"

#!/usr/bin/env bash
# The DUM ablation in one command: {CDCN, DepthNet, ResNet-18} x {without DUM, with DUM} x
# {real only, real + generated}, trained under one set of settings and one seed (DUM/train.py),
# each tested on the protocol's test list at its dev threshold (DUM/test.py), then one table with
# both metric rows, training time and training images/s per cell (python -m DUM.ablation).
#
#   bash run_demo.sh && bash scripts/ablation.sh          # demo data, demo profile (README: time on 2 CPUs)
#   bash scripts/ablation.sh --crop-root /data/oulu_images_crop --protocol 1 --profile paper --out-dir runs/ablation_p1
#
# "real only" trains on the protocol's Train list, "real + generated" on Train_g (generated.py
# writes it; run_demo.sh makes both from the demo data). "without DUM" trains the backbone with a
# single ReLU depth head (cdcn, depthnet, resnet18: MSE + contrastive depth loss), "with DUM" its
# _u network (cdcn_u, depthnet_u, resnet18_u: + KL, scored by mu). A rerun skips finished cells.
# On demo data the table shows the commands working; it measures nothing about accuracy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CROP_ROOT="demo_work/oulu_images_crop"; PROTOCOL=1; FOLD=""; OUT=""; PROFILE="demo"; SEED=0; FORCE=0
BACKBONES="cdcn depthnet resnet18"; DATAS="real realgen"; DUMS="no yes"; EXTRA=()
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; cat <<'EOT'
Options:
  --crop-root DIR   crop tree with protocols/Protocol_<p>/{Train,Train_g,Dev,Test}.txt (default demo_work/oulu_images_crop)
  --protocol P      OULU-NPU protocol 1-4 (default 1)
  --fold K          fold 1-6 of protocols 3 and 4
  --profile NAME    smoke | demo | paper: image size, width, epochs, batch, evaluation (default demo)
  --seed S          seed of every cell (default 0)
  --out-dir DIR     runs and the table (default <crop-root>/../ablation_<profile>)
  --backbones LIST  subset of "cdcn depthnet resnet18" (default all three)
  --force           retrain cells that finished earlier
  -- FLAGS...       passed to every DUM/train.py run (e.g. -- --amp --device cuda)
EOT
}
while [ $# -gt 0 ]; do
  case "$1" in
    --crop-root) CROP_ROOT="$2"; shift 2;;
    --protocol) PROTOCOL="$2"; shift 2;;
    --fold) FOLD="$2"; shift 2;;
    --profile) PROFILE="$2"; shift 2;;
    --seed) SEED="$2"; shift 2;;
    --out-dir) OUT="$2"; shift 2;;
    --backbones) BACKBONES="$2"; shift 2;;
    --force) FORCE=1; shift;;
    --) shift; EXTRA=("$@"); break;;
    -h|--help) usage; exit 0;;
    *) echo "ablation.sh: unknown option $1 (see --help)" >&2; exit 2;;
  esac
done

# One set of settings for every cell. demo/smoke: CPU-sized (evaluated once, at the last epoch);
# paper: DUM/train.sh's values.
case "$PROFILE" in
  smoke) SETTINGS=(--image-size 32 --width 0.125 --batch-size 8 --epochs 1 --eval-start 1 --eval-every 1 --workers 0);;
  demo)  SETTINGS=(--image-size 64 --width 0.25 --batch-size 16 --epochs 3 --eval-start 3 --eval-every 3 --workers 0);;
  paper) SETTINGS=(--image-size 256 --width 1.0 --batch-size 64 --epochs 1600 --eval-start 200 --eval-every 50 --workers 8);;
  *) echo "ablation.sh: unknown profile $PROFILE (smoke, demo, paper)" >&2; exit 2;;
esac

PY="${PYTHON:-$(bash "$ROOT/scripts/setup_env.sh")}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
[ -d "$CROP_ROOT" ] || { echo "ablation.sh: crop tree $CROP_ROOT not found (bash run_demo.sh makes the demo one)" >&2; exit 2; }
CROP_ROOT="$(cd "$CROP_ROOT" && pwd)"
OUT="${OUT:-$(dirname "$CROP_ROOT")/ablation_${PROFILE}}"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
PROTO_DIR="$CROP_ROOT/protocols/Protocol_${PROTOCOL}"
declare -A LISTS=([real]="$PROTO_DIR/Train${FOLD:+_${FOLD}}.txt" [realgen]="$PROTO_DIR/Train_g${FOLD:+_${FOLD}}.txt")
for d in $DATAS; do
  [ -f "${LISTS[$d]}" ] || { echo "ablation.sh: ${LISTS[$d]} not found (Train_g comes from generated.py; run_demo.sh makes it)" >&2; exit 2; }
done

T0=$(date +%s)
for backbone in $BACKBONES; do
  for dum in $DUMS; do
    model="$backbone"; [ "$dum" = yes ] && model="${backbone}_u"
    for data in $DATAS; do
      cell="$OUT/${model}_${data}"
      if [ "$FORCE" = 0 ] && [ -f "$cell/test/metrics.json" ]; then echo "== $model / $data: done earlier, skipped"; continue; fi
      rm -rf "$cell"
      echo "== $model / $data  $(date +%T)"
      "$PY" "$ROOT/DUM/train.py" --crop-root "$CROP_ROOT" --protocol "$PROTOCOL" ${FOLD:+--fold "$FOLD"} \
        --train-list "${LISTS[$data]}" --model "$model" --seed "$SEED" --out-dir "$cell" "${SETTINGS[@]}" "${EXTRA[@]}"
      "$PY" "$ROOT/DUM/test.py" --checkpoint "$cell/best.pt" --crop-root "$CROP_ROOT" --protocol "$PROTOCOL" \
        ${FOLD:+--fold "$FOLD"} --out-dir "$cell/test" --workers 0 --no-plots --no-report
    done
  done
done
"$PY" "$ROOT/DUM/ablation.py" --runs-dir "$OUT"
echo "ablation finished in $(( $(date +%s) - T0 )) s; table: $OUT/ablation.md"

#!/usr/bin/env bash
# The main job, end to end on the CPU:
#   embedded default dataset (a generated archive in the real CIFAR-10 python format)
#   -> tools/make_rec.py (train.rec/test.rec + manifest, verified)
#   -> train_model.py --network=resnet_igc --primary-partition=24 --secondary-partition=2
#      (depth 20, a short schedule)
#   -> log, checkpoints and a train/test error curve (PNG) under runs/main/.
#
#   scripts/main.sh                      the embedded default (about 4 minutes on 2 cores)
#   scripts/main.sh --data-dir DIR       train on DIR/train.rec and DIR/test.rec instead
#   scripts/main.sh [...] --num-epochs 8 any further options go to train_model.py
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
PY=.venv/bin/python
RUN=${IGC_RUN_DIR:-runs/main}

data_dir=""
if [ "${1:-}" = "--data-dir" ]; then
  data_dir=$2
  shift 2
fi

num_train=2000
num_test=400   # one full test batch of the CIFAR preset (400): no padded, repeated images
if [ -z "$data_dir" ]; then
  data_dir=$RUN/data/rec
  archive=$RUN/data/cifar-10-python.tar.gz
  echo "[main] 1/4 embedded dataset: $archive ($num_train train / $num_test test images, 10 classes)"
  "$PY" tools/make_synthetic_cifar.py "$archive" --num-train $num_train --num-test $num_test --seed 0
  echo "[main] 2/4 RecordIO: $data_dir"
  "$PY" tools/make_rec.py cifar10 "$archive" "$data_dir" --workers 2 --quiet
  "$PY" tools/make_rec.py verify "$data_dir"
  size_args=(--num-examples $num_train --num-epochs 6)
else
  echo "[main] using $data_dir"
  size_args=()
fi

echo "[main] 3/4 training resnet_igc (L=24, M=2, depth 20) on the CPU"
log=$RUN/train.log
rm -rf "$log" "$RUN/weights"   # a re-run starts a fresh log and fresh checkpoints
"$PY" train_model.py --network=resnet_igc --primary-partition=24 --secondary-partition=2 \
    --depth=20 --dataset=cifar10 --data-dir="$data_dir" --batch-size=32 --rand-seed=0 \
    --gpus= --log-dir="$RUN/" --log-file="$log" --model-prefix="$RUN/weights/resnet_igc" \
    --checkpoint-epochs=2 --log-iters=20 "${size_args[@]}" "$@"

echo "[main] 4/4 curve"
"$PY" tools/plot_curves.py "$log" -o "$RUN/curve.png" --labels "resnet_igc L24M2 d20"
echo "[main] done: log $log, checkpoints $RUN/weights/, curve $RUN/curve.png"

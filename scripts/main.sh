#!/usr/bin/env bash
# The main job, end to end on the CPU: a dataset -> igc-make-rec (records + manifest,
# verified) -> train_model.py with resnet_igc L=24, M=2, depth 20 -> igc-evaluate on the
# last checkpoint -> the train/test error curve (PNG), all under runs/<dataset>/.
#
#   scripts/main.sh                          the embedded default: a small generated archive
#                                            in the real CIFAR-10 format (about 5 minutes)
#   scripts/main.sh --dataset fashion-mnist  the real Fashion-MNIST, 3 epochs (about half an
#                                            hour on 2 CPUs); needs `apt-get install
#                                            dataset-fashion-mnist` (as root)
#   scripts/main.sh --data-dir DIR [--dataset D]
#                                            your own DIR/train.rec and DIR/test.rec
#   scripts/main.sh [...] --num-epochs 8     any further options go to train_model.py
set -euo pipefail
cd "$(dirname "$0")/.."

dataset=embedded
data_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dataset) dataset=$2; shift 2 ;;
    --data-dir) data_dir=$2; shift 2 ;;
    *) break ;;
  esac
done
FASHION_MNIST=${IGC_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ "$dataset" = fashion-mnist ] && [ -z "$data_dir" ] &&
   [ ! -f "$FASHION_MNIST/train-images-idx3-ubyte.gz" ]; then
  echo "[main] the real Fashion-MNIST is not in $FASHION_MNIST: install it with" >&2
  echo "         apt-get install dataset-fashion-mnist        (as root)" >&2
  echo "       or set IGC_FASHION_MNIST to a folder holding its four IDX files" >&2
  exit 1
fi

scripts/setup.sh
PY=.venv/bin/python
RUN=${IGC_RUN_DIR:-runs/$([ "$dataset" = embedded ] && echo main || echo "$dataset")}

train_args=()
if [ -n "$data_dir" ]; then
  echo "[main] 1-2/5 using $data_dir"
  [ "$dataset" = embedded ] && dataset=cifar10
elif [ "$dataset" = embedded ]; then
  dataset=cifar10
  num_train=2000
  num_test=400   # one full test batch of the CIFAR preset (400): no padded, repeated images
  data_dir=$RUN/data/rec
  archive=$RUN/data/cifar-10-python.tar.gz
  echo "[main] 1/5 embedded dataset: $archive ($num_train train / $num_test test images, 10 classes)"
  "$PY" tools/make_synthetic_cifar.py "$archive" --num-train $num_train --num-test $num_test --seed 0
  echo "[main] 2/5 RecordIO: $data_dir"
  "$PY" tools/make_rec.py cifar10 "$archive" "$data_dir" --workers 2 --quiet
  "$PY" tools/make_rec.py verify "$data_dir"
  train_args=(--num-examples $num_train --num-epochs 6 --batch-size 32)
elif [ "$dataset" = fashion-mnist ]; then
  data_dir=$RUN/data/rec
  echo "[main] 1/5 the real Fashion-MNIST: $FASHION_MNIST"
  echo "[main] 2/5 RecordIO: $data_dir"
  "$PY" tools/make_rec.py fashion-mnist "$FASHION_MNIST" "$data_dir" --workers 2 --quiet
  "$PY" tools/make_rec.py verify "$data_dir"
  train_args=(--num-epochs 3 --batch-size 64 --log-iters 100)
else
  echo "[main] --dataset $dataset needs --data-dir (or use fashion-mnist, or no --dataset)" >&2
  exit 2
fi

echo "[main] 3/5 training resnet_igc (L=24, M=2, depth 20) on $dataset on the CPU"
log=$RUN/train.log
prefix=$RUN/weights/resnet_igc
rm -rf "$log" "$RUN/weights"   # a re-run starts a fresh log and fresh checkpoints
start=$(date +%s)
"$PY" train_model.py --network=resnet_igc --primary-partition=24 --secondary-partition=2 \
    --depth=20 --dataset="$dataset" --data-dir="$data_dir" --rand-seed=0 --gpus= \
    --log-dir="$RUN/" --log-file="$log" --model-prefix="$prefix" --checkpoint-epochs=2 \
    --log-iters=20 "${train_args[@]}" "$@"
echo "[main] trained in $(( $(date +%s) - start )) s"

echo "[main] 4/5 igc-evaluate on the last checkpoint"
last=$(ls "$prefix"-*.params | sed 's/.*-0*\([0-9][0-9]*\)\.params$/\1/' | sort -n | tail -n 1)
"$PY" tools/evaluate.py --prefix "$prefix" --epoch "$last" --dataset "$dataset" \
    --data-dir "$data_dir" --json "$RUN/evaluate.json" --quiet

echo "[main] 5/5 curve"
"$PY" tools/plot_curves.py "$log" -o "$RUN/curve.png" --labels "resnet_igc L24M2 d20"
echo "[main] done: log $log, checkpoints $RUN/weights/, scores $RUN/evaluate.json, curve $RUN/curve.png"

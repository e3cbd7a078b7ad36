#!/usr/bin/env bash
# The CPU benchmarks, side by side with PyTorch, in one run (bench/run_all.py):
# results as JSON and markdown tables in bench/results/. Run it on an idle machine.
#   scripts/bench.sh                 every benchmark, 5 repeats
#   scripts/bench.sh --repeat 9      more repeats (any option of bench/run_all.py)
# PyTorch lives in its own environment (.venv-torch), ONNX Runtime in .venv-ort
# (scripts/setup_ort.sh): one framework per process, so none inherits another's
# OpenMP runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
TORCH_VENV=${IGC_TORCH_VENV:-.venv-torch}
if ! "$TORCH_VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[bench] installing torch==2.13.0 (CPU) into $TORCH_VENV"
  [ -x "$TORCH_VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$TORCH_VENV"
  "$TORCH_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      --retries 1 --extra-index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" \
      torch==2.13.0 numpy
fi
scripts/setup_ort.sh
ort_venv=${IGC_ORT_VENV:-.venv-ort}
case $ort_venv in /*) ;; *) ort_venv=$PWD/$ort_venv ;; esac
export IGC_ORT_PYTHON=${IGC_ORT_PYTHON:-$ort_venv/bin/python}
exec .venv/bin/python bench/run_all.py --torch-python "$TORCH_VENV/bin/python" "$@"

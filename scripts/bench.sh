#!/usr/bin/env bash
# The CPU benchmarks, side by side with PyTorch, in one run (bench/run_all.py):
# results as JSON and markdown tables in bench/results/. Run it on an idle machine.
#   scripts/bench.sh                 every benchmark, 5 repeats
#   scripts/bench.sh --repeat 9      more repeats (any option of bench/run_all.py)
# PyTorch lives in its own environment (.venv-torch), ONNX Runtime in .venv-ort
# (scripts/side_envs.sh): one framework per process, so none inherits another's
# OpenMP runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/side_envs.sh
exec .venv/bin/python bench/run_all.py --torch-python "$IGC_TORCH_PYTHON" "$@"

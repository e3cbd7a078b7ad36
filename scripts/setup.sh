#!/usr/bin/env bash
# Creates .venv with the pinned packages and builds + installs igc_mx (editable,
# so Python edits are live; re-run this after changing C++/CUDA sources).
# Safe to re-run: it reuses the venv and rebuilds incrementally.
#   PYTHON=python3.11 scripts/setup.sh      choose the interpreter
#   IGC_GPU=cu112 scripts/setup.sh           GPU: mxnet-cu112==1.9.1 and the CUDA 11
#                                            runtime libraries it loads, and the ops
#                                            built with CUDA (needs nvcc)
#   IGC_USE_CUDA=ON scripts/setup.sh         CPU MXNet, ops built with CUDA too
#   IGC_SETUP_DRY_RUN=1 scripts/setup.sh     print what would be installed and built
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${IGC_VENV:-.venv}
GPU=${IGC_GPU:-}

case "$GPU" in
  "")
    requirements=(-r requirements.txt)
    other_mxnet=mxnet-cu112 ;;
  cu112)
    requirements=(-r "$VENV/requirements-without-mxnet.txt" -r requirements-gpu-cu112.txt)
    other_mxnet=mxnet
    export IGC_USE_CUDA=ON ;;
  *)
    echo "[setup] IGC_GPU=$GPU: expected cu112 (mxnet-cu112==1.9.1), or unset for the CPU" >&2
    exit 1 ;;
esac
requirements+=(-r requirements-test.txt -r requirements-build.txt)

if [ "${IGC_USE_CUDA:-OFF}" = "ON" ]; then
  nvcc=${CUDACXX:-$(command -v nvcc || true)}
  if [ -z "$nvcc" ] || [ ! -x "$nvcc" ]; then
    echo "[setup] the ops' CUDA kernels are built with nvcc, and none was found. Install" \
         "a CUDA toolkit (11.2 to 11.8 matches mxnet-cu112; a newer one works where the" \
         "GPU driver supports it) and put its bin/ on PATH, or set CUDACXX=/path/to/nvcc." >&2
    exit 1
  fi
fi
if [ -n "$GPU" ]; then
  echo "[setup] GPU: mxnet-cu112 1.9.1 runs on GPUs from sm_50 to sm_86 (it has no code for" \
       "newer ones, such as Hopper); the igc_mx ops are built for the architectures of" \
       "cmake/CudaArchitectures.cmake"
fi
if [ -n "${IGC_SETUP_DRY_RUN:-}" ]; then
  echo "[setup] would install: ${requirements[*]}"
  echo "[setup] would build: IGC_USE_CUDA=${IGC_USE_CUDA:-OFF}${nvcc:+ CUDACXX=$nvcc}"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.requirements.sha256"
want=$( (echo "gpu=$GPU"; cat requirements*.txt) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned packages${GPU:+ ($GPU)}"
  grep -v '^mxnet==' requirements.txt > "$VENV/requirements-without-mxnet.txt"
  # One MXNet at a time: the CPU and GPU wheels both provide the mxnet package.
  "$PY" -m pip uninstall --quiet --yes "$other_mxnet" 2>/dev/null || true
  "$PY" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
  if [ -n "$GPU" ]; then
    "$PY" scripts/link_cuda_libraries.py
  fi
  echo "$want" > "$stamp"
fi

echo "[setup] building and installing igc_mx (CMake${IGC_USE_CUDA:+, IGC_USE_CUDA=$IGC_USE_CUDA})"
"$PY" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps \
    -e .
"$PY" -c "import igc_mx, mxnet; print('[setup] igc_mx ready:', igc_mx.build_info()['path'], '| mxnet', mxnet.__version__)" 2>/dev/null \
  || { echo "[setup] import igc_mx failed:"; "$PY" -c "import igc_mx"; exit 1; }

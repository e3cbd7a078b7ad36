#!/usr/bin/env bash
# Creates .venv with the pinned packages and builds + installs igc_mx (editable,
# so Python edits are live; re-run this after changing C++/CUDA sources).
# Safe to re-run: it reuses the venv and rebuilds incrementally.
#   PYTHON=python3.11 scripts/setup.sh      choose the interpreter
#   IGC_USE_CUDA=ON scripts/setup.sh         also build the CUDA kernels (needs nvcc)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${IGC_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

stamp="$VENV/.requirements.sha256"
want=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned packages"
  "$PY" -m pip install --quiet --disable-pip-version-check \
      -r requirements.txt -r requirements-test.txt -r requirements-build.txt
  echo "$want" > "$stamp"
fi

echo "[setup] building and installing igc_mx (CMake)"
"$PY" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps \
    -e .
"$PY" -c "import igc_mx, mxnet; print('[setup] igc_mx ready:', igc_mx.build_info()['path'], '| mxnet', mxnet.__version__)" 2>/dev/null \
  || { echo "[setup] import igc_mx failed:"; "$PY" -c "import igc_mx"; exit 1; }

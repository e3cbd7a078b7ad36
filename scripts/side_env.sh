#!/usr/bin/env bash
# Creates or reuses a side environment: a venv holding one requirements file, for a
# framework that cannot share MXNet 1.9.1's (ONNX Runtime and PyTorch need numpy >= 1.24,
# MXNet < 1.24). Safe to re-run: a stamp of the requirements file skips a venv that is
# up to date. Without network access it says so and returns 0: the tests that need the
# environment then skip (and fail under CI).
#   scripts/side_env.sh VENV REQUIREMENTS MODULE    e.g. .venv-ort requirements-ort.txt onnxruntime
set -uo pipefail
cd "$(dirname "$0")/.."
venv=$1 requirements=$2 module=$3
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$venv/bin/python" -c "import $module" 2>/dev/null; then
  exit 0
fi
echo "[side_env] installing $requirements into $venv"
if { [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"; } &&
   "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --retries 1 \
       -r "$requirements"; then
  echo "$want" > "$stamp"
else
  echo "[side_env] could not install $requirements into $venv: the tests that need $module will skip"
fi
exit 0

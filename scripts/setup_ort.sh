#!/usr/bin/env bash
# Creates .venv-ort with ONNX Runtime (requirements-ort.txt): its own environment, since
# ONNX Runtime needs numpy >= 1.24 and MXNet 1.9.1 needs numpy < 1.24. Safe to re-run.
# Without network access it says so and returns 0: the ONNX Runtime tests then skip
# (and fail under CI).
#   IGC_ORT_VENV=DIR scripts/setup_ort.sh     another location
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${IGC_ORT_VENV:-.venv-ort}
stamp="$VENV/.requirements.sha256"
want=$(sha256sum requirements-ort.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$VENV/bin/python" -c "import onnxruntime" 2>/dev/null; then
  exit 0
fi
echo "[setup_ort] installing ONNX Runtime into $VENV (requirements-ort.txt)"
if { [ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"; } &&
   "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --retries 1 \
       -r requirements-ort.txt; then
  echo "$want" > "$stamp"
else
  echo "[setup_ort] could not install ONNX Runtime into $VENV: the tests that need it will skip"
fi
exit 0

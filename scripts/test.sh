#!/usr/bin/env bash
# The test command of the README and of CI: set up (idempotent), lint, then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/test_reorder.py -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "[test] ruff check (rules in pyproject.toml)"
.venv/bin/ruff check .
echo "[test] clang-format --dry-run -Werror (style in .clang-format)"
find src \( -name '*.cc' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print0 | xargs -0 .venv/bin/clang-format --dry-run -Werror
source scripts/side_envs.sh   # ONNX Runtime and PyTorch, the tests' references
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"

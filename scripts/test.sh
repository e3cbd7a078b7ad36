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
# Two test processes (four from 8 cores, one on a single core); each file runs wholly
# in one of them, so a module's fixtures are built once. OpenMP threads are shared
# out: MXNet's spinning threads slow each other down badly on oversubscribed cores.
cores=$(nproc)
workers=$(( cores >= 8 ? 4 : (cores >= 2 ? 2 : 1) ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores / workers ))}
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile "$@"

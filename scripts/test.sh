#!/usr/bin/env bash
# The test command of the README and of CI: set up (idempotent), lint, then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/test_reorder.py -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "[test] ruff check (rules in pyproject.toml)"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"

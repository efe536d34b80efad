#!/usr/bin/env bash
# Sets up the environment (tools/setup_env.sh --label-studio) and runs the test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh" --label-studio  # the Label Studio tests run against a real server
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest tests "$@"

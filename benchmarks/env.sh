# Sourced by the benchmark scripts: the repository root as the working folder, this checkout's code first on
# PYTHONPATH (run long jobs from a git worktree), one thread per run unless OMP_NUM_THREADS says otherwise,
# unbuffered logs, the usual library warnings off, and $PY, the project's interpreter.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning,ignore::UserWarning}"
PY="$ROOT/.venv/bin/python"

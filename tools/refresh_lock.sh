#!/usr/bin/env bash
# Makes requirements.lock: every package that tools/setup_env.sh installs into .venv, one version each, with the
# sha256 of every file the package registry has for that version, resolved for CPython 3.11 on Linux x86-64.
#
#   bash tools/refresh_lock.sh             # add what the requirement files gained; keep every other pin
#   bash tools/refresh_lock.sh --upgrade   # re-resolve everything to the newest versions the requirements allow
#   bash tools/refresh_lock.sh --check     # exit 1 when the lock does not match the requirement files (no writes)
#
# Its inputs: requirements.txt, requirements-test.txt, the torch pins of tools/setup_env.sh, the label-studio extra
# (requirements-label-studio.txt: requests) and `wheel` (setup_env.sh re-packs the registry Detectron2 wheel with it). Detectron2 itself
# is not in the lock: setup_env.sh installs it without dependencies from a pinned commit or a pinned wheel hash.
# It uses uv (pinned below) from a throwaway environment under ${TMPDIR:-/tmp}, never .venv. Then rerun
# tools/setup_env.sh (the lock is part of its fingerprint) and the tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_PIN="uv==0.13.8"
source "$ROOT/tools/setup_env.sh"  # TORCH_PINS, LOCK (defines only; runs nothing)

mode=keep
case "${1:-}" in
"") ;;
--upgrade) mode=upgrade ;;
--check) mode=check ;;
*) echo "usage: bash tools/refresh_lock.sh [--upgrade|--check]" >&2; exit 2 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3.11 -m venv "$work/uv"
"$work/uv/bin/python" -m pip --disable-pip-version-check install -q "$UV_PIN"

# the label-studio extra (pyproject.toml reads it from this file), its comments dropped
extras="$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$ROOT/requirements-label-studio.txt")"
{
    printf '%s\n' "${TORCH_PINS[@]}"
    echo "$extras"
    echo "wheel"
} > "$work/setup_env.in"

args=(pip compile --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
      --custom-compile-command "bash tools/refresh_lock.sh"
      "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" "$work/setup_env.in")
case "$mode" in
keep|check) cp "$LOCK" "$work/out.lock" 2>/dev/null || true ;;  # its pins are uv's preferences
upgrade) args+=(--upgrade) ;;
esac
(cd "$ROOT" && "$work/uv/bin/uv" "${args[@]}" -o "$work/out.lock")
# uv names the files given by absolute paths in its "# via" comments: keep them repository-relative
sed -e "s#$ROOT/##g" -e "s#$work/setup_env.in#tools/setup_env.sh#g" "$work/out.lock" > "$work/final.lock"
if [[ "$mode" == check ]]; then
    if ! diff -u "$LOCK" "$work/final.lock"; then
        echo "requirements.lock does not match the requirement files: run bash tools/refresh_lock.sh" >&2
        exit 1
    fi
    echo "requirements.lock matches the requirement files"
    exit 0
fi
cp "$work/final.lock" "$LOCK"
echo "wrote $LOCK ($(grep -c '^[A-Za-z0-9]' "$LOCK") packages); now run bash tools/setup_env.sh and the tests"

#!/usr/bin/env bash
# Sets up (or checks) the project's virtual environment in <repo>/.venv.
#
# The one install script: tools/quickstart.sh, tools/run_tests.sh and the README all call it.
# Idempotent: when the environment already matches the requirement files it returns in a second or two.
#
# Steps
#   1. .venv with Python 3.11 (PYTHON=... to choose the interpreter)
#   2. torch==2.14.1 torchvision==0.29.1
#   3. Detectron2, by the first route that works:
#        source    github answers within a few seconds: the official source, compiled with its C++/CUDA ops
#        registry  otherwise: the sal-detectron2==0.7.2 wheel (Detectron2 main, mid-2024) re-tagged as pure
#                  Python with its CPython-3.10 `_C` extension removed
#      DETECTRON2_ROUTE=source|registry forces one route.
#   4. requirements.txt (Detectron2's runtime requirements and ours), requirements-test.txt
#   5. this project, editable (pip install -e .)
#   6. with --label-studio (tools/run_tests.sh passes it): the label-studio extra (pip install -e .[label-studio],
#      the REST client) in .venv, and the Label Studio server (label-studio, pinned below) in its own environment
#      .venv-ls, because its pinned dependencies clash with ours; the tests start it from there
# It never downloads model weights or data.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3.11}"
TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")
D2_WHEEL_NAME="sal-detectron2==0.7.2"
D2_GIT="git+https://github.com/facebookresearch/detectron2.git"
STAMP="$VENV/.wssdl_setup_stamp"
STEP="start"
LS_VENV="$ROOT/.venv-ls"
LS_PIN="label-studio==1.23.2"
LABEL_STUDIO=0
for arg in "$@"; do
    case "$arg" in
    --label-studio) LABEL_STUDIO=1 ;;
    *) echo "[setup] unknown option '$arg' (the only one is --label-studio)" >&2; exit 2 ;;
    esac
done

say() { echo "[setup] $*"; }
on_error() {
    local rc=$?
    echo "[setup] FAILED at step: $STEP (exit code $rc)" >&2
    echo "[setup] fix the problem above and run tools/setup_env.sh again; finished steps are not repeated" >&2
    exit "$rc"
}
trap on_error ERR

fingerprint() {
    # Everything that decides what the environment must contain.
    cat "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" "$ROOT/setup.py" "${BASH_SOURCE[0]}" \
        | sha256sum | cut -d' ' -f1
}

setup_label_studio() {
    STEP="install the label-studio extra (pip install -e .[label-studio])"
    if ! "$VENV/bin/python" -c "import requests" 2>/dev/null; then
        say "installing this project's label-studio extra (the REST client)"
        "$VENV/bin/python" -m pip --disable-pip-version-check install -q -c "$VENV/.torch-constraints.txt" \
            -e "$ROOT[label-studio]"
    fi
    STEP="install the Label Studio server ($LS_PIN) into $LS_VENV"
    if [[ "$(cat "$LS_VENV/.wssdl_label_studio" 2>/dev/null)" != "$LS_PIN" || ! -x "$LS_VENV/bin/label-studio" ]]; then
        say "installing $LS_PIN into $LS_VENV (its own environment: its pinned dependencies clash with .venv's)"
        [[ -x "$LS_VENV/bin/python" ]] || "$PYTHON" -m venv "$LS_VENV"
        "$LS_VENV/bin/python" -m pip --disable-pip-version-check install -q "$LS_PIN"
        rm -f "$LS_VENV/wssdl_migrated.sqlite3"
        echo "$LS_PIN" > "$LS_VENV/.wssdl_label_studio"
    fi
    STEP="migrate an empty Label Studio database ($LS_VENV/wssdl_migrated.sqlite3)"
    if [[ ! -f "$LS_VENV/wssdl_migrated.sqlite3" ]]; then
        say "migrating an empty Label Studio database once (each test server starts from a copy of it)"
        "$VENV/bin/python" -c "from wssdl_d2.active.ls_server import migrate_template as m; m('$LS_VENV/bin/label-studio')" \
            || say "warning: the migration failed; each test server will migrate its own database (slower start)"
    fi
    say "Label Studio server ready: $LS_VENV/bin/label-studio ($LS_PIN)"
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" ]] \
    && "$VENV/bin/python" -c "import torch, detectron2, wssdl_d2" 2>/dev/null; then
    say "environment up to date: $VENV (detectron2 route: $(cat "$VENV/.detectron2_route" 2>/dev/null || echo unknown))"
    if [[ "$LABEL_STUDIO" == 1 ]]; then setup_label_studio; fi
    exit 0
fi

STEP="create virtual environment"
if [[ ! -x "$VENV/bin/python" ]]; then
    command -v "$PYTHON" >/dev/null || { echo "[setup] $PYTHON not found; set PYTHON=/path/to/python3.11" >&2; false; }
    say "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
    || { echo "[setup] $VENV is not Python 3.11; remove it and rerun" >&2; false; }

STEP="install torch"
if ! "$PY" -c "import torch, torchvision, sys; sys.exit(not (torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1')))" 2>/dev/null; then
    say "installing ${TORCH_PINS[*]}"
    "${PIP[@]}" install -q "${TORCH_PINS[@]}"
fi
# Every later install is constrained to this torch, so no requirement can pull another one.
CONSTRAINTS="$VENV/.torch-constraints.txt"
printf '%s\n' "${TORCH_PINS[@]}" > "$CONSTRAINTS"

STEP="install requirements"
say "installing requirements.txt and requirements-test.txt"
"${PIP[@]}" install -q -c "$CONSTRAINTS" -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"

STEP="install detectron2"
if "$PY" -c "import detectron2" 2>/dev/null; then
    say "detectron2 already installed ($(cat "$VENV/.detectron2_route" 2>/dev/null || echo 'route unknown'))"
else
    route="${DETECTRON2_ROUTE:-}"
    if [[ -z "$route" ]]; then
        if timeout 5 git ls-remote -q https://github.com/facebookresearch/detectron2.git HEAD >/dev/null 2>&1; then
            route=source
        else
            route=registry
        fi
    fi
    case "$route" in
    source)
        STEP="install detectron2 from github source (compiles C++/CUDA ops)"
        say "github answers: building Detectron2 from $D2_GIT"
        "${PIP[@]}" install -c "$CONSTRAINTS" --no-build-isolation "$D2_GIT"
        ;;
    registry)
        STEP="install detectron2 from the registry wheel $D2_WHEEL_NAME"
        say "github unreachable: installing $D2_WHEEL_NAME re-packed as pure Python (no _C extension)"
        work="$(mktemp -d)"
        "${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version 3.10 "$D2_WHEEL_NAME" -d "$work/dl"
        "${PIP[@]}" install -q wheel
        "$PY" -m wheel unpack -d "$work/unpacked" "$work"/dl/*.whl
        pkgdir="$(ls -d "$work"/unpacked/*/)"
        rm -f "$pkgdir"/detectron2/_C*.so
        wheelfile="$(ls "$pkgdir"/*.dist-info/WHEEL)"
        sed -i -e 's/^Tag: .*/Tag: py3-none-any/' -e 's/^Root-Is-Purelib: .*/Root-Is-Purelib: true/' "$wheelfile"
        mkdir -p "$work/packed"
        "$PY" -m wheel pack -d "$work/packed" "$pkgdir"
        "${PIP[@]}" install -q --no-deps "$work"/packed/*.whl
        rm -rf "$work"
        ;;
    *)
        echo "[setup] DETECTRON2_ROUTE must be 'source' or 'registry', not '$route'" >&2
        false
        ;;
    esac
    echo "$route" > "$VENV/.detectron2_route"
fi

STEP="install wssdl_d2 (editable)"
say "installing this project (pip install -e .)"
"${PIP[@]}" install -q -c "$CONSTRAINTS" --no-deps -e "$ROOT"

STEP="check imports"
"$PY" - <<'EOF'
import torch, torchvision, detectron2, wssdl_d2
from detectron2.modeling import build_model  # noqa: F401
print("[setup] imports ok: torch", torch.__version__, "detectron2", detectron2.__version__,
      "(cuda)" if torch.cuda.is_available() else "(cpu)")
EOF
fingerprint > "$STAMP"
say "ready: $VENV (torch $("$PY" -c 'import torch; print(torch.__version__)'), detectron2 route: $(cat "$VENV/.detectron2_route"))"
if [[ "$LABEL_STUDIO" == 1 ]]; then setup_label_studio; fi

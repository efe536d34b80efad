#!/usr/bin/env bash
# Sets up (or checks) the project's virtual environment in <repo>/.venv.
#
# The one install script: tools/quickstart.sh, tools/run_tests.sh and the README all call it.
# Idempotent: when the environment already matches the lock and this script it returns in a second or two.
#
# Steps
#   1. .venv with Python 3.11 (PYTHON=... to choose the interpreter)
#   2. requirements.lock, with every hash checked (pip install --require-hashes): torch==2.14.1 torchvision==0.29.1,
#      requirements.txt (Detectron2's runtime requirements and ours), requirements-test.txt, the label-studio extra's
#      client (requests) and `wheel`, each at one version. tools/refresh_lock.sh makes the lock.
#   3. Detectron2, without its own dependency list (they all come from the lock), by one of two routes:
#        source    upstream facebookresearch/detectron2 at commit $D2_COMMIT, compiled with its C++/CUDA ops
#        registry  the sal-detectron2==0.7.2 wheel (the same upstream commit, see docs/INSTALL.md), its sha256
#                  checked against $D2_WHEEL_SHA256 before anything is unpacked, re-tagged as pure Python with its
#                  CPython-3.10 `_C` extension removed
#      DETECTRON2_ROUTE=source|registry chooses; unset, an installed pinned route is kept, else github is probed
#      (answers within 5 s: source, otherwise registry).
#   4. this project, editable (pip install -e ., no dependencies, no build isolation)
#   5. with --label-studio (tools/run_tests.sh passes it): the Label Studio server (label-studio, pinned below) in its
#      own environment .venv-ls, because its pinned dependencies clash with ours; the tests start it from there
# It never downloads model weights or data.
#
# `source tools/setup_env.sh` only defines the pins and functions (tools/refresh_lock.sh and the tests read them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3.11}"
LOCK="$ROOT/requirements.lock"
TORCH_PINS=("torch==2.14.1" "torchvision==0.29.1")
D2_REPO="https://github.com/facebookresearch/detectron2.git"
D2_COMMIT="a59f05630a8f205756064244bf5beb8661f96180"  # 2024-04-17, the code of the registry wheel below
D2_WHEEL_NAME="sal-detectron2==0.7.2"
D2_WHEEL_SHA256="491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"  # the original upload
STAMP="$VENV/.wssdl_setup_stamp"
STEP="start"
LS_VENV="$ROOT/.venv-ls"
LS_PIN="label-studio==1.23.2"

say() { echo "[setup] $*"; }
on_error() {
    local rc=$?
    echo "[setup] FAILED at step: $STEP (exit code $rc)" >&2
    echo "[setup] fix the problem above and run tools/setup_env.sh again; finished steps are not repeated" >&2
    exit "$rc"
}

fingerprint() {
    # Everything that decides what the environment must contain.
    cat "$LOCK" "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" "$ROOT/requirements-label-studio.txt" \
        "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" \
        | sha256sum | cut -d' ' -f1
}

# What .venv/.detectron2_route records for a route: the route and the pin it installed.
d2_pin() {
    case "$1" in
    source) echo "source $D2_REPO@$D2_COMMIT" ;;
    registry) echo "registry $D2_WHEEL_NAME sha256:$D2_WHEEL_SHA256" ;;
    *) echo "[setup] DETECTRON2_ROUTE must be 'source' or 'registry', not '$1'" >&2; return 2 ;;
    esac
}

# verify_sha256 FILE EXPECTED: 0 when FILE's sha256 is EXPECTED, else a clear message and 1.
verify_sha256() {
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    if [[ "$got" != "$2" ]]; then
        echo "[setup] $(basename "$1"): sha256 $got is not the pinned $2;" \
             "refusing to install it (the file on the registry changed, or the download is not the audited wheel)" >&2
        return 1
    fi
}

# choose_route: DETECTRON2_ROUTE, else the pinned route already installed, else the network probe.
choose_route() {
    local recorded
    if [[ -n "${DETECTRON2_ROUTE:-}" ]]; then
        d2_pin "$DETECTRON2_ROUTE" >/dev/null || return 2
        echo "$DETECTRON2_ROUTE"
        return
    fi
    recorded="$(cat "$VENV/.detectron2_route" 2>/dev/null || true)"
    for route in source registry; do
        if [[ "$recorded" == "$(d2_pin "$route")" ]]; then echo "$route"; return; fi
    done
    if timeout 5 git ls-remote -q "$D2_REPO" HEAD >/dev/null 2>&1; then echo source; else echo registry; fi
}

install_d2_source() {
    say "building Detectron2 from $D2_REPO at $D2_COMMIT (compiles its C++/CUDA ops; dependencies from the lock)"
    "${PIP[@]}" install --no-deps --no-build-isolation "git+$D2_REPO@$D2_COMMIT"
}

install_d2_registry() {
    local work wheels pkgdir wheelfile
    say "installing $D2_WHEEL_NAME (upstream $D2_COMMIT) re-packed as pure Python (no _C extension)"
    work="$(mktemp -d)"
    "${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version 3.10 "$D2_WHEEL_NAME" -d "$work/dl"
    wheels=("$work"/dl/*.whl)
    if [[ ${#wheels[@]} != 1 || ! -f "${wheels[0]}" ]]; then
        echo "[setup] pip download of $D2_WHEEL_NAME gave ${#wheels[@]} wheel file(s), expected one" >&2
        rm -rf "$work"; return 1
    fi
    verify_sha256 "${wheels[0]}" "$D2_WHEEL_SHA256" || { rm -rf "$work"; return 1; }
    say "$(basename "${wheels[0]}"): sha256 matches the pin"
    "$PY" -m wheel unpack -d "$work/unpacked" "${wheels[0]}"
    pkgdir="$(ls -d "$work"/unpacked/*/)"
    rm -f "$pkgdir"/detectron2/_C*.so
    wheelfile="$(ls "$pkgdir"/*.dist-info/WHEEL)"
    sed -i -e 's/^Tag: .*/Tag: py3-none-any/' -e 's/^Root-Is-Purelib: .*/Root-Is-Purelib: true/' "$wheelfile"
    mkdir -p "$work/packed"
    "$PY" -m wheel pack -d "$work/packed" "$pkgdir"
    "${PIP[@]}" install -q --no-deps "$work"/packed/*.whl
    rm -rf "$work"
}

setup_label_studio() {
    STEP="check the label-studio extra (requests, from the lock)"
    "$VENV/bin/python" -c "import requests" \
        || { echo "[setup] requests is missing from $VENV although requirements.lock lists it" >&2; false; }
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

main() {
    local label_studio=0 route wanted
    for arg in "$@"; do
        case "$arg" in
        --label-studio) label_studio=1 ;;
        *) echo "[setup] unknown option '$arg' (the only one is --label-studio)" >&2; exit 2 ;;
        esac
    done
    trap on_error ERR

    STEP="choose the Detectron2 route"
    route="$(choose_route)"
    wanted="$(d2_pin "$route")"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" \
          && "$(cat "$VENV/.detectron2_route" 2>/dev/null)" == "$wanted" ]] \
        && "$VENV/bin/python" -c "import torch, detectron2, wssdl_d2" 2>/dev/null; then
        say "environment up to date: $VENV (detectron2: $wanted)"
        if [[ "$label_studio" == 1 ]]; then setup_label_studio; fi
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

    STEP="install requirements.lock (every hash checked)"
    say "installing requirements.lock (${TORCH_PINS[*]}, requirements.txt, requirements-test.txt, pinned and hashed)"
    "${PIP[@]}" install -q --require-hashes -r "$LOCK"
    "$PY" -c "import torch, torchvision, sys; sys.exit(not (torch.__version__.startswith('2.14.1') and torchvision.__version__.startswith('0.29.1')))" \
        || { echo "[setup] the lock did not give ${TORCH_PINS[*]}" >&2; false; }

    STEP="install detectron2 ($wanted)"
    if [[ "$(cat "$VENV/.detectron2_route" 2>/dev/null)" == "$wanted" ]] && "$PY" -c "import detectron2" 2>/dev/null; then
        say "detectron2 already installed ($wanted)"
    else
        if [[ -n "${DETECTRON2_ROUTE:-}" ]]; then
            say "Detectron2 route '$route' (DETECTRON2_ROUTE)"
        else
            say "Detectron2 route '$route' (github probe; DETECTRON2_ROUTE=source|registry chooses)"
        fi
        rm -f "$VENV/.detectron2_route"
        "${PIP[@]}" uninstall -q -y detectron2 sal-detectron2 2>/dev/null || true
        "install_d2_$route"
        echo "$wanted" > "$VENV/.detectron2_route"
    fi

    STEP="install wssdl_d2 (editable)"
    say "installing this project (pip install -e .)"
    "${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

    STEP="check imports"
    "$PY" - <<'PYEOF'
import torch, torchvision, detectron2, wssdl_d2
from detectron2.modeling import build_model  # noqa: F401
print("[setup] imports ok: torch", torch.__version__, "detectron2", detectron2.__version__,
      "(cuda)" if torch.cuda.is_available() else "(cpu)")
PYEOF
    fingerprint > "$STAMP"
    say "ready: $VENV (torch $("$PY" -c 'import torch; print(torch.__version__)'), detectron2: $(cat "$VENV/.detectron2_route"))"
    if [[ "$label_studio" == 1 ]]; then setup_label_studio; fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi

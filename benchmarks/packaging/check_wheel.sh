#!/usr/bin/env bash
# The pip-install route, end to end: build wssdl_d2's wheel, install it into a clean Python 3.11 environment under a
# temporary folder (torch and torchvision at the pins of tools/setup_env.sh, Detectron2 by setup_env.sh's registry
# route, everything else from the wheel's own dependency list), then, from a folder outside the repository:
#   wssdl-train --help
#   wssdl-demo --input IMAGE --output OUT       (the shipped default model, no config, no weights given)
#   python -c "from wssdl_d2 import model_zoo; print(model_zoo.get_config_file('BUSI/wssdl.yaml'))"
# Everything it made (environment, wheel, outputs) is removed when it ends. Needs the package registry (or pip's
# cache); several GB of disk for the environment while it runs.
#
#   bash benchmarks/packaging/check_wheel.sh path/to/scan.png
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE="$(realpath "${1:?usage: bash benchmarks/packaging/check_wheel.sh IMAGE}")"
source "$ROOT/tools/setup_env.sh"  # TORCH_PINS and install_d2_registry (sourcing defines only; runs nothing)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
step() { echo "[check_wheel] $*"; }

step "building the wheel (from a copy of the files it is made of: the checkout gets no build/ folder)"
mkdir -p "$work/source"
cp -r "$ROOT"/{pyproject.toml,README.md,requirements.txt,requirements-test.txt,requirements-label-studio.txt,configs} \
    "$work/source/"
cp -a "$ROOT/wssdl_d2" "$work/source/"  # -a keeps wssdl_d2/model_zoo/configs a link to ../../configs
find "$work/source" -name __pycache__ -prune -exec rm -rf {} +
python3.11 -m pip --disable-pip-version-check wheel -q --no-deps -w "$work/dist" "$work/source"
WHEEL="$(ls "$work"/dist/wssdl_d2-*.whl)"
step "built $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"

step "a clean environment: python3.11 -m venv"
python3.11 -m venv "$work/venv"
PY="$work/venv/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q "${TORCH_PINS[@]}" wheel
install_d2_registry  # setup_env.sh's function: the checked registry wheel, without its dependency list
step "installing the wheel with its dependencies"
"${PIP[@]}" install -q "$WHEEL"
# every declared requirement is met, but Detectron2's own list (black, numpy<2), which setup_env.sh skips as this
# script does (--no-deps): the lock and this environment run numpy 2 and need no black
problems="$("${PIP[@]}" check 2>&1 | grep -v '^sal-detectron2 ' || true)"
if [[ -n "$problems" && "$problems" != "No broken requirements found." ]]; then
    echo "$problems" >&2
    exit 1
fi

outside="$work/elsewhere"
mkdir -p "$outside"
cd "$outside"
step "wssdl-train --help (from $outside)"
"$work/venv/bin/wssdl-train" --help | head -3
step "wssdl-demo on $(basename "$IMAGE")"
"$work/venv/bin/wssdl-demo" --input "$IMAGE" --output "$outside/demo"
ls "$outside/demo"
step "model_zoo.get_config_file('BUSI/wssdl.yaml')"
"$PY" -c "from wssdl_d2 import model_zoo; print(model_zoo.get_config_file('BUSI/wssdl.yaml'))"
"$PY" -c "
import os, wssdl_d2
from wssdl_d2 import model_zoo
path = model_zoo.get_config_file('BUSI/wssdl.yaml')
assert path.startswith(os.path.dirname(wssdl_d2.__file__)), path  # the installed package's copy
cfg = model_zoo.get_config('BUSI/wssdl.yaml')  # its _BASE_ chain resolves inside the package too
print('wssdl_d2', wssdl_d2.__version__, 'from', os.path.dirname(wssdl_d2.__file__),
      '- config', cfg.MODEL.META_ARCHITECTURE)
"
step "every console command answers --help"
for command in "$work"/venv/bin/wssdl-*; do
    "$command" --help >/dev/null || { echo "[check_wheel] $(basename "$command") --help failed" >&2; exit 1; }
done
step "ok: $(ls "$work"/venv/bin/wssdl-* | wc -l) console commands; removing $work"

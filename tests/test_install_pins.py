"""tools/setup_env.sh builds one environment whatever the route: every package from requirements.lock (one version
each, hashed), Detectron2 without its own dependencies from a pinned upstream commit or a registry wheel whose sha256
is checked before it is unpacked, the route an explicit choice, and one Python version everywhere.

Fast and offline: the script is sourced (it then only defines its pins and functions) and its Detectron2 steps run
with pip, python and git replaced by recorders. A real install from the lock is measured in docs/INSTALL.md."""
import hashlib
import os
import re
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETUP_ENV = os.path.join(ROOT, "tools", "setup_env.sh")
LOCK = os.path.join(ROOT, "requirements.lock")
# docs/INSTALL.md and the audit of the wheel (shared docs, DETECTRON2_INSTALL.md) give these two
WHEEL_SHA256 = "491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"
UPSTREAM_COMMIT_PREFIX = "a59f0563"
pytestmark = pytest.mark.timeout(120)


def bash(script, env=None, cwd=None):
    """Run ``script`` in bash after sourcing setup_env.sh; (returncode, stdout, stderr)."""
    full = f'source "{SETUP_ENV}"\n{script}'
    proc = subprocess.run(["bash", "-c", full], capture_output=True, text=True, timeout=60, cwd=cwd or ROOT,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout, proc.stderr


def shell_value(name):
    code, out, err = bash(f'printf "%s\\n" "${{{name}[@]}}"')
    assert code == 0, err
    return out.split("\n")[:-1]


def requirement_lines(path):
    lines = open(path).read().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def read_lock():
    """{canonical name: (version, [hashes])} of requirements.lock (pip's hash-checking format)."""
    text = open(LOCK).read().replace("\\\n", " ")
    pins = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        spec, *hashes = line.split("--hash=")
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", spec.strip())
        assert match, f"requirements.lock: not a pin: {line[:120]}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"requirements.lock pins {name} twice"
        pins[name] = (match.group(2), [h.strip() for h in hashes])
    return pins


def pyproject():
    """pyproject.toml, parsed."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_the_lock_pins_every_requirement_once_with_hashes():
    pins = read_lock()
    assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for _, hashes in pins.values() for h in hashes)
    assert all(hashes for _, hashes in pins.values()), [n for n, (_, h) in pins.items() if not h]
    extras = {name: requirement_lines(os.path.join(ROOT, spec["file"][0])) for name, spec in
              pyproject()["tool"]["setuptools"]["dynamic"]["optional-dependencies"].items()}
    wanted = (requirement_lines(os.path.join(ROOT, "requirements.txt"))
              + requirement_lines(os.path.join(ROOT, "requirements-test.txt")) + extras["label-studio"]
              + shell_value("TORCH_PINS") + ["wheel"])
    environment = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
                   "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                   "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    for line in wanted:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(environment):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{line}: not in requirements.lock (run bash tools/refresh_lock.sh)"
        assert req.specifier.contains(pins[name][0], prereleases=True), \
            f"{line}: requirements.lock has {name}=={pins[name][0]} (run bash tools/refresh_lock.sh)"
    # torch exactly as setup_env.sh pins it; Detectron2 is not in the lock (it comes without dependencies)
    assert pins["torch"][0] == "2.14.1" and pins["torchvision"][0] == "0.29.1"
    assert shell_value("TORCH_PINS") == ["torch==2.14.1", "torchvision==0.29.1"]
    assert not {"detectron2", "sal-detectron2"} & set(pins)
    # Detectron2's own runtime needs come from the lock (upstream caps iopath below 0.1.10)
    assert {"fvcore", "iopath", "pycocotools", "omegaconf", "hydra-core", "yacs"} <= set(pins)


def test_setup_env_installs_the_lock_with_hashes_and_one_python():
    script = open(SETUP_ENV).read()
    assert re.search(r'install -q --require-hashes -r "\$LOCK"', script)
    assert shell_value("LOCK") == [LOCK]
    assert pyproject()["project"]["requires-python"] == ">=3.11"
    assert "sys.version_info[:2] == (3, 11)" in script
    assert "--python-version 3.11" in open(os.path.join(ROOT, "tools", "refresh_lock.sh")).read()


def test_the_detectron2_pins_are_full_and_documented():
    (commit,), (sha,) = shell_value("D2_COMMIT"), shell_value("D2_WHEEL_SHA256")
    assert re.fullmatch(r"[0-9a-f]{40}", commit) and commit.startswith(UPSTREAM_COMMIT_PREFIX)
    assert sha == WHEEL_SHA256
    install = open(os.path.join(ROOT, "docs", "INSTALL.md")).read()
    assert commit in install and sha in install


@pytest.fixture
def recorders(tmp_path):
    """pip, python and git replaced: each call appends its arguments to calls.txt; `pip download` writes
    ``wheel.bin`` as the downloaded wheel."""
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("git", "fakepy"):
        (fake / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n')
        (fake / tool).chmod(0o755)
    script = f'''
fake_pip() {{
    echo "pip $*" >> "{calls}"
    if [[ "$1" == download ]]; then
        local dest="${{@: -1}}"
        mkdir -p "$dest"; cp "{tmp_path}/wheel.bin" "$dest/sal_detectron2-0.7.2-cp310-none-any.whl"
    fi
}}
PIP=(fake_pip); PY="{fake}/fakepy"; VENV="{tmp_path}/venv"; PATH="{fake}:$PATH"
'''
    return calls, script, tmp_path


def test_a_wheel_with_another_sha256_is_refused_before_unpacking(recorders):
    calls, script, tmp = recorders
    (tmp / "wheel.bin").write_bytes(b"PK\x03\x04 not the audited wheel")
    got = hashlib.sha256((tmp / "wheel.bin").read_bytes()).hexdigest()
    code, _, err = bash(script + "install_d2_registry")
    assert code != 0
    assert got in err and WHEEL_SHA256 in err and "refusing to install" in err, err
    recorded = calls.read_text()
    assert "pip download" in recorded and "wheel unpack" not in recorded and "pip install" not in recorded
    # the pinned digest is the one compared: the same check passes on a file with that digest
    code, _, err = bash(script + f'D2_WHEEL_SHA256="{got}"; verify_sha256 "{tmp}/wheel.bin" "$D2_WHEEL_SHA256"')
    assert code == 0, err


def test_the_source_route_builds_the_pinned_commit_without_dependencies(recorders):
    calls, script, _ = recorders
    code, _, err = bash(script + "install_d2_source")
    assert code == 0, err
    (line,) = calls.read_text().splitlines()
    commit = shell_value("D2_COMMIT")[0]
    assert line.split()[:2] == ["pip", "install"] and "--no-deps" in line.split()
    assert line.split()[-1] == f"git+https://github.com/facebookresearch/detectron2.git@{commit}"


def test_the_route_is_a_choice_and_the_probe_only_a_default(recorders):
    calls, script, tmp = recorders
    for route in ("source", "registry"):  # chosen: no probe
        code, out, err = bash(script + "choose_route", env={"DETECTRON2_ROUTE": route})
        assert code == 0 and out.strip() == route, err
    code, _, err = bash(script + "choose_route", env={"DETECTRON2_ROUTE": "conda"})
    assert code != 0 and "must be 'source' or 'registry'" in err
    assert not calls.exists()
    # unset, with a pinned route installed: kept, no probe
    (tmp / "venv").mkdir()
    code, _, _ = bash(script + 'd2_pin source > "$VENV/.detectron2_route"')
    code, out, err = bash(script + "choose_route", env={"DETECTRON2_ROUTE": ""})
    assert code == 0 and out.strip() == "source" and not calls.exists(), err
    # unset, nothing pinned installed (or an unpinned install of an older script): the probe decides
    (tmp / "venv" / ".detectron2_route").write_text("source\n")
    code, out, err = bash(script + "choose_route", env={"DETECTRON2_ROUTE": ""})
    assert code == 0 and out.strip() in ("source", "registry") and "git ls-remote" in calls.read_text(), err

"""wssdl_d2 as an installable package (pyproject.toml): every console command imports and has ``main``, every
tools/<name>.py is a thin shim over wssdl_d2.cli.<name>, the wheel carries the zoo configs and the shipped models,
its metadata has one version and no torch / Detectron2, and importing the package scans no dataset folder.

The wheel is built here (no network, no install: pip wheel without build isolation, from a copy of the files the
wheel is made of); benchmarks/packaging/check_wheel.sh installs one into a clean environment and runs the commands."""
import ast
import glob
import importlib
import inspect
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: What the wheel is built from (pyproject.toml names these).
WHEEL_SOURCES = ["pyproject.toml", "README.md", "requirements.txt", "requirements-test.txt",
                 "requirements-label-studio.txt", "wssdl_d2", "configs"]


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def cli_modules():
    """The command modules of wssdl_d2/cli (not its kit: tool.py, default_model.py)."""
    names = [os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "wssdl_d2", "cli", "*.py"))]
    return sorted(n for n in names if n not in ("__init__", "tool", "default_model"))


def test_every_console_command_imports_and_has_main():
    scripts = pyproject()["project"]["scripts"]
    assert scripts["wssdl-train"] == "wssdl_d2.cli.train_net:main"
    assert all(name.startswith("wssdl-") and "_" not in name for name in scripts)
    for name, target in scripts.items():
        module_name, function = target.split(":")
        main = getattr(importlib.import_module(module_name), function)
        assert callable(main) and list(inspect.signature(main).parameters) == ["argv"], name
    assert {t.split(":")[0].rsplit(".", 1)[1] for t in scripts.values()} <= set(cli_modules())


def test_every_tool_is_a_thin_shim_over_its_cli_module():
    tools = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "tools", "*.py")))
    assert tools == cli_modules()
    for name in tools:
        tree = ast.parse(open(os.path.join(ROOT, "tools", f"{name}.py")).read())
        imports = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
        assert [(i.module, [a.name for a in i.names]) for i in imports] == [(f"wssdl_d2.cli.{name}", ["main"])], name
        assert ast.get_docstring(tree), name
        assert sum(isinstance(node, ast.FunctionDef) for node in ast.walk(tree)) == 0, name


def test_the_version_is_written_once():
    import wssdl_d2

    dynamic = pyproject()["tool"]["setuptools"]["dynamic"]
    assert dynamic["version"] == {"attr": "wssdl_d2.__version__"} and wssdl_d2.__version__
    assert "version" not in pyproject()["project"] and not os.path.exists(os.path.join(ROOT, "setup.py"))


def test_importing_wssdl_d2_scans_no_dataset_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "train.json").write_text("[]")
    code = ("import wssdl_d2; from detectron2.data import DatasetCatalog; "
            "print('mine_train' in DatasetCatalog.list()); "
            "print(wssdl_d2.register_prepared_datasets()); print(wssdl_d2.register_prepared_datasets())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, WSSDL_DATASETS=str(tmp_path), PYTHONWARNINGS="ignore"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[:3] == ["False", "['mine_train']", "[]"]  # registered when asked, once


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel of the package, built offline from a copy of its sources: its path."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in WHEEL_SOURCES:
        path = os.path.join(ROOT, name)
        if os.path.isdir(path):
            shutil.copytree(path, source / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, source / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-q", "-w", str(out), str(source)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (path,) = glob.glob(str(out / "wssdl_d2-*.whl"))
    return path


def test_the_wheel_carries_the_configs_and_the_shipped_models(wheel):
    import wssdl_d2

    names = set(zipfile.ZipFile(wheel).namelist())
    configs = [os.path.relpath(p, os.path.join(ROOT, "configs"))
               for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)]
    assert configs and {f"wssdl_d2/model_zoo/configs/{c}" for c in configs} <= names
    shipped = [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "wssdl_d2", "model_zoo", "trained", "*",
                                                                        "*", "*"))]
    assert len(shipped) >= 9 and set(shipped) | {"wssdl_d2/model_zoo/checkpoints.json"} <= names
    assert {f"wssdl_d2/cli/{name}.py" for name in cli_modules()} <= names
    assert not [n for n in names if n.split("/")[0] not in ("wssdl_d2", f"wssdl_d2-{wssdl_d2.__version__}.dist-info")]


def test_the_wheel_metadata_one_version_console_commands_and_no_torch(wheel):
    import wssdl_d2

    archive = zipfile.ZipFile(wheel)
    info = f"wssdl_d2-{wssdl_d2.__version__}.dist-info"
    metadata = archive.read(f"{info}/METADATA").decode().splitlines()
    assert f"Version: {wssdl_d2.__version__}" in metadata and "Requires-Python: >=3.11" in metadata
    requires = [line.split(":", 1)[1].strip() for line in metadata if line.startswith("Requires-Dist:")]
    runtime = [r for r in requires if "extra ==" not in r]
    assert not [r for r in requires if r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
                in ("torch", "torchvision", "detectron2")]
    assert any(r.startswith("safetensors") for r in runtime) and any(r.startswith("tensorboard") for r in runtime)
    assert not [r for r in runtime if r.startswith(("pytest", "hypothesis", "black", "setuptools", "requests"))]
    assert any(r.startswith("requests") and 'extra == "label-studio"' in r for r in requires)
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    for name, target in pyproject()["project"]["scripts"].items():
        assert f"{name} = {target}" in entry_points

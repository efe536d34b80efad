"""No config file a user is given can run code, and a bad config ends with one ``error: <file>: <problem>`` line.

Detectron2's ``CfgNode.merge_from_file`` reads YAML unsafely by default: ``!!python/object/apply:os.system`` in a
config would run. Every entry point that reads a config (a ``--config-file``, a ``_BASE_`` it names, a run folder's
``config.yaml`` read back by eval_checkpoints / adapt_site / cross-validation / the results table, a lab zoo index's
shipped config) is given such a file here, and the marker file the payload would create must not appear. Each tool
runs as a user runs it (a subprocess of ``tools/<tool>.py``) where it takes the file on its command line.
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wssdl_d2.config import merge_config
from wssdl_d2.config_file import ConfigError, read_config_file

ROOT = Path(__file__).resolve().parent.parent
PHANTOM = ROOT / "configs" / "Phantom"
REFUSED = "refused: the file holds a Python object tag"


def evil_yaml(path, marker, base=None):
    """A config at ``path`` whose loading with an unsafe YAML loader would create ``marker``."""
    text = f"_BASE_: {base}\n" if base else ""
    path.write_text(text + f'SEED: !!python/object/apply:os.system ["touch {marker}"]\n')
    return path


@pytest.fixture
def env(phantom_root):
    return dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1",
                WSSDL_DATASETS=str(Path(phantom_root).parent))


def _run(argv, env, cwd):
    return subprocess.run([sys.executable, str(ROOT / "tools" / argv[0])] + argv[1:], capture_output=True, text=True,
                          timeout=300, env=env, cwd=str(cwd))


def _run_folder(folder, config_text):
    """A run folder holding ``config.yaml`` (``config_text``) and a checkpoint file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(config_text)
    (folder / "model_final.pth").write_bytes(b"not read: the config is refused first")
    (folder / "model_0000003.pth").write_bytes(b"not read: the config is refused first")
    return folder


# name -> function(tmp_path, evil config path, marker) -> argv after "tools/"; the file named in the error
ENTRY_POINTS = {
    "train_net --config-file": lambda t, e, m: (["train_net.py", "--config-file", str(e), "OUTPUT_DIR",
                                                 str(t / "out")], e),
    "train_net _BASE_": lambda t, e, m: (["train_net.py", "--config-file",
                                          str(_child(t / "child.yaml", e)), "OUTPUT_DIR", str(t / "out")], e),
    "eval_checkpoints (a run's config.yaml)": lambda t, e, m: (
        ["eval_checkpoints.py", str(_run_folder(t / "run", e.read_text()))], t / "run" / "config.yaml"),
    "adapt_site --from (config.yaml beside it)": lambda t, e, m: (
        ["adapt_site.py", "--from", str(_run_folder(t / "run", e.read_text()) / "model_final.pth"), "--site-train",
         "testphantom_train_weak_30", "--out", str(t / "adapted")], t / "run" / "config.yaml"),
    "adapt_site --resume (the run's config.yaml)": lambda t, e, m: (
        ["adapt_site.py", "--from", str(_run_folder(t / "src", "SEED: 1\n") / "model_final.pth"), "--resume", "--out",
         str(_run_folder(t / "adapted", e.read_text()))], t / "adapted" / "config.yaml"),
    "self_train --config-file": lambda t, e, m: (["self_train.py", "--config-file", str(e), "--output-dir",
                                                  str(t / "st")], e),
    "demo --config-file": lambda t, e, m: (["demo.py", "--config-file", str(e), "--input", str(e)], e),
}


def _child(path, base):
    path.write_text(f"_BASE_: {base}\nSOLVER:\n  MAX_ITER: 2\n")
    return path


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_every_tool_refuses_a_config_that_would_run_code(entry_point, env, tmp_path):
    marker = tmp_path / "code_ran"
    evil = evil_yaml(tmp_path / "evil.yaml", marker)
    argv, named = ENTRY_POINTS[entry_point](tmp_path, evil, marker)
    proc = _run(argv, env, tmp_path)
    assert not marker.exists(), f"{entry_point} ran the code in a config file"
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and f"{named}: {REFUSED}" in last, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_the_model_zoo_refuses_a_lab_index_config_that_would_run_code(tmp_path, monkeypatch):
    from wssdl_d2 import model_zoo

    marker = tmp_path / "code_ran"
    evil = evil_yaml(tmp_path / "config.yaml", marker)
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"never read")
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"format": 1, "models": {"Phantom/strong_only.yaml": {
        "packaged": "model.pth", "sha256": sha(weights), "config": {"path": "config.yaml", "sha256": sha(evil)}}}}))
    monkeypatch.setenv("WSSDL_MODEL_INDEX", str(index))
    with pytest.raises(ConfigError, match=REFUSED) as err:
        model_zoo.get_config("Phantom/strong_only.yaml", trained=True)
    assert err.value.path == str(evil)
    assert not marker.exists()


def test_cross_validation_and_the_results_table_refuse_a_run_config_that_would_run_code(tmp_path, phantom_root):
    from wssdl_d2.crossval.external import evaluate_run_on
    from wssdl_d2.crossval.runs import CrossValError, RunSpec, fold_config
    from wssdl_d2.evaluation.runs import boxed_images

    marker = tmp_path / "code_ran"
    evil = evil_yaml(tmp_path / "evil.yaml", marker)
    run = _run_folder(tmp_path / "run", evil.read_text())
    with pytest.raises(CrossValError, match=REFUSED):  # a config given to tools/crossval.py --configs
        fold_config(RunSpec("evil", str(evil)), "testphantom", 0, [], str(tmp_path / "cv"))
    with pytest.raises(ConfigError, match=REFUSED):  # a fold run's config.yaml read back for --external
        evaluate_run_on(str(run), "testphantom_val", eval_fn=lambda *a: pytest.fail("evaluated"))
    with pytest.raises(ConfigError, match=REFUSED):  # tools/results_table.py counting a run's boxed images
        boxed_images(str(run))
    assert not marker.exists()


def test_a_python_tag_in_a_base_file_is_refused_naming_that_file(tmp_path):
    marker = tmp_path / "code_ran"
    evil = evil_yaml(tmp_path / "base.yaml", marker)
    with pytest.raises(ConfigError) as err:
        merge_config(str(_child(tmp_path / "child.yaml", "base.yaml")))  # relative to the child, as Detectron2
    assert err.value.path == str(evil) and REFUSED in str(err.value)
    assert not marker.exists()


def test_the_safe_reader_gives_the_shipped_configs_as_detectron2_does():
    from detectron2.config import get_cfg

    from wssdl_d2.config import add_wssdl_config, resolve_device

    files = sorted(PHANTOM.glob("*.yaml")) + sorted((ROOT / "configs" / "BUSI").glob("*.yaml"))
    assert files
    for path in files:
        ours = merge_config(str(path))
        theirs = add_wssdl_config(get_cfg())
        theirs.merge_from_file(str(path))  # Detectron2's reader, on the project's own trusted files
        assert ours.dump() == resolve_device(theirs).dump(), path


@pytest.mark.parametrize("text, problem", [
    ("SOLVER:\n  MAX_ITER: abc\n", "Type mismatch"),
    ("NO_SUCH_KEY: 1\n", "Non-existent config key: NO_SUCH_KEY"),
    ("SOLVER: [1,\n", "not valid YAML at line 2"),
    ("- a list\n", "a config file holds KEY: value pairs"),
    ("_BASE_: https://example.org/base.yaml\n", "a base config must be a local file"),
    ("WSSDL:\n  MIL:\n    ALPHA:\n      SCHEDULE: static\n      VALUE: -5.0\n",
     "WSSDL.MIL.ALPHA.VALUE = -5.0 is out of range: allowed [0, 1]"),
    ("WSSDL:\n  TEACHER:\n    EMA_DECAY: 1.5\n", "WSSDL.TEACHER.EMA_DECAY = 1.5 is out of range: allowed [0, 1]"),
    ("WSSDL:\n  AUG:\n    CONTRAST: [1.8, 0.2]\n", "WSSDL.AUG.CONTRAST = (1.8, 0.2) must be a (low, high) pair"),
])
def test_a_bad_config_is_one_error_line_naming_the_file(text, problem, tmp_path, env):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        merge_config(str(path))
    if "ALPHA" in text or "abc" in text:  # and as a user sees it: one line, exit status 2
        proc = _run(["train_net.py", "--config-file", str(path), "OUTPUT_DIR", str(tmp_path / "out")], env, tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert lines[-1].startswith(f"error: {path}: ") and problem in lines[-1], proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_a_base_loop_and_a_missing_base_are_named(tmp_path):
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    with pytest.raises(ConfigError, match=r"_BASE_ loop: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        read_config_file(str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("_BASE_: nothere.yaml\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: _BASE_ .*nothere\.yaml: config file not found"):
        read_config_file(str(tmp_path / "c.yaml"))


def test_a_bad_override_names_the_pairs_and_ranges_hold_for_overrides_too():
    with pytest.raises(ConfigError, match="config override SOLVER.NOPE 1"):
        merge_config(str(PHANTOM / "wssdl.yaml"), ["SOLVER.NOPE", "1"])
    with pytest.raises(ConfigError, match=r"WSSDL.MIL.ALPHA.VALUE = -2.0 is out of range: allowed \[0, 1\]"):
        merge_config(str(PHANTOM / "wssdl.yaml"), ["WSSDL.MIL.ALPHA.VALUE", "-2.0"])
    assert merge_config(str(PHANTOM / "wssdl.yaml"), ["WSSDL.MIL.ALPHA.VALUE", "0.0"]).WSSDL.MIL.ALPHA.VALUE == 0.0

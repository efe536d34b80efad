"""No checkpoint a user is given can run code: every tool that reads model weights refuses a ``.pkl`` and a ``.pth``
whose unpickling would create a marker file, with an error naming the file, and the marker never appears.

Each tool runs as a user runs it (a subprocess of ``tools/<tool>.py``), on the tiny test phantom. The weights reach
it the way that tool takes them: ``MODEL.WEIGHTS``, ``--resume`` (a ``last_checkpoint`` naming the file),
``--initial-weights``, a run folder's ``model_*.pth``, or the checkpoint argument of ``publish_model``. The loader
behind all of them is :func:`wssdl_d2.model_zoo.load_model_weights`; ``WSSDL.ALLOW_PICKLE_WEIGHTS True`` is the one
opt-in, checked at the end.
"""
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wssdl_d2 import model_zoo
from wssdl_d2.model_zoo import UnsafeCheckpointError, build_trained_model, load_model_weights

ROOT = Path(__file__).resolve().parent.parent
PHANTOM = ROOT / "configs" / "Phantom"


class RunsCode:
    """Unpickling this creates ``marker``: a stand-in for a checkpoint whose loading runs an attacker's code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def write_evil(path, marker, kind):
    """A checkpoint at ``path`` that runs code when unpickled: ``kind`` "pkl" (a plain pickle, Detectron2's .pkl
    format) or "pth" (torch.save's zip format)."""
    payload = {"model": {"w": torch.zeros(2)}, "payload": RunsCode(marker)}
    if kind == "pkl":
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    else:
        torch.save(payload, path)
    return path


def _tiny_yaml(tiny_cfg, path, config_file, **overrides):
    cfg = tiny_cfg(str(config_file), **overrides)
    cfg.WSSDL.DATASET_ROOT = ""
    path.write_text(cfg.dump())
    return path


@pytest.fixture
def setup(tiny_cfg, phantom_root, tmp_path):
    """Config files, an image, an evaluation report and the environment the tool subprocesses need."""
    strong = _tiny_yaml(tiny_cfg, tmp_path / "strong.yaml", PHANTOM / "strong_only.yaml")
    joint = _tiny_yaml(tiny_cfg, tmp_path / "joint.yaml", PHANTOM / "wssdl.yaml", **{
        "DATASETS.TRAIN": ("testphantom_train_strong_30", "testphantom_train_weak_30"),
        "WSSDL.STRONG_PER_BATCH": 1, "WSSDL.WEAK_PER_BATCH": 1})
    metrics = tmp_path / "corloc.json"
    metrics.write_text(json.dumps({
        "dataset": "testphantom_val", "settings": {"ci_level": 0.95, "tau": 0.5, "iou_thresh": 0.5},
        "counts": {"images": 8}, "metrics": {"CorLoc": {"value": 50.0, "lo": 25.0, "hi": 75.0},
                                             "CorLoc_top1": {"value": 37.5, "lo": 12.5, "hi": 62.5}}}))
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1",
               WSSDL_DATASETS=str(Path(phantom_root).parent))
    image = Path(phantom_root) / "images" / "benign" / "benign (1).png"
    return {"strong": str(strong), "joint": str(joint), "metrics": str(metrics), "image": str(image), "env": env}


def _in_folder(out, weights, name):
    """``weights`` copied into ``out`` as ``name``; returns the folder."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(weights, out / name)
    return out


# name -> (function(setup, weights, out) -> argv after "tools/", what the tool is given)
ENTRY_POINTS = {
    "train_net --eval-only": lambda s, w, o: ["train_net.py", "--config-file", s["strong"], "--eval-only",
                                              "MODEL.WEIGHTS", w, "OUTPUT_DIR", str(o)],
    "train_net MODEL.WEIGHTS": lambda s, w, o: ["train_net.py", "--config-file", s["strong"], "MODEL.WEIGHTS", w,
                                                "OUTPUT_DIR", str(o)],
    "train_net --resume": lambda s, w, o: [
        "train_net.py", "--config-file", s["strong"], "--resume", "OUTPUT_DIR",
        str(_last_checkpoint(_in_folder(o, w, os.path.basename(w)), os.path.basename(w)))],
    "demo": lambda s, w, o: ["demo.py", "--config-file", s["strong"], "--input", s["image"], "MODEL.WEIGHTS", w],
    "saliency": lambda s, w, o: ["saliency.py", "--config-file", s["strong"], "--input", s["image"], "--output",
                                 str(o), "MODEL.WEIGHTS", w],
    "suggest_annotations": lambda s, w, o: ["suggest_annotations.py", "--config-file", s["strong"], "--dataset",
                                            "testphantom_train_weak_30", "--output", str(o), "MODEL.WEIGHTS", w],
    "export_model": lambda s, w, o: ["export_model.py", "--config-file", s["strong"], "--sample-image", s["image"],
                                     "--output", str(o / "model.ts"), "MODEL.WEIGHTS", w],
    "benchmark": lambda s, w, o: ["benchmark.py", "--config-file", s["joint"], "--parts", "infer", "--warmup", "0",
                                  "--infer-images", "1", "MODEL.WEIGHTS", w],
    "eval_checkpoints": lambda s, w, o: ["eval_checkpoints.py", str(_run_folder(o, w, s["strong"]))],
    "self_train": lambda s, w, o: ["self_train.py", "--config-file", s["joint"], "--initial-weights", w,
                                   "--output-dir", str(o)],
    "simulate_annotation": lambda s, w, o: ["simulate_annotation.py", "--config-file", s["joint"], "--truth",
                                            "testphantom_train_all", "--initial-weights", w, "--output-dir", str(o)],
    "publish_model": lambda s, w, o: ["publish_model.py", w, "--config", "Phantom/strong_only.yaml", "--metrics",
                                      s["metrics"], "--out-dir", str(o / "published"), "--index",
                                      str(o / "index.json"), "--model-zoo-md", ""],
}


def _last_checkpoint(folder, name):
    (folder / "last_checkpoint").write_text(name)
    return folder


def _run_folder(out, weights, config):
    """A training run folder whose only checkpoint is ``weights`` (eval_checkpoints reads ``model_*.pth``)."""
    _in_folder(out, weights, "model_0000003.pth")
    shutil.copy(config, out / "config.yaml")
    return out


@pytest.mark.parametrize("kind", ["pkl", "pth"])
@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_every_tool_refuses_a_checkpoint_that_would_run_code(entry_point, kind, setup, tmp_path):
    marker = tmp_path / "code_ran"
    weights = write_evil(tmp_path / f"evil.{kind}", marker, kind)
    argv = ENTRY_POINTS[entry_point](setup, str(weights), tmp_path / "out")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / argv[0])] + argv[1:], capture_output=True,
                          text=True, timeout=300, env=setup["env"], cwd=str(tmp_path))
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not marker.exists(), f"{entry_point} ran the code in a .{kind} checkpoint"
    refused = "refusing to read a Python pickle" if kind == "pkl" and entry_point != "eval_checkpoints" \
        else "refused: the file holds Python objects besides tensors"
    last_lines = "\n".join(proc.stderr.strip().splitlines()[-15:])
    assert refused in last_lines and ("evil" in last_lines or "model_0000003.pth" in last_lines), proc.stderr[-3000:]
    assert "Traceback" not in last_lines, f"{entry_point}: a traceback instead of an error message:\n{last_lines}"


def test_model_zoo_refuses_an_index_entry_that_would_run_code(tmp_path, monkeypatch):
    marker = tmp_path / "code_ran"
    (tmp_path / "published").mkdir()
    evil = write_evil(tmp_path / "published" / "model.pth", marker, "pth")
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"format": 1, "models": {"Phantom/strong_only.yaml": {
        "file": "Phantom/strong_only/model.pth", "url": evil.as_uri(),
        "sha256": hashlib.sha256(evil.read_bytes()).hexdigest()}}}))
    monkeypatch.setenv("WSSDL_MODEL_INDEX", str(index))
    monkeypatch.setenv("WSSDL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UnsafeCheckpointError, match="refused: the file holds Python objects"):
        model_zoo.get("Phantom/strong_only.yaml", trained=True, device="cpu")
    assert not marker.exists()


def test_allow_pickle_weights_is_the_one_opt_in(tiny_cfg, tmp_path):
    """A trusted Detectron2-style .pkl loads with WSSDL.ALLOW_PICKLE_WEIGHTS True and only then; a .pth that holds
    code is refused even then (weights-only reading of .pth files has no opt-out)."""
    cfg = tiny_cfg()
    state = {k: v.numpy() for k, v in build_trained_model(cfg, weights="").state_dict().items()}
    trusted = tmp_path / "trusted.pkl"
    with open(trusted, "wb") as f:
        pickle.dump({"model": state, "__author__": "a colleague"}, f)
    cfg.MODEL.WEIGHTS = str(trusted)
    with pytest.raises(UnsafeCheckpointError, match="WSSDL.ALLOW_PICKLE_WEIGHTS True"):
        build_trained_model(cfg)
    cfg.WSSDL.ALLOW_PICKLE_WEIGHTS = True
    model = build_trained_model(cfg)
    name = next(iter(state))
    assert torch.equal(model.state_dict()[name].cpu(), torch.as_tensor(state[name]))
    marker = tmp_path / "code_ran"
    with pytest.raises(UnsafeCheckpointError):
        load_model_weights(model, str(write_evil(tmp_path / "evil.pth", marker, "pth")), allow_pickle=True)
    assert not marker.exists()


def test_a_missing_weights_file_is_named_not_a_traceback(setup, tmp_path):
    missing = str(tmp_path / "nothere.pth")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train_net.py"), "--config-file", setup["strong"],
                           "--eval-only", "MODEL.WEIGHTS", missing, "OUTPUT_DIR", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env=setup["env"], cwd=str(tmp_path))
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert last == f"error: MODEL.WEIGHTS {missing}: checkpoint file not found", proc.stderr[-2000:]
    with pytest.raises(FileNotFoundError, match="nothere.pth: checkpoint file not found"):
        load_model_weights(torch.nn.Linear(2, 1), missing)

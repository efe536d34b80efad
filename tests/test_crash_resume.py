"""Crash safety for real: tools/train_net.py killed with SIGKILL (after its first checkpoint, and in the middle of
writing one) continues with --resume from the last complete checkpoint and ends with model_final.pth; a dataset
file killed mid-write keeps its previous content."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_ITER = 5


def _start(opts, phantom_root, log_path, resume=False):
    env = dict(os.environ, WSSDL_DATASETS=str(phantom_root.parent), PYTHONWARNINGS="ignore")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"),
           "--config-file", os.path.join(ROOT, "configs", "Phantom", "strong_only.yaml")]
    cmd += (["--resume"] if resume else []) + opts
    log = open(log_path, "w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log


def _wait_for(condition, proc, timeout, poll=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc.poll() is not None:
            return None
        time.sleep(poll)
    return None


def _kill(proc, log):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    log.close()
    assert proc.returncode == -signal.SIGKILL


def _last_complete(out):
    """The checkpoint last_checkpoint names, loaded: it must be complete."""
    name = (out / "last_checkpoint").read_text()
    data = torch.load(out / name, map_location="cpu", weights_only=False)
    return name, data["iteration"]


def test_sigkill_after_a_checkpoint_and_during_a_save_then_resume(tiny_opts, phantom_root, tmp_path):
    out = tmp_path / "output"
    # momentum 0: no optimizer state, half the checkpoint size (~45 MB)
    opts = list(tiny_opts) + ["SOLVER.MAX_ITER", str(MAX_ITER), "SOLVER.CHECKPOINT_PERIOD", "1",
                              "SOLVER.MOMENTUM", "0.0"]

    # 1. killed as soon as its first checkpoint is complete
    proc, log = _start(opts, phantom_root, tmp_path / "run1.log")
    first = _wait_for(lambda: (out / "last_checkpoint").exists(), proc, timeout=300)
    _kill(proc, log)
    assert first, (tmp_path / "run1.log").read_text()[-3000:]
    name, iteration = _last_complete(out)
    assert name.startswith("model_") and iteration < MAX_ITER - 1

    # 2. resumed, then killed while a checkpoint file is being written (its temporary sibling exists)
    proc, log = _start(opts, phantom_root, tmp_path / "run2.log", resume=True)
    partial = _wait_for(lambda: glob.glob(str(out / ".model_*.tmp")), proc, timeout=300)
    _kill(proc, log)
    text = (tmp_path / "run2.log").read_text()
    assert partial, text[-3000:]
    assert f"Starting training from iteration {iteration + 1}" in text
    name, iteration = _last_complete(out)  # the previous checkpoint is intact and named
    saving = os.path.basename(partial[0])[1:].split(".pth")[0] + ".pth"  # .model_0000004.pth.XXXX.tmp
    assert saving != name and not (out / saving).exists()  # the interrupted file never appeared

    # 3. resumed again: continues after the last complete checkpoint and finishes
    proc, log = _start(opts, phantom_root, tmp_path / "run3.log", resume=True)
    proc.wait(timeout=600)
    log.close()
    text = (tmp_path / "run3.log").read_text()
    assert proc.returncode == 0, text[-3000:]
    assert f"Starting training from iteration {iteration + 1}" in text
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    assert _last_complete(out)[1] == MAX_ITER - 1
    assert not glob.glob(str(out / ".*.tmp")), "the resumed run removes the interrupted save's temporary file"
    for path in glob.glob(str(out / "*.pth")) + glob.glob(str(out / ".*.tmp")):
        os.remove(path)  # ~100 MB each


WRITER = """
import sys
from wssdl_d2.utils.atomic import atomic_write_json
path = sys.argv[1]
atomic_write_json(path, {"version": 0, "rows": []})
print("ready", flush=True)
rows = [{"file_name": f"image_{k}.png", "boxes": [[k, k, k + 10, k + 10]] * 4} for k in range(60000)]
version = 1
while True:
    atomic_write_json(path, {"version": version, "rows": rows})
    version += 1
"""


def test_dataset_file_killed_mid_write_keeps_previous_content(tmp_path):
    target = tmp_path / "train.json"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"
    partial = _wait_for(lambda: glob.glob(str(tmp_path / ".train.json.*.tmp")), proc, timeout=60)
    time.sleep(0.05)  # inside the write of a ~6 MB file
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert partial
    data = json.loads(target.read_text())  # complete JSON: the previous version
    assert data["version"] == 0 or len(data["rows"]) == 60000

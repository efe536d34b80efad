"""wssdl_d2.engine.checkpoint_curve (tools/eval_checkpoints.py): every saved checkpoint of a run is evaluated
once, into a CSV curve and a PNG."""
import csv
import os
import subprocess
import sys

import pytest
import torch

from wssdl_d2.engine import WSSDLTrainer
from wssdl_d2.engine.checkpoint_curve import checkpoint_curves, find_checkpoints, load_run_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def trained_run(tiny_cfg, tmp_path):
    cfg = tiny_cfg(**{"SOLVER.CHECKPOINT_PERIOD": 2, "WSSDL.EVAL.PLOTS": False, "WSSDL.EVAL.BOOTSTRAP_SAMPLES": 20})
    torch.manual_seed(0)
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    return cfg.OUTPUT_DIR


def test_checkpoints_are_found_with_their_iteration(trained_run):
    found = find_checkpoints(trained_run, 4)
    # model_0000001.pth was saved after 2 iterations; model_final.pth (iteration 4) duplicates model_0000003.pth
    assert [(i, os.path.basename(p)) for i, p in found] == [(2, "model_0000001.pth"), (4, "model_0000003.pth")]


def test_curve_is_written_and_a_second_call_reuses_the_evaluations(trained_run):
    curve = os.path.join(trained_run, "curve")
    assert checkpoint_curves({"run": trained_run}, curve) == rows_of(curve)
    with open(os.path.join(curve, "curve.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    for row in rows:
        corloc, lo, hi = (float(row[k]) for k in ("CorLoc", "CorLoc_lo", "CorLoc_hi"))
        assert 0 <= lo <= corloc <= hi <= 100
        assert row["AP50"] != ""
    assert os.path.getsize(os.path.join(curve, "curve.png")) > 1000
    done = os.path.join(curve, "iter_0000004", "results.json")
    stamp = os.path.getmtime(done)
    os.utime(done, (stamp - 100, stamp - 100))
    checkpoint_curves({"run": trained_run}, curve)
    assert os.path.getmtime(done) == stamp - 100  # not evaluated again


def rows_of(curve):
    """curve.csv's rows as checkpoint_curves returns them (numbers as numbers, absent metrics None)."""
    with open(os.path.join(curve, "curve.csv")) as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            row[key] = None if value == "" else value if key in ("run", "checkpoint") else float(value)
        row["iteration"] = int(row["iteration"])
    return rows


def test_a_folder_without_config_is_refused_by_name(tmp_path):
    (tmp_path / "model_final.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        load_run_config(str(tmp_path))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval_checkpoints.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and f"error: {tmp_path}: no config.yaml" in proc.stderr


def test_cli_evaluates_runs_with_trailing_config_overrides(trained_run, phantom_root, tmp_path):
    out = tmp_path / "curves"
    env = dict(os.environ, WSSDL_DATASETS=str(phantom_root.parent), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval_checkpoints.py"), trained_run,
                           trained_run, "WSSDL.EVAL.BOOTSTRAP_SAMPLES", "10", "--names", "a", "b", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [(r["run"], r["iteration"]) for r in rows_of(str(out))] == [("a", 2), ("a", 4), ("b", 2), ("b", 4)]
    assert "a iter 4: CorLoc" in proc.stderr + proc.stdout and os.path.getsize(out / "curve.png") > 1000
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "eval_checkpoints.py"), trained_run,
                           "WSSDL.EVAL.BOOTSTRAP_SAMPLES"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "KEY VALUE pairs" in proc.stderr

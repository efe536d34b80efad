"""tools/eval_checkpoints.py: every saved checkpoint of a run is evaluated once, into a CSV curve and a PNG."""
import csv
import os

import pytest
import torch

from wssdl_d2.engine import WSSDLTrainer
from tool_module import load_tool


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
    found = load_tool("eval_checkpoints").find_checkpoints(trained_run, 4)
    # model_0000001.pth was saved after 2 iterations; model_final.pth (iteration 4) duplicates model_0000003.pth
    assert [(i, os.path.basename(p)) for i, p in found] == [(2, "model_0000001.pth"), (4, "model_0000003.pth")]


def test_curve_is_written_and_a_second_call_reuses_the_evaluations(trained_run):
    tool = load_tool("eval_checkpoints")
    tool.main([trained_run])
    curve = os.path.join(trained_run, "curve")
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
    tool.main([trained_run])
    assert os.path.getmtime(done) == stamp - 100  # not evaluated again


def test_a_folder_without_config_is_refused_by_name(tmp_path):
    (tmp_path / "model_final.pth").write_bytes(b"")
    with pytest.raises(SystemExit, match="no config.yaml"):
        load_tool("eval_checkpoints").main([str(tmp_path)])

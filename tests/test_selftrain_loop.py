"""A self-training round on the phantom runs end to end, writes its datasets with provenance, and resumes."""
import json
import os

import pytest

from wssdl_d2.selftrain import loop as loop_module
from wssdl_d2.selftrain import rounds as rounds_module
from wssdl_d2.selftrain.loop import STATE_FILE, self_train
from wssdl_d2.selftrain.rounds import StateError

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WSSDL_CONFIG = os.path.join(ROOT, "configs", "Phantom", "wssdl.yaml")
FAST = {"DATASETS.TRAIN": "('testphantom_train_strong_30', 'testphantom_train_weak_30')",
        "SOLVER.MAX_ITER": 2, "WSSDL.STRONG_PER_BATCH": 1, "WSSDL.WEAK_PER_BATCH": 1, "WSSDL.EVAL.COCO": False, "WSSDL.EVAL.PLOTS": False,
        "WSSDL.EVAL.BOOTSTRAP_SAMPLES": 50, "WSSDL.SELFTRAIN.FRACTION": 1.0, "WSSDL.SELFTRAIN.MAX_ITER": 1,
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0}


def _cfg(tiny_cfg, **extra):
    cfg = tiny_cfg(WSSDL_CONFIG, **{**FAST, **extra})
    cfg.freeze()
    return cfg


def test_round_end_to_end_then_resume_after_a_crash(tiny_cfg, monkeypatch):
    cfg = _cfg(tiny_cfg)
    out = cfg.OUTPUT_DIR
    steps = self_train(cfg, rounds=1)
    assert steps[0]["status"] == steps[1]["status"] == "done"
    assert os.path.isfile(os.path.join(out, "round_0", "model_final.pth"))
    assert os.path.isfile(os.path.join(out, "round_1", "config.yaml"))
    corloc = json.load(open(os.path.join(out, "round_1", "inference", "corloc.json")))
    assert corloc["counts"]["images"] > 0 and steps[1]["corloc"]["CorLoc"] is not None
    # every consistent weak image was pseudo-labelled (FRACTION 1.0), with provenance in the strong file
    sel = steps[1]["selection"]
    assert sel["pseudo"] == sel["consistent"] > 0
    data = json.load(open(steps[1]["datasets"]["strong"]))
    pseudo_ids = {im["id"] for im in data["images"] if im["supervision"] == "pseudo"}
    assert len(pseudo_ids) == sel["pseudo"]
    pseudo_anns = [a for a in data["annotations"] if a["image_id"] in pseudo_ids]
    assert len(pseudo_anns) == len(pseudo_ids)
    assert all(a["source"] == "pseudo" and a["round"] == 1 and a["model"] == steps[0]["weights"]
               and 0 <= a["score"] <= 1 for a in pseudo_anns)
    assert all(a["source"] == "mask" for a in data["annotations"] if a["image_id"] not in pseudo_ids)
    weak = json.load(open(steps[1]["datasets"]["weak"]))
    assert len(weak["images"]) + sel["pseudo"] == sel["candidates"]
    assert not weak["annotations"]

    # without --resume an existing run is refused, and other settings are refused on resume
    with pytest.raises(StateError, match="--resume"):
        self_train(cfg, rounds=2)
    with pytest.raises(StateError, match="fraction"):
        self_train(_cfg(tiny_cfg, **{"WSSDL.SELFTRAIN.FRACTION": 0.5}), rounds=2, resume=True)

    # round 2 crashes in training after its datasets were written ...
    real_train = rounds_module.train_step
    calls = []

    def crash(round_cfg, resume=False):
        calls.append(resume)
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(loop_module, "train_step", crash)
    with pytest.raises(KeyboardInterrupt):
        self_train(cfg, rounds=2, resume=True)
    state = json.load(open(os.path.join(out, STATE_FILE)))
    assert state["steps"]["2"]["status"] == "training" and calls == [False]
    written = os.path.getmtime(state["steps"]["2"]["datasets"]["strong"])
    round1_model = os.path.getmtime(os.path.join(out, "round_1", "model_final.pth"))

    # ... and --resume keeps rounds 0-1, reuses round 2's datasets and continues its training
    def record(round_cfg, resume=False):
        calls.append(resume)
        return real_train(round_cfg, resume)

    monkeypatch.setattr(loop_module, "train_step", record)
    steps = self_train(cfg, rounds=2, resume=True)
    assert calls == [False, True]
    assert steps[2]["status"] == "done" and os.path.isfile(os.path.join(out, "round_2", "model_final.pth"))
    assert os.path.getmtime(steps[2]["datasets"]["strong"]) == written
    assert os.path.getmtime(os.path.join(out, "round_1", "model_final.pth")) == round1_model
    # round 2 (RELABEL) labelled the original weak set with round 1's model
    assert steps[2]["selection"]["model"] == steps[1]["weights"]
    assert steps[2]["selection"]["candidates"] == steps[1]["selection"]["candidates"]

    # a run from given initial weights only evaluates them in round 0; INIT previous fine-tunes from them
    other = _cfg(tiny_cfg, **{"OUTPUT_DIR": os.path.join(out, "second"), "WSSDL.SELFTRAIN.INIT": "previous",
                             "WSSDL.SELFTRAIN.SELECTION": "adaptive"})
    initial = steps[0]["weights"]
    second = self_train(other, rounds=1, initial_weights=initial)
    assert second[0]["weights"] == initial and second[0]["corloc"] == steps[0]["corloc"]
    assert not os.path.exists(os.path.join(out, "second", "round_0", "model_final.pth"))
    assert second[1]["start_weights"] == initial and len(second[1]["selection"]["thresholds"]) == 2
    with pytest.raises(FileNotFoundError, match="not found"):
        self_train(other, rounds=1, initial_weights=os.path.join(out, "missing.pth"), overwrite=True)

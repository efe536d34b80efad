"""The simulated annotator on the phantom: each strategy queries images, gets their true boxes, fine-tunes,
and the curve CSV / PNG are written; a finished run resumes without retraining."""
import csv
import json
import os

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog

from wssdl_d2.active.simulate import AnnotationSimulation, choose_queries
from wssdl_d2.engine import WSSDLTrainer

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = {"DATASETS.TRAIN": "('testphantom_train_strong_30', 'testphantom_train_weak_30')",
        "WSSDL.STRONG_PER_BATCH": 1, "WSSDL.WEAK_PER_BATCH": 1, "WSSDL.EVAL.COCO": False,
        "WSSDL.EVAL.PLOTS": False, "WSSDL.EVAL.BOOTSTRAP_SAMPLES": 50}


def test_random_queries_are_seeded():
    pool = [{"file_name": f"img{i}"} for i in range(20)]
    a = choose_queries("random", pool, 5, seed=1, step=1)
    assert a == choose_queries("random", pool, 5, seed=1, step=1) and len(set(a)) == 5
    assert a != choose_queries("random", pool, 5, seed=1, step=2)


def test_simulation_reveals_true_boxes_and_writes_the_curve(tiny_cfg, tmp_path):
    cfg = tiny_cfg(os.path.join(ROOT, "configs", "Phantom", "wssdl.yaml"), **FAST)
    torch.manual_seed(0)
    DetectionCheckpointer(WSSDLTrainer.build_model(cfg), save_dir=str(tmp_path)).save("initial")
    cfg.freeze()
    initial = str(tmp_path / "initial.pth")
    sim = AnnotationSimulation(cfg, "testphantom_train_all", steps=1, per_step=3, step_iters=1,
                               initial_weights=initial)
    rows = sim.run()
    assert [(r["strategy"], r["step"]) for r in rows] == [("active", 0), ("active", 1), ("random", 0), ("random", 1)]
    truth = {d["file_name"]: d for d in DatasetCatalog.get("testphantom_train_all")}
    for strategy in ("active", "random"):
        step = sim.state.step(f"{strategy}/1")
        assert len(step["queried"]) == 3
        true_boxes = sum(len(truth[f]["annotations"]) for f in step["queried"])
        start, end = [r for r in rows if r["strategy"] == strategy]
        assert end["n_boxes"] - start["n_boxes"] == true_boxes == end["queried_boxes"] >= 3
        assert end["weights"].endswith(os.path.join(strategy, "step_1", "model_final.pth"))
        with open(tmp_path / "output" / strategy / "step_1" / "config.yaml") as f:
            step_cfg = f.read()
        assert "SCHEDULE: static" in step_cfg and "WARMUP_FACTOR: 1.0" in step_cfg  # continued, not restarted
        data = json.load(open(step["datasets"]["strong"]))
        revealed = [a for a in data["annotations"] if a.get("source") == "annotator"]
        assert len(revealed) == true_boxes
        weak = json.load(open(step["datasets"]["weak"]))
        assert not set(step["queried"]) & {os.path.join(weak["info"]["image_root"], im["file_name"])
                                           for im in weak["images"]}
    with open(tmp_path / "output" / "annotation_curve.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert os.path.getsize(tmp_path / "output" / "annotation_curve.png") > 1000
    # a finished run resumes without training again; other settings are refused
    again = AnnotationSimulation(cfg, "testphantom_train_all", steps=1, per_step=3, step_iters=1,
                                 initial_weights=initial, resume=True).run()
    assert again == rows
    with pytest.raises(ValueError, match="per_step"):
        AnnotationSimulation(cfg, "testphantom_train_all", steps=1, per_step=5, step_iters=1,
                             initial_weights=initial, resume=True)
    with pytest.raises(KeyError, match="lacks"):
        AnnotationSimulation(cfg, "testphantom_val", steps=1, initial_weights=initial, overwrite=True)


def test_a_fine_tune_continues_the_schedule_where_it_ended(tiny_cfg, tmp_path):
    from wssdl_d2.modeling.alpha import alpha_at
    from wssdl_d2.selftrain.rounds import step_config

    cfg = tiny_cfg(os.path.join(ROOT, "configs", "Phantom", "wssdl.yaml"), **FAST)
    cfg.SOLVER.MAX_ITER, cfg.SOLVER.STEPS, cfg.SOLVER.BASE_LR, cfg.SOLVER.GAMMA = 400, (300, 350, 500), 0.01, 0.1
    cfg.WSSDL.MIL.ALPHA.SCHEDULE, cfg.WSSDL.MIL.ALPHA.STEP = "gradual", 100
    end_alpha = alpha_at(399, cfg)
    assert end_alpha > alpha_at(0, cfg)
    cfg.freeze()
    tuned = step_config(cfg, str(tmp_path / "a"), ("x",), "w.pth", max_iter=60, finetune=True)
    assert tuned.SOLVER.BASE_LR == pytest.approx(0.01 * 0.1 ** 2)  # two of the three steps were passed
    assert tuned.SOLVER.STEPS == () and tuned.SOLVER.WARMUP_FACTOR == 1.0 and tuned.SOLVER.MAX_ITER == 60
    assert [alpha_at(t, tuned) for t in (0, 59)] == [pytest.approx(end_alpha)] * 2
    assert "BASE_LR: 0.0001" in open(tmp_path / "a" / "config.yaml").read()
    # "restart" (and a step that is not a fine-tune) runs the config's schedule from its start
    for restarted in (step_config(cfg, str(tmp_path / "b"), ("x",), "w.pth", max_iter=60),
                      step_config(cfg.clone(), str(tmp_path / "c"), ("x",), "w.pth", max_iter=60, finetune=False)):
        assert restarted.SOLVER.BASE_LR == 0.01 and alpha_at(0, restarted) == pytest.approx(alpha_at(0, cfg))
    cfg.defrost()
    # a cosine schedule ends at BASE_LR_END: continued there (constant), or at WSSDL.FINETUNE_LR; at 0 it is refused
    cfg.SOLVER.LR_SCHEDULER_NAME, cfg.SOLVER.BASE_LR_END = "WarmupCosineLR", 0.0005
    tuned = step_config(cfg, str(tmp_path / "f"), ("x",), "w.pth", max_iter=60, finetune=True)
    assert tuned.SOLVER.LR_SCHEDULER_NAME == "WarmupMultiStepLR" and tuned.SOLVER.BASE_LR == pytest.approx(0.0005)
    cfg.WSSDL.FINETUNE_LR = 0.002
    assert step_config(cfg, str(tmp_path / "g"), ("x",), "w.pth", finetune=True).SOLVER.BASE_LR == 0.002
    cfg.WSSDL.FINETUNE_LR, cfg.SOLVER.BASE_LR_END = 0.0, 0.0
    with pytest.raises(ValueError, match="BASE_LR_END.*WSSDL.FINETUNE_LR"):
        step_config(cfg, str(tmp_path / "h"), ("x",), "w.pth", finetune=True)
    cfg.SOLVER.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    cfg.WSSDL.FINETUNE_SCHEDULE = "restart"
    assert step_config(cfg, str(tmp_path / "d"), ("x",), "w.pth", max_iter=60, finetune=True).SOLVER.BASE_LR == 0.01
    cfg.WSSDL.FINETUNE_SCHEDULE = "resume"
    with pytest.raises(ValueError, match="FINETUNE_SCHEDULE"):
        step_config(cfg, str(tmp_path / "e"), ("x",), "w.pth", finetune=True)
    # both tools refuse it before they train anything
    from wssdl_d2.selftrain.loop import self_train

    cfg.OUTPUT_DIR = str(tmp_path / "refused")
    cfg.freeze()
    for start in (lambda: AnnotationSimulation(cfg, "testphantom_train_all", steps=1), lambda: self_train(cfg)):
        with pytest.raises(ValueError, match="FINETUNE_SCHEDULE"):
            start()
    assert not os.path.exists(tmp_path / "refused")

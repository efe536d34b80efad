"""Site adaptation's plumbing (wssdl_d2.engine.site_adaptation, tools/adapt_site.py): the model's config becomes the
joint method on the source's boxed datasets plus the site's, written to the run folder for --resume; the site's
diagnosis-only scans are prepared and registered; a stopped adaptation continues from its last checkpoint."""
import os
import shutil
import subprocess
import sys

import pytest
import torch
from detectron2.data import DatasetCatalog

from wssdl_d2.config import merge_config
from wssdl_d2.engine.site_adaptation import (adaptation_config, prepare_site, source_strong_datasets,
                                             to_joint_method)

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CONFIGS = os.path.join(REPO, "configs", "Phantom")
TOOL = os.path.join(REPO, "tools", "adapt_site.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_to_joint_method():
    for name in ("strong_only.yaml", "fully_supervised.yaml", "wssdl.yaml"):
        cfg = to_joint_method(merge_config(os.path.join(CONFIGS, name)))
        assert (cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.PROPOSAL_GENERATOR.NAME, cfg.MODEL.ROI_HEADS.NAME) == (
            "WSSDLRCNN", "StrongOnlyRPN", "MILROIHeads")
    cfg = merge_config(os.path.join(CONFIGS, "strong_only.yaml"), ["MODEL.ROI_HEADS.NAME", "CascadeROIHeads"])
    with pytest.raises(ValueError, match="MODEL.ROI_HEADS.NAME 'CascadeROIHeads'"):
        to_joint_method(cfg)


def test_config_and_site_preparation(phantom_root, tmp_path):
    from wssdl_d2.data.phantom import write_phantom_dataset

    site = tmp_path / "Our Site"
    write_phantom_dataset(site, (2, 5, 5), 48, 64, seed=4, site="b")
    for mask in list(site.rglob("*_mask_1.png")) + sorted(site.rglob("*_mask.png"))[4:]:
        mask.unlink()  # diagnoses only, except a few outlined scans
    root = tmp_path / "datasets"
    weak, strong = prepare_site(str(site), str(root), "our_site", boxes=2)
    assert (weak, strong) == ("our_site_train_weak_n2", "our_site_train_strong_n2")
    assert len(DatasetCatalog.get(weak)) == 10 and len(DatasetCatalog.get(strong)) == 2
    assert all(d["annotations"] for d in DatasetCatalog.get(strong))
    assert prepare_site(str(site), str(root), "our_site", boxes=0) == ("our_site_train_weak_n0", None)  # same site
    other = tmp_path / "other"
    shutil.copytree(site, other)
    with pytest.raises(FileExistsError, match="not prepared from"):
        prepare_site(str(other), str(root), "our_site")

    model_cfg = merge_config(os.path.join(CONFIGS, "strong_only.yaml"),
                             ["DATASETS.TRAIN", "('testphantom_train_strong_30', 'testphantom_train_weak_30')"])
    source = source_strong_datasets(model_cfg.DATASETS.TRAIN)
    assert source == ["testphantom_train_strong_30"]
    out = tmp_path / "adapted"
    cfg = adaptation_config(model_cfg, "model.pth", source, [weak, strong], str(out), max_iter=40, base_lr=0.001,
                            alpha=0.3, site_test=("testphantom_val",), overrides=["SOLVER.CHECKPOINT_PERIOD", "7"])
    assert cfg.DATASETS.TRAIN == ("testphantom_train_strong_30", weak, strong)
    assert cfg.DATASETS.TEST == ("testphantom_val",) and cfg.MODEL.WEIGHTS == "model.pth"
    assert (cfg.SOLVER.MAX_ITER, cfg.SOLVER.BASE_LR, cfg.SOLVER.STEPS, cfg.SOLVER.WARMUP_ITERS) == (40, 0.001, (), 0)
    assert (cfg.WSSDL.MIL.ALPHA.SCHEDULE, cfg.WSSDL.MIL.ALPHA.VALUE) == ("static", 0.3)
    assert cfg.SOLVER.CHECKPOINT_PERIOD == 7 and cfg.MODEL.META_ARCHITECTURE == "WSSDLRCNN"
    saved = merge_config(str(out / "config.yaml"))
    assert saved.DATASETS.TRAIN == cfg.DATASETS.TRAIN and saved.MODEL.ROI_HEADS.NAME == "MILROIHeads"
    with pytest.raises(ValueError, match="no site dataset"):
        adaptation_config(model_cfg, "model.pth", source, [], str(out))
    # teacher: SITE_TEACHER under WSSDL.TEACHER, the model config's other teacher keys kept, overrides applied last
    taught = adaptation_config(model_cfg, "model.pth", source, [weak], str(tmp_path / "taught"), teacher=True,
                               overrides=["WSSDL.TEACHER.EMA_DECAY", "0.9"], write=False)
    t = taught.WSSDL.TEACHER
    assert (t.ENABLED, t.BURN_IN, t.ADAPTIVE.WINDOW, t.EVAL_WITH, t.EMA_DECAY) == (True, 0, 200, "student", 0.9)
    assert t.LABEL_FILTER == model_cfg.WSSDL.TEACHER.LABEL_FILTER and not (tmp_path / "taught").exists()
    assert not cfg.WSSDL.TEACHER.ENABLED  # without teacher nothing changes


def test_tool_adapts_and_resumes(phantom_root, tiny_cfg, tmp_path, one_thread):
    """A strong-only model of the tiny phantom, adapted for 4 iterations through tools/adapt_site.py to a folder of
    site-b scans with diagnoses only, evaluated before and after; a run stopped after iteration 2 continues with
    --resume (from its checkpoint, not from the start)."""
    from detectron2.utils.env import seed_all_rng

    from wssdl_d2.data.phantom import write_phantom_dataset
    from wssdl_d2.engine import WSSDLTrainer

    root = tmp_path / "datasets"  # the model's dataset root: a copy of the tiny phantom (relocatable)
    shutil.copytree(phantom_root, root / "testphantom")
    cfg = tiny_cfg(**{"OUTPUT_DIR": str(tmp_path / "model"), "WSSDL.DATASET_ROOT": str(root),
                      "WSSDL.EVAL.PLOTS": False, "WSSDL.EVAL.BOOTSTRAP_SAMPLES": 10, "WSSDL.EVAL.COCO": False})
    torch.manual_seed(0)
    seed_all_rng(0)
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    (tmp_path / "model" / "config.yaml").write_text(cfg.dump())
    site = tmp_path / "site_b"
    write_phantom_dataset(site, (2, 4, 4), 96, 128, seed=7, site="b")
    for mask in site.rglob("*_mask*.png"):
        mask.unlink()
    out = tmp_path / "adapted"
    args = ["--from", str(tmp_path / "model" / "model_final.pth"), "--site", str(site), "--out", str(out),
            "--max-iter", "4", "--test", "testphantom_val"]
    done = subprocess.run([sys.executable, TOOL] + args, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tools/compare.py" in done.stdout
    for folder in (out / "before" / "inference", out / "inference"):
        assert (folder / "corloc.json").is_file()
    assert (root / "site_b" / "train_weak_n0.json").is_file()
    saved = merge_config(str(out / "config.yaml"))
    assert saved.DATASETS.TRAIN == ("testphantom_train_strong_30", "site_b_train_weak_n0")
    # a run that stopped after its checkpoint at iteration 2 (of 0..3) goes on from there
    (out / "model_final.pth").unlink()
    (out / "last_checkpoint").write_text("model_0000001.pth")
    done = subprocess.run([sys.executable, TOOL, "--from", "unused.pth", "--out", str(out), "--resume"],
                          capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "model_final.pth").is_file()
    assert "Starting training from iteration 2" in done.stdout + done.stderr
    bad = subprocess.run([sys.executable, TOOL, "--from", "unused.pth", "--out", str(tmp_path / "none"), "--resume"],
                         capture_output=True, text=True, env=ENV)
    assert bad.returncode == 2 and "nothing to resume" in bad.stderr
    # --teacher: the label-aware mean teacher from the first iteration, its pseudo-boxes on the site's scans learnt
    taught = tmp_path / "adapted_teacher"
    done = subprocess.run([sys.executable, TOOL, "--from", str(tmp_path / "model" / "model_final.pth"), "--site",
                           str(site), "--out", str(taught), "--max-iter", "3", "--teacher"],
                          capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    teacher_cfg = merge_config(str(taught / "config.yaml")).WSSDL.TEACHER
    assert (teacher_cfg.ENABLED, teacher_cfg.BURN_IN, teacher_cfg.EVAL_WITH) == (True, 0, "student")
    assert "teacher" in torch.load(str(taught / "model_final.pth"), map_location="cpu", weights_only=True)
    assert "loss_cls_pseudo" in (taught / "metrics.json").read_text()

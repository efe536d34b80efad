"""The plain Detectron2 reference row (WSSDL.TRAINER detectron2): Detectron2's own DefaultTrainer and DatasetMapper
train a stock model, it is evaluated like every row, and a config that is not plain is refused before training."""
import os
import subprocess
import sys

import pytest
from detectron2.engine import DefaultTrainer
from detectron2.modeling import GeneralizedRCNN

from wssdl_d2.config import merge_config
from wssdl_d2.data import register_datasets_under
from wssdl_d2.engine.reference import Detectron2ReferenceTrainer, build_trainer, check_reference_config
from wssdl_d2.engine.trainer import WSSDLTrainer

from conftest import TINY_OPTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAIN = os.path.join(ROOT, "configs", "BUSI", "plain_detectron2.yaml")


def plain_cfg(phantom_root, tmp_path, *extra):
    register_datasets_under(str(phantom_root.parent))
    opts = [v for kv in zip(TINY_OPTS[::2], TINY_OPTS[1::2]) for v in kv]
    cfg = merge_config(PLAIN, opts + ["DATASETS.TRAIN", "('testphantom_train_all',)", "OUTPUT_DIR", str(tmp_path),
                                      *extra])
    return cfg


def test_the_plain_config_is_stock_detectron2(phantom_root, tmp_path):
    cfg = plain_cfg(phantom_root, tmp_path)
    trainer = build_trainer(cfg)
    assert type(trainer) is Detectron2ReferenceTrainer and isinstance(trainer, DefaultTrainer)
    assert not isinstance(trainer, WSSDLTrainer)
    assert type(trainer.model) is GeneralizedRCNN
    # the training loader, model, optimizer and schedule are Detectron2's own (only the evaluator is the project's)
    for method in ("build_train_loader", "build_model", "build_optimizer", "build_lr_scheduler", "run_step"):
        owner = next(c for c in Detectron2ReferenceTrainer.__mro__ if method in vars(c))
        assert owner.__module__.startswith("detectron2."), (method, owner)
    assert cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS  # Detectron2's default: images without a box are not trained on


def test_the_project_trainer_is_the_default(tiny_cfg):
    cfg = tiny_cfg()
    assert cfg.WSSDL.TRAINER == "wssdl"
    assert type(build_trainer(cfg)) is WSSDLTrainer


@pytest.mark.parametrize("extra, message", [
    (["MODEL.META_ARCHITECTURE", "WSSDLRCNN", "MODEL.ROI_HEADS.NAME", "MILROIHeads"], "stock Detectron2 model"),
    (["DATASETS.TRAIN", "('testphantom_train_strong_30', 'testphantom_train_weak_30')"], "weak images"),
    (["WSSDL.TRAINER", "lightning"], "WSSDL.TRAINER must be one of"),
])
def test_a_config_that_is_not_plain_is_refused(phantom_root, tmp_path, extra, message):
    cfg = plain_cfg(phantom_root, tmp_path, *extra)
    with pytest.raises(ValueError, match=message):
        build_trainer(cfg)


def test_check_accepts_the_plain_config(phantom_root, tmp_path):
    check_reference_config(plain_cfg(phantom_root, tmp_path))


def test_train_net_trains_and_evaluates_the_reference(phantom_root, tmp_path):
    env = dict(os.environ, WSSDL_DATASETS=str(phantom_root.parent), PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    out = tmp_path / "plain"
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file", PLAIN, *TINY_OPTS,
           "DATASETS.TRAIN", "('testphantom_train_all',)", "SOLVER.MAX_ITER", "3", "WSSDL.EVAL.COCO", "False",
           "WSSDL.EVAL.PLOTS", "False", "OUTPUT_DIR", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert (out / "model_final.pth").is_file()
    assert "Detectron2ReferenceTrainer" in log or "Starting training from iteration 0" in log
    # the final evaluation is the project's CorLoc evaluator, like every other row's
    assert (out / "inference" / "corloc_per_image.csv").is_file()

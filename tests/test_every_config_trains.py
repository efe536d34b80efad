"""Every shipped experiment config (configs/BUSI/*.yaml, configs/Phantom/*.yaml) builds its model, its data
streams and its trainer, and takes training steps on the tiny test phantom (its datasets swapped in by split)."""
import glob
import os

import pytest
import torch

from wssdl_d2.engine.reference import build_trainer

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")
EXPERIMENTS = sorted(p for p in glob.glob(os.path.join(CONFIGS, "*", "*.yaml"))
                     if not os.path.basename(p).startswith("Base-"))


def test_there_is_a_config_per_paper_row_for_both_datasets():
    rows = {"strong_only", "fully_supervised", "wssdl", "wssdl_alternating", "wssdl_static_alpha", "wssdl_moi_abnormal",
            "wssdl_moi_discriminative", "wssdl_moi_benign", "weak_only_mil"}
    for dataset in ("BUSI", "Phantom"):
        have = {os.path.basename(p)[:-5] for p in EXPERIMENTS if os.path.basename(os.path.dirname(p)) == dataset}
        assert rows <= have, f"{dataset}: missing {sorted(rows - have)}"


def _test_split(name):
    """The tiny phantom's dataset standing in for a BUSI / Phantom training dataset of the same kind."""
    kind = name.split("_train_", 1)[1]  # strong_20, weak_10, all, ...
    return f"testphantom_train_{kind.split('_')[0]}" + ("" if kind == "all" else "_30")


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: os.path.relpath(p, CONFIGS))
def test_config_trains_a_step(path, tiny_cfg):
    own_train = tiny_cfg(path, **{"DATASETS.TRAIN": ()})  # tiny_cfg replaced the file's DATASETS.TRAIN: re-read it
    own_train.merge_from_file(path)
    cfg = tiny_cfg(path)
    train = tuple(_test_split(name) for name in own_train.DATASETS.TRAIN)
    cfg.merge_from_list(["DATASETS.TRAIN", train, "DATASETS.TEST", (), "SOLVER.MAX_ITER", 1,
                         "WSSDL.STRONG_PER_BATCH", min(cfg.WSSDL.STRONG_PER_BATCH, 1),
                         "WSSDL.WEAK_PER_BATCH", min(cfg.WSSDL.WEAK_PER_BATCH, 1)])
    torch.manual_seed(0)
    trainer = build_trainer(cfg)  # WSSDLTrainer, or Detectron2's DefaultTrainer for the plain reference row
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert trainer.iter == 1  # Detectron2 counts the step after the last one
    losses = trainer.storage.latest()
    assert all(torch.isfinite(torch.tensor(v[0])) for k, v in losses.items() if k.startswith("loss"))
    if cfg.MODEL.ROI_HEADS.NAME == "MILROIHeads" and any("weak" in n for n in train):
        assert "loss_mil" in losses
    if not any("weak" in n for n in train):
        assert "loss_mil" not in losses

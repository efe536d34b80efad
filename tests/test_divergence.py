"""A diverging run stops with a message a user can act on, its last checkpoint stays loadable, and ``--resume``
continues from it; every shipped config clips gradients (one recipe for baselines and the method)."""
import glob
import os

import pytest
import torch
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.utils.events import get_event_storage

from wssdl_d2.config import merge_config
from wssdl_d2.engine import TrainingDivergedError, WSSDLTrainer
from wssdl_d2.model_zoo import load_checkpoint

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


class NaNAtIteration(GeneralizedRCNN):
    """Detectron2's Faster R-CNN whose losses become NaN at iteration ``NAN_AT`` (None: never): a divergence at a
    known step, without waiting for a real one."""

    NAN_AT = None

    def forward(self, batched_inputs):
        out = super().forward(batched_inputs)
        if self.training and get_event_storage().iter == NaNAtIteration.NAN_AT:
            out = {k: v * float("nan") for k, v in out.items()}
        return out


if "NaNAtIteration" not in META_ARCH_REGISTRY:
    META_ARCH_REGISTRY.register(NaNAtIteration)


@pytest.fixture
def nan_at():
    def set_(iteration):
        NaNAtIteration.NAN_AT = iteration
    yield set_
    NaNAtIteration.NAN_AT = None


def test_divergence_message_checkpoint_and_resume(tiny_cfg, nan_at, one_thread):
    cfg = tiny_cfg(**{"MODEL.META_ARCHITECTURE": "NaNAtIteration", "SOLVER.MAX_ITER": 8,
                      "SOLVER.CHECKPOINT_PERIOD": 2, "SOLVER.CLIP_GRADIENTS.ENABLED": False, "DATASETS.TEST": ()})
    nan_at(5)
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=False)
    with pytest.raises(TrainingDivergedError) as caught:
        trainer.train()
    message = str(caught.value)
    checkpoint = os.path.join(cfg.OUTPUT_DIR, "model_0000003.pth")
    assert "diverged at iteration 5" in message and "losses at iteration 5: {" in message
    assert "loss_cls" in message and "last finite losses (iteration 4)" in message
    assert f"learning rate {cfg.SOLVER.BASE_LR:.4g}" in message
    assert "SOLVER.CLIP_GRADIENTS.ENABLED True" in message and "SOLVER.BASE_LR" in message
    assert checkpoint in message and "--resume" in message
    # the last checkpoint was written before the bad step: weights-only readable, finite, at iteration 3
    with open(os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")) as f:
        assert f.read() == "model_0000003.pth"
    saved = load_checkpoint(checkpoint)
    assert saved["iteration"] == 3 and all(torch.isfinite(v).all() for v in saved["model"].values())
    assert not os.path.exists(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    # --resume continues from it (no NaN this time) and finishes the schedule
    nan_at(None)
    resumed = WSSDLTrainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 4
    resumed.train()
    assert resumed.iter == 8 and os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))


def test_a_clipped_run_is_told_to_clip_harder(tiny_cfg, nan_at, one_thread):
    cfg = tiny_cfg(**{"MODEL.META_ARCHITECTURE": "NaNAtIteration", "SOLVER.MAX_ITER": 3, "DATASETS.TEST": (),
                      "SOLVER.CLIP_GRADIENTS.ENABLED": True})
    nan_at(0)
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=False)
    with pytest.raises(TrainingDivergedError, match="(?s)iteration 0.*CLIP_VALUE below 1.*No checkpoint was written"):
        trainer.train()


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "*", "*.yaml"))),
                         ids=lambda p: os.path.relpath(p, CONFIGS))
def test_every_shipped_config_clips_gradients(path):
    """Without clipping, the from-scratch strong-only phantom run diverged (NaN at iteration 70); the base config
    clips every parameter's gradient to norm 1.0, and no shipped config turns that off or changes it."""
    clip = merge_config(path).SOLVER.CLIP_GRADIENTS
    assert (clip.ENABLED, clip.CLIP_TYPE, clip.CLIP_VALUE) == (True, "norm", 1.0)

"""WSSDLTrainer: combined and alternating mini-batches, alpha logging, checkpoint / resume of both optimizers."""
import pytest
import torch

from wssdl_d2.engine import AlternatingTrainer, WSSDLTrainer
from wssdl_d2.modeling.alpha import alpha_at

JOINT = {"MODEL.META_ARCHITECTURE": "WSSDLRCNN", "MODEL.PROPOSAL_GENERATOR.NAME": "StrongOnlyRPN",
         "MODEL.ROI_HEADS.NAME": "MILROIHeads", "WSSDL.STRONG_PER_BATCH": 1, "WSSDL.WEAK_PER_BATCH": 2,
         "DATASETS.TRAIN": ("testphantom_train_strong_30", "testphantom_train_weak_30"), "DATASETS.TEST": (),
         "SOLVER.IMS_PER_BATCH": 3, "WSSDL.MIL.ALPHA.STEP": 1}


def _train(cfg, resume=False):
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=resume)
    trainer.train()
    return trainer


def test_combined_logs_alpha_and_losses_every_iteration(tiny_cfg):
    cfg = tiny_cfg(**JOINT, **{"SOLVER.MAX_ITER": 3, "WSSDL.MIL.CLASS_WEIGHTING": "inverse_frequency"})
    trainer = _train(cfg)
    assert type(trainer._trainer).__name__ == "SimpleTrainer"
    alphas = trainer.storage.history("wssdl/alpha").values()
    assert [it for _, it in alphas] == [0, 1, 2]
    assert [a for a, _ in alphas] == pytest.approx([alpha_at(t, cfg) for t in range(3)])
    for key in ("loss_mil", "loss_cls", "loss_rpn_cls", "wssdl/mil_ce"):
        assert len(trainer.storage.history(key).values()) == 3, key
    weights = trainer.model.roi_heads.mil_class_weights  # inverse frequency over the weak split
    assert len(weights) == 3 and sum(weights) == pytest.approx(1.0) and min(weights) > 0


def test_alternating_steps_strong_then_weak_with_two_optimizers(tiny_cfg):
    cfg = tiny_cfg(**JOINT, **{"WSSDL.BATCH_MODE": "alternating", "SOLVER.MAX_ITER": 3})
    trainer = WSSDLTrainer(cfg)
    inner = trainer._trainer
    assert isinstance(inner, AlternatingTrainer) and inner.weak_optimizer is not inner.optimizer
    rpn = {id(p) for p in trainer.model.proposal_generator.parameters()}
    weak_params = [p for g in inner.weak_optimizer.param_groups for p in g["params"]]
    assert weak_params and not rpn & {id(p) for p in weak_params}
    assert len(weak_params) + len(rpn) == len(list(trainer.model.parameters()))
    calls = []
    for name, opt in (("strong", inner.optimizer), ("weak", inner.weak_optimizer)):
        step = opt.step
        opt.step = lambda *a, _step=step, _name=name, **k: (calls.append(_name), _step(*a, **k))[1]
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert calls == ["strong", "weak"] * 3
    assert len(trainer.storage.history("loss_mil").values()) == 3
    assert inner.weak_scheduler.last_epoch == 3


def _optimizer_tensors(optimizer):
    return [t.clone() for s in optimizer.state_dict()["state"].values() for t in s.values() if torch.is_tensor(t)]


def test_checkpoint_and_resume_keep_both_optimizers_and_the_iteration(tiny_cfg):
    overrides = {**JOINT, "WSSDL.BATCH_MODE": "alternating", "SOLVER.CHECKPOINT_PERIOD": 2,
                 "WSSDL.SOLVER.OPTIMIZER": "ADAM", "SOLVER.BASE_LR": 1e-4}
    first = _train(tiny_cfg(**overrides, **{"SOLVER.MAX_ITER": 2}))  # saves model_0000001.pth and model_final.pth
    strong_state = _optimizer_tensors(first._trainer.optimizer)
    weak_state = _optimizer_tensors(first._trainer.weak_optimizer)
    assert strong_state and weak_state
    checkpoint = torch.load(f"{first.cfg.OUTPUT_DIR}/model_final.pth", weights_only=False)
    assert {"optimizer", "weak_optimizer", "weak_scheduler"} <= set(checkpoint["trainer"]["_trainer"])

    resumed = WSSDLTrainer(tiny_cfg(**overrides, **{"SOLVER.MAX_ITER": 4}))
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 2
    for before, after in ((strong_state, resumed._trainer.optimizer), (weak_state, resumed._trainer.weak_optimizer)):
        restored = _optimizer_tensors(after)
        assert len(restored) == len(before) and all(torch.equal(a, b) for a, b in zip(before, restored))
    assert resumed._trainer.weak_scheduler.last_epoch == 2
    resumed.train()
    assert resumed.iter == 4  # TrainerBase.train leaves iter at MAX_ITER
    assert [it for _, it in resumed.storage.history("wssdl/alpha").values()] == [2, 3]


def test_weak_images_need_the_mil_model(tiny_cfg):
    cfg = tiny_cfg(**{"DATASETS.TRAIN": ("testphantom_train_strong_30", "testphantom_train_weak_30")})
    with pytest.raises(ValueError, match="WSSDLRCNN"):
        WSSDLTrainer.build_train_loader(cfg)

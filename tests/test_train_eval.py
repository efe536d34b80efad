"""Training on the phantom runs on CPU and reduces the loss; train_net.py trains, resumes and evaluates."""
import os
import subprocess
import sys

import torch
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage

from wssdl_d2.engine import WSSDLTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_few_iterations_reduce_the_loss(tiny_cfg):
    cfg = tiny_cfg()
    seed_all_rng(0)  # model init and the loader's sampling and augmentation: the same batch on every run
    model = WSSDLTrainer.build_model(cfg)
    model.train()
    batch = next(iter(WSSDLTrainer.build_train_loader(cfg)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    with EventStorage(0):
        for _ in range(12):
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    # SGD with momentum on one batch oscillates step to step (one run's 12th step was 0.85x its 11th's):
    # the best of the last three steps must be well below the first
    assert min(losses[-3:]) < 0.6 * losses[0], losses


def _train_net(args, phantom_root):
    env = dict(os.environ, WSSDL_DATASETS=str(phantom_root.parent), PYTHONWARNINGS="ignore")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"),
           "--config-file", os.path.join(ROOT, "configs", "Phantom", "strong_only.yaml")] + args
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_train_net_trains_resumes_and_evaluates(tiny_opts, phantom_root, tmp_path):
    out = tmp_path / "output"
    opts = list(tiny_opts)
    log = _train_net(opts + ["SOLVER.CHECKPOINT_PERIOD", "2"], phantom_root)
    assert (out / "model_final.pth").exists() and (out / "model_0000001.pth").exists()
    assert (out / "last_checkpoint").read_text() == "model_final.pth"
    assert "Starting training from iteration 0" in log
    # --resume continues from the last checkpoint's iteration
    log = _train_net(["--resume"] + opts + ["SOLVER.MAX_ITER", "6"], phantom_root)
    assert "Starting training from iteration 4" in log
    # --eval-only on the written checkpoint produces COCO metrics
    log = _train_net(["--eval-only"] + opts + ["MODEL.WEIGHTS", str(out / "model_final.pth")], phantom_root)
    assert "copypaste: AP,AP50,AP75" in log
    assert (out / "inference" / "coco_instances_results.json").exists()

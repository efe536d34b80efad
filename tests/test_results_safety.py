"""Results that could be lost, and training on data or checkpoints that are wrong: each refused with one clear error.

- ``tools/train_net.py --eval-only`` without weights used to evaluate a randomly initialised model, exit 0 and write
  its results over the run's (CorLoc 54.05 -> 0.0); with the weights of another model it wrote over them too.
- Training accepted labels ``tools/check_dataset.py`` reports as contradictory (dataset category ids counted from 0:
  every benign box became malignant) and an empty (0-byte) image file.
- A truncated last checkpoint gave no hint of the previous one; a ``last_checkpoint`` naming a missing file gave an
  AssertionError traceback; a full disk during a save gave a traceback.
"""
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wssdl_d2.data.errors import DatasetError
from wssdl_d2.engine.checkpoint import AtomicDetectionCheckpointer
from wssdl_d2.model_zoo.safe_load import CheckpointError, UnreadableCheckpointError, load_model_weights

from conftest import TINY_OPTS

ROOT = Path(__file__).resolve().parent.parent
STRONG_ONLY = str(ROOT / "configs" / "Phantom" / "strong_only.yaml")
FAST_EVAL = ["WSSDL.EVAL.COCO", "False", "WSSDL.EVAL.PLOTS", "False", "WSSDL.EVAL.BOOTSTRAP_SAMPLES", "20"]


def _train_net(args, root, cwd):
    env = dict(os.environ, WSSDL_DATASETS=str(root), PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(ROOT / "tools" / "train_net.py"), "--config-file", STRONG_ONLY] + args,
                          env=env, capture_output=True, text=True, timeout=600, cwd=str(cwd))


def _last_line(proc):
    return proc.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def finished_run(phantom_root, tmp_path_factory):
    """A finished tiny training run (4 iterations) with its evaluation in ``inference/corloc.json``."""
    out = tmp_path_factory.mktemp("run") / "output"
    proc = _train_net(TINY_OPTS + FAST_EVAL + ["OUTPUT_DIR", str(out)], phantom_root.parent, out.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "inference" / "corloc.json").is_file() and (out / "model_final.pth").is_file()
    return out


def _snapshot(run):
    return {p: p.read_bytes() for p in [run / "config.yaml", *sorted((run / "inference").iterdir())] if p.is_file()}


# ---- --eval-only -------------------------------------------------------------------------------------------------

def test_eval_only_without_weights_is_refused_and_the_results_stay(finished_run, phantom_root):
    before = _snapshot(finished_run)
    proc = _train_net(["--eval-only"] + TINY_OPTS + FAST_EVAL + ["OUTPUT_DIR", str(finished_run)],
                      phantom_root.parent, finished_run.parent)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert _last_line(proc).startswith("error: --eval-only needs the trained model's weights: add MODEL.WEIGHTS "
                                       "path/to/model_final.pth (or --resume"), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert _snapshot(finished_run) == before


def test_eval_only_of_another_model_does_not_overwrite_the_runs_results(finished_run, phantom_root, tmp_path):
    other = tmp_path / "other" / "model.pth"
    other.parent.mkdir()
    shutil.copy(finished_run / "model_final.pth", other)
    before = _snapshot(finished_run)
    args = ["--eval-only"] + TINY_OPTS + FAST_EVAL + ["MODEL.WEIGHTS", str(other)]
    proc = _train_net(args + ["OUTPUT_DIR", str(finished_run)], phantom_root.parent, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    suggestion = finished_run / "eval_model"
    assert _last_line(proc) == (
        f"error: {finished_run / 'inference'} holds the results of another model ({finished_run / 'model_final.pth'}); "
        f"--eval-only of {other} would overwrite them. Give the evaluation a folder of its own: OUTPUT_DIR "
        f"{suggestion}"), proc.stderr[-3000:]
    assert _snapshot(finished_run) == before
    # the folder it names works, and records which weights its results are of
    proc = _train_net(args + ["OUTPUT_DIR", str(suggestion)], phantom_root.parent, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (suggestion / "inference" / "corloc.json").is_file()
    record = json.loads((suggestion / "inference" / "evaluated_weights.json").read_text())
    assert record == {"weights": os.path.realpath(other)}
    assert _snapshot(finished_run) == before


def test_eval_only_of_the_runs_own_checkpoint_keeps_its_config(finished_run, phantom_root):
    config = (finished_run / "config.yaml").read_bytes()
    proc = _train_net(["--eval-only", "--resume"] + TINY_OPTS + FAST_EVAL + ["OUTPUT_DIR", str(finished_run)],
                      phantom_root.parent, finished_run.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (finished_run / "config.yaml").read_bytes() == config  # the evaluation's config: inference/config.yaml
    assert (finished_run / "inference" / "config.yaml").is_file()
    record = json.loads((finished_run / "inference" / "evaluated_weights.json").read_text())
    assert record == {"weights": os.path.realpath(finished_run / "model_final.pth")}


def test_weights_that_leave_part_of_the_model_random_are_refused_for_evaluation(tiny_cfg, tmp_path):
    from wssdl_d2.engine import WSSDLTrainer

    model = WSSDLTrainer.build_model(tiny_cfg())
    backbone_only = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    path = tmp_path / "backbone.pth"
    torch.save({"model": backbone_only}, path)
    with pytest.raises(CheckpointError, match=r"backbone.pth: not a trained model of this config: \d+ of the model's"):
        load_model_weights(model, str(path), require_complete=True)
    with pytest.raises(CheckpointError, match="MODEL.WEIGHTS is empty"):
        load_model_weights(model, "", require_complete=True)
    load_model_weights(model, str(path))  # without require_complete (initialisation for training) it loads


# ---- training data the checker refuses ---------------------------------------------------------------------------

def _zero_based_copy(phantom_root, root):
    """The phantom's strong split with category ids counted from 0 (benign 0, malignant 1) and the malignant boxes
    moved to 1, the benign ones left at 1: every benign box reads as malignant."""
    data = json.loads((phantom_root / "train_strong_30.json").read_text())
    data["info"]["image_root"] = str(phantom_root / data["info"]["image_root"])
    data["categories"] = [{"id": 0, "name": "benign"}, {"id": 1, "name": "malignant"}]
    for ann in data["annotations"]:
        ann["category_id"] = 1
    (root / "zerobased").mkdir(parents=True)
    path = root / "zerobased" / "train.json"
    path.write_text(json.dumps(data))
    return path


def test_training_refuses_labels_the_checker_reports_as_contradictory(phantom_root, tiny_cfg, tmp_path):
    from wssdl_d2.data.dataset_check import check_dataset
    from wssdl_d2.data.wssdl_json import register_wssdl_json
    from wssdl_d2.engine import WSSDLTrainer

    path = _zero_based_copy(phantom_root, tmp_path / "datasets")
    report = check_dataset(str(path), max_hash_distance=None, progress=False)
    flipped = [p for p in report.problems if p.kind == "label"]
    assert flipped and all("box of class malignant on a benign image" in p.message for p in flipped)
    register_wssdl_json("zerobased_train_test", str(path))
    cfg = tiny_cfg(**{"DATASETS.TRAIN": ("zerobased_train_test",)})
    with pytest.raises(DatasetError) as err:
        WSSDLTrainer.build_train_loader(cfg)
    message = str(err.value)
    assert message.startswith(f"zerobased_train_test ({path}): {len(flipped)} problem(s) in the training data")
    assert "box of class malignant on a benign image" in message and "ids counted from 0" in message
    # as a user sees it: train_net stops before iteration 0 with the message, exit status 2
    proc = _train_net(TINY_OPTS + ["DATASETS.TRAIN", "('zerobased_train',)", "OUTPUT_DIR", str(tmp_path / "out")],
                      tmp_path / "datasets", tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"error: zerobased_train ({path}): {len(flipped)} problem(s)" in proc.stderr, proc.stderr[-3000:]
    assert "Starting training from iteration 0" not in proc.stdout + proc.stderr
    assert not (tmp_path / "out" / "model_final.pth").exists()


def test_training_refuses_an_empty_image_file_before_iteration_0(phantom_root, tmp_path):
    from wssdl_d2.data.checks import check_dataset_dicts
    from wssdl_d2.data.wssdl_json import load_wssdl_json

    records = load_wssdl_json(str(phantom_root / "train_strong_30.json"))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    records[0] = {**records[0], "file_name": str(empty)}
    with pytest.raises(DatasetError, match=f"{empty}: image file is empty \\(0 bytes\\)"):
        check_dataset_dicts(records, "train_strong_30.json")


# ---- checkpoints -------------------------------------------------------------------------------------------------

def _checkpoint_folder(folder, last):
    model = torch.nn.Linear(3, 2)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "iteration": 1}, folder / "model_0000001.pth")
    whole = (folder / "model_0000001.pth").read_bytes()
    (folder / "model_final.pth").write_bytes(whole[: len(whole) // 2])  # truncated (a copy cut short)
    (folder / "last_checkpoint").write_text(last)
    return model


def test_a_truncated_last_checkpoint_names_the_previous_one(tmp_path):
    model = _checkpoint_folder(tmp_path / "run", "model_final.pth")
    with pytest.raises(UnreadableCheckpointError) as err:
        load_model_weights(model, "", save_dir=str(tmp_path / "run"), resume=True)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'run' / 'model_final.pth'}: not a readable PyTorch checkpoint")
    run = tmp_path / "run"
    assert (f"The previous checkpoint {run / 'model_0000001.pth'} reads back: to continue from it, run "
            f"`echo model_0000001.pth > {run / 'last_checkpoint'}` and start again with --resume") in message


def test_a_last_checkpoint_naming_a_missing_file_is_one_clear_error(tmp_path, phantom_root):
    model = _checkpoint_folder(tmp_path / "run", "model_0000009.pth")
    with pytest.raises(CheckpointError) as err:
        load_model_weights(model, "", save_dir=str(tmp_path / "run"), resume=True)
    assert str(err.value).startswith(f"{tmp_path / 'run' / 'last_checkpoint'} names model_0000009.pth, which is not "
                                     f"in {tmp_path / 'run'}. The previous checkpoint")
    # train_net --resume on such a folder: one error line, no AssertionError traceback
    proc = _train_net(["--resume"] + TINY_OPTS + ["OUTPUT_DIR", str(tmp_path / "run")], phantom_root.parent, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert _last_line(proc).startswith(f"error: {tmp_path / 'run' / 'last_checkpoint'} names model_0000009.pth")
    assert "AssertionError" not in proc.stderr


def test_a_full_disk_during_a_save_is_one_line_naming_the_folder_and_its_free_space(tmp_path, monkeypatch, capsys):
    from wssdl_d2.cli import run_main

    folder = tmp_path / "run"
    checkpointer = AtomicDetectionCheckpointer(torch.nn.Linear(3, 2), str(folder))
    checkpointer.save("model_0000001")
    kept = (folder / "model_0000001.pth").read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(CheckpointError, match=rf"cannot save model_0000002.pth in {folder}: the disk is full "
                                              r"\([\d.]+ (bytes|KB|MB|GB) free there\)"):
        checkpointer.save("model_0000002")
    assert (folder / "model_0000001.pth").read_bytes() == kept
    assert (folder / "last_checkpoint").read_text() == "model_0000001.pth"
    assert sorted(os.listdir(folder)) == ["last_checkpoint", "model_0000001.pth"]  # no partial file left
    with pytest.raises(SystemExit) as exit_:
        run_main(checkpointer.save, "model_0000002")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith(f"error: cannot save model_0000002.pth in")


def test_the_plain_detectron2_trainer_refuses_the_same_contradictory_labels(phantom_root, tiny_cfg, tmp_path):
    """WSSDL.TRAINER detectron2 (Detectron2's own DefaultTrainer) runs the project's training-data checks too."""
    from wssdl_d2.data.wssdl_json import register_wssdl_json
    from wssdl_d2.engine.reference import build_trainer

    path = _zero_based_copy(phantom_root, tmp_path / "datasets")
    register_wssdl_json("zerobased_plain_test", str(path))
    plain = os.path.join(ROOT, "configs", "BUSI", "plain_detectron2.yaml")
    cfg = tiny_cfg(plain, **{"DATASETS.TRAIN": ("zerobased_plain_test",), "OUTPUT_DIR": str(tmp_path / "out")})
    with pytest.raises(DatasetError, match=r"zerobased_plain_test \(.*\): \d+ problem\(s\) in the training data"):
        build_trainer(cfg)

"""Cross-validation of site adaptation over a site's folds (wssdl_d2.crossval.site, ``tools/adapt_site.py
--site-folds``): a tiny source model, a tiny site in 2 folds with 0 and 2 boxed scans per training part; every run's
datasets, a stop and a restart that trains only what was left, the pooled report, and the errors a user meets."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model

from conftest import CountingRuns, tiny_crossval_opts, write_tiny_phantom
from wssdl_d2.config import merge_config
from wssdl_d2.crossval import runs as cv_runs
from wssdl_d2.crossval.report import build_report
from wssdl_d2.crossval.runs import CrossValError
from wssdl_d2.crossval.site import ZERO_SHOT, SourceModel, adapted_row, run_site_crossval, site_fold_datasets
from wssdl_d2.data import register_datasets_under
from wssdl_d2.data.phantom import write_phantom_dataset
from wssdl_d2.data.prepare import prepare_pool

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SOURCE = "scsrc_train_strong_30"


@pytest.fixture(scope="module")
def source_and_site(tmp_path_factory):
    """(the source model's config file, its weights file, the datasets root) with the site ``scsite`` in 2 folds."""
    base = tmp_path_factory.mktemp("sitecv")
    write_tiny_phantom(base, "scsrc", strong_fractions=(0.3,))
    write_phantom_dataset(base / "scsite" / "images", (2, 6, 6), 96, 128, seed=1, site="b")
    prepare_pool(base / "scsite" / "images", base / "scsite", strong_fractions=(), val_fraction=0.0, seed=0,
                 name="scsite", progress=False, log=lambda *a: None, test_all=True, folds=2, strong_counts=(0, 2))
    register_datasets_under(str(base))
    cfg = merge_config(os.path.join(ROOT, "configs", "Phantom", "strong_only.yaml"),
                       tiny_crossval_opts() + ["DATASETS.TRAIN", f"('{SOURCE}',)", "DATASETS.TEST", "()",
                                               "MODEL.DEVICE", "cpu"])
    model_dir = base / "source_model"
    model_dir.mkdir()
    torch.manual_seed(0)
    DetectionCheckpointer(build_model(cfg), save_dir=str(model_dir)).save("model_final")
    config_file = model_dir / "config.yaml"
    config_file.write_text(cfg.dump())
    return str(config_file), str(model_dir / "model_final.pth"), base


def test_site_crossval_adapts_each_fold_resumes_and_pools(source_and_site, tmp_path, one_thread):
    config_file, weights, _ = source_and_site
    # a source trained with a cosine schedule: the adaptation's rate is constant all the same
    model_cfg = merge_config(config_file, ["MODEL.DEVICE", "cpu", "SOLVER.LR_SCHEDULER_NAME", "WarmupCosineLR"])
    out = str(tmp_path / "adapt")
    one_model = SourceModel(model_cfg, weights, [SOURCE])
    args = ({0: one_model, 1: one_model}, "scsite", [0, 2], out)
    opts = tiny_crossval_opts() + ["TEST.DETECTIONS_PER_IMAGE", "19"]
    first = CountingRuns(stop_at=3)  # fold 0: both box counts done; fold 1: the first adaptation is stopped
    with pytest.raises(KeyboardInterrupt):
        run_site_crossval(*args, max_iter=2, opts=opts, log=lambda *a: None, train_fn=first.train,
                          eval_fn=first.evaluate)
    # each adaptation trains on the source's boxes plus its fold's training part, at a constant rate
    n0, n2 = first.configs[0], first.configs[1]
    assert n0.DATASETS.TRAIN == (SOURCE, "scsite_fold0_train_weak_n0")
    assert n2.DATASETS.TRAIN == (SOURCE, "scsite_fold0_train_weak_n2", "scsite_fold0_train_strong_n2")
    assert n0.MODEL.META_ARCHITECTURE == "WSSDLRCNN" and n0.SOLVER.LR_SCHEDULER_NAME == "WarmupMultiStepLR"
    assert n0.SOLVER.STEPS == () and n0.MODEL.WEIGHTS == os.path.abspath(weights)
    assert cv_runs.read_state(os.path.join(out, adapted_row(0), "fold1"))["status"] == "failed"
    assert first.evaluated[0] == os.path.join(out, ZERO_SHOT, "fold0")  # the model as it came, before adapting
    # the zero-shot row is evaluated with the adaptations' overrides too, so the paired rows differ in the model only
    assert first.eval_configs[0].TEST.DETECTIONS_PER_IMAGE == 19 == first.configs[0].TEST.DETECTIONS_PER_IMAGE
    finished = os.path.join(out, adapted_row(2), "fold0", "model_final.pth")
    mtime = os.path.getmtime(finished)
    # a finished adaptation keeps model_final.pth only (its periodic checkpoint, iteration 0 of 2, was removed)
    assert sorted(f for f in os.listdir(os.path.dirname(finished)) if f.endswith(".pth")) == ["model_final.pth"]

    second = CountingRuns()
    result = run_site_crossval(*args, max_iter=2, opts=opts, log=lambda *a: None, train_fn=second.train,
                               eval_fn=second.evaluate)
    assert second.trained == [os.path.join(out, adapted_row(n), "fold1") for n in (0, 2)]
    assert len(second.evaluated) == 2 and os.path.getmtime(finished) == mtime  # fold 1's zero-shot was done

    assert list(result["pooled"]) == [ZERO_SHOT, adapted_row(0), adapted_row(2)]
    site_scans = sorted(os.path.basename(d["file_name"]) for k in (0, 1)
                        for d in DatasetCatalog.get(f"scsite_fold{k}_val"))
    for row, pooled in result["pooled"].items():  # every site scan tested once per row, by the model of its fold
        assert sorted(os.path.basename(f) for f in pooled["file_name"]) == site_scans, row
    report = build_report(result["pooled"], num_samples=50)
    assert [(p["a"], p["b"]) for p in report["pairs"]] == [(adapted_row(0), ZERO_SHOT), (adapted_row(2), ZERO_SHOT),
                                                             (adapted_row(2), adapted_row(0))]

    third = CountingRuns()
    run_site_crossval(*args, max_iter=2, opts=opts, log=lambda *a: None, train_fn=third.train,
                      eval_fn=third.evaluate)
    assert not third.trained and not third.evaluated
    # a zero-shot fold evaluated before wssdl_d2 added a config key (at its default now) is still recognised
    older = first.eval_configs[0].clone()
    older.defrost()
    del older.WSSDL["FINETUNE_LR"]
    zero_dir = os.path.join(out, ZERO_SHOT, "fold0")
    with open(os.path.join(zero_dir, "config.yaml"), "w") as f:
        f.write(older.dump())
    with open(os.path.join(zero_dir, "zero_shot.json")) as f:
        stamp = json.load(f)
    stamp["fingerprint"] = cv_runs.config_fingerprint(older)
    with open(os.path.join(zero_dir, "zero_shot.json"), "w") as f:
        json.dump(stamp, f)
    run_site_crossval(*args, max_iter=2, opts=opts, log=lambda *a: None, train_fn=third.train,
                      eval_fn=third.evaluate)
    assert not third.trained and not third.evaluated
    # the same folder with another model or other settings is refused, not continued or overwritten
    other_model = str(tmp_path / "other" / "model_final.pth")
    os.makedirs(os.path.dirname(other_model))
    shutil.copy(weights, other_model)
    with pytest.raises(CrossValError, match="another model"):
        run_site_crossval({k: one_model._replace(weights=other_model) for k in (0, 1)}, *args[1:], max_iter=2, opts=opts, log=lambda *a: None,
                          train_fn=third.train, eval_fn=third.evaluate)
    with pytest.raises(CrossValError, match="another config"):
        run_site_crossval(*args, max_iter=2, alpha=0.25, opts=opts, log=lambda *a: None, train_fn=third.train,
                          eval_fn=third.evaluate)
    assert not third.trained and not third.evaluated


def test_site_crossval_with_the_teacher_adapts_with_it_and_tests_the_model_as_it_came(source_and_site, tmp_path):
    config_file, weights, _ = source_and_site
    model_cfg = merge_config(config_file, ["MODEL.DEVICE", "cpu"])
    runs = CountingRuns(stop_at=1)  # the first adaptation's config is recorded, then the run stops
    with pytest.raises(KeyboardInterrupt):
        run_site_crossval({0: SourceModel(model_cfg, weights, [SOURCE])}, "scsite", [0], str(tmp_path / "t"),
                          max_iter=2, opts=tiny_crossval_opts(), log=lambda *a: None, train_fn=runs.train,
                          eval_fn=runs.evaluate, teacher=True)
    taught = runs.configs[0].WSSDL.TEACHER
    assert (taught.ENABLED, taught.BURN_IN, taught.EVAL_WITH) == (True, 0, "student")
    assert not runs.eval_configs[0].WSSDL.TEACHER.ENABLED  # the zero-shot row: the model as it came


def _fold_models(base, name):
    """A source pool ``name`` in 2 folds and one (untrained) model per fold, each with its fold's training config:
    {fold: SourceModel with the fold's held-out dataset as ``test``}."""
    write_tiny_phantom(base, name, folds=2)
    sources = {}
    for k in (0, 1):
        train = f"{name}_fold{k}_train_strong_30"
        cfg = merge_config(os.path.join(ROOT, "configs", "Phantom", "strong_only.yaml"),
                           tiny_crossval_opts() + ["DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", "()",
                                                   "MODEL.DEVICE", "cpu"])
        model_dir = base / f"{name}_model{k}"
        model_dir.mkdir()
        torch.manual_seed(k)
        DetectionCheckpointer(build_model(cfg), save_dir=str(model_dir)).save("model_final")
        (model_dir / "config.yaml").write_text(cfg.dump())
        sources[k] = SourceModel(cfg, str(model_dir / "model_final.pth"), [train], f"{name}_fold{k}_val")
    return sources


def test_site_crossval_with_a_model_per_source_fold_measures_the_cost_at_the_source(source_and_site, tmp_path,
                                                                                      one_thread):
    _, _, base = source_and_site
    sources = _fold_models(base, "scpool")
    out = str(tmp_path / "adapt")
    opts = tiny_crossval_opts()
    first = CountingRuns()
    result = run_site_crossval(sources, "scsite", [0], out, max_iter=2, opts=opts, log=lambda *a: None,
                               train_fn=first.train, eval_fn=first.evaluate)
    # fold k starts from fold k's model and keeps its boxed training images only (never its held-out fold)
    for k, cfg in enumerate(first.configs):
        assert cfg.MODEL.WEIGHTS == os.path.abspath(sources[k].weights)
        assert cfg.DATASETS.TRAIN == (f"scpool_fold{k}_train_strong_30", f"scsite_fold{k}_train_weak_n0")
    for k in (0, 1):  # each row also tested on the source fold its model never saw
        for row in (ZERO_SHOT, adapted_row(0)):
            assert os.path.join(out, row, f"fold{k}", f"scpool_fold{k}_val") in first.evaluated
    source_images = sorted(os.path.basename(d["file_name"]) for k in (0, 1)
                           for d in DatasetCatalog.get(f"scpool_fold{k}_val"))
    assert list(result["source_pooled"]) == [ZERO_SHOT, adapted_row(0)]
    for row, pooled in result["source_pooled"].items():
        assert sorted(os.path.basename(f) for f in pooled["file_name"]) == source_images, row
    with open(os.path.join(out, ZERO_SHOT, "fold1", "zero_shot.json")) as f:
        assert json.load(f)["weights"] == os.path.abspath(sources[1].weights)
    # nothing is trained or tested again
    second = CountingRuns()
    again = run_site_crossval(sources, "scsite", [0], out, max_iter=2, opts=opts, log=lambda *a: None,
                              train_fn=second.train, eval_fn=second.evaluate)
    assert not second.trained and not second.evaluated
    assert (again["source_pooled"][adapted_row(0)]["hit_any"] == result["source_pooled"][adapted_row(0)][
        "hit_any"]).all()
    # one model for every fold: no source test; a source test for some folds only is refused
    assert run_site_crossval({k: sources[k]._replace(test=None) for k in (0, 1)}, "scsite", [0], out, max_iter=2,
                             opts=opts, log=lambda *a: None, train_fn=second.train,
                             eval_fn=second.evaluate)["source_pooled"] is None
    with pytest.raises(CrossValError, match="for folds \\[0\\] only"):
        run_site_crossval({0: sources[0], 1: sources[1]._replace(test=None)}, "scsite", [0], out, max_iter=2,
                          opts=opts, log=lambda *a: None, train_fn=second.train, eval_fn=second.evaluate)
    with pytest.raises(CrossValError, match="scpool_fold7_val"):
        run_site_crossval({0: sources[0]._replace(test="scpool_fold7_val"), 1: sources[1]}, "scsite", [0], out,
                          max_iter=2, opts=opts, log=lambda *a: None, train_fn=second.train, eval_fn=second.evaluate)
    assert not second.trained and not second.evaluated


def test_site_fold_datasets_name_what_is_missing(source_and_site):
    assert site_fold_datasets("scsite", 1, 2) == (["scsite_fold1_train_weak_n2", "scsite_fold1_train_strong_n2"],
                                                  "scsite_fold1_val")
    with pytest.raises(CrossValError, match="scsite_fold0_train_weak_n5"):
        site_fold_datasets("scsite", 0, 5)


def _tool():
    from wssdl_d2.cli import adapt_site  # tools/adapt_site.py, wssdl-adapt-site

    return adapt_site


def test_adapt_site_tool_arguments():
    tool = _tool()
    args = tool.parse_args(["--from", "m.pth", "--site", "s", "--out", "o", "--boxes", "10", "SOLVER.MAX_ITER", "5"])
    assert args.boxes == [10] and args.opts == ["SOLVER.MAX_ITER", "5"]
    args = tool.parse_args(["--from", "m.pth", "--site-folds", "breast", "--out", "o", "--boxes", "0", "10", "25"])
    assert args.boxes == [0, 10, 25] and args.opts == []
    with pytest.raises(SystemExit):
        tool.parse_args(["--from", "m.pth", "--site", "s", "--out", "o", "--boxes", "ten"])


def test_adapt_site_tool_site_folds_errors(source_and_site, tmp_path):
    config_file, weights, base = source_and_site
    tool = os.path.join(ROOT, "tools", "adapt_site.py")
    env = dict(os.environ, WSSDL_DATASETS=str(base), PYTHONWARNINGS="ignore")
    run = subprocess.run([sys.executable, tool, "--from", weights, "--site-folds", "scsite", "--boxes", "0", "5",
                          "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 2 and "scsite_fold0_train_weak_n5" in run.stderr and "prepare_busi.py" in run.stderr
    run = subprocess.run([sys.executable, tool, "--from", weights, "--site-train", "scsite_fold0_train_weak_n0",
                          "--boxes", "0", "2", "--out", str(tmp_path / "y")], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 2 and "one count" in run.stderr
    assert not os.path.exists(tmp_path / "y")
    # a misspelt override is named before anything runs
    run = subprocess.run([sys.executable, tool, "--from", weights, "--site-folds", "scsite", "--out",
                          str(tmp_path / "z"), "SOLVER.MAXITER", "5"], capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 2 and "SOLVER.MAXITER" in run.stderr and "Traceback" not in run.stderr
    assert not os.path.exists(tmp_path / "z" / ZERO_SHOT)
    # a source test needs one model per fold, and per-fold models need --site-folds
    run = subprocess.run([sys.executable, tool, "--from", weights, "--site-folds", "scsite", "--source-test",
                          "scsite_fold{fold}_val", "--out", str(tmp_path / "w")], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 2 and "one model per fold" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, tool, "--from", weights.replace("source_model", "{fold}"), "--site-train",
                          "scsite_fold0_train_weak_n0", "--out", str(tmp_path / "v")], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 2 and "only with --site-folds" in run.stderr
    run = subprocess.run([sys.executable, tool, "--from", weights, "--site-train", "scsite_fold0_train_weak_n0",
                          "--keep-checkpoints", "--out", str(tmp_path / "u")], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 2 and "--keep-checkpoints only with --site-folds" in run.stderr
    assert not any(os.path.exists(tmp_path / d) for d in "wvu")

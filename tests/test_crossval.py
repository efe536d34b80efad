"""Cross-validation (wssdl_d2.crossval, tools/crossval.py): pooled and paired numbers against a hand computation
on a made-up per-image table (stratified bootstrap, McNemar), and 2 tiny configs x 2 folds trained end to end,
stopped and started again without retraining finished runs."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import CountingRuns, tiny_crossval_opts
from wssdl_d2.crossval import (
    CrossValError,
    RunSpec,
    compare_pooled,
    fold_dataset_for,
    per_fold_metrics,
    pool_folds,
    pooled_metrics,
    stratified_bootstrap_indices,
)
from wssdl_d2.crossval import runs as cv_runs
from wssdl_d2.crossval.driver import crossval_report, fold_run_dirs, parse_rows, parse_specs, read_rows, run_crossval
from wssdl_d2.crossval.external import evaluate_external
from wssdl_d2.crossval.report import markdown, write_all
from wssdl_d2.evaluation.bootstrap import bootstrap_indices, percentile_interval
from wssdl_d2.evaluation.metrics import estimate
from wssdl_d2.evaluation.paired import explain_difference
from wssdl_d2.evaluation.results_io import ResultsError

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "Phantom")
TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "crossval.py")


def _crossval_cli(args):
    """``tools/crossval.py ARGS`` as a user runs it; returns the finished process."""
    return subprocess.run([sys.executable, TOOL] + list(args), capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))


def _table(prefix, labels, hit_any, hit_top1=None):
    """Per-image columns as read_per_image returns them; normal images (label 0) have no mass."""
    labels = np.asarray(labels, np.int64)
    mass = labels > 0
    hit_any = np.asarray(hit_any, bool) & mass
    hit_top1 = (hit_any if hit_top1 is None else np.asarray(hit_top1, bool)) & mass
    n = len(labels)
    return {
        "file_name": np.asarray([f"{prefix}_{i}.png" for i in range(n)], dtype=object), "image_id": np.arange(n),
        "image_label": labels, "num_gt": mass.astype(np.int64), "has_mass": mass, "hit_any": hit_any,
        "hit_top1": hit_top1, "top1_score": np.full(n, 0.9), "top1_iou": np.full(n, 0.6), "best_iou": np.full(n, 0.6),
        "num_det": np.ones(n, np.int64), "num_det_at_tau": np.ones(n, np.int64), "fp_at_tau": np.zeros(n, np.int64),
        "malignancy_score": np.linspace(0, 1, n), "abnormality_score": np.linspace(0, 1, n),
        "predicted_label": labels.copy(),
    }


def test_pooled_and_per_fold_corloc_equal_a_hand_count():
    # fold 0: 4 masses, 3 hit (top-1: 2); fold 1: 4 masses, 1 hit (top-1: 1), 2 normal images
    folds = {0: _table("f0", [1, 2, 1, 2], [1, 1, 1, 0], [1, 1, 0, 0]),
             1: _table("f1", [1, 1, 2, 2, 0, 0], [1, 0, 0, 0, 0, 0])}
    pooled = pool_folds(folds)
    assert list(pooled["fold"]) == [0] * 4 + [1] * 6
    metrics = pooled_metrics(pooled, num_samples=200)
    assert metrics["CorLoc"]["value"] == pytest.approx(100 * 4 / 8) and metrics["CorLoc"]["n"] == 8
    assert metrics["CorLoc_top1"]["value"] == pytest.approx(100 * 3 / 8)
    assert metrics["CorLoc-malignant"]["value"] == pytest.approx(100 * 1 / 4)
    lo, hi = metrics["CorLoc"]["ci"]
    assert lo <= 50 <= hi
    per_fold = per_fold_metrics(pooled, num_samples=200)
    assert per_fold[0]["CorLoc"]["value"] == 75 and per_fold[1]["CorLoc"]["value"] == 25
    assert per_fold[1]["CorLoc"]["n"] == 4


def test_stratified_bootstrap_resamples_within_folds():
    strata = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    indices = stratified_bootstrap_indices(strata, num_samples=500, seed=3)
    assert indices.shape == (500, 9)
    assert (strata[indices] == strata[None, :]).all()  # every column draws from its own fold
    assert np.array_equal(indices, stratified_bootstrap_indices(strata, 500, 3))
    assert set(np.unique(indices[:, 5:])) == {5, 6, 7, 8}
    # fold 0 all hits, fold 1 all misses: within-fold resampling keeps the pooled CorLoc at 50 in every resample;
    # resampling the pooled images ignores the folds and gives a wide interval
    pooled = pool_folds({0: _table("a", [1] * 10, [1] * 10), 1: _table("b", [2] * 10, [0] * 10)})
    stratified = pooled_metrics(pooled, num_samples=1000)["CorLoc"]
    assert stratified["value"] == 50 and stratified["ci"] == (50.0, 50.0)
    plain = percentile_interval(estimate(pooled, bootstrap_indices(20, 1000, 0))["CorLoc"][1])
    assert plain[0] < 40 and plain[1] > 60


def test_paired_pooled_difference_and_mcnemar_match_a_hand_computation():
    # 12 mass images over 2 folds. A right only on 1 image, B right only on 7, both right on 3, both wrong on 1.
    a_hits = [1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    b_hits = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
    labels = [1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2]
    a = pool_folds({0: _table("x", labels[:6], a_hits[:6]), 1: _table("y", labels[6:], a_hits[6:])})
    b = pool_folds({0: _table("x", labels[:6], b_hits[:6]), 1: _table("y", labels[6:], b_hits[6:])})
    result = compare_pooled(a, b, num_samples=500, name_a="A", name_b="B")
    r = result["CorLoc"]
    assert r["a"] == pytest.approx(100 * 4 / 12) and r["b"] == pytest.approx(100 * 10 / 12)
    assert r["diff"] == pytest.approx(-50.0) and r["n"] == 12
    assert r["mcnemar"]["a_only"] == 1 and r["mcnemar"]["b_only"] == 7
    # exact two-sided binomial: 2 * P(X <= 1), X ~ Bin(8, 1/2) = 2 * (1 + 8) / 256
    assert r["mcnemar"]["p_value"] == pytest.approx(18 / 256)
    assert r["ci"][0] <= -50 <= r["ci"][1] and r["ci"][1] < 0
    sentence = explain_difference(result, "CorLoc", "A", "B")
    assert "McNemar" in sentence and "-50.0" in sentence
    # different images, or the same image in another fold, are refused
    with pytest.raises(ResultsError, match="same test images"):
        compare_pooled(a, pool_folds({0: _table("z", labels, b_hits)}))
    moved = pool_folds({0: _table("x", labels[:6], b_hits[:6]), 2: _table("y", labels[6:], b_hits[6:])})
    with pytest.raises(ResultsError, match="different folds"):
        compare_pooled(a, moved)
    with pytest.raises(ResultsError, match="more than one fold"):
        pool_folds({0: _table("x", [1, 1], [1, 1]), 1: _table("x", [1, 1], [1, 1])})


def test_dataset_names_map_to_the_fold_of_the_same_kind():
    assert fold_dataset_for("busi_train_strong_20", "busi", 3) == "busi_fold3_train_strong_20"
    assert fold_dataset_for("busi_val", "busi", 0) == "busi_fold0_val"
    assert fold_dataset_for("phantom_train_weak_20", "cvphantom", 1) == "cvphantom_fold1_train_weak_20"
    assert fold_dataset_for("busi_train_all", "busi", 4) == "busi_fold4_train_all"
    # --strong-percent 10: the 10% boxes rows from configs that name the 20% split
    assert fold_dataset_for("busi_train_strong_20", "busi", 2, 10) == "busi_fold2_train_strong_10"
    assert fold_dataset_for("busi_train_weak_20", "busi", 2, 10) == "busi_fold2_train_weak_10"
    assert fold_dataset_for("busi_train_all", "busi", 2, 10) == "busi_fold2_train_all"
    # the fully supervised row (every image boxed) stays itself in a 10% comparison
    assert fold_dataset_for("busi_train_strong_100", "busi", 2, 10) == "busi_fold2_train_strong_100"
    # --inner: the fold's inner split, where settings are chosen; val / test become the inner validation split
    assert fold_dataset_for("busi_train_strong_20", "busi", 0, 10, inner=True) == "busi_fold0_inner_train_strong_10"
    assert fold_dataset_for("busi_train_all", "busi", 1, inner=True) == "busi_fold1_inner_train_all"
    assert fold_dataset_for("busi_val", "busi", 1, inner=True) == "busi_fold1_inner_val"
    with pytest.raises(CrossValError, match="not a prepared split"):
        fold_dataset_for("my_images", "busi", 0)
    with pytest.raises(CrossValError, match="twice"):
        parse_specs([os.path.join(CONFIGS, "wssdl.yaml"), os.path.join("x", "wssdl.yaml")])
    assert [s.name for s in parse_specs(["a=x.yaml", "y/b.yaml"])] == ["a", "b"]


# ---- end to end on a tiny phantom with 2 folds -----------------------------------------------------------------

@pytest.fixture(scope="module")
def fold_data(tmp_path_factory):
    from conftest import write_tiny_phantom

    base = tmp_path_factory.mktemp("cvdata")
    write_tiny_phantom(base, "cvphantom", strong_fractions=(0.2,), folds=2)
    return base


def test_crossval_trains_every_fold_stops_resumes_and_reports(fold_data, tmp_path, one_thread, capsys):
    specs = [RunSpec("strong_only", os.path.join(CONFIGS, "strong_only.yaml")),
             RunSpec("wssdl", os.path.join(CONFIGS, "wssdl.yaml"))]
    out = str(tmp_path / "cv")
    opts = tiny_crossval_opts()
    first = CountingRuns(stop_at=3)  # fold 0 of both configs finishes, fold 1 of strong_only is stopped
    with pytest.raises(KeyboardInterrupt):
        run_crossval(specs, "cvphantom", [0, 1], out, opts, train_fn=first.train, eval_fn=first.evaluate)
    assert len(first.trained) == 3 and len(first.evaluated) == 2
    assert cv_runs.read_state(os.path.join(out, "strong_only", "fold1"))["status"] == "failed"
    finished = os.path.join(out, "wssdl", "fold0", "model_final.pth")
    mtime = os.path.getmtime(finished)

    second = CountingRuns()
    result = run_crossval(specs, "cvphantom", [0, 1], out, opts, train_fn=second.train, eval_fn=second.evaluate)
    assert sorted(second.trained) == sorted(os.path.join(out, n, "fold1") for n in ("strong_only", "wssdl"))
    assert len(second.evaluated) == 2 and os.path.getmtime(finished) == mtime

    third = CountingRuns()
    again = run_crossval(specs, "cvphantom", [0, 1], out, opts, train_fn=third.train, eval_fn=third.evaluate)
    assert not third.trained and not third.evaluated

    # two runs at a time, each in its own process with one thread: the same per-image outcomes
    parallel = run_crossval(specs, "cvphantom", [0, 1], str(tmp_path / "cv_jobs"), opts, jobs=2, threads=1,
                            dataset_root=str(fold_data))
    for name in ("strong_only", "wssdl"):
        for column in ("file_name", "hit_any", "hit_top1", "malignancy_score"):
            assert np.array_equal(parallel["pooled"][name][column], again["pooled"][name][column]), (name, column)
        assert all(s["status"] == "evaluated" for s in parallel["states"][name].values())

    state = cv_runs.read_state(os.path.join(out, "wssdl", "fold1"))
    assert state["status"] == "evaluated" and state["train"] == ["cvphantom_fold1_train_strong_20",
                                                                 "cvphantom_fold1_train_weak_20"]
    assert state["test"] == ["cvphantom_fold1_val"]
    # every usable image tested once, in its fold
    from detectron2.data import DatasetCatalog
    pool = {d["file_name"] for k in (0, 1) for d in DatasetCatalog.get(f"cvphantom_fold{k}_val")}
    for name in ("strong_only", "wssdl"):
        assert set(result["pooled"][name]["file_name"]) == pool
        assert np.array_equal(result["pooled"][name]["hit_any"], again["pooled"][name]["hit_any"])

    report = crossval_report(result, num_samples=200)
    paths = write_all(report, out)
    assert all(os.path.getsize(p) > 0 for p in paths.values())
    table = markdown(report)
    assert "| strong_only |" in table and "| wssdl - strong_only |" in table
    pair = report["pairs"][0]
    assert (pair["a"], pair["b"]) == ("wssdl", "strong_only")
    assert pair["comparison"]["CorLoc"]["diff"] == pytest.approx(
        report["configs"]["wssdl"]["pooled"]["CorLoc"]["value"]
        - report["configs"]["strong_only"]["pooled"]["CorLoc"]["value"])
    assert report["configs"]["wssdl"]["timing"]["seconds_per_iteration"] > 0

    # another config in the same folders is refused, not continued or overwritten
    with pytest.raises(CrossValError, match="another config"):
        run_crossval(specs, "cvphantom", [0, 1], out, tiny_crossval_opts(max_iter=3), train_fn=third.train,
                     eval_fn=third.evaluate)

    # the command line on the finished folder: nothing is trained, the report is printed and written
    os.remove(paths["csv"])
    proc = _crossval_cli(["--data", "cvphantom", "--folds", "2", "--out", out, "--dataset-root", str(fold_data),
                          "--num-samples", "100", "--configs", f"strong_only={specs[0].config_file}",
                          f"wssdl={specs[1].config_file}", *map(str, opts)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| wssdl - strong_only |" in proc.stdout and os.path.isfile(paths["csv"])
    assert "Starting training" not in proc.stderr  # every run was finished: nothing trained again
    # every row's per-image outcomes in one file, from which the report can be recomputed without the models
    from wssdl_d2.evaluation.results_io import read_outcomes

    outcomes, _ = read_outcomes(os.path.join(out, "crossval_outcomes.csv.gz"))
    assert sorted(outcomes) == ["strong_only", "wssdl"]
    assert set(outcomes["wssdl"]["fold"]) == {0, 1}

    # a row made elsewhere (e.g. self-training from each fold's model): read from its folders, compared paired;
    # every fold model also tested on another dataset (--external), the row's models too
    for k in (0, 1):
        shutil.copytree(os.path.join(out, "wssdl", f"fold{k}"), str(tmp_path / "made_elsewhere" / f"fold{k}" / "run"))
    row = "elsewhere=" + str(tmp_path / "made_elsewhere" / "fold{fold}" / "run")
    external = "cvphantom_fold0_val"
    cli = ["--data", "cvphantom", "--folds", "2", "--out", out, "--dataset-root", str(fold_data), "--num-samples",
           "100", "--report", "with_row", "--configs", f"strong_only={specs[0].config_file}", "--rows", row,
           "--external", external, *map(str, opts)]
    proc = _crossval_cli(cli)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| elsewhere - strong_only |" in proc.stdout and "Starting training" not in proc.stderr
    assert proc.stdout.count(f"tested on {external}") == 4 and f"Zero-shot on {external}" in proc.stdout
    with open(os.path.join(out, "with_row.json")) as f:
        written = json.load(f)
    assert written["pairs"][0]["comparison"]["CorLoc"]["diff"] == pytest.approx(
        report["pairs"][0]["comparison"]["CorLoc"]["diff"])
    section = written["external"][0]
    assert section["dataset"] == external and list(section["configs"]) == ["strong_only", "elsewhere"]
    for name, folder in (("strong_only", os.path.join(out, "strong_only", "fold{}")),
                         ("elsewhere", str(tmp_path / "made_elsewhere" / "fold{}" / "run"))):
        for k in (0, 1):
            with open(os.path.join(folder.format(k), external, "inference", "corloc.json")) as f:
                corloc = json.load(f)["metrics"]["CorLoc"]["value"]
            assert section["configs"][name]["folds"][str(k)]["CorLoc"] == pytest.approx(corloc)
    pair = section["pairs"][0]
    assert (pair["a"], pair["b"]) == ("elsewhere", "strong_only")
    for k in ("0", "1"):
        assert pair["folds"][k]["diff"] == pytest.approx(section["configs"]["elsewhere"]["folds"][k]["CorLoc"]
                                                         - section["configs"]["strong_only"]["folds"][k]["CorLoc"])
    assert pair["a_better"] + pair["b_better"] <= 2
    proc = _crossval_cli(cli)  # the external outcomes are newer than the models: reused
    assert proc.returncode == 0 and f": tested on {external}" not in proc.stdout, proc.stderr[-3000:]
    proc = _crossval_cli(cli[:-len(opts) - 2] + ["--external", "no_such_site", *map(str, opts)])
    assert proc.returncode != 0 and "--external no_such_site: not a registered dataset" in proc.stderr
    # a row folder without its model cannot be tested on another site; fold 1's outcomes in fold 0's folder
    os.remove(str(tmp_path / "made_elsewhere" / "fold1" / "run" / "model_final.pth"))
    shutil.rmtree(str(tmp_path / "made_elsewhere" / "fold1" / "run" / external))
    rows = parse_rows([row])
    with pytest.raises(ResultsError, match="model_final.pth not found"):
        evaluate_external(fold_run_dirs([], rows, out, [0, 1]), external)
    os.rename(str(tmp_path / "made_elsewhere" / "fold0"), str(tmp_path / "made_elsewhere" / "fold_x"))
    os.rename(str(tmp_path / "made_elsewhere" / "fold1"), str(tmp_path / "made_elsewhere" / "fold0"))
    with pytest.raises(ResultsError, match=r"fold0.*corloc_per_image.csv.*cvphantom_fold0_val"):
        read_rows(rows, "cvphantom", [0])
    with pytest.raises(CrossValError, match="fold"):
        parse_rows(["elsewhere=" + str(tmp_path / "made_elsewhere")])


def test_crossval_refuses_folders_and_datasets_it_did_not_make(fold_data, tmp_path):
    spec = RunSpec("strong_only", os.path.join(CONFIGS, "strong_only.yaml"))
    user_dir = tmp_path / "mine"
    user_dir.mkdir()
    (user_dir / "model_final.pth").write_bytes(b"user's")
    with pytest.raises(CrossValError, match="not made by cross-validation"):
        cv_runs.run_fold(spec, "cvphantom", 0, tiny_crossval_opts(), str(user_dir))
    assert (user_dir / "model_final.pth").read_bytes() == b"user's"
    with pytest.raises(CrossValError, match="not registered"):
        cv_runs.run_fold(spec, "cvphantom", 5, tiny_crossval_opts(), str(tmp_path / "new"))
    proc = _crossval_cli(["--data", "nosuchdata", "--out", str(tmp_path / "x"), "--configs", spec.config_file,
                          os.path.join(CONFIGS, "wssdl.yaml")])
    assert proc.returncode != 0 and "folds" in proc.stderr.splitlines()[-1], proc.stderr[-2000:]


def test_a_stopped_training_continues_from_its_last_checkpoint(fold_data, tmp_path, one_thread):
    """A run stopped after 2 of its 4 iterations (checkpoint written) continues at iteration 2 on the next start,
    as Detectron2's --resume does, and ends evaluated."""
    spec = RunSpec("strong_only", os.path.join(CONFIGS, "strong_only.yaml"))
    run_dir = str(tmp_path / "run")

    def stopped_after_two(cfg):
        cfg = cfg.clone()
        cfg.defrost()
        cfg.SOLVER.MAX_ITER = 2
        cv_runs.train_model(cfg)
        raise KeyboardInterrupt

    opts = tiny_crossval_opts(max_iter=4) + ["SOLVER.CHECKPOINT_PERIOD", "1"]
    with pytest.raises(KeyboardInterrupt):
        cv_runs.run_fold(spec, "cvphantom", 0, opts, run_dir, train_fn=stopped_after_two)
    assert {"model_0000001.pth", "model_final.pth"} <= set(os.listdir(run_dir))  # a stopped run keeps them
    state, did = cv_runs.run_fold(spec, "cvphantom", 0, opts, run_dir)
    assert did == "trained and evaluated" and state["status"] == "evaluated"
    log = open(os.path.join(run_dir, "log.txt")).read()
    assert "Starting training from iteration 0" in log and "Starting training from iteration 2" in log
    assert os.path.isfile(os.path.join(run_dir, "inference", "corloc_per_image.csv"))
    # the checkpoints it continued from are removed once it is trained; the final model stays
    assert "model_0000003.pth" in log and "periodic checkpoints removed" in log
    assert sorted(f for f in os.listdir(run_dir) if f.endswith(".pth")) == ["model_final.pth"]


def test_periodic_checkpoints_go_when_the_training_ends_unless_kept(fold_data, tmp_path):
    """Only Detectron2's periodic checkpoints (model_<7 digits>.pth) of a run with model_final.pth are removed,
    after its training; with keep_checkpoints, or while a run has no final model, every file stays."""
    spec = RunSpec("strong_only", os.path.join(CONFIGS, "strong_only.yaml"))
    written = ["model_0000004.pth", "model_0000009.pth", "model_final.pth", "model_best.pth", "model_00001.pth"]

    def fake_train(cfg):
        for name in written:
            with open(os.path.join(cfg.OUTPUT_DIR, name), "wb") as f:
                f.write(b"0" * 1000)

    def fake_eval(cfg, weights, output_dir):
        os.makedirs(os.path.join(output_dir, "inference"), exist_ok=True)
        open(os.path.join(output_dir, "inference", "corloc_per_image.csv"), "w").close()

    for keep in (False, True):
        run_dir = str(tmp_path / f"keep_{keep}")
        cfg = cv_runs.fold_config(spec, "cvphantom", 0, tiny_crossval_opts(), run_dir)
        _, did = cv_runs.run_config(cfg, run_dir, {}, fake_train, fake_eval, keep_checkpoints=keep)
        assert did == "trained and evaluated"
        kept = sorted(f for f in os.listdir(run_dir) if f.endswith(".pth"))
        assert kept == (sorted(written) if keep else ["model_00001.pth", "model_best.pth", "model_final.pth"]), keep
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    (stopped / "model_0000004.pth").write_bytes(b"0")
    assert cv_runs.remove_periodic_checkpoints(str(stopped)) == 0 and (stopped / "model_0000004.pth").exists()
    assert cv_runs.remove_periodic_checkpoints(str(tmp_path / "keep_True")) == 2000


def test_a_run_started_before_a_config_key_was_added_is_still_recognised(fold_data, tmp_path):
    """A finished run whose config.yaml lacks a key wssdl_d2 added later (at its default now) is skipped, not
    refused; the same folder with that key set to another value is refused."""
    import yaml

    spec = RunSpec("strong_only", os.path.join(CONFIGS, "strong_only.yaml"))
    run_dir = str(tmp_path / "old_run")
    cfg = cv_runs.fold_config(spec, "cvphantom", 0, tiny_crossval_opts(), run_dir)
    older = cfg.clone()
    older.defrost()
    del older.WSSDL["FINETUNE_LR"]  # as an older wssdl_d2 wrote it
    os.makedirs(os.path.join(run_dir, "inference"))
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:
        f.write(older.dump())
    assert "FINETUNE_LR" not in yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))["WSSDL"]
    open(os.path.join(run_dir, "inference", "corloc_per_image.csv"), "w").close()
    state = {"config": "strong_only", "fold": 0, "status": "evaluated", "max_iter": 2, "train_seconds": 1.0,
             "eval_seconds": 1.0, "fingerprint": cv_runs.config_fingerprint(older)}
    with open(os.path.join(run_dir, cv_runs.STATE_FILE), "w") as f:
        json.dump(state, f)
    runs = CountingRuns()
    _, did = cv_runs.run_config(cfg, run_dir, {}, runs.train, runs.evaluate)
    assert did == "skipped" and not runs.trained and not runs.evaluated
    # the state is left as it was, so the older wssdl_d2 still recognises the run too
    assert cv_runs.read_state(run_dir)["fingerprint"] == cv_runs.config_fingerprint(older)
    # the added key at another value: the old run did not have that setting
    changed = cfg.clone()
    changed.defrost()
    changed.WSSDL.FINETUNE_LR = 0.5
    with pytest.raises(CrossValError, match="another config"):
        cv_runs.run_config(changed, run_dir, {}, runs.train, runs.evaluate)


def test_inner_runs_train_and_test_inside_the_training_part(fold_data, tmp_path):
    """--inner: the run's datasets are the fold's inner split; none of its images is in the held-out fold."""
    from detectron2.data import DatasetCatalog

    spec = RunSpec("wssdl", os.path.join(CONFIGS, "wssdl.yaml"))
    cfg = cv_runs.fold_config(spec, "cvphantom", 0, tiny_crossval_opts(), str(tmp_path / "run"), inner=True)
    assert cfg.DATASETS.TEST == ("cvphantom_fold0_inner_val",)
    assert all(d.startswith("cvphantom_fold0_inner_train_") for d in cfg.DATASETS.TRAIN), cfg.DATASETS.TRAIN
    held_out = {d["file_name"] for d in DatasetCatalog.get("cvphantom_fold0_val")}
    used = {d["file_name"] for name in cfg.DATASETS.TRAIN + cfg.DATASETS.TEST for d in DatasetCatalog.get(name)}
    assert used and not used & held_out

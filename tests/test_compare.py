"""Paired comparison of two evaluated runs (wssdl_d2.evaluation.comparison, tools/compare.py), and its errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from wssdl_d2.evaluation import results_io
from wssdl_d2.evaluation.comparison import compare_folders
from wssdl_d2.evaluation.metrics import compute_metrics
from wssdl_d2.evaluation.outcomes import OutcomeTable
from wssdl_d2.evaluation.paired import align_runs, compare_runs
from wssdl_d2.evaluation.plots import plot_reports
from wssdl_d2.evaluation.tables import comparison_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GT = [[10, 10, 50, 50]]
MISS = [[60, 60, 90, 90]]


def write_run(folder, hits, files=None, tau=0.5):
    """A results folder with len(hits) mass images (alternately benign / malignant) hit or missed, plus two
    normal images; the detection score is 0.9 everywhere."""
    files = files or [f"img{k:03d}.png" for k in range(len(hits))]
    table = OutcomeTable()
    for k, (name, hit) in enumerate(zip(files, hits)):
        label = 1 + k % 2
        table.add(k, name, label, GT, [label - 1], GT if hit else MISS, [0.9], [label - 1], tau)
    for k in range(2):
        table.add(1000 + k, f"normal{k}.png", 0, [], [], [[0, 0, 5, 5]] * k, [0.9] * k, [0] * k, tau)
    os.makedirs(folder, exist_ok=True)
    results_io.write_per_image(folder, table.rows)
    results_io.write_report(folder, compute_metrics(table, tau=tau, num_samples=100))
    return folder


def test_identical_runs(tmp_path):
    hits = np.random.default_rng(0).random(40) < 0.6
    a = results_io.read_per_image(write_run(str(tmp_path / "a"), hits))
    result = compare_runs(a, dict(a), num_samples=500)
    for name, r in result.items():
        assert r["diff"] == 0 and r["p_value"] == 1.0, name
        if r["mcnemar"] is not None:
            assert r["mcnemar"]["p_value"] == 1.0
    assert result["CorLoc"]["n"] == 40 and result["FP_per_normal"]["n"] == 2 and result["AUC_BvsM"]["n"] == 40


def test_run_winning_on_many_images(tmp_path):
    hits_a = np.ones(60, bool)
    hits_b = hits_a.copy()
    hits_b[::2] = False  # B misses 30 images A gets right, never the reverse
    a = results_io.read_per_image(write_run(str(tmp_path / "a"), hits_a))
    b = results_io.read_per_image(write_run(str(tmp_path / "b"), hits_b))
    r = compare_runs(a, b, num_samples=1000, seed=1)["CorLoc"]
    assert r["a"] == 100.0 and r["b"] == 50.0 and r["diff"] == 50.0
    assert r["ci"][0] > 0 and r["p_value"] < 0.01
    assert r["mcnemar"] == {"a_only": 30, "b_only": 0, "p_value": pytest.approx(2 * 0.5 ** 30)}


def test_alignment_follows_file_names_not_order(tmp_path):
    hits = np.random.default_rng(1).random(20) < 0.5
    a = results_io.read_per_image(write_run(str(tmp_path / "a"), hits))
    b = {k: v[::-1] for k, v in a.items()}
    _, b_aligned = align_runs(a, b)
    assert (b_aligned["file_name"] == a["file_name"]).all()
    assert compare_runs(a, b, num_samples=200)["CorLoc"]["p_value"] == 1.0


def test_different_images_are_an_error(tmp_path):
    hits = np.ones(10, bool)
    a = results_io.read_per_image(write_run(str(tmp_path / "a"), hits))
    files = [f"img{k:03d}.png" for k in range(9)] + ["other.png"]
    b = results_io.read_per_image(write_run(str(tmp_path / "b"), hits, files))
    with pytest.raises(results_io.ResultsError, match=r"1 images only in A: img009.png; 1 images only in B: other.png"):
        compare_runs(a, b)
    b = {k: v.copy() for k, v in a.items()}
    b["image_label"][3] = 0
    with pytest.raises(results_io.ResultsError, match=r"disagree on the ground truth \(image_label\) of 1 images: img003"):
        compare_runs(a, b)


def test_run_folders_are_compared_and_plotted(tmp_path):
    hits = np.random.default_rng(2).random(30) < 0.7
    run_a = write_run(str(tmp_path / "run_a" / "inference"), hits)
    write_run(str(tmp_path / "run_b" / "inference"), hits)
    c = compare_folders(str(tmp_path / "run_a"), run_a.replace("run_a", "run_b"), samples=300)
    assert (c["a"]["name"], c["b"]["name"], c["images"]) == ("run_a", "run_b", 32)
    assert c["a"]["folder"] == run_a and c["metrics"]["CorLoc"]["p_value"] == 1.0
    assert "| CorLoc " in comparison_table(c) and "run_a" in comparison_table(c)
    same = compare_folders(run_a, run_a, samples=10)
    assert (same["a"]["name"], same["b"]["name"]) == ("A: run_a", "B: run_a")
    files = ("compare_corloc.png", "compare_froc.png", "compare_roc.png")
    plot_reports(dict(zip(("run_a", "run_b"), c["reports"])), str(tmp_path / "plots"), files)
    assert sorted(os.listdir(tmp_path / "plots")) == list(files)

    write_run(str(tmp_path / "run_c"), hits, tau=0.3)
    with pytest.raises(results_io.ResultsError, match="tau 0.5 but .* tau 0.3"):
        compare_folders(str(tmp_path / "run_a"), str(tmp_path / "run_c"))
    with pytest.raises(results_io.ResultsError, match="no corloc.json or corloc_per_image.csv"):
        compare_folders(str(tmp_path / "run_a"), str(tmp_path))


def test_cli(tmp_path):
    hits = np.random.default_rng(2).random(30) < 0.7
    run_a = write_run(str(tmp_path / "run_a" / "inference"), hits)
    write_run(str(tmp_path / "run_b" / "inference"), hits)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "compare.py"), str(tmp_path / "run_a"),
                           run_a.replace("run_a", "run_b"), "--samples", "300", "--json", str(tmp_path / "cmp.json"),
                           "--plots", str(tmp_path / "plots")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run_a" in proc.stdout and "run_b" in proc.stdout and "| CorLoc " in proc.stdout
    assert "A - B" in proc.stdout and proc.stdout.count("wrote") == 3
    saved = json.loads((tmp_path / "cmp.json").read_text())
    assert saved["metrics"]["CorLoc"]["p_value"] == 1.0 and saved["a"]["name"] == "run_a"
    assert sorted(os.listdir(tmp_path / "plots")) == ["compare_corloc.png", "compare_froc.png", "compare_roc.png"]


def test_cli_exit_message_for_mismatched_runs(tmp_path):
    write_run(str(tmp_path / "a"), np.ones(4, bool))
    write_run(str(tmp_path / "b"), np.ones(5, bool))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "compare.py"), str(tmp_path / "a"),
                           str(tmp_path / "b")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "not evaluated on the same test images" in proc.stderr and "img004.png" in proc.stderr


def test_bad_results_files_name_the_file(tmp_path):
    folder = write_run(str(tmp_path / "a"), np.ones(3, bool))
    with open(os.path.join(folder, "corloc.json"), "w") as f:
        f.write("{not json")
    with pytest.raises(results_io.ResultsError, match=r"corloc.json: not valid JSON"):
        results_io.read_report(folder)
    csv_path = os.path.join(folder, "corloc_per_image.csv")
    lines = open(csv_path).read().splitlines()
    with open(csv_path, "w") as f:
        f.write("\n".join([lines[0].replace("hit_top1", "hit_first")] + lines[1:]))
    with pytest.raises(results_io.ResultsError, match=r"corloc_per_image.csv: missing columns \['hit_top1'\]"):
        results_io.read_per_image(folder)
    with open(csv_path, "w") as f:
        f.write("\n".join([lines[0], lines[1].replace(",1,", ",yes,", 1)] + lines[2:]))
    with pytest.raises(results_io.ResultsError, match=r"corloc_per_image.csv: column .* has a bad value"):
        results_io.read_per_image(folder)


def test_explain_difference_says_whether_it_could_be_chance():
    from wssdl_d2.evaluation.paired import explain_difference

    result = {
        "CorLoc": {"a": 75.7, "b": 43.2, "diff": 32.4, "ci": (16.2, 48.7), "p_value": 0.001, "n": 37,
                   "mcnemar": {"p_value": 0.0018, "a_only": 13, "b_only": 1}},
        "CorLoc-benign": {"a": 88.9, "b": 88.9, "diff": 0.0, "ci": (-15.4, 16.7), "p_value": 1.0, "n": 18,
                          "mcnemar": {"p_value": 1.0, "a_only": 1, "b_only": 1}},
        "AUC_BvsM": {"a": 0.5, "b": 0.9, "diff": -0.4, "ci": (-0.5, -0.3), "p_value": 0.001, "n": 37, "mcnemar": None},
    }
    significant = explain_difference(result, "CorLoc", "joint", "strong-only")
    assert significant.startswith("CorLoc on 37 images: joint 75.7% vs strong-only 43.2%, a difference of +32.4 points")
    assert "McNemar's exact test gives p = 0.0018" in significant and significant.endswith("joint is better.")
    same = explain_difference(result, "CorLoc-benign", "joint", "strong-only")
    assert "could be chance" in same and "better" not in same
    auc = explain_difference(result, "AUC_BvsM", "joint", "strong-only")  # no McNemar: the bootstrap's p
    assert auc.startswith("AUC_BvsM on 37 images: joint 0.500 vs strong-only 0.900, a difference of -0.400 (95% CI")
    assert "the paired bootstrap gives p = 0.001" in auc and auc.endswith("strong-only is better.")
    with pytest.raises(ValueError, match="no metric 'Nope'.*CorLoc, CorLoc-benign, AUC_BvsM"):
        explain_difference(result, "Nope")

"""Inference that respects near-duplicate groups and many comparisons (wssdl_d2.evaluation): Holm's adjustment
against a hand computation, the cluster bootstrap within folds (whole groups drawn, folds kept), the clustered
McNemar test (equal to McNemar's statistic for one image per group, not fooled by copies), and the pooled comparison
whose intervals widen when every image is really several copies of one lesion."""
import numpy as np
import pytest
from scipy.stats import chi2

from wssdl_d2.data.prepared import GroupsFileError, read_near_duplicate_groups
from wssdl_d2.evaluation.bootstrap import holm_adjust, mcnemar_clustered, mcnemar_exact
from wssdl_d2.evaluation.metrics import estimate
from wssdl_d2.evaluation.pooled import cluster_labels, compare_pooled, pool_folds, pooled_metrics
from wssdl_d2.evaluation.results_io import ResultsError
from wssdl_d2.evaluation.stratified import cluster_bootstrap_counts


def _table(prefix, labels, hit_any):
    """Per-image columns as read_per_image returns them (normal images, label 0, have no mass)."""
    labels = np.asarray(labels, np.int64)
    mass = labels > 0
    hit = np.asarray(hit_any, bool) & mass
    n = len(labels)
    return {"file_name": np.asarray([f"{prefix}/img_{i}.png" for i in range(n)], dtype=object),
            "image_id": np.arange(n), "image_label": labels, "num_gt": mass.astype(np.int64), "has_mass": mass,
            "hit_any": hit, "hit_top1": hit, "top1_score": np.full(n, 0.9), "top1_iou": np.full(n, 0.6),
            "best_iou": np.full(n, 0.6), "num_det": np.ones(n, np.int64), "num_det_at_tau": np.ones(n, np.int64),
            "fp_at_tau": np.zeros(n, np.int64), "malignancy_score": np.linspace(0, 1, n),
            "abnormality_score": np.linspace(0, 1, n), "predicted_label": labels.copy()}


def test_holm_matches_a_hand_computation_and_skips_missing_tests():
    # sorted 0.01, 0.03, 0.04, 0.5 with m = 4: 0.04, 0.09, max(0.08, 0.09), max(0.5, 0.09)
    adjusted = holm_adjust([0.01, 0.04, 0.03, float("nan"), 0.5])
    assert adjusted[:3] == pytest.approx([0.04, 0.09, 0.09]) and adjusted[4] == pytest.approx(0.5)
    assert np.isnan(adjusted[3])
    raw = np.random.default_rng(0).uniform(0, 0.2, size=12)
    adjusted = holm_adjust(raw)
    assert (adjusted >= raw).all() and (adjusted <= 1).all()
    order = np.argsort(raw)
    assert (np.diff(adjusted[order]) >= 0).all()  # the adjustment keeps the order of the raw p-values
    assert holm_adjust([0.9, 0.8])[0] == 1.0  # capped at 1
    with pytest.raises(ValueError):
        holm_adjust([[0.1, 0.2]])


def test_cluster_bootstrap_draws_whole_groups_within_folds():
    folds = np.array([0, 0, 0, 0, 1, 1, 1])
    groups = np.array([10, 10, 11, 12, 20, 20, 21])
    counts = cluster_bootstrap_counts(folds, groups, num_samples=400, seed=3)
    assert counts.shape == (400, 7)
    assert np.array_equal(counts, cluster_bootstrap_counts(folds, groups, 400, 3))
    # images of one group are always drawn together
    assert np.array_equal(counts[:, 0], counts[:, 1]) and np.array_equal(counts[:, 4], counts[:, 5])
    # each fold draws as many groups as it holds: 3 in fold 0, 2 in fold 1
    group_draws_0 = counts[:, 0] + counts[:, 2] + counts[:, 3]
    assert group_draws_0.tolist() == [3.0] * 400
    assert (counts[:, 4] + counts[:, 6]).tolist() == [2.0] * 400
    # every group is drawn sometimes, none always
    assert (counts > 0).any(axis=0).all() and (counts == 0).any(axis=0).all()
    with pytest.raises(ValueError, match="one fold"):
        cluster_bootstrap_counts(np.array([0, 1]), np.array([5, 5]))


def test_clustered_mcnemar_is_mcnemar_for_single_images_and_is_not_fooled_by_copies():
    rng = np.random.default_rng(1)
    a, b = rng.random(60) < 0.7, rng.random(60) < 0.5
    single = mcnemar_clustered(a, b, np.arange(60))
    n_ab, n_ba = int((a & ~b).sum()), int((~a & b).sum())
    assert single["p_value"] == pytest.approx(chi2.sf((n_ab - n_ba) ** 2 / (n_ab + n_ba), 1))
    assert (single["a_only"], single["b_only"]) == (n_ab, n_ba)
    # four copies of every image, each set of copies one group: the exact test believes 4x the evidence
    copies_a, copies_b, groups = np.repeat(a, 4), np.repeat(b, 4), np.repeat(np.arange(60), 4)
    assert mcnemar_exact(copies_a, copies_b)["p_value"] < mcnemar_exact(a, b)["p_value"] / 5
    assert mcnemar_clustered(copies_a, copies_b, groups)["p_value"] == pytest.approx(single["p_value"])
    assert mcnemar_clustered([True, False], [True, False], [0, 1])["p_value"] == 1.0


def test_estimate_takes_counts_and_agrees_with_indices():
    pooled = pool_folds({0: _table("f0", [1, 2, 1, 2, 0], [1, 1, 0, 0, 0]), 1: _table("f1", [1, 2, 0], [1, 0, 0])})
    counts = cluster_bootstrap_counts(pooled["fold"], np.arange(8), 50, 0)
    by_counts = estimate(pooled, counts=counts)
    assert by_counts["CorLoc"][0] == pytest.approx(100 * 3 / 6)
    with pytest.raises(ValueError):
        estimate(pooled)
    with pytest.raises(ValueError):
        estimate(pooled, np.zeros((2, 8), np.int64), counts=counts)


def test_pooled_comparison_widens_when_images_are_copies_of_one_lesion():
    rng = np.random.default_rng(0)
    lesions = 40
    labels = rng.integers(1, 3, size=lesions)
    hits_a, hits_b = rng.random(lesions) < 0.75, rng.random(lesions) < 0.55
    copies = 4
    per_fold = lambda hits: {f: _table(f"f{f}", np.repeat(labels[f::2], copies), np.repeat(hits[f::2], copies))
                             for f in (0, 1)}
    pooled_a, pooled_b = pool_folds(per_fold(hits_a)), pool_folds(per_fold(hits_b))
    groups = np.concatenate([np.repeat(np.arange(f, lesions, 2), copies) for f in (0, 1)])
    naive = compare_pooled(pooled_a, pooled_b, num_samples=1500, seed=0)["CorLoc"]
    clustered = compare_pooled(pooled_a, pooled_b, num_samples=1500, seed=0, clusters=groups)["CorLoc"]
    assert clustered["diff"] == pytest.approx(naive["diff"])
    width = lambda r: r["ci"][1] - r["ci"][0]
    assert width(clustered) > 1.5 * width(naive)  # about 2x = sqrt(4 copies)
    assert clustered["mcnemar_clustered"]["p_value"] > naive["mcnemar"]["p_value"]
    assert "mcnemar_clustered" not in naive
    metrics = pooled_metrics(pooled_a, num_samples=800, clusters=groups)
    plain = pooled_metrics(pooled_a, num_samples=800)
    assert metrics["CorLoc"]["value"] == plain["CorLoc"]["value"]
    assert np.diff(metrics["CorLoc"]["ci"]) > 1.5 * np.diff(plain["CorLoc"]["ci"])


def test_cluster_labels_match_relative_paths_and_name_unknown_images(tmp_path):
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "groups.csv").write_text("file_name,image_label,group,split\nbenign/benign (1).png,benign,0,train\n"
                                     "benign/benign (2).png,benign,0,val\nmalignant/malignant (1).png,malignant,1,"
                                     "train\n")
    groups = read_near_duplicate_groups(str(tmp_path))
    assert groups == {"benign/benign (1).png": 0, "benign/benign (2).png": 0, "malignant/malignant (1).png": 1}
    files = ["/data/BUSI/benign/benign (2).png", "malignant/malignant (1).png"]
    assert cluster_labels(files, groups).tolist() == [0, 1]
    with pytest.raises(ResultsError, match="normal"):
        cluster_labels(["/data/normal/normal (1).png"], groups)
    (meta / "groups.csv").write_text("file_name,image_label,group,split\nbenign/a.png,benign,x,train\n")
    with pytest.raises(GroupsFileError, match="line 2"):
        read_near_duplicate_groups(str(tmp_path))
    with pytest.raises(GroupsFileError, match="no near-duplicate groups"):
        read_near_duplicate_groups(str(tmp_path / "elsewhere"))


def test_crossval_report_resamples_groups_and_adjusts_for_its_pairs():
    from wssdl_d2.crossval.report import build_report, markdown

    rng = np.random.default_rng(2)
    labels = np.repeat(rng.integers(0, 3, size=30), 2)  # 30 lesions (some normal images), two copies each
    runs = {name: pool_folds({f: _table(f"f{f}", labels[f::2], rng.random(30) < rate) for f in (0, 1)})
            for name, rate in (("strong_only", 0.5), ("wssdl", 0.7), ("teacher", 0.75))}
    groups = {}
    for f in (0, 1):  # images 2k and 2k + 1 of a fold are copies of one lesion
        groups.update({f"f{f}/img_{i}.png": 1000 * f + i // 2 for i in range(30)})
    report = build_report(runs, num_samples=300, groups=groups)
    assert "near-duplicate groups" in report["settings"]["intervals"]
    assert len(report["pairs"]) == 3
    for metric in ("CorLoc", "CorLoc_top1"):
        tests = [pair["comparison"][metric]["p_value_test"] for pair in report["pairs"]]
        holm = [pair["comparison"][metric]["holm_p"] for pair in report["pairs"]]
        assert tests == [pair["comparison"][metric]["mcnemar_clustered"]["p_value"] for pair in report["pairs"]]
        assert np.allclose(holm, holm_adjust(tests)) and all(h >= t for h, t in zip(holm, tests))
    text = markdown(report)
    assert "Holm p" in text and "FP per normal image" in text and "Holm's adjustment" in text
    plain = build_report(runs, num_samples=300)
    assert "images" in plain["settings"]["intervals"]
    assert plain["pairs"][0]["comparison"]["CorLoc"]["p_value_test"] == \
        plain["pairs"][0]["comparison"]["CorLoc"]["mcnemar"]["p_value"]
    with pytest.raises(ResultsError, match="no near-duplicate group"):
        build_report(runs, num_samples=50, groups={"f0/img_0.png": 1})


def test_run_seed_reads_the_config_as_text(tmp_path):
    from wssdl_d2.evaluation.results_io import run_seed

    (tmp_path / "config.yaml").write_text("MODEL:\n  SEED_NOT: 3\nSEED: 5\n")
    assert run_seed(str(tmp_path)) == 5
    assert run_seed(str(tmp_path / "missing")) == -1


def test_outcomes_file_recomputes_the_report_without_the_models(tmp_path):
    import gzip

    from wssdl_d2.cli.crossval import run as crossval_run
    from wssdl_d2.crossval.report import build_report
    from wssdl_d2.evaluation.results_io import read_outcomes, write_outcomes

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, size=24)
    runs = {}
    for name, rate in (("strong_only", 0.5), ("wssdl", 0.8)):
        tables = {f: _table(f"/data/site/f{f}", labels[f::2], rng.random(12) < rate) for f in (0, 1)}
        runs[name] = pool_folds(tables)
    groups = {f"f{f}/img_{i}.png": 100 * f + i // 3 for f in (0, 1) for i in range(12)}
    path = write_outcomes(str(tmp_path / "crossval_outcomes.csv.gz"), runs, groups, seed=7)
    assert open(path, "rb").read() == open(write_outcomes(str(tmp_path / "again.csv.gz"), runs, groups, seed=7),
                                           "rb").read()  # the same outcomes give the same bytes
    text = gzip.open(path, "rt").read()
    assert "/data/site" not in text and text.splitlines()[0].startswith("row,seed,fold,group,")
    assert {line.split(",")[1] for line in text.splitlines()[1:]} == {"7"}
    per_row = gzip.open(write_outcomes(str(tmp_path / "seeds.csv.gz"), runs, groups, {"wssdl": 3}), "rt").read()
    seeds = {(line.split(",")[0], line.split(",")[1]) for line in per_row.splitlines()[1:]}
    assert seeds == {("strong_only", "-1"), ("wssdl", "3")}  # -1: not known
    pooled, read_groups = read_outcomes(path)
    assert list(pooled) == ["strong_only", "wssdl"] and read_groups == groups
    for name in runs:
        for column in ("fold", "hit_any", "hit_top1", "image_label", "fp_at_tau"):
            assert np.array_equal(pooled[name][column], runs[name][column]), column
        # scores as the per-image CSVs write them (6 significant digits)
        assert np.allclose(pooled[name]["malignancy_score"], runs[name]["malignancy_score"], rtol=1e-5)
    original = build_report(runs, num_samples=200, groups=groups)
    recomputed = crossval_run(["--from-outcomes", path, "--out", str(tmp_path / "again"), "--num-samples", "200"])
    for metric in ("CorLoc", "CorLoc_top1"):
        a, b = original["pairs"][0]["comparison"][metric], recomputed["pairs"][0]["comparison"][metric]
        assert (a["diff"], *a["ci"], a["holm_p"]) == pytest.approx((b["diff"], *b["ci"], b["holm_p"]))
    assert (tmp_path / "again" / "crossval.md").is_file()
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(ResultsError, match="bad.csv.gz"):
        read_outcomes(str(tmp_path / "bad.csv.gz"))

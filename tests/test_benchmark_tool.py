"""wssdl_d2.benchmark (tools/benchmark.py, tools/benchmark_backbones.py) end to end on the tiny phantom: every part
runs and the JSON result is complete and sane."""
import json
import os

import pytest

from wssdl_d2.cli import benchmark as run

WSSDL_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "Phantom", "wssdl.yaml")


def test_benchmark_tool_end_to_end(tiny_opts, tmp_path):
    out = tmp_path / "bench.json"
    opts = tiny_opts + ["DATASETS.TRAIN", "('testphantom_train_strong_30', 'testphantom_train_weak_30')",
                        "WSSDL.STRONG_PER_BATCH", "1", "WSSDL.WEAK_PER_BATCH", "1", "WSSDL.EVAL.PLOTS", "False",
                        "WSSDL.EVAL.BOOTSTRAP_SAMPLES", "50"]
    result = run.run([
        "--config-file", WSSDL_CONFIG, "--dataset", "testphantom_train_all", "--device", "cpu",
        "--reps", "2", "--warmup", "1", "--infer-images", "3", "--distinct-images", "2", "--memory-steps", "1",
        "--memory-jobs", "4", "--loader-batches", "2", "--eval-images", "3", "--threads", "1",
        "--out", str(out), *opts])
    saved = json.loads(out.read_text())
    assert saved["settings"]["parts"] == ["train", "infer", "memory", "loader", "eval"]
    assert saved["settings"]["dataset"] == "testphantom_train_all"
    assert saved["settings"]["eval_dataset"] == "testphantom_val"

    for part in ("train_step", "inference"):
        for name in ("joint", "plain"):
            assert saved[part][name]["median_s"] > 0 and saved[part][name]["p90_s"] >= saved[part][name]["min_s"]
        assert abs(saved[part]["ratio"] - saved[part]["joint"]["median_s"] / saved[part]["plain"]["median_s"]) < 1e-9
    assert saved["train_step"]["joint"]["n"] == 2 and saved["inference"]["plain"]["n"] == 3
    assert saved["inference"]["joint"]["images_per_s"] > 0

    assert "RSS" in saved["memory"]["method"]
    for phase in ("train", "infer"):
        for name in ("joint", "plain"):
            m = saved["memory"][phase][name]
            assert m["peak_bytes"] > 0 and m["growth_bytes"] >= 0 and m["model"] == name and m["phase"] == phase
            assert m["peak_reset"] and m["peak_bytes"] >= m["before_bytes"]
    for name in ("joint", "plain"):  # gradients and optimizer state at least
        assert saved["memory"]["train"][name]["growth_bytes"] > saved["memory"]["infer"][name]["growth_bytes"] > 0

    loading = saved["data_loading"]
    assert loading["images"] == 2 * 2 and loading["images_per_s"] > 0
    assert loading["training_consumes_images_per_s"] > 0 and loading["headroom"] > 0

    evaluation = saved["evaluation"]
    assert evaluation["images"] == 3 and evaluation["capped"] and evaluation["split_images"] > 3
    assert evaluation["inference_s"] > 0 and evaluation["corloc_evaluate_s"] > 0
    assert evaluation["full_split_estimate_s"] > evaluation["inference_s"]
    assert result["train_step"]["ratio"] == saved["train_step"]["ratio"]


def test_parts_are_chosen_by_name_and_p90_is_interpolated():
    from wssdl_d2.benchmark.timing import summarize

    assert run.parse_args([]).parts == list(run.PARTS)
    assert run.parse_args(["--parts", "train,infer"]).parts == ["train", "infer"]
    assert run.parse_args(["--parts", "eval,memory"]).parts == ["eval", "memory"]
    with pytest.raises(SystemExit):
        run.parse_args(["--parts", "loader"])  # the loader is compared with the training step
    assert summarize([4.0, 1.0, 3.0, 2.0])["median_s"] == 2.5 and summarize([1.0, 2.0])["p90_s"] == pytest.approx(1.9)


def test_backbones_are_timed_in_turn(tiny_opts):
    from wssdl_d2.benchmark.backbones import benchmark_backbones, markdown

    configs = [os.path.join(os.path.dirname(__file__), "..", "configs", "Phantom", name)
               for name in ("strong_only.yaml", "strong_only_effnet.yaml")]
    results = benchmark_backbones(configs, train_iters=3, images=3, warmup=1, size=96,
                                  opts=tiny_opts + ["WSSDL.EFFICIENTNET.PRETRAINED", "False"])
    assert [r["config"] for r in results] == configs and results[0]["params"] != results[1]["params"]
    for r in results:
        assert r["train_iters"] == 2 and r["inference_images"] == 2 and r["images_per_iter"] == 2
        assert r["train_s_per_iter"] > 0 and r["inference_images_per_s"] > 0 and r["backbone_images_per_s"] > 0
    assert markdown(results).count("\n") == 3
    with pytest.raises(ValueError, match="must exceed --warmup"):
        benchmark_backbones(configs, train_iters=2, warmup=2)

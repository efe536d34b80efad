"""One run concept (wssdl_d2.runs): the run-folder layout, the resumable state of one run and of a run of steps with
the config's fingerprint, the fine-tune recipe and the WSSDL.ADAPT defaults of site adaptation. No training here:
tests/test_crossval.py, test_site_crossval.py, test_selftrain_loop.py and test_simulate_annotation.py train."""
import json
import os

import pytest
from detectron2.config import get_cfg

from wssdl_d2.config import add_wssdl_config
from wssdl_d2.config_file import ConfigError
from wssdl_d2.config_ranges import check_wssdl_ranges
from wssdl_d2.engine.finetune import continue_schedule_config, finetune_config
from wssdl_d2.engine.site_adaptation import adaptation_settings
from wssdl_d2.evaluation.run_dir import RunDir, fold_dirs, fold_in_path
from wssdl_d2.runs import RunState, StateError, config_fingerprint, train_and_evaluate


def _cfg(**keys):
    cfg = add_wssdl_config(get_cfg())
    for key, value in keys.items():
        node = cfg
        *path, last = key.split("__")
        for part in path:
            node = node[part]
        node[last] = value
    return cfg


def test_run_dir_names_the_layout(tmp_path):
    run = RunDir.of_fold(str(tmp_path), "wssdl", 3)
    assert run.path == os.path.join(str(tmp_path), "wssdl", "fold3")
    assert run.per_image == os.path.join(run.path, "inference", "corloc_per_image.csv")
    assert run.report.endswith(os.path.join("inference", "corloc.json"))
    assert run.on("breast_test").inference == os.path.join(run.path, "breast_test", "inference")
    assert not run.is_evaluated()
    for k in (10, 2):
        os.makedirs(RunDir.of_fold(str(tmp_path), "wssdl", k).inference)
    (tmp_path / "wssdl" / "notes").mkdir()
    assert list(fold_dirs(str(tmp_path / "wssdl"))) == [2, 10]
    assert fold_dirs(str(tmp_path / "missing")) == {}
    assert fold_in_path("out/fold1/wssdl/fold2/inference") == 2 and fold_in_path("out/wssdl") is None


def test_a_crossval_state_of_an_earlier_wssdl_d2_is_resumed_and_another_config_refused(tmp_path):
    """A crossval_state.json as running jobs wrote it (fields at the top, the fingerprint of the config without
    OUTPUT_DIR) is continued by the new code; a changed config is refused, not silently resumed."""
    cfg = _cfg(SOLVER__MAX_ITER=7, OUTPUT_DIR=str(tmp_path))
    cfg.freeze()
    run_dir = tmp_path / "wssdl" / "fold0"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(cfg.dump())
    written = {"config": "wssdl", "config_file": "configs/BUSI/wssdl.yaml", "fold": 0, "data": "busi",
               "train": [], "test": [], "max_iter": 7, "fingerprint": config_fingerprint(cfg), "status": "training",
               "train_seconds": 0.0, "eval_seconds": 0.0}
    (run_dir / "crossval_state.json").write_text(json.dumps(written, indent=1))
    state = RunState.open_run(str(run_dir), cfg, {})
    assert state.status == "training" and state.data == written
    changed = cfg.clone()
    changed.defrost()
    changed.SOLVER.MAX_ITER = 8
    with pytest.raises(StateError, match="another config"):
        RunState.open_run(str(run_dir), changed, {})


def test_train_and_evaluate_takes_a_run_from_new_to_evaluated_once(tmp_path):
    cfg = _cfg(SOLVER__MAX_ITER=3)
    cfg.OUTPUT_DIR = str(tmp_path / "run")
    cfg.freeze()
    calls = []

    def train(c):
        calls.append("train")
        open(os.path.join(c.OUTPUT_DIR, "model_final.pth"), "w").close()
        open(os.path.join(c.OUTPUT_DIR, "model_0000001.pth"), "w").close()

    def evaluate(c, weights, out):
        calls.append("eval")
        os.makedirs(RunDir(out).inference, exist_ok=True)
        open(RunDir(out).per_image, "w").close()

    state, did = train_and_evaluate(cfg, cfg.OUTPUT_DIR, {"config": "x"}, train, evaluate)
    assert did == "trained and evaluated" and state["status"] == "evaluated" and calls == ["train", "eval"]
    assert not os.path.exists(os.path.join(cfg.OUTPUT_DIR, "model_0000001.pth"))  # periodic checkpoints removed
    assert train_and_evaluate(cfg, cfg.OUTPUT_DIR, {}, train, evaluate)[1] == "skipped" and len(calls) == 2


def test_a_run_of_steps_records_its_config_and_refuses_another_on_resume(tmp_path):
    cfg = _cfg(OUTPUT_DIR=str(tmp_path))
    settings = {"fraction": 0.5}
    state = RunState.open(str(tmp_path), "selftrain_state.json", settings, cfg=cfg, ignore=("WSSDL.SELFTRAIN.ROUNDS",))
    state.update(0, status="done")
    more_rounds = cfg.clone()
    more_rounds.WSSDL.SELFTRAIN.ROUNDS = 5  # a setting a resumed run may change
    again = RunState.open(str(tmp_path), "selftrain_state.json", settings, resume=True, cfg=more_rounds,
                          ignore=("WSSDL.SELFTRAIN.ROUNDS",))
    assert again.step(0) == {"status": "done"}
    other = cfg.clone()
    other.SOLVER.BASE_LR = 0.5
    with pytest.raises(StateError, match="another config"):
        RunState.open(str(tmp_path), "selftrain_state.json", settings, resume=True, cfg=other,
                      ignore=("WSSDL.SELFTRAIN.ROUNDS",))
    with pytest.raises(StateError, match="fraction"):
        RunState.open(str(tmp_path), "selftrain_state.json", {"fraction": 0.7}, resume=True, cfg=cfg)


def test_a_run_of_steps_without_a_fingerprint_is_continued_and_then_records_one(tmp_path):
    """A state written before the fingerprint was recorded (version 1, settings, steps) stays resumable."""
    path = tmp_path / "simulation_state.json"
    path.write_text(json.dumps({"version": 1, "settings": {"seed": 0}, "steps": {"initial": {"status": "done"}}}))
    cfg = _cfg()
    state = RunState.open(str(tmp_path), path.name, {"seed": 0}, resume=True, cfg=cfg)
    assert state.step("initial") == {"status": "done"}
    assert json.loads(path.read_text())["fingerprint"] == config_fingerprint(cfg)


def test_the_fine_tune_recipe_is_a_constant_lr_without_warm_up_and_a_static_alpha():
    base = _cfg(SOLVER__STEPS=(50,), SOLVER__WARMUP_ITERS=20, SOLVER__MAX_ITER=100, SOLVER__BASE_LR=0.02)
    tuned = finetune_config(base, "w.pth", ["a", "b"], "out", base_lr=0.001, alpha=0.3, max_iter=40)
    assert (tuned.MODEL.WEIGHTS, tuned.DATASETS.TRAIN, tuned.OUTPUT_DIR) == ("w.pth", ("a", "b"), "out")
    assert (tuned.SOLVER.BASE_LR, tuned.SOLVER.STEPS, tuned.SOLVER.WARMUP_ITERS, tuned.SOLVER.MAX_ITER) == \
        (0.001, (), 0, 40)
    assert (tuned.WSSDL.MIL.ALPHA.SCHEDULE, tuned.WSSDL.MIL.ALPHA.VALUE) == ("static", 0.3)
    continued = continue_schedule_config(base, "w.pth", ["a"], "out", max_iter=10)
    assert continued.SOLVER.BASE_LR == pytest.approx(0.002) and continued.SOLVER.WARMUP_FACTOR == 1.0
    assert base.SOLVER.MAX_ITER == 100  # the base config is not changed


def test_site_adaptation_defaults_come_from_wssdl_adapt_and_flags_override_them():
    cfg = _cfg()
    assert adaptation_settings(cfg) == (300, 0.002, 0.5)
    cfg.WSSDL.ADAPT.MAX_ITER, cfg.WSSDL.ADAPT.ALPHA = 120, 0.25
    assert adaptation_settings(cfg) == (120, 0.002, 0.25)
    assert adaptation_settings(cfg, max_iter=10, base_lr=0.01, alpha=0.0) == (10, 0.01, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        adaptation_settings(cfg, alpha=2.0)


@pytest.mark.parametrize("key,value", [("MAX_ITER", 0), ("BASE_LR", 0.0), ("ALPHA", 1.5)])
def test_an_adapt_value_out_of_range_is_a_config_error(key, value):
    cfg = _cfg()
    cfg.WSSDL.ADAPT[key] = value
    with pytest.raises(ConfigError, match=f"WSSDL.ADAPT.{key}"):
        check_wssdl_ranges(cfg, "site.yaml")


def test_adapt_site_flags_default_to_the_config_and_override_it():
    """wssdl-adapt-site leaves --max-iter / --lr / --alpha unset unless given, so WSSDL.ADAPT decides."""
    from wssdl_d2.cli.adapt_site import get_parser

    parser = get_parser()
    plain = parser.parse_args(["--from", "m.pth", "--site", "s", "--out", "o"])
    assert (plain.max_iter, plain.lr, plain.alpha) == (None, None, None)
    given = parser.parse_args(["--from", "m.pth", "--site", "s", "--out", "o", "--max-iter", "9", "--lr", "0.01",
                               "--alpha", "0"])
    assert adaptation_settings(_cfg(), given.max_iter, given.lr, given.alpha) == (9, 0.01, 0.0)

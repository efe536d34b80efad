"""alpha(t): the paper's gradual schedule, static values, defaults and bad keys."""
import pytest
from detectron2.config import get_cfg

from wssdl_d2.config import add_wssdl_config
from wssdl_d2.modeling.alpha import alpha_at, alpha_step


def _cfg(**alpha):
    cfg = add_wssdl_config(get_cfg())
    cfg.SOLVER.MAX_ITER = 60000
    for key, value in alpha.items():
        setattr(cfg.WSSDL.MIL.ALPHA, key, value)
    return cfg


def test_gradual_matches_paper_values():
    cfg = _cfg(SCHEDULE="gradual", STEP=2000)
    assert alpha_at(0, cfg) == pytest.approx(0.01)
    assert alpha_at(1999, cfg) == pytest.approx(0.01)
    assert alpha_at(2000, cfg) == pytest.approx(0.109)
    assert alpha_at(5 * 2000, cfg) == pytest.approx(0.415, abs=5e-4)
    assert alpha_at(5 * 2000, cfg) == pytest.approx(1 - 0.99 * 0.9 ** 5)
    assert alpha_at(60000, cfg) == pytest.approx(1 - 0.99 * 0.9 ** 30)


def test_gradual_step_defaults_to_max_iter_over_30():
    cfg = _cfg(SCHEDULE="gradual", STEP=0)
    assert alpha_step(cfg) == 2000
    cfg.SOLVER.MAX_ITER = 400
    assert alpha_step(cfg) == 13
    assert alpha_at(13, cfg) == pytest.approx(0.109)
    cfg.SOLVER.MAX_ITER = 10
    assert alpha_step(cfg) == 1  # never 0


def test_gradual_is_monotone_and_below_one():
    cfg = _cfg(SCHEDULE="gradual", STEP=7, A0=0.99, R=0.9)
    values = [alpha_at(t, cfg) for t in range(0, 2000, 5)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert 0 < values[0] and values[-1] < 1


def test_static_and_errors():
    assert alpha_at(12345, _cfg(SCHEDULE="static", VALUE=0.5)) == 0.5
    with pytest.raises(ValueError, match="SCHEDULE"):
        alpha_at(0, _cfg(SCHEDULE="cosine"))
    with pytest.raises(ValueError, match="STEP"):
        alpha_at(0, _cfg(SCHEDULE="gradual", STEP=-1))

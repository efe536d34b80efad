"""Post-hoc score rules (wssdl_d2.evaluation.score_rule): the calibration and the site threshold share one
interface, fit / cross_fit / save / load, and are applied by calling them on scores."""
import json

import numpy as np
import pytest


def test_score_rules_share_fit_cross_fit_save_and_load(tmp_path):
    """Calibration and the site threshold are one kind of thing: fitted on image labels, cross-fitted per fold,
    saved as versioned JSON and loaded back the same way."""
    from wssdl_d2.evaluation.calibration import Calibration
    from wssdl_d2.evaluation.site_threshold import SiteThreshold, cross_fit

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    scores = np.clip(rng.normal(0.2 + 0.3 * labels, 0.1), 0.01, 0.99)
    folds = np.tile([0, 1], 30)
    for rule, fit_labels, options in ((Calibration, (labels == 2).astype(float), {"method": "platt"}),
                                      (SiteThreshold, labels, {"rule": "rate"})):
        fitted = rule.fit(scores, fit_labels, **options)
        per_fold = rule.cross_fit(scores, fit_labels, folds, **options)
        assert sorted(per_fold) == [0, 1] and all(isinstance(r, rule) for r in per_fold.values())
        path = fitted.save(str(tmp_path / f"{rule.WHAT}.json"))
        loaded = rule.load(path)
        np.testing.assert_allclose(np.asarray(loaded(scores), float), np.asarray(fitted(scores), float))
        with pytest.raises(FileExistsError):
            fitted.save(path, overwrite=False)
    taus, fits = cross_fit(scores, labels, folds)
    assert set(taus[folds == 0]) == {fits[0]["tau"]} and set(taus[folds == 1]) == {fits[1]["tau"]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="not a wssdl_d2 site threshold"):
        SiteThreshold.load(str(bad))


def test_the_demo_applies_a_site_threshold_file(tmp_path):
    """A site's threshold ships as site_threshold.json and the demo applies it (--site-threshold), as it applies a
    calibration.json (--calibration); --confidence-threshold still wins."""
    from detectron2.config import get_cfg

    from wssdl_d2.cli.demo import detection_threshold, get_parser
    from wssdl_d2.config import add_wssdl_config
    from wssdl_d2.evaluation.site_threshold import SiteThreshold

    path = SiteThreshold("rate", 0.27).save(str(tmp_path / "site_threshold.json"))
    cfg = add_wssdl_config(get_cfg())
    parser = get_parser()
    assert detection_threshold(parser.parse_args(["--input", "x.png", "--site-threshold", path]), cfg) == 0.27
    assert detection_threshold(parser.parse_args(["--input", "x.png", "--site-threshold", path,
                                                  "--confidence-threshold", "0.6"]), cfg) == 0.6
    assert detection_threshold(parser.parse_args(["--input", "x.png"]), cfg) == cfg.WSSDL.EVAL.SCORE_THRESH

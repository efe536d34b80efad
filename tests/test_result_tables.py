"""Numbers in the docs come from committed result files: each rendered table is what its script makes of them."""
import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_default_model_card_table_is_current():
    summarize = _load("benchmarks/site_transfer/summarize.py")
    with open(os.path.join(ROOT, "benchmarks", "site_transfer", "results", "summary.json")) as f:
        summary = json.load(f)
    with open(os.path.join(ROOT, "MODEL_ZOO.md")) as f:
        text = f.read()
    assert summarize.render_card(text, summary) == text, (
        "MODEL_ZOO.md's leave-one-site-out table differs from benchmarks/site_transfer/results/summary.json: run "
        "benchmarks/site_transfer/summarize.py benchmarks/site_transfer/results --from-copy --model-zoo MODEL_ZOO.md")
    assert sum(r["lever"] == summarize.CARD_LEVER for r in summary["rows"]) == 2  # both directions


def test_holm_adjustment():
    summarize = _load("benchmarks/site_transfer/summarize.py")
    assert summarize.holm([0.01, 0.04, 0.03]) == [0.03, 0.06, 0.06]
    assert summarize.holm([0.5, 0.001]) == [0.5, 0.002]

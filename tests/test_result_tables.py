"""Numbers in the docs come from committed result files: each rendered table is what its script makes of them."""
import importlib.util
import json
import os

import pytest

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


def test_leave_one_site_out_summary_is_adjusted_over_its_comparisons():
    """summary.json's Holm p-values are the package's adjustment of its raw McNemar p-values, over as many tests
    as it says; the site with near-duplicate groups (BUSI) also has clustered p-values."""
    from wssdl_d2.evaluation.bootstrap import holm_adjust

    with open(os.path.join(ROOT, "benchmarks", "site_transfer", "results", "summary.json")) as f:
        summary = json.load(f)
    tested = [r for r in summary["rows"] if r["lever"] != "none"]
    assert len(tested) == summary["comparisons_corrected"] >= 2
    assert [r["CorLoc_mcnemar_p_holm"] for r in tested] == \
        pytest.approx(list(holm_adjust([r["CorLoc_mcnemar_p"] for r in tested])))
    busi = [r for r in tested if r["direction"].endswith("BUSI")]
    assert busi and all(0 < r["CorLoc_mcnemar_p_clustered"] <= 1 for r in busi)


def test_readme_and_benchmarks_tables_are_current():
    """The rendered blocks of README.md, BENCHMARKS.md and MODEL_ZOO.md are what benchmarks/render_tables.py makes
    of the committed result files."""
    render = _load("benchmarks/render_tables.py")
    for path, blocks in render.BLOCKS.items():
        old, new = render.render_file(path)
        for name in blocks:  # every block is present once, so nothing renders into the wrong place
            assert old.count(f"<!-- {name}:start -->") == 1 and old.count(f"<!-- {name}:end -->") == 1, (path, name)
        assert new == old, f"{path} has a table that differs from its result files: run benchmarks/render_tables.py"


def test_rendering_replaces_only_the_block():
    render = _load("benchmarks/render_tables.py")
    text = "before\n<!-- results:start -->\nstale | table\n<!-- results:end -->\nafter\n"
    out = render.render(text, "results", "| fresh |")
    assert out == "before\n<!-- results:start -->\n| fresh |\n<!-- results:end -->\nafter\n"
    assert render.render(out, "results", "| fresh |") == out  # idempotent


def test_readme_and_benchmarks_sizes():
    """README.md is a front door and BENCHMARKS.md a results page; the history lives in benchmarks/notes/."""
    assert os.path.getsize(os.path.join(ROOT, "README.md")) <= 10_000
    assert os.path.getsize(os.path.join(ROOT, "BENCHMARKS.md")) <= 40_000
    notes = os.path.join(ROOT, "benchmarks", "notes")
    with open(os.path.join(notes, "README.md")) as f:
        index = f.read()
    for name in sorted(os.listdir(notes)):
        if name.endswith(".md") and name != "README.md":
            assert f"]({name})" in index, f"benchmarks/notes/README.md does not link {name}"

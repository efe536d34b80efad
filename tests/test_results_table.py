"""Results tables (wssdl_d2.evaluation.comparison / tables, tools/results_table.py): one row per run with its paired
comparison against the reference, and the boxes plot."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from test_compare import ROOT, write_run
from wssdl_d2.evaluation.comparison import boxes_series, reference_rows
from wssdl_d2.evaluation.results_io import ResultsError
from wssdl_d2.evaluation.tables import results_table

TOOL = os.path.join(ROOT, "tools", "results_table.py")


@pytest.fixture
def runs(tmp_path):
    hits = np.ones(40, bool)
    weaker = hits.copy()
    weaker[::2] = False  # misses 20 images the reference finds, never the reverse
    ref = write_run(str(tmp_path / "ref" / "inference"), hits)
    other = write_run(str(tmp_path / "other" / "inference"), weaker)
    with open(tmp_path / "ref" / "metrics.json", "w") as f:  # Detectron2's JSONWriter: one JSON object per line
        f.write(json.dumps({"iteration": 9, "total_loss": 1.0}) + "\n")
        f.write(json.dumps({"iteration": 10, "bbox/AP50": 61.5}) + "\n")
    return os.path.dirname(ref), os.path.dirname(other)


def test_rows_pair_every_run_with_the_reference(runs):
    ref, other = runs
    rows = reference_rows([("ref", ref, None), ("other", other, 12)], "ref")
    by_name = {row["name"]: row for row in rows}
    assert by_name["ref"]["CorLoc"][0] == 100.0 and by_name["other"]["CorLoc"][0] == 50.0
    assert by_name["ref"]["AP50"] == 61.5 and by_name["other"]["AP50"] is None
    paired = by_name["other"]["vs_reference"]
    assert paired["diff"] == -50.0 and paired["p_bootstrap"] < 0.01 and paired["p_mcnemar"] < 1e-4
    assert "vs_reference" not in by_name["ref"] and by_name["other"]["boxes"] == 12
    printed = results_table(rows, "ref")
    assert "| ref " in printed and "(reference)" in printed and "61.5" in printed


def test_cli_prints_the_table_and_writes_json_and_the_boxes_plot(runs, tmp_path):
    ref, other = runs
    png = tmp_path / "boxes.png"
    proc = subprocess.run([sys.executable, TOOL, "--reference", "ref", f"ref={ref}:40", f"other={other}:12",
                           "--json", str(tmp_path / "t.json"), "--plot-boxes", str(png), "--series", "line", "other",
                           "ref"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| ref " in proc.stdout and "(reference)" in proc.stdout and "61.5" in proc.stdout
    assert json.load(open(tmp_path / "t.json"))[1]["name"] == "other"
    assert png.stat().st_size > 1000


def test_boxes_series_take_the_given_counts(runs):
    ref, other = runs
    rows = reference_rows([("ref", ref, 40), ("other", other, 12)], "ref", samples=50)
    series = boxes_series(rows, [["line", "other", "ref"]])
    assert [p[:2] for p in series["line"]] == [(12, 50.0), (40, 100.0)]


def test_a_run_without_a_config_needs_its_box_count(runs, tmp_path):
    ref, other = runs
    rows = reference_rows([("ref", ref, None), ("other", other, None)], "ref", samples=50)
    with pytest.raises(ResultsError, match="no config.yaml"):
        boxes_series(rows, [["line", "other"]])
    proc = subprocess.run([sys.executable, TOOL, "--reference", "ref", f"ref={ref}", f"other={other}", "--plot-boxes",
                           str(tmp_path / "p.png"), "--series", "line", "other"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "error:" in proc.stderr and "no config.yaml" in proc.stderr


@pytest.mark.parametrize("argv,message", [
    (["--reference", "nope", "a=x"], "not one of the runs"),
    (["--reference", "a", "a=x", "a=y"], "must be unique"),
    (["--reference", "a", "ax"], "expected NAME=RUN_FOLDER"),
])
def test_bad_arguments_are_named(argv, message):
    proc = subprocess.run([sys.executable, TOOL] + argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr


def test_a_series_of_one_point_gets_an_error_bar_and_longer_ones_a_band(monkeypatch, tmp_path):
    from matplotlib.collections import LineCollection, PolyCollection

    from wssdl_d2.evaluation import curves

    saved = {}
    monkeypatch.setattr(curves, "_save", lambda fig, path: saved.setdefault("fig", fig))
    curves.plot_series({"line": [(10, 60.0, 50.0, 70.0), (20, 70.0, 61.0, 79.0)], "point": [(10, 75.0, 66.0, 84.0)],
                        "no CI": [(20, 65.0, float("nan"), float("nan"))]}, str(tmp_path / "p.png"), xlabel="boxes")
    ax = saved["fig"].axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(bands) == 1 and len(bars) == 1
    assert bars[0].get_segments()[0][:, 1].tolist() == [66.0, 84.0]

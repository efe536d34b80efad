"""tools/results_table.py: one row per run with its paired comparison against the reference, and the boxes plot."""
import json
import os

import numpy as np
import pytest

from test_compare import write_run
from tool_module import load_tool


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


def test_rows_pair_every_run_with_the_reference(runs, tmp_path, capsys):
    ref, other = runs
    rows = load_tool("results_table").main(["--reference", "ref", f"ref={ref}", f"other={other}:12",
                         "--json", str(tmp_path / "t.json")])
    by_name = {row["name"]: row for row in rows}
    assert by_name["ref"]["CorLoc"][0] == 100.0 and by_name["other"]["CorLoc"][0] == 50.0
    assert by_name["ref"]["AP50"] == 61.5 and by_name["other"]["AP50"] is None
    paired = by_name["other"]["vs_reference"]
    assert paired["diff"] == -50.0 and paired["p_bootstrap"] < 0.01 and paired["p_mcnemar"] < 1e-4
    assert "vs_reference" not in by_name["ref"] and by_name["other"]["boxes"] == 12
    printed = capsys.readouterr().out
    assert "| ref " in printed and "(reference)" in printed and "61.5" in printed
    assert json.load(open(tmp_path / "t.json"))[1]["name"] == "other"


def test_boxes_plot_takes_the_given_counts(runs, tmp_path):
    ref, other = runs
    png = tmp_path / "boxes.png"
    load_tool("results_table").main(["--reference", "ref", f"ref={ref}:40", f"other={other}:12", "--plot-boxes", str(png),
                  "--series", "line", "other", "ref"])
    assert png.stat().st_size > 1000


def test_a_run_without_a_config_needs_its_box_count(runs, tmp_path):
    ref, other = runs
    tool = load_tool("results_table")
    with pytest.raises(tool.results_io.ResultsError, match="no config.yaml"):
        tool.main(["--reference", "ref", f"ref={ref}", f"other={other}", "--plot-boxes", str(tmp_path / "p.png"),
                   "--series", "line", "other"])


@pytest.mark.parametrize("argv,message", [
    (["--reference", "nope", "a=x"], "not one of the runs"),
    (["--reference", "a", "a=x", "a=y"], "must be unique"),
    (["--reference", "a", "ax"], "expected NAME=RUN_FOLDER"),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        load_tool("results_table").parse_args(argv)
    assert message in capsys.readouterr().err


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

"""A simulated annotator: CorLoc against the number of boxes, active vs random choice of the images to box.

Start from a strong / weak split (``DATASETS.TRAIN``) and an initial model (trained from the config, or given).
Each step, every strategy queries ``per_step`` benign / malignant weak images - ``active``: the highest
acquisition scores (:mod:`wssdl_d2.active.scoring`) under its current model; ``random``: a seeded random draw -
and the "annotator" reveals their true boxes (from ``truth``, e.g. ``busi_train_all``; marked
``source: "annotator"``). The strategy's model is then fine-tuned for ``step_iters`` iterations on the new sets
(by default at the LR and alpha where the config's schedule ends: ``WSSDL.FINETUNE_SCHEDULE``) and evaluated on
``DATASETS.TEST``. Both strategies share the initial point.

Output (``OUTPUT_DIR``): ``initial/`` and ``<strategy>/step_<k>/`` step folders (config, checkpoints,
datasets, inference/corloc.json), ``annotation_curve.csv`` (strategy, step, queried images and boxes, boxes in
the strong set, CorLoc and its CI) and ``annotation_curve.png`` (CorLoc vs boxes with CI bands).
``simulation_state.json`` (:class:`wssdl_d2.runs.RunState`, with the config's fingerprint) makes the run resumable
step by step.
"""
import csv
import io
import logging
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import numpy as np
from detectron2.data import DatasetCatalog

from ..data.labels import MASS_LABELS
from ..data.streams import split_by_supervision
from ..data.wssdl_json import load_wssdl_json
from ..evaluation.curves import plot_series
from ..selftrain.pseudo_dataset import revealed_record, split_records, write_records
from ..engine.finetune import check_finetune_schedule
from ..runs.state import RunState
from ..runs.train import train_and_evaluate_step
from ..selftrain.rounds import initial_step, register_dataset, step_config, train_step, unique_prefix
from ..utils.atomic import atomic_open
from .scoring import ACQUISITIONS, acquisition_scores

if TYPE_CHECKING:
    from ..inference import WSSDLPredictor

logger = logging.getLogger(__name__)
STATE_FILE = "simulation_state.json"
STRATEGIES = ("active", "random")
CURVE_COLUMNS = ("strategy", "step", "queried_images", "queried_boxes", "n_boxes", "corloc", "corloc_lo",
                 "corloc_hi", "weights")


def _boxes(records):
    return sum(len(r.get("annotations") or []) for r in records)


def choose_queries(strategy: str, pool: Sequence[Dict[str, Any]], per_step: int,
                   predictor: Optional["WSSDLPredictor"] = None, acquisition: str = "combined", seed: int = 0,
                   step: int = 1) -> List[str]:
    """File names of the ``per_step`` pool images (mass-labelled dataset dicts) a strategy queries."""
    if strategy == "random":
        rng = np.random.default_rng([seed, step])
        picks = rng.permutation(len(pool))[:per_step]
        return [pool[i]["file_name"] for i in sorted(picks)]
    from ..inference.analysis import analyze_records

    scores = acquisition_scores(analyze_records(predictor, pool), acquisition, seed)
    order = sorted(range(len(pool)), key=lambda i: (-scores[i], pool[i]["file_name"]))
    return [pool[i]["file_name"] for i in order[:per_step]]


class AnnotationSimulation:
    """The simulation of one output folder (see the module docstring)."""

    def __init__(self, cfg, truth, steps=3, per_step=10, step_iters=100, strategies=STRATEGIES,
                 acquisition="combined", seed=0, initial_weights=None, resume=False, overwrite=False):
        unknown = [s for s in strategies if s not in STRATEGIES]
        if unknown or not strategies:
            raise ValueError(f"strategies must be among {STRATEGIES}, not {list(strategies)}")
        if acquisition not in ACQUISITIONS or acquisition == "random":
            raise ValueError(f"the active strategy's acquisition must be one of {ACQUISITIONS[:-1]}, not {acquisition!r}")
        if per_step < 1 or steps < 0 or step_iters < 1:
            raise ValueError(f"need per_step >= 1, steps >= 0 and step_iters >= 1 (got {per_step}, {steps}, {step_iters})")
        if initial_weights and not os.path.isfile(initial_weights):
            raise FileNotFoundError(f"initial weights {initial_weights}: checkpoint file not found")
        if not cfg.DATASETS.TEST:
            raise ValueError("DATASETS.TEST is empty: the simulation evaluates CorLoc on it")
        check_finetune_schedule(cfg)
        self.cfg, self.steps, self.per_step, self.step_iters = cfg, steps, per_step, step_iters
        self.strategies, self.acquisition, self.seed = list(strategies), acquisition, seed
        self.initial_weights = initial_weights
        self.out = cfg.OUTPUT_DIR
        self.truth = {r["file_name"]: r for r in DatasetCatalog.get(truth)}
        self.truth_name = truth
        self.strong0, self.weak0 = split_by_supervision([d for n in cfg.DATASETS.TRAIN for d in DatasetCatalog.get(n)])
        missing = [r["file_name"] for r in self.weak0 if r["image_label"] in MASS_LABELS and r["file_name"] not in self.truth]
        if missing:
            raise KeyError(f"truth dataset {truth} lacks {len(missing)} weak images of DATASETS.TRAIN, e.g. {missing[0]}")
        settings = {"train": list(cfg.DATASETS.TRAIN), "test": list(cfg.DATASETS.TEST), "truth": truth,
                    "per_step": per_step, "step_iters": step_iters, "acquisition": acquisition, "seed": seed,
                    "initial_weights": initial_weights or "", "model_weights": cfg.MODEL.WEIGHTS,
                    "solver_max_iter": int(cfg.SOLVER.MAX_ITER),
                    "finetune_schedule": str(cfg.WSSDL.FINETUNE_SCHEDULE)}
        self.state = RunState.open(self.out, STATE_FILE, settings, resume, overwrite, cfg=cfg)
        self.prefix = unique_prefix(self.out, "annotsim")

    def run(self) -> List[Dict[str, Any]]:
        """Run (or continue) every step of every strategy; write the curve CSV / PNG. Returns the curve rows."""
        self._initial()
        for k in range(1, self.steps + 1):
            for strategy in self.strategies:
                if self.state.step(f"{strategy}/{k}").get("status") != "done":
                    self._step(strategy, k)
            self.write_curve()
        return self.write_curve()

    def _initial(self):
        if self.state.step("initial").get("status") != "done":
            initial_step(self.cfg, self.state, "initial", os.path.join(self.out, "initial"), self.initial_weights)
            self.state.update("initial", queried_images=0, queried_boxes=0, n_boxes=_boxes(self.strong0))

    def _previous(self, strategy, k):
        return self.state.step("initial" if k == 1 else f"{strategy}/{k - 1}")

    def _sets(self, strategy, k):
        """(strong, weak) dataset dicts before step k of a strategy."""
        if k == 1:
            return self.strong0, self.weak0
        files = self._previous(strategy, k)["datasets"]
        return load_wssdl_json(files["strong"]), (load_wssdl_json(files["weak"]) if files.get("weak") else [])

    def _write_datasets(self, strategy, k, folder):
        from ..inference import WSSDLPredictor

        previous = self._previous(strategy, k)
        strong, weak = self._sets(strategy, k)
        pool = [r for r in weak if r["image_label"] in MASS_LABELS]
        predictor = None
        if strategy == "active" and pool:
            pcfg = self.cfg.clone()
            pcfg.defrost()
            pcfg.MODEL.WEIGHTS = previous["weights"]
            predictor = WSSDLPredictor(pcfg)
        keys = choose_queries(strategy, pool, self.per_step, predictor, self.acquisition, self.seed, k) if pool else []
        picked, rest = split_records(weak, keys)
        revealed = [revealed_record(r, self.truth[r["file_name"]]) for r in picked]
        files = {"strong": os.path.join(folder, "datasets", "train_strong.json")}
        write_records(files["strong"], strong + revealed, f"annotation simulation {strategy} step {k}: strong")
        if rest:
            files["weak"] = os.path.join(folder, "datasets", "train_weak.json")
            write_records(files["weak"], rest, f"annotation simulation {strategy} step {k}: weak")
        logger.info("%s step %d: queried %d images (%d boxes), %d left in the pool", strategy, k, len(picked),
                    _boxes(revealed), len(pool) - len(picked))
        self.state.update(f"{strategy}/{k}", status="datasets", datasets=files, queried=keys,
                          queried_images=previous["queried_images"] + len(picked),
                          queried_boxes=previous["queried_boxes"] + _boxes(revealed),
                          n_boxes=previous["n_boxes"] + _boxes(revealed))

    def _step(self, strategy, k):
        key, folder = f"{strategy}/{k}", os.path.join(self.out, strategy, f"step_{k}")
        if self.state.step(key).get("status") not in ("datasets", "training"):
            self._write_datasets(strategy, k, folder)
        step = self.state.step(key)
        names = [register_dataset(f"{self.prefix}_{strategy}_{k}_{part}", path)
                 for part, path in sorted(step["datasets"].items())]
        start = self._previous(strategy, k)["weights"]
        train_and_evaluate_step(self.state, key, step_config(self.cfg, folder, names, start, self.step_iters,
                                                             finetune=True), train_step)

    def curve_rows(self) -> List[Dict[str, Any]]:
        """Rows of the curve: the initial point once per strategy, then every finished step."""
        rows = []
        for strategy in self.strategies:
            for k in range(0, self.steps + 1):
                step = self.state.step("initial" if k == 0 else f"{strategy}/{k}")
                if step.get("status") != "done":
                    break
                c = step["corloc"]
                rows.append({"strategy": strategy, "step": k, "queried_images": step["queried_images"],
                             "queried_boxes": step["queried_boxes"], "n_boxes": step["n_boxes"], "corloc": c["CorLoc"],
                             "corloc_lo": c["CorLoc_lo"], "corloc_hi": c["CorLoc_hi"], "weights": step["weights"]})
        return rows

    def write_curve(self) -> List[Dict[str, Any]]:
        """Write ``annotation_curve.csv`` and ``annotation_curve.png``. Returns the rows."""
        rows = self.curve_rows()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        with atomic_open(os.path.join(self.out, "annotation_curve.csv"), "w", newline="") as f:
            f.write(buffer.getvalue())
        plot_curve(rows, os.path.join(self.out, "annotation_curve.png"),
                   title=f"CorLoc vs boxes ({self.acquisition} vs random, {self.per_step} images / step)")
        return rows


def plot_curve(rows: Sequence[dict], path: str, title: str = "CorLoc vs number of boxes") -> str:
    """PNG: CorLoc (%) against the boxes in the strong set, one line per strategy with its CI band
    (:func:`wssdl_d2.evaluation.curves.plot_series`). ``rows``: :meth:`AnnotationSimulation.curve_rows`."""
    nan = float("nan")
    series = {}
    for r in rows:
        if r["corloc"] is not None:
            series.setdefault(r["strategy"], []).append((
                float(r["n_boxes"]), float(r["corloc"]), nan if r["corloc_lo"] is None else float(r["corloc_lo"]),
                nan if r["corloc_hi"] is None else float(r["corloc_hi"])))
    return plot_series(series, path, xlabel="boxes in the strong set", ylabel="CorLoc % (95% CI)", title=title)

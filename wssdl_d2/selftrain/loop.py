"""Self-training rounds (paper Table IV), resumable round by round.

Round 0 is the initial model: trained from the config (``DATASETS.TRAIN`` = strong + weak sets, the config's
schedule), or a given trained checkpoint (``initial_weights``), then evaluated on ``DATASETS.TEST``. Round
``k >= 1``:

1. the previous round's model analyses the weak pool (:mod:`wssdl_d2.inference.analysis`): with
   ``WSSDL.SELFTRAIN.RELABEL`` the original weak set (earlier pseudo boxes are replaced), otherwise the weak
   images the previous round left (its pseudo images stay);
2. :func:`~wssdl_d2.pseudo.selection.select_from_config` picks the pseudo-labelled images (top fraction of
   the class-consistent ones, or adaptive per-class bars);
3. ``round_<k>/datasets/train_strong.json`` (strong + pseudo, with provenance) and ``train_weak.json`` (the
   rest) are written, with ``pseudo_labels.csv`` and ``selection.json``;
4. a model is trained on them, from ``MODEL.WEIGHTS`` (``SELFTRAIN.INIT: initial``: retrain as the initial
   model was trained) or from the previous round's model (``previous``: fine-tune, at the LR and alpha where the
   config's schedule ends unless ``WSSDL.FINETUNE_SCHEDULE`` is "restart"), for ``SELFTRAIN.MAX_ITER``
   iterations (0: SOLVER.MAX_ITER), and evaluated (``round_<k>/inference/corloc.json``).

Pseudo images are trained exactly like strong ones (no loss weight: Detectron2's Fast R-CNN losses average over
the sampled RoIs of the whole batch, so a per-image weight would need a new box predictor).

``OUTPUT_DIR/selftrain_state.json`` (atomic, :class:`wssdl_d2.runs.RunState`) records every finished step and the
config's fingerprint (a resume with another config is refused, WSSDL.SELFTRAIN.ROUNDS aside); a run killed at any
point continues with ``resume=True``: finished rounds are kept, a round whose datasets were written reuses them, and its
training continues from its last checkpoint. Runs in one process (one GPU or the CPU).
"""
import json
import logging
import os
from typing import Any, Dict, Optional

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog

from ..data.streams import split_by_supervision
from ..data.wssdl_json import load_wssdl_json
from ..pseudo.selection import Candidate, select_from_config
from ..utils.atomic import atomic_write_json
from .pseudo_dataset import pseudo_record, split_records, write_pseudo_csv, write_records
from ..engine.finetune import check_finetune_schedule
from ..runs.state import RunState
from ..runs.train import train_and_evaluate_step
from .rounds import initial_step, register_dataset, step_config, train_step, unique_prefix

logger = logging.getLogger(__name__)
STATE_FILE = "selftrain_state.json"
INITS = ("initial", "previous")  # WSSDL.SELFTRAIN.INIT: retrain from MODEL.WEIGHTS or fine-tune the last model
#: Config keys a resumed run may change (more rounds); every other key must be the run's (its fingerprint).
RESUMABLE_KEYS = ("WSSDL.SELFTRAIN.ROUNDS",)


def round_dir(output_dir: str, k: int) -> str:
    return os.path.join(output_dir, f"round_{k}")


def settings_of(cfg: CfgNode, initial_weights: Optional[str]) -> Dict[str, Any]:
    """What a resumed run must share with the run it continues."""
    st = cfg.WSSDL.SELFTRAIN
    return {"train": list(cfg.DATASETS.TRAIN), "test": list(cfg.DATASETS.TEST), "model_weights": cfg.MODEL.WEIGHTS,
            "initial_weights": initial_weights or "", "selection": st.SELECTION, "fraction": float(st.FRACTION),
            "adaptive": {k: st.ADAPTIVE[k] for k in sorted(st.ADAPTIVE)}, "init": st.INIT,
            "max_iter": int(st.MAX_ITER), "relabel": bool(st.RELABEL), "solver_max_iter": int(cfg.SOLVER.MAX_ITER),
            **({"finetune_schedule": str(cfg.WSSDL.FINETUNE_SCHEDULE)} if st.INIT == "previous" else {})}


def _check_config(cfg, initial_weights):
    st = cfg.WSSDL.SELFTRAIN
    if st.INIT not in INITS:
        raise ValueError(f"WSSDL.SELFTRAIN.INIT must be one of {INITS}, not {st.INIT!r}")
    check_finetune_schedule(cfg, finetunes=st.INIT == "previous")
    if initial_weights and not os.path.isfile(initial_weights):
        raise FileNotFoundError(f"initial weights {initial_weights}: checkpoint file not found")
    if not cfg.DATASETS.TRAIN:
        raise ValueError("DATASETS.TRAIN is empty: give the strong and weak training sets")


def _pool(cfg, state, k, strong0, weak0):
    """(strong images kept as they are, weak images to analyse) of round k."""
    if cfg.WSSDL.SELFTRAIN.RELABEL or k == 1:
        return strong0, weak0
    files = state.step(k - 1)["datasets"]
    strong = load_wssdl_json(files["strong"])
    weak = load_wssdl_json(files["weak"]) if files.get("weak") else []
    return strong, weak


def _write_round_datasets(cfg, state, k, strong0, weak0):
    from ..inference import WSSDLPredictor
    from ..inference.analysis import analyze_records

    folder = round_dir(cfg.OUTPUT_DIR, k)
    previous = state.step(k - 1)["weights"]
    strong, pool = _pool(cfg, state, k, strong0, weak0)
    logger.info("Round %d: analysing %d weak images with %s", k, len(pool), previous)
    predictor_cfg = cfg.clone()
    predictor_cfg.defrost()
    predictor_cfg.MODEL.WEIGHTS = previous
    analyses = analyze_records(WSSDLPredictor(predictor_cfg), pool)
    candidates = [Candidate.from_analysis(a) for a in analyses]
    selected, info = select_from_config(candidates, cfg)
    chosen = {c.key: c for c in selected}
    picked, rest = split_records(pool, chosen)
    pseudo = [pseudo_record(r, chosen[r["file_name"]], k, previous) for r in picked]
    data = os.path.join(folder, "datasets")
    files = {"strong": os.path.join(data, "train_strong.json")}
    write_records(files["strong"], strong + pseudo, f"self-training round {k}: strong + pseudo images")
    if rest:
        files["weak"] = os.path.join(data, "train_weak.json")
        write_records(files["weak"], rest, f"self-training round {k}: weak images")
    write_pseudo_csv(os.path.join(data, "pseudo_labels.csv"), selected, k, previous)
    info.update(round=k, model=previous, strong=len(strong), pseudo=len(pseudo), weak=len(rest))
    atomic_write_json(os.path.join(data, "selection.json"), info, indent=1)
    logger.info("Round %d: %d of %d weak images pseudo-labelled (%d class-consistent): %s", k, len(pseudo),
                len(pool), info["consistent"], json.dumps({key: v for key, v in info.items() if key != "model"}))
    state.update(k, status="datasets", datasets=files, selection=info)


def self_train(cfg: CfgNode, rounds: Optional[int] = None, initial_weights: Optional[str] = None, resume: bool = False,
               overwrite: bool = False) -> Dict[int, Dict[str, Any]]:
    """Run (or continue) self-training. ``cfg``: a frozen wssdl_d2 config (``OUTPUT_DIR`` is the run folder,
    ``WSSDL.SELFTRAIN.*`` the settings); ``rounds`` defaults to ``SELFTRAIN.ROUNDS``. Returns the state's steps
    {round: {"weights", "corloc", "selection", ...}}."""
    rounds = int(cfg.WSSDL.SELFTRAIN.ROUNDS if rounds is None else rounds)
    _check_config(cfg, initial_weights)
    state = RunState.open(cfg.OUTPUT_DIR, STATE_FILE, settings_of(cfg, initial_weights), resume, overwrite, cfg=cfg,
                          ignore=RESUMABLE_KEYS)
    strong0, weak0 = split_by_supervision([d for name in cfg.DATASETS.TRAIN for d in DatasetCatalog.get(name)])
    if not weak0:
        raise ValueError(f"DATASETS.TRAIN {tuple(cfg.DATASETS.TRAIN)} has no weak image to pseudo-label")
    if state.step(0).get("status") != "done":
        initial_step(cfg, state, 0, round_dir(cfg.OUTPUT_DIR, 0), initial_weights)
    prefix = unique_prefix(cfg.OUTPUT_DIR, "selftrain")
    st = cfg.WSSDL.SELFTRAIN
    for k in range(1, rounds + 1):
        step = state.step(k)
        if step.get("status") == "done":
            continue
        if step.get("status") not in ("datasets", "training"):
            _write_round_datasets(cfg, state, k, strong0, weak0)
        step = state.step(k)
        names = [register_dataset(f"{prefix}_r{k}_{part}", path) for part, path in sorted(step["datasets"].items())]
        start = cfg.MODEL.WEIGHTS if st.INIT == "initial" else state.step(k - 1)["weights"]
        folder = round_dir(cfg.OUTPUT_DIR, k)
        round_cfg = step_config(cfg, folder, names, start, int(st.MAX_ITER), finetune=st.INIT == "previous")
        logger.info("Round %d: training on %s from %s", k, ", ".join(names),
                    start or "the config's initialisation (empty MODEL.WEIGHTS: ImageNet backbones load their own "
                             "weights, the rest starts at random)")
        train_and_evaluate_step(state, k, round_cfg, train_step, start_weights=start)
    return {int(k): v for k, v in state.data["steps"].items()}

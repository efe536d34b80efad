"""Cross-validation of site adaptation over a new site's patient folds.

A site prepared with ``tools/prepare_busi.py --test-all --folds K --strong-count 0 10 25`` has, per fold k,
``<site>_fold<k>_val`` (the held-out patients' scans, every one boxed) and training parts
``<site>_fold<k>_train_weak_n<N>`` (the other patients' scans with their diagnosis only, except N of them) and
``<site>_fold<k>_train_strong_n<N>`` (those N with their boxes; none for N = 0).

For every fold, :func:`run_site_crossval` evaluates the source model as it is on the held-out scans (the row
``zero_shot``) and adapts it (:func:`wssdl_d2.engine.site_adaptation.adaptation_config`) on the fold's training part
with N boxed scans, for each N asked (rows ``adapted_n<N>``), then tests the adapted model on the same held-out scans.
Each adaptation is a resumable cross-validation run (:func:`.runs.run_config`: state file, config fingerprint, a
finished run is never trained again). The per-image outcomes of each row are pooled over the folds, so every scan of
the site is tested once per row, by a model that never saw it, and the rows are compared paired (:mod:`.report`).

The source model may be one model for every fold, or one per fold (:class:`SourceModel`): the K models of a
cross-validation over the source site's pool, each trained without its own source fold (``test``). Then every row
is also tested on that source fold, and those outcomes are pooled over the folds too: the adaptation's cost at the
source, measured on source images that neither the model nor its adaptation saw (the adaptation's batches keep the
fold model's own boxed training images).

Layout: ``<out>/zero_shot/fold<k>/inference`` (and ``zero_shot.json``) and ``<out>/adapted_n<N>/fold<k>/`` (a run
folder); with source folds also ``<out>/<row>/fold<k>/<source test dataset>/inference``.
"""
import json
import os
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog

from ..config import merge_pairs, resolve_device
from ..data.folds import fold_dataset_name
from ..evaluation.pooled import pool_folds
from ..evaluation.results_io import read_per_image
from ..evaluation.run_dir import RunDir
from ..utils.atomic import atomic_open, atomic_write_json
from .external import evaluate_run_on
from .runs import CrossValError, config_fingerprint, config_matches, evaluate_model, run_config, train_model

ZERO_SHOT = "zero_shot"
#: In ``<out>/zero_shot/fold<k>/``: the fingerprint of the config (weights included) the fold was evaluated with.
ZERO_SHOT_STAMP = "zero_shot.json"


class SourceModel(NamedTuple):
    """The model a fold's adaptation starts from.

    cfg: the config it was trained with; weights: its checkpoint (.pth / .safetensors, loaded weights-only);
    train: the source's boxed datasets it was trained with, kept in the adaptation's batches; test: a registered
    dataset of source images it never saw (its own cross-validation fold) where the adaptation's cost at the source
    is measured, or None."""
    cfg: CfgNode
    weights: str
    train: Sequence[str]
    test: Optional[str] = None


def adapted_row(boxes: int) -> str:
    """The report's row (and folder) name of the adaptation with ``boxes`` boxed site scans: ``adapted_n<boxes>``."""
    return f"adapted_n{int(boxes)}"


def site_fold_datasets(site: str, fold: int, boxes: int) -> Tuple[List[str], str]:
    """(the fold's training datasets with ``boxes`` boxed scans, its held-out dataset). Raises CrossValError naming
    the datasets that are not registered."""
    train = [fold_dataset_name(site, fold, f"train_weak_n{int(boxes)}")]
    if boxes:
        train.append(fold_dataset_name(site, fold, f"train_strong_n{int(boxes)}"))
    test = fold_dataset_name(site, fold, "val")
    missing = [d for d in train + [test] if d not in DatasetCatalog.list()]
    if missing:
        raise CrossValError(f"site {site!r}, fold {fold}: datasets {missing} are not registered; prepare the site with "
                            f"tools/prepare_busi.py --test-all --folds K --strong-count {int(boxes)} ... "
                            "under WSSDL.DATASET_ROOT / $WSSDL_DATASETS / ./datasets")
    return train, test


def _zero_shot(model_cfg: CfgNode, weights: str, test: str, run_dir: str, opts: Sequence, eval_fn: Callable) -> str:
    """Evaluate the source model on ``test`` into ``run_dir`` (with the same KEY VALUE ``opts`` as the adaptations)
    unless it was evaluated there already with this model and config (``zero_shot.json`` holds the config's
    fingerprint). Raises CrossValError when ``run_dir`` holds the evaluation of another model or config."""
    cfg = model_cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = os.path.abspath(weights)
    cfg.DATASETS.TEST = (test,)
    cfg.OUTPUT_DIR = run_dir
    merge_pairs(cfg, opts)
    resolve_device(cfg)
    cfg.freeze()
    stamp_path = os.path.join(run_dir, ZERO_SHOT_STAMP)
    fingerprint = config_fingerprint(cfg)
    if os.path.isfile(stamp_path):
        with open(stamp_path) as f:
            stamp = json.load(f)
        if not config_matches(cfg, stamp.get("fingerprint"), RunDir(run_dir).config):
            raise CrossValError(f"{stamp_path}: this fold was evaluated with another model or config "
                                f"({stamp.get('weights')}); it is not overwritten: choose another --out")
        if RunDir(run_dir).is_evaluated():
            return "skipped"
    eval_fn(cfg, cfg.MODEL.WEIGHTS, run_dir)
    with atomic_open(RunDir(run_dir).config) as f:
        f.write(cfg.dump())
    atomic_write_json(stamp_path, {"fingerprint": fingerprint, "weights": cfg.MODEL.WEIGHTS, "test": test}, indent=1)
    return "evaluated"


def run_site_crossval(sources: Mapping[int, SourceModel], site: str, boxes: Sequence[int], out: str,
                      max_iter: Optional[int] = None, base_lr: Optional[float] = None, alpha: Optional[float] = None,
                      opts: Sequence = (), log=print,
                      train_fn: Callable = train_model, eval_fn: Callable = evaluate_model,
                      keep_checkpoints: bool = False, teacher: bool = False) -> Dict:
    """Zero-shot and adapted rows of a site, every fold; resumable (finished runs are skipped).

    Args:
        sources: {fold: the model its adaptation starts from} (the same one for every fold, or one per fold);
            the folds run are its keys.
        site: the prepared site's dataset name (``breast`` for ``breast_fold<k>_*``).
        boxes: boxed site scans per adaptation, one row each (e.g. (0, 10, 25)).
        out: the output folder.
        max_iter, base_lr, alpha, opts, teacher: the adaptation's settings (:func:`adaptation_config`; None: the
            source model config's WSSDL.ADAPT).
        keep_checkpoints: keep each adaptation's periodic checkpoints after its training (default: only
            ``model_final.pth`` stays).

    Returns {"pooled": {row: pooled per-image columns on the site}, "source_pooled": {row: pooled per-image columns
    on the sources' test folds} (None unless every source has a ``test``), "states": {adapted row: {fold: run
    state}}}, rows in the order zero_shot, adapted_n<boxes[0]>, ...
    """
    from ..engine.site_adaptation import adaptation_config

    folds = sorted(sources)
    if not folds:
        raise CrossValError(f"site {site!r}: no folds to run")
    rows = [ZERO_SHOT] + [adapted_row(n) for n in boxes]
    if len(set(rows)) != len(rows):
        raise CrossValError(f"--boxes {list(boxes)}: each box count once")
    with_source_test = [f for f in folds if sources[f].test]
    if with_source_test and len(with_source_test) != len(folds):
        raise CrossValError(f"site {site!r}: a source test dataset for folds {with_source_test} only; give one for "
                            "every fold or none")
    states: Dict[str, Dict[int, Dict]] = {adapted_row(n): {} for n in boxes}
    adaptations = {}  # (fold, boxes) -> (run folder, config): every dataset and setting checked before anything runs
    for fold in folds:
        src = sources[fold]
        for n in boxes:
            train, test = site_fold_datasets(site, fold, n)
            run_dir = RunDir.of_fold(out, adapted_row(n), fold).path
            adaptations[fold, n] = run_dir, adaptation_config(src.cfg, os.path.abspath(src.weights), src.train, train,
                                                              run_dir, max_iter, base_lr, alpha, [test], opts,
                                                              write=False, teacher=teacher)
        if src.test and src.test not in DatasetCatalog.list():
            raise CrossValError(f"fold {fold}: the source test dataset {src.test!r} is not registered")
    source_outcomes: Dict[str, Dict[int, Dict]] = {row: {} for row in rows}
    for fold in folds:
        src = sources[fold]
        test = fold_dataset_name(site, fold, "val")  # registered: checked above
        zero_dir = RunDir.of_fold(out, ZERO_SHOT, fold).path
        did = _zero_shot(src.cfg, src.weights, test, zero_dir, opts, eval_fn)
        log(f"[site crossval] {ZERO_SHOT} fold {fold}: {did}")
        if src.test:
            source_outcomes[ZERO_SHOT][fold], _ = evaluate_run_on(zero_dir, src.test, eval_fn,
                                                                  os.path.abspath(src.weights))
        for n in boxes:
            run_dir, cfg = adaptations[fold, n]
            about = {"config": adapted_row(n), "config_file": os.path.abspath(src.weights), "fold": int(fold),
                     "data": site}
            state, did = run_config(cfg, run_dir, about, train_fn, eval_fn, keep_checkpoints)
            states[adapted_row(n)][fold] = state
            log(f"[site crossval] {adapted_row(n)} fold {fold}: {did} "
                f"(training {state['train_seconds'] / 60:.1f} min)")
            if src.test:
                source_outcomes[adapted_row(n)][fold], _ = evaluate_run_on(run_dir, src.test, eval_fn)
    pooled = {row: pool_folds({f: read_per_image(RunDir.of_fold(out, row, f).inference) for f in folds}, row)
              for row in rows}
    source_pooled = ({row: pool_folds(source_outcomes[row], row) for row in rows} if with_source_test else None)
    return {"pooled": pooled, "source_pooled": source_pooled, "states": states}

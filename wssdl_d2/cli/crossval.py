"""K-fold cross-validation of two or more configs over the whole pool: train each config on every fold, evaluate it
on the held-out fold, pool the per-image outcomes and compare the configs image by image.

    python tools/prepare_busi.py --root ../shared/data/BUSI/Dataset_BUSI_with_GT --out datasets/busi \\
        --strong-fraction 0.1 0.2 1.0 --seed 0 --folds 5
    python tools/crossval.py --data busi --folds 5 --out output/crossval/busi_20 \\
        --configs configs/BUSI/strong_only.yaml configs/BUSI/wssdl.yaml configs/BUSI/fully_supervised.yaml \\
        [KEY VALUE ...]

- Each config's DATASETS.TRAIN is mapped to the fold's datasets of the same kind (busi_train_strong_20 ->
  busi_fold3_train_strong_20) and DATASETS.TEST to the held-out fold (busi_fold3_val); trailing KEY VALUE pairs
  override every config (e.g. SOLVER.MAX_ITER 1200). ``name=path`` names a config (default: the file's stem).
  ``--strong-percent 10`` trains the configs on the folds' 10% strong / 90% weak split instead of the P their
  DATASETS.TRAIN names. Runs with the same name, config and data in one --out are shared between commands (e.g.
  fully_supervised in the 10% and the 20% comparison): the second command finds them finished.
- Runs: ``<out>/<config>/fold<k>/`` with ``crossval_state.json``. The command is safe to stop and start again:
  finished runs are never trained or evaluated again, a stopped run continues from its last checkpoint, and a run
  folder started with other settings is refused (choose another --out). A run's periodic checkpoints are removed
  when its training ends (only ``model_final.pth`` stays; 57 MB each for the BUSI configs); ``--keep-checkpoints``
  keeps them, e.g. for ``tools/eval_checkpoints.py``'s validation curve on the held-out fold.
- ``--rows NAME=FOLDER`` adds rows whose fold runs were made elsewhere, ``{fold}`` in FOLDER standing for the fold:
  e.g. ``tools/self_train.py`` from each fold's wssdl model into ``output/selftrain/fold<k>``, tested on the fold
  (``DATASETS.TEST "('busi_fold<k>_val',)"``): ``--rows selftrain=output/selftrain/fold{fold}/round_1``. Each
  FOLDER/inference/corloc_per_image.csv must hold exactly that fold's test images.
- ``--inner`` chooses settings without touching a test fold: each fold's inner training part (``inner_train_*``)
  trains and its inner validation split (``inner_val``) tests (``tools/prepare_busi.py --folds`` writes both);
  ``--only-folds 0`` runs fold 0 only, e.g. to screen candidates before the five-fold run.
- ``--external breast_test`` also tests every fold model (of the configs and the rows) zero-shot on that registered
  dataset, another site's images, into ``<run folder>/breast_test/inference``: the report adds each row's mean over
  its fold models and, per pair, the model-by-model differences (fold k against fold k, McNemar's p each)
  (``wssdl_d2.crossval.external``).
- Report: the Markdown table on stdout and ``<out>/crossval.{md,json,csv,png}``: per config the pooled CorLoc
  (authors' and top-1) with a bootstrap CI stratified by fold, false positives per normal image and the per-fold
  numbers; per pair (later config minus earlier) the paired difference with its stratified bootstrap CI, McNemar's
  p and its Holm adjustment over the report's pairs. When the pool's preparation has near-duplicate groups
  (``meta/groups.csv``), whole groups are resampled and McNemar's test is the clustered one.
- ``<out>/<report>_outcomes.csv.gz``: every row's per-image outcomes (row, seed, fold, group, hit at 0.5, top-1
  hit, scores, false positives; image paths relative to the image folders), small enough to commit;
  ``--from-outcomes FILE --out DIR`` recomputes the report from it without the models.
"""
import argparse
import os
from typing import Optional, Sequence

from detectron2.data import DatasetCatalog
from detectron2.utils.logger import setup_logger

from ..crossval.driver import (check_folds, crossval_report, fold_run_dirs, parse_rows, parse_specs, pool_groups,
                               read_rows, run_crossval)
from ..crossval.external import evaluate_external, external_section
from ..crossval.report import build_report, markdown, write_all
from ..crossval.runs import CrossValError
from ..data import default_dataset_root, register_datasets_under
from ..evaluation.results_io import read_outcomes, run_seed, write_outcomes
from ..evaluation.run_dir import RunDir
from . import console_command, split_trailing_opts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="prepared dataset name, e.g. busi (datasets <data>_fold<k>_*); required "
                                       "unless --from-outcomes")
    parser.add_argument("--from-outcomes", metavar="FILE",
                        help="train nothing: recompute the report (pooled numbers, pairs, Holm) from an outcomes "
                             "file an earlier run wrote (<out>/<report>_outcomes.csv.gz), e.g. a committed one")
    parser.add_argument("--folds", type=int, default=0, help="K (default: every registered fold of --data)")
    parser.add_argument("--configs", nargs="+", default=[], metavar="[NAME=]CONFIG",
                        help="two or more config files (optionally NAME=path)")
    parser.add_argument("--rows", nargs="+", default=[], metavar="NAME=FOLDER",
                        help="rows made outside this command: FOLDER with {fold} in it, holding "
                             "inference/corloc_per_image.csv of the model tested on that fold")
    parser.add_argument("--external", nargs="+", default=[], metavar="DATASET",
                        help="also test every fold model zero-shot on these registered datasets (another site, "
                             "e.g. breast_test): mean over the fold models and model-by-model paired differences")
    parser.add_argument("--out", required=True, help="output folder (runs and report)")
    parser.add_argument("--strong-percent", type=int, default=None, metavar="P",
                        help="train on the folds' train_strong_P / train_weak_P instead of the P in the configs "
                             "(e.g. 10 for the 10%% boxes rows of configs that name busi_train_strong_20; train_strong_100, the fully "
                             "supervised row, is kept)")
    parser.add_argument("--inner", action="store_true",
                        help="choose settings: train on each fold's inner training part (inner_train_*) and test on "
                             "its inner validation split (inner_val), never on the held-out fold")
    parser.add_argument("--only-folds", type=int, nargs="+", default=None, metavar="K",
                        help="run these folds only (e.g. 0 for a screen on fold 0's inner split)")
    parser.add_argument("--report", default="crossval", metavar="STEM",
                        help="report files <out>/STEM.{md,json,csv,png} (default: %(default)s)")
    parser.add_argument("--dataset-root", default=None,
                        help="folder with the prepared datasets (default: $WSSDL_DATASETS or ./datasets)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at a time, each in its own process with cpu_count / JOBS threads "
                             "(default: %(default)s; 2 on a 2-core machine trains two runs side by side)")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep every run's periodic checkpoints after its training (default: model_final.pth only)")
    parser.add_argument("--num-samples", type=int, default=2000, help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level (default: %(default)s)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    args = split_trailing_opts(parser.parse_args(argv), "configs", "rows", "external")
    if not args.data and not args.from_outcomes:
        parser.error("--data is required (or --from-outcomes FILE to recompute a report)")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if len(args.opts) % 2:
        parser.error(f"overrides must be KEY VALUE pairs, got {args.opts}")
    return args


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    if args.from_outcomes:
        return recompute_report(args)
    for name in ("detectron2", "fvcore", "wssdl_d2"):
        setup_logger(name=name, abbrev_name={"detectron2": "d2", "wssdl_d2": "wssdl"}.get(name))
    register_datasets_under(args.dataset_root or default_dataset_root())
    rows = parse_rows(args.rows)
    specs = parse_specs(args.configs, other_rows=len(rows))
    folds = check_folds(args.data, args.folds)
    if args.only_folds is not None:
        unknown = sorted(set(args.only_folds) - set(folds))
        if unknown:
            raise CrossValError(f"--only-folds {unknown}: {args.data} has folds {folds}")
        folds = sorted(set(args.only_folds))
    unknown = [d for d in args.external if d not in DatasetCatalog.list()]
    if unknown:
        raise CrossValError(f"--external {' '.join(unknown)}: not a registered dataset under the dataset root "
                            "(prepare the site with tools/prepare_busi.py --test-all, docs/SITE_ADAPTATION.md)")
    # before any training: a bad row is reported at once
    pooled_rows = read_rows(rows, args.data, folds, "inner_val" if args.inner else "val")
    result = run_crossval(specs, args.data, folds, args.out, args.opts, strong_percent=args.strong_percent,
                          jobs=args.jobs, dataset_root=args.dataset_root or default_dataset_root(),
                          keep_checkpoints=args.keep_checkpoints, inner=args.inner)
    result["pooled"].update(pooled_rows)
    # images of one lesion (near-duplicate groups of the preparation) are resampled and tested together
    groups = pool_groups(args.data, args.dataset_root)
    report = crossval_report(result, args.num_samples, args.seed, args.level, groups=groups)
    seeds = {spec.name: run_seed(RunDir.of_fold(args.out, spec.name, folds[0]).path) for spec in specs}
    outcomes = write_outcomes(os.path.join(args.out, f"{args.report}_outcomes.csv.gz"), result["pooled"], groups,
                              seeds)
    run_dirs = fold_run_dirs(specs, rows, args.out, folds)
    report["external"] = [external_section(evaluate_external(run_dirs, d), d, args.num_samples, args.seed,
                                           args.level) for d in args.external]
    paths = write_all(report, args.out, args.report)
    print(markdown(report))
    print("written: " + ", ".join(list(paths.values()) + [outcomes]))
    return report


def recompute_report(args: argparse.Namespace) -> dict:
    """``--from-outcomes FILE``: the report of an outcomes file's rows (with its near-duplicate groups), written
    as ``<out>/<report>.{md,json,csv,png}``; nothing is trained or evaluated."""
    pooled, groups = read_outcomes(args.from_outcomes)
    report = build_report(pooled, args.num_samples, args.seed, args.level, groups=groups)
    paths = write_all(report, args.out, args.report)
    print(markdown(report))
    print("written: " + ", ".join(paths.values()))
    return report


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = ()


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)

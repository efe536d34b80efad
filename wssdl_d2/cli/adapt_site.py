"""Adapt a trained model to a new site (hospital, scanner) from the site's diagnosis-only scans.

    python tools/adapt_site.py --from output/busi/strong_only_10/model_final.pth --site /data/our_site \\
        --out output/our_site/adapted
    python tools/adapt_site.py ... --boxes 10                 # also 10 of the site's outlined scans keep boxes
    python tools/adapt_site.py ... --resume                   # continue a stopped run in --out
    python tools/adapt_site.py --from MODEL --site-train breast_fold0_train_weak_n0 --test breast_fold0_val \\
        --out output/breast/adapt_fold0_n0                     # already prepared / registered site datasets
    python tools/adapt_site.py --from MODEL --site-folds breast --boxes 0 10 25 \\
        --out output/breast/adapt_crossval                     # measure it: cross-validation over the site's folds

``--site DIR`` holds the site's scans in BUSI's layout, one folder per diagnosis: ``DIR/{normal,benign,malignant}/
<name>.png``; a ``<name>_mask.png`` outline is needed only for the ``--boxes N`` scans that keep boxes (the first N
of a seeded, per-label order among the outlined ones). They are prepared into ``<dataset root>/<site name>/`` and
registered as ``<site name>_train_weak_n<N>`` (and ``_train_strong_n<N>``). The model's own config (``--config-file``,
default: the config.yaml beside ``--from``) is switched to the joint method and fine-tuned from the model's weights
on the source's boxed datasets (``--source``, default: those of its DATASETS.TRAIN with boxes) plus the site's
images, at a constant ``--lr`` with a static MIL scale ``--alpha`` for ``--max-iter`` iterations (defaults: the
model config's WSSDL.ADAPT; wssdl_d2.engine.site_adaptation). ``--teacher`` adds the label-aware mean teacher on the site's scans (pseudo-boxes
within each scan's diagnosis, from the first iteration; evaluations use the trained model, the student). ``--out``
gets config.yaml, checkpoints and, with ``--test``, the evaluation of the model before (``before/inference``) and
after (``inference``); compare them paired with ``tools/compare.py OUT OUT/before``. Trailing KEY VALUE pairs override the adaptation config.

``--site-folds NAME`` measures the adaptation on a site prepared in folds (``tools/prepare_busi.py --test-all
--folds K --strong-count 0 10 25``; wssdl_d2.crossval.site): for every fold, the model as it is and the model adapted on
the other folds' scans (diagnoses only, plus each ``--boxes`` count of boxed scans) are tested on the fold's scans;
the outcomes are pooled over the folds and compared paired in ``OUT/site_crossval.{md,json,csv,png}``. Stopped runs
continue and finished ones are skipped when the same command is run again; an adaptation's periodic checkpoints are
removed when its training ends (``--keep-checkpoints`` keeps them).

With ``--site-folds``, ``--from`` (and ``--config-file``) may name one model per fold with ``{fold}``: the fold
models of a cross-validation over the source's pool (``tools/crossval.py``), and ``--source-test NAME{fold}`` the
source fold each of them never saw. Every row is then also tested there, pooled over the folds into
``OUT/<report>_source.{md,json,csv,png}``: what adapting to the new site costs at the source, on images neither the
model nor its adaptation saw::

    python tools/adapt_site.py --from 'output/crossval/busi/wssdl_20/fold{fold}/model_final.pth' \
        --site-folds breast --source-test 'busi_fold{fold}_val' --boxes 0 10 25 --out output/breast_adapt/busi_folds
"""
import argparse
import os
import re
from typing import Optional, Sequence

from ..config import load_config
from ..crossval.driver import check_folds, timings
from ..crossval.report import build_report, markdown, write_all
from ..crossval.site import SourceModel, run_site_crossval
from ..data import default_dataset_root, register_prepared_datasets
from ..engine.site_adaptation import adapt, adaptation_config, prepare_site, source_strong_datasets
from . import add_opts, run_main, setup_run, split_trailing_opts


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="weights", required=True, metavar="MODEL", help="the trained model (.pth)")
    parser.add_argument("--config-file", metavar="FILE",
                        help="the config the model was trained with (default: config.yaml beside --from)")
    site = parser.add_mutually_exclusive_group()
    site.add_argument("--site", metavar="DIR", help="the site's scans, {normal,benign,malignant}/ folders")
    site.add_argument("--site-train", nargs="+", metavar="NAME", help="registered site datasets instead of --site")
    site.add_argument("--site-folds", metavar="NAME",
                      help="cross-validate the adaptation over the folds of the prepared site NAME (NAME_fold<k>_*)")
    parser.add_argument("--folds", type=int, default=0, metavar="K",
                        help="with --site-folds: folds 0..K-1 (default: every registered fold)")
    parser.add_argument("--report", default="site_crossval", metavar="STEM",
                        help="with --site-folds: report files OUT/STEM.{md,json,csv,png} (default: %(default)s)")
    parser.add_argument("--site-name", help="dataset name of --site (default: its folder name)")
    parser.add_argument("--boxes", nargs="+", default=["0"], metavar="N",
                        help="outlined site scans that keep their boxes (default 0: diagnoses only); with "
                             "--site-folds one row per count, e.g. 0 10 25")
    parser.add_argument("--source", nargs="+", metavar="NAME",
                        help="the source's boxed datasets (default: those of the model's DATASETS.TRAIN)")
    parser.add_argument("--test", nargs="+", default=[], metavar="NAME",
                        help="the site's boxed test datasets, evaluated before and after (default: none)")
    parser.add_argument("--source-test", metavar="NAME",
                        help="with --site-folds and a --from per fold ({fold}): the source's held-out dataset of "
                             "each fold model, e.g. busi_fold{fold}_val; every row is tested there too")
    parser.add_argument("--out", required=True, metavar="DIR", help="the adaptation's run folder")
    parser.add_argument("--max-iter", type=int, help="fine-tuning iterations (default: the model config's "
                        "WSSDL.ADAPT.MAX_ITER, 300)")
    parser.add_argument("--lr", type=float, help="constant learning rate (default: WSSDL.ADAPT.BASE_LR, 0.002)")
    parser.add_argument("--alpha", type=float, help="static MIL loss scale (default: WSSDL.ADAPT.ALPHA, 0.5)")
    parser.add_argument("--teacher", action="store_true",
                        help="also self-train on the site's scans with the label-aware mean teacher: pseudo-boxes "
                             "within each scan's diagnosis (measured on BrEaST: "
                             "benchmarks/notes/breast_adaptation_old_folds.md)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the choice of --boxes scans")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out (its config.yaml)")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="with --site-folds: keep each adaptation's periodic checkpoints after its training "
                             "(default: model_final.pth only)")
    parser.add_argument("--overwrite", action="store_true",
                        help="re-prepare the site's dataset folder even if it holds another dataset")
    return add_opts(parser)


def _site_name(path):
    return re.sub(r"[^a-z0-9]+", "_", os.path.basename(os.path.normpath(path)).lower()).strip("_") or "site"


def model_config_and_source(args, fold=None):
    """(the model's training config, the source's boxed datasets), for ``fold`` when --from names one model per fold
    (``{fold}``). Raises FileNotFoundError for a missing model or config."""
    weights, config_file = _for_fold(args.weights, fold), _for_fold(args.config_file, fold)
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"{weights}: model file not found")
    config_file = config_file or os.path.join(os.path.dirname(os.path.abspath(weights)), "config.yaml")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"{config_file}: the model's config not found (give --config-file)")
    model_cfg = load_config(config_file)
    return model_cfg, list(args.source or source_strong_datasets(model_cfg.DATASETS.TRAIN))


def _for_fold(pattern, fold):
    """``pattern`` with ``{fold}`` replaced by ``fold`` (None stays None)."""
    return pattern if pattern is None or fold is None else pattern.replace("{fold}", str(fold))


def source_models(args, folds):
    """{fold: SourceModel}: --from for every fold, or the fold's own model and --source-test when it has
    ``{fold}``. Raises ValueError for --source-test without per-fold models."""
    per_fold = "{fold}" in args.weights
    if args.source_test and not (per_fold and "{fold}" in args.source_test):
        raise ValueError(f"--source-test {args.source_test}: give it with one model per fold, both with {{fold}} "
                         "(e.g. --from 'output/crossval/busi/wssdl_20/fold{fold}/model_final.pth' --source-test "
                         "'busi_fold{fold}_val'): a model is tested only on the source fold it never saw")
    if not per_fold:
        model_cfg, source = model_config_and_source(args)
        return {fold: SourceModel(model_cfg, args.weights, source) for fold in folds}
    sources = {}
    for fold in folds:
        model_cfg, source = model_config_and_source(args, fold)
        sources[fold] = SourceModel(model_cfg, _for_fold(args.weights, fold), source, _for_fold(args.source_test, fold))
    return sources


def site_crossval(args):
    """--site-folds: run (or continue) the cross-validation and write its report (and the source's with
    --source-test). Returns the report dict."""
    folds = check_folds(args.site_folds, args.folds, flag="--site-folds")
    sources = source_models(args, folds)
    setup_run(sources[folds[0]].cfg, log_dir=args.out)
    result = run_site_crossval(sources, args.site_folds, args.boxes, args.out, args.max_iter, args.lr, args.alpha,
                               args.opts, keep_checkpoints=args.keep_checkpoints, teacher=args.teacher)
    report = build_report(result["pooled"], timings=timings(result["states"]))
    paths = write_all(report, args.out, args.report)
    print(markdown(report))
    if result["source_pooled"]:
        source_report = build_report(result["source_pooled"])
        paths.update({f"source {k}": v for k, v in
                      write_all(source_report, args.out, f"{args.report}_source").items()})
        print(f"On the source's held-out folds ({args.source_test}):")
        print(markdown(source_report))
    print("wrote", ", ".join(paths.values()))
    return report


def build_config(args):
    """The adaptation's frozen config: ``<out>/config.yaml`` when resuming, else a new one (preparing --site)."""
    saved = os.path.join(args.out, "config.yaml")
    if args.resume and os.path.isfile(saved):
        return load_config(saved, args.opts)
    if args.resume:
        raise FileNotFoundError(f"{saved}: nothing to resume (no adaptation config in --out)")
    if not args.site and not args.site_train:
        raise ValueError("give the site's scans (--site DIR) or its registered datasets (--site-train NAME ...)")
    if "{fold}" in args.weights or args.source_test:
        raise ValueError(f"--from {args.weights}{' --source-test ' + args.source_test if args.source_test else ''}: "
                         "one model per fold ({fold}) and --source-test only with --site-folds")
    if len(args.boxes) != 1:
        raise ValueError(f"--boxes {args.boxes}: one count when adapting (several only with --site-folds)")
    if args.keep_checkpoints:
        raise ValueError("--keep-checkpoints only with --site-folds (a single adaptation keeps its checkpoints)")
    model_cfg, source = model_config_and_source(args)
    if args.site:
        name = args.site_name or _site_name(args.site)
        root = model_cfg.WSSDL.DATASET_ROOT or default_dataset_root()
        weak, strong = prepare_site(args.site, root, name, args.boxes[0], args.seed, args.overwrite)
        site_train = [weak] + ([strong] if strong else [])
    else:
        site_train = list(args.site_train)
    return adaptation_config(model_cfg, os.path.abspath(args.weights), source, site_train, args.out, args.max_iter,
                             args.lr, args.alpha, args.test, args.opts, teacher=args.teacher)


def parse_args(argv=None):
    parser = get_parser()
    args = split_trailing_opts(parser.parse_args(argv), "boxes")  # --boxes 10 KEY VALUE: the pairs are overrides
    try:
        args.boxes = [int(n) for n in args.boxes]
    except ValueError:
        parser.error(f"--boxes takes whole numbers, got {' '.join(args.boxes)}")
    if len(args.opts) % 2:
        parser.error(f"overrides must be KEY VALUE pairs, got {' '.join(args.opts)}")
    return args


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Adapt (or cross-validate the adaptation) on ``argv``; returns 0 and raises the user's mistakes
    (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    register_prepared_datasets()  # the site's prepared datasets (--site-folds, --site-train) under the dataset root
    if args.site_folds:
        site_crossval(args)
        return 0
    cfg = build_config(args)
    setup_run(cfg)
    before = os.path.join(cfg.OUTPUT_DIR, "before")
    if cfg.DATASETS.TEST and not os.path.isfile(os.path.join(before, "inference", "corloc.json")):
        from ..engine.evaluate import evaluate_weights

        evaluate_weights(cfg, cfg.MODEL.WEIGHTS, before)  # the model as it came, on the site's test images
    out = adapt(cfg, resume=args.resume)
    print(f"adapted model: {out['weights']}")
    if cfg.DATASETS.TEST:
        print(f"compare (paired, on {', '.join(cfg.DATASETS.TEST)}): python tools/compare.py {cfg.OUTPUT_DIR} {before}")
    return 0


#: The user's mistakes besides any UserError (a missing model or config, files in the way, a bad value, an
#: unknown dataset).
ERRORS = (FileExistsError, FileNotFoundError, ValueError, KeyError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

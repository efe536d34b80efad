"""Prepare BUSI (original layout) as the project's dataset files.

    python tools/prepare_busi.py --root ../shared/data/BUSI/Dataset_BUSI_with_GT --out datasets/busi \\
        --strong-fraction 0.1 0.2 1.0 --val-fraction 0.2 --seed 0

Reads ``<root>/{benign,malignant,normal}/<name>.png`` with ``<name>_mask*.png`` (one box per mask file),
groups near-duplicates (``--duplicates``: perceptual hash, plus ORB feature matching by default; a group never
straddles splits; groups with conflicting labels are reported and excluded unless --keep-conflicting), splits
groups into train / val (/ test), picks nested strong subsets of train, and writes
``<out>/{train_strong_P,train_weak_P,train_all,val,test}.json`` plus file lists and a report in ``<out>/meta/``.
The images are not copied: the JSON files point at ``--root``.
Registered as ``<basename(out)>_<split>``, e.g. ``busi_train_strong_20``, ``busi_val``.

With ``--folds K`` it also writes K cross-validation folds of every usable image (train + val; test and
conflicting-label groups left out), split by near-duplicate group and stratified by label, with the strong
subsets nested inside each fold's training part: ``<out>/fold<k>/{train_strong_P,train_weak_P,train_all,val}.json``,
registered as ``<basename(out)>_fold<k>_<split>`` (e.g. ``busi_fold3_train_strong_20``); ``<out>/meta/folds.csv``
lists the fold of each image. tools/crossval.py trains and evaluates configs on them:

    python tools/prepare_busi.py --root ../shared/data/BUSI/Dataset_BUSI_with_GT --out datasets/busi \\
        --strong-fraction 0.1 0.2 1.0 --seed 0 --folds 5

An ``--out`` that already holds a preparation is refused unless ``--overwrite`` is given; with it the new files are
written, then the earlier preparation's files that were not written again are removed (only the preparation's own
files: dataset JSONs, ``meta/`` lists and reports; see :mod:`wssdl_d2.data.prepared`); other files are kept.

A new site (another hospital's scans in BUSI's layout, e.g. BrEaST): ``--test-all`` writes every scan with its boxes
to ``<out>/test.json`` (zero-shot evaluation, ``breast_test``) and no flat train / val split; ``--strong-count N ...``
keeps the boxes of N scans with a lesion in each training part (``train_strong_n<N>`` / ``train_weak_n<N>``,
nested; N = 0: every training scan weak, image labels only), for adaptation by cross-validation over the folds:

    python tools/prepare_busi.py --root ../shared/data/BrEaST/Dataset_BUSI_with_GT --out datasets/breast \\
        --test-all --val-fraction 0 --folds 5 --strong-count 0 10 25 --seed 0
"""
import argparse
import os
from typing import Optional, Sequence

from ..data.near_duplicates import DEFAULT_DUPLICATE_METHOD, DUPLICATE_METHODS
from ..data.prepare import prepare_pool
from ..data.prepared import remove_leftovers, snapshot
from . import check_split_args, run_main


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Prepare on ``argv``; returns 0 and raises the user's mistakes (:data:`ERRORS`, any UserError)
    before writing anything."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.environ.get("BUSI_ROOT"), help="Dataset_BUSI_with_GT folder (default: $BUSI_ROOT)")
    parser.add_argument("--out", default="datasets/busi", help="output folder (default: %(default)s)")
    parser.add_argument("--strong-fraction", type=float, nargs="+", default=None,
                        help="fractions of train images with boxes; nested for one seed (default: 0.1 0.2 1.0, "
                             "none when --strong-count is given)")
    parser.add_argument("--strong-count", type=int, nargs="+", default=[], metavar="N",
                        help="also write subsets where N train images with boxes keep them (nested; 0: all weak)")
    parser.add_argument("--test-all", action="store_true",
                        help="every image (with boxes) goes to test.json and no train / val split is written: a "
                             "new site's evaluation set (needs --val-fraction 0); --folds are drawn from the same "
                             "images")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="fraction of near-duplicate groups")
    parser.add_argument("--test-fraction", type=float, default=0.0, help="fraction of near-duplicate groups")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-hash-distance", type=int, default=6,
                        help="perceptual-hash Hamming distance (of 64 bits) up to which images are near-duplicates")
    parser.add_argument("--same-lesion", metavar="CSV",
                        help="pairs confirmed by eye as the same lesion (file_a, file_b, same_lesion 0/1; names "
                             "relative to --root) join one group whatever the detector says, e.g. "
                             "benchmarks/near_duplicates/labelled_pairs.csv for BUSI")
    parser.add_argument("--duplicates", choices=DUPLICATE_METHODS, default=DEFAULT_DUPLICATE_METHOD,
                        help="how near-duplicates are found: phash (perceptual hash only) or phash+orb (also crops, "
                             "shifts, rescales and adjacent frames by ORB feature matching; default: %(default)s)")
    parser.add_argument("--keep-conflicting", action="store_true",
                        help="keep near-duplicate groups whose images carry different labels")
    parser.add_argument("--folds", type=int, default=0, metavar="K",
                        help="also write K >= 2 cross-validation folds into <out>/fold<k>/ (default: none)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier preparation in --out (its own files only; stale fold folders of "
                             "an earlier preparation with more folds are removed)")
    args = parser.parse_args(argv)
    if not args.root:
        parser.error("--root (or $BUSI_ROOT) is required")
    check_split_args(parser, args)
    if args.strong_fraction is None:
        args.strong_fraction = [] if args.strong_count else [0.1, 0.2, 1.0]
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise NotADirectoryError(f"--out {args.out} is a file, not a folder")
    earlier = snapshot(args.out)
    if earlier and not args.overwrite:
        raise FileExistsError(f"--out {args.out} already holds a preparation ({len(earlier)} file(s), e.g. "
                 f"{sorted(earlier)[0]}): pass --overwrite to replace it, or choose another --out")
    prepare_pool(args.root, args.out, args.strong_fraction, args.val_fraction, args.test_fraction, args.seed,
                 args.max_hash_distance, args.keep_conflicting, name=os.path.basename(os.path.normpath(args.out)),
                 folds=args.folds, overwrite=args.overwrite, strong_counts=args.strong_count,
                 test_all=args.test_all, duplicates=args.duplicates, same_lesion=args.same_lesion)
    removed = remove_leftovers(args.out, earlier)
    if removed:
        print(f"removed {len(removed)} file(s) of the earlier preparation that this one did not write again")
    return 0


#: The user's mistakes besides any UserError (an earlier preparation in the way, a bad value).
ERRORS = (FileExistsError, NotADirectoryError, ValueError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

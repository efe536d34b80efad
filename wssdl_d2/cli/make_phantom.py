"""Generate the synthetic phantom dataset in BUSI's layout and prepare its dataset files.

    python tools/make_phantom.py --out datasets/phantom --counts 40 80 80 --size 256 320 --seed 0

writes ``<out>/images/{benign,malignant,normal}/`` (BUSI layout) and, through the same code as
tools/prepare_busi.py, ``<out>/train_strong_<P>.json``, ``train_weak_<P>.json``, ``train_all.json``,
``val.json`` and ``<out>/meta/``. Registered as ``<basename(out)>_<split>``, e.g. ``phantom_val``.
``--folds K`` also writes K cross-validation folds (``<out>/fold<k>/``, registered as
``<basename(out)>_fold<k>_<split>``), as tools/prepare_busi.py does. ``--site b`` renders the images with a
second site's scanner (``wssdl_d2.data.phantom.SITES``: coarser speckle, another depth gain and dynamic range,
fainter masses) for site-adaptation experiments; ``--test-all`` and ``--strong-count`` prepare it as
tools/prepare_busi.py prepares a new site:

    python tools/make_phantom.py --out datasets/phantom_site_b --site b --seed 1 --counts 20 60 60 --size 96 128 \\
        --test-all --val-fraction 0 --folds 3 --strong-count 0 5
"""
import argparse
import os
import shutil
from typing import Optional, Sequence

from ..data.phantom import SITES, write_phantom_dataset
from ..data.prepare import prepare_pool
from ..data.wssdl_json import IMAGE_LABEL_NAMES
from . import check_split_args, run_main


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Write the phantom on ``argv``; returns 0 and raises the user's mistakes (:data:`ERRORS`, any
    UserError)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="datasets/phantom", help="output folder (default: %(default)s)")
    parser.add_argument("--counts", type=int, nargs=3, default=[40, 80, 80], metavar=("NORMAL", "BENIGN", "MALIGNANT"))
    parser.add_argument("--size", type=int, nargs=2, default=[256, 320], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strong-fraction", type=float, nargs="+", default=[0.2])
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--test-fraction", type=float, default=0.0)
    parser.add_argument("--second-lesion-prob", type=float, default=0.1)
    parser.add_argument("--duplicate-fraction", type=float, default=0.05,
                        help="fraction of images that also get a near-duplicate copy, as BUSI has")
    parser.add_argument("--ambiguity", type=float, default=0.0,
                        help="0 = textbook signs; up to 1 = fainter masses whose signs overlap between the classes")
    parser.add_argument("--strong-labels", nargs="+", default=list(IMAGE_LABEL_NAMES), choices=IMAGE_LABEL_NAMES,
                        help="image labels whose strong-fraction images keep their boxes (default: all); e.g. "
                             "normal benign: malignant masses are known only from image labels")
    parser.add_argument("--site", default="a", choices=sorted(SITES),
                        help="the scanner that renders the images (default: %(default)s; b: a second site)")
    parser.add_argument("--strong-count", type=int, nargs="+", default=[], metavar="N",
                        help="also write subsets where N train images with boxes keep them (nested; 0: all weak)")
    parser.add_argument("--test-all", action="store_true",
                        help="every image (with boxes) goes to test.json, no train / val split (needs "
                             "--val-fraction 0); --folds are drawn from the same images")
    parser.add_argument("--folds", type=int, default=0, metavar="K",
                        help="also write K >= 2 cross-validation folds into <out>/fold<k>/ (default: none)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing <out>/images (and fold folders of an earlier preparation with more folds)")
    args = parser.parse_args(argv)
    check_split_args(parser, args)
    images = os.path.join(args.out, "images")
    if os.path.exists(images):
        if not args.overwrite:
            raise FileExistsError(f"{images} already exists; pass --overwrite to replace it")
        shutil.rmtree(images)
    count = write_phantom_dataset(images, args.counts, args.size[0], args.size[1], args.seed,
                                  args.second_lesion_prob, args.duplicate_fraction, ambiguity=args.ambiguity,
                                  site=args.site)
    print(f"[phantom] wrote {count} images to {images}")
    prepare_pool(images, args.out, args.strong_fraction, args.val_fraction, args.test_fraction, args.seed,
                 name=os.path.basename(os.path.normpath(args.out)), strong_labels=args.strong_labels,
                 folds=args.folds, overwrite=args.overwrite, strong_counts=args.strong_count, test_all=args.test_all)
    return 0


#: The user's mistakes besides any UserError (an existing phantom in the way, a bad value).
ERRORS = (FileExistsError, ValueError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

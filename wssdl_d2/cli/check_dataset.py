"""Check datasets and report every problem at once; exit status 1 when there is any.

    python tools/check_dataset.py datasets/busi                      # a prepared dataset: every split
    python tools/check_dataset.py datasets/busi/val.json             # one dataset file
    python tools/check_dataset.py /data/Dataset_BUSI_with_GT         # BUSI's original layout
    python tools/check_dataset.py /data/SNUBH_VOC --json-report problems.json   # the authors' VOC layout

Looks for: malformed files or entries, missing or corrupt images, sizes that disagree with the dataset, masks of
another size (BUSI layout), empty boxes or boxes outside the image, unknown labels or supervision, box classes
that disagree with the image label, duplicate ids or files, images (or near-duplicates, by perceptual hash) with
conflicting labels, and the same or near-duplicate images in train and val / test. Exit status: 0 no problem,
1 problems found, 2 a path is not a dataset.
"""
import argparse
import os
import sys
from typing import Optional, Sequence

from ..data.dataset_check import PROBLEM_KINDS, check_dataset
from ..data.errors import DatasetError
from ..utils.atomic import atomic_write_json


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="dataset files or folders (prepared, VOC or BUSI layout)")
    parser.add_argument("--max-hash-distance", type=int, default=6,
                        help="perceptual-hash Hamming distance (of 64 bits) up to which images are near-duplicates "
                             "(default: %(default)s, as tools/prepare_busi.py)")
    parser.add_argument("--no-near-duplicates", action="store_true",
                        help="skip the near-duplicate search (identical files are still compared)")
    parser.add_argument("--json-report", metavar="FILE", help="also write every problem to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _relative(path, root):
    folder = root if os.path.isdir(root) else os.path.dirname(root)
    rel = os.path.relpath(path, folder) if os.path.isabs(path) == os.path.isabs(folder) else path
    return path if rel.startswith("..") else rel


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status: 0 every dataset is
    sound, 1 a problem was found, 2 a path could not be checked (its ``error: ...`` line printed, the other
    paths still checked)."""
    args = get_parser().parse_args(argv)
    reports, status = [], 0
    for path in args.paths:
        try:
            report = check_dataset(path, None if args.no_near_duplicates else args.max_hash_distance,
                                   progress=not args.quiet)
        except DatasetError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 2
            continue
        reports.append(report)
        print(report.summary())
        for kind in PROBLEM_KINDS:
            problems = [p for p in report.problems if p.kind == kind]
            if problems:
                print(f"  {kind} ({len(problems)}):")
            for p in problems:
                split = f"[{p.split}] " if p.split else ""
                related = f" [{', '.join(_relative(r, path) for r in p.related)}]" if p.related else ""
                print(f"    {split}{_relative(p.path, path)}: {p.message}{related}")
        if not report.ok:
            status = max(status, 1)
    if args.json_report:
        atomic_write_json(args.json_report, [r.to_dict() for r in reports], indent=1)
    return status

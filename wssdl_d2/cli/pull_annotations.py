"""Read the experts' Label Studio annotations back as strong images of a new prepared split.

    LABEL_STUDIO_API_KEY=... python tools/pull_annotations.py --label-studio http://localhost:8080 \\
        --project "BUSI round 1" --strong datasets/busi/train_strong_10.json --weak datasets/busi/train_weak_10.json
    python tools/pull_annotations.py ... --tag round1 --config-file configs/BUSI/wssdl.yaml

The project's tasks (pushed by tools/suggest_annotations.py --label-studio) are matched to the images of --weak
by their path. The latest submitted annotation of a task becomes a strong image (its rectangles as boxes,
``source: "label_studio"``); the new split is written beside --strong (or into --out-dir) as
``<strong stem>_<tag>.json`` (the old strong images + the annotated ones) and ``<weak stem>_<tag>.json`` (the
weak images less those), with the pull's report in ``meta/label_studio_<tag>.json``. The tag defaults to the
first free ``ls1``, ``ls2``, ...; existing files are never replaced. Skipped tasks, tasks without a submitted
annotation, "no mass" answers on benign / malignant images and answers that contradict the image label are
printed and the images stay weak. The command to train the next round is printed last.
"""
import argparse
import os
from typing import Optional, Sequence

from ..active.label_studio import (connect, free_tag, pull_annotations, split_paths,
                                   write_pulled_split)
from ..data.wssdl_json import load_wssdl_json
from . import run_main

REPORTED = (("skipped", "skipped"), ("incomplete", "not annotated yet"), ("no_mass", "no mass"),
            ("conflicts", "left weak"), ("already_strong", "already strong"), ("unknown", "not in --weak"))


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label-studio", required=True, metavar="URL", help="the Label Studio server "
                                                                              "(API key in $LABEL_STUDIO_API_KEY)")
    parser.add_argument("--project", required=True, help="Label Studio project title")
    parser.add_argument("--strong", required=True, metavar="JSON", help="the strong dataset file of the pushed split")
    parser.add_argument("--weak", required=True, metavar="JSON", help="the weak dataset file the images came from")
    parser.add_argument("--tag", help="suffix of the new files (default: the first free ls<k>)")
    parser.add_argument("--out-dir", help="folder of the new files (default: the folder of --strong)")
    parser.add_argument("--config-file", default="CONFIG.yaml", help="config named in the printed next command")
    return parser


def _dataset_name(path):
    """The name register_datasets_under gives a file <root>/<name>/<split>.json."""
    return f"{os.path.basename(os.path.dirname(os.path.abspath(path)))}_{os.path.splitext(os.path.basename(path))[0]}"


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Pull on ``argv``; returns 0 and raises the user's mistakes (:data:`ERRORS`, any UserError)
    before writing anything."""
    args = get_parser().parse_args(argv)
    client = connect(args.label_studio)
    strong, weak = load_wssdl_json(args.strong), load_wssdl_json(args.weak)
    tag = args.tag or free_tag(args.strong, args.weak, args.out_dir)
    paths = split_paths(args.strong, args.weak, tag, args.out_dir)
    report = pull_annotations(client, args.project, weak, strong)
    for key, words in REPORTED:
        for task, name, why in getattr(report, key):
            print(f"  {words:<17} task {task:<5} {name}: {why}")
    if not report.strong:
        print(f"project {args.project!r}: no newly annotated image; nothing written")
        return 0
    write_pulled_split(report, strong, weak, paths)
    boxes = sum(len(r["annotations"]) for r in report.strong)
    print(f"project {args.project!r}: {len(report.strong)} image(s) annotated ({boxes} boxes) moved from weak to "
          f"strong; " + ", ".join(f"{len(getattr(report, k))} {w}" for k, w in REPORTED))
    print("written: " + ", ".join(paths.values()))
    train = f"('{_dataset_name(paths['strong'])}','{_dataset_name(paths['weak'])}')"
    print("next round (the new files register under these names when they lie in $WSSDL_DATASETS/<name>/):")
    print(f"  python tools/train_net.py --config-file {args.config_file} DATASETS.TRAIN \"{train}\" "
          f"MODEL.WEIGHTS <this round's model_final.pth> OUTPUT_DIR <next round's folder>")
    return 0


#: The user's mistakes besides any UserError (files in the way, a missing file, a bad value).
ERRORS = (FileExistsError, FileNotFoundError, ValueError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

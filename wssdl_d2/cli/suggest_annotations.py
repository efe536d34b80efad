"""Rank weakly labelled images by how much an expert's box would help; CSV + contact sheet for annotators.

    python tools/suggest_annotations.py --config-file configs/BUSI/wssdl.yaml --dataset busi_train_weak_10 \\
        --output output/busi/suggest MODEL.WEIGHTS output/busi/wssdl_10/model_final.pth
    python tools/suggest_annotations.py ... --acquisition moi_entropy --top 36
    python tools/suggest_annotations.py --dataset busi_train_weak_10 --output suggest/   # the shipped model

Acquisition (``--acquisition``, see wssdl_d2/active/scoring.py): ``combined`` (default: the mean of the three
below), ``moi_uncertainty`` (1 - probability of the image's class at the mass of interest), ``moi_entropy``
(entropy of the MoI's class distribution), ``label_disagreement`` (detections vs the image label), ``random``.
Only benign / malignant images are ranked (a normal image has no box). Writes ``suggestions.csv`` (every image,
rank 1 = annotate first; ``pseudo_candidate`` marks the confident images that self-training would pseudo-label
under WSSDL.SELFTRAIN.*) and ``contact_sheet.png`` (the top ``--top``: MoI yellow, top detection green / red).

Label Studio (``pip install -e .[label-studio]``; the API key in $LABEL_STUDIO_API_KEY, see docs/LABEL_STUDIO.md):

    LABEL_STUDIO_API_KEY=... python tools/suggest_annotations.py ... --label-studio http://localhost:8080 \
        --project "BUSI round 1"

also uploads the top ``--push-top`` (default ``--top``) images as tasks of that project (created if absent) with
the model's boxes as pre-annotations and the acquisition score as the prediction score; images already in the
project are not pushed again. The server and the key are checked before anything is computed or written.
"""
import os
from typing import Optional, Sequence

from detectron2.data import DatasetCatalog

from ..active.label_studio import connect, push_suggestions
from ..active.scoring import ACQUISITIONS
from ..active.suggest import suggest_with_analyses, write_suggestions
from ..inference import WSSDLPredictor
from . import add_opts, run_main, setup_run, split_trailing_opts, tool_model, tool_parser


def get_parser():
    parser = tool_parser(__doc__, config_required=False)
    parser.add_argument("--dataset", nargs="+", help="registered datasets to rank (their weak images; default: "
                                                     "the weak images of DATASETS.TRAIN)")
    parser.add_argument("--output", required=True, help="folder for suggestions.csv and contact_sheet.png")
    parser.add_argument("--acquisition", default="combined", choices=ACQUISITIONS)
    parser.add_argument("--top", type=int, default=24, help="images on the contact sheet (default 24)")
    parser.add_argument("--columns", type=int, default=6, help="contact sheet columns (default 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --acquisition random")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--label-studio", metavar="URL", help="also push the top images to this Label Studio server "
                                                              "(API key in $LABEL_STUDIO_API_KEY)")
    parser.add_argument("--project", help="Label Studio project title (created if absent; needs --label-studio)")
    parser.add_argument("--push-top", type=int, help="images pushed to Label Studio (default --top)")
    return add_opts(parser)


def model_name(weights: str) -> str:
    """How the pushed predictions name their model: a local checkpoint's absolute path, a zoo / URL path as is."""
    return weights if "://" in weights else (os.path.abspath(weights) if weights else "")


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Rank (and push) on ``argv``; returns 0 and raises the user's mistakes (:data:`ERRORS`, any
    UserError) before writing anything."""
    args = split_trailing_opts(get_parser().parse_args(argv), "dataset")
    if bool(args.label_studio) != bool(args.project):
        raise ValueError("--label-studio URL and --project NAME go together")
    client = connect(args.label_studio) if args.label_studio else None  # before anything is written
    cfg, _ = tool_model(args.config_file, args.opts, register=True)
    setup_run(cfg, log_dir=args.output)
    names = args.dataset or list(cfg.DATASETS.TRAIN)
    records = [d for name in names for d in DatasetCatalog.get(name) if d.get("supervision") == "weak"]
    if not records:
        raise ValueError(f"no weak image in {', '.join(names)}")
    rows, analyses = suggest_with_analyses(WSSDLPredictor(cfg), records, args.acquisition, args.seed)
    if not rows:
        raise ValueError(f"no benign / malignant weak image in {', '.join(names)} to annotate")
    paths = write_suggestions(args.output, rows, args.top, args.columns, args.overwrite)
    pushed = None
    if client is not None:
        pushed = push_suggestions(client, args.project, rows, analyses, args.push_top or args.top,
                                  model=model_name(cfg.MODEL.WEIGHTS))
    candidates = sum(r["pseudo_candidate"] for r in rows)
    print(f"{len(rows)} images ranked by {args.acquisition}; {candidates} are pseudo-label candidates")
    for row in rows[: min(10, len(rows))]:
        print(f"  #{row['rank']:<3} {row['score']:.3f}  {row['file_name']}")
    print("written: " + ", ".join(paths))
    if pushed is not None:
        print(f"Label Studio project {args.project!r} (id {pushed['project_id']}"
              f"{', created' if pushed['project_created'] else ''}): {len(pushed['created'])} task(s) created, "
              f"{len(pushed['existing'])} already there; annotate at {pushed['url']}")
    return 0


#: The user's mistakes besides any UserError (files in the way, a missing file, an unknown dataset).
ERRORS = (FileExistsError, FileNotFoundError, ValueError, KeyError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

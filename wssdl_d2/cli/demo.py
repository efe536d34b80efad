"""Run a trained model on images: drawings plus one JSON / CSV with the detections and the image diagnosis.

    python tools/demo.py --input scans/ more/*.dcm one.png --output demo_out     # the model shipped with wssdl_d2
    python tools/demo.py --config-file configs/BUSI/wssdl.yaml --input scans/ --output demo_out \\
        MODEL.WEIGHTS output/busi/wssdl/model_final.pth [--calibration calibration.json] \\
        [--site-threshold site_threshold.json]

Without --config-file the shipped default model (BUSI_BrEaST/fully_supervised.yaml, MODEL_ZOO.md) runs, with its calibration. Each image
gets one diagnosis, printed with its basis and threshold: with a calibration, malignant when the calibrated
probability of malignancy (P(malignant | image), fitted on cross-validated predictions) is >= 0.5, otherwise benign
when a detection scores >= WSSDL.EVAL.SCORE_THRESH and normal when none does; without one, the class of the top
detection scoring >= WSSDL.EVAL.SCORE_THRESH (normal when none does). predictions.json / .csv also keep the
uncalibrated malignancy score (the top malignant detection's score). Library warnings are not shown (run
``python -W default tools/demo.py ...`` to see them).

Inputs: files, folders (searched recursively) and glob patterns of PNG / JPEG / TIFF / BMP and DICOM images
(multi-frame DICOM: ``--frame``, default 0 = the first frame). Writes ``<output>/<name>.png`` per image
(boxes with class and score >= ``--confidence-threshold``, the diagnosis in the corner), ``predictions.json``
and ``predictions.csv``. Files that cannot be read are listed in the JSON's ``errors`` and make the exit
status 1; the other images are still processed. ``--output`` must be a folder where no drawing or result file
would replace an input file (not the scans' own folder): otherwise the demo stops before reading any image
(exit status 2). Images larger than 2048 pixels a side are drawn downscaled.
"""
import logging
import sys
import warnings
from typing import Optional, Sequence

from detectron2.utils.logger import setup_logger

from . import add_opts, run_main, split_trailing_opts, tool_model, tool_parser

from ..evaluation.site_threshold import load_site_threshold
from ..inference import WSSDLPredictor, predict_files
from ..inference.run import check_output_dir
from ..inference.inputs import expand_inputs


def quiet_library_warnings() -> None:
    """Users see the demo's messages, not Detectron2's / torch's warnings (meshgrid, fx, ...), unless Python's
    ``-W`` option asks for them."""
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
        logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)  # a torch deprecation notice, via logging


def diagnosis_line(record, threshold):
    """The per-image line: the one diagnosis with its basis and threshold, and the detections drawn."""
    return (f"{record['file']}: {record['diagnosis']} ({record['diagnosis_basis']}); "
            f"{len(record['detections'])} detection(s) drawn (score >= {threshold})")


def get_parser():
    parser = tool_parser(__doc__, config_required=False)
    parser.add_argument("--input", nargs="+", required=True, help="image files, folders or glob patterns")
    parser.add_argument("--output", help="folder for the drawings and predictions.json / .csv "
                                         "(default: print the diagnoses only)")
    parser.add_argument("--confidence-threshold", type=float, default=None,
                        help="draw and list detections with score >= this (default WSSDL.EVAL.SCORE_THRESH)")
    parser.add_argument("--frame", type=int, default=0,
                        help="frame of multi-frame DICOM / page of multi-page TIFF files (negative: from the end)")
    parser.add_argument("--no-visualization", action="store_true", help="write the JSON / CSV only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no per-image lines")
    parser.add_argument("--calibration", help="calibration.json of the model's malignancy score (tools/calibrate.py; "
                                              "default: the shipped model's)")
    parser.add_argument("--site-threshold", metavar="FILE",
                        help="site_threshold.json of the scans' site (tools/site_threshold.py): its fitted threshold "
                             "replaces WSSDL.EVAL.SCORE_THRESH (--confidence-threshold still wins)")
    return add_opts(parser)  # e.g. MODEL.WEIGHTS model_final.pth


def detection_threshold(args, cfg) -> float:
    """The score a detection needs to be drawn and listed: ``--confidence-threshold``, else the site threshold of
    ``--site-threshold`` (:func:`~wssdl_d2.evaluation.site_threshold.load_site_threshold`), else the config's
    WSSDL.EVAL.SCORE_THRESH."""
    if args.confidence_threshold is not None:
        return args.confidence_threshold
    if args.site_threshold:
        return load_site_threshold(args.site_threshold)
    return cfg.WSSDL.EVAL.SCORE_THRESH


def run(argv: Optional[Sequence[str]] = None) -> int:
    """The demo on ``argv``; returns the exit status (1 when an image could not be read) and raises the
    user's mistakes (:data:`ERRORS`, any UserError) before reading any image."""
    args = split_trailing_opts(get_parser().parse_args(argv), "input")
    quiet_library_warnings()
    setup_logger(name="wssdl_d2")
    # no dataset needed: images come from --input
    cfg, calibration = tool_model(args.config_file, args.opts, args.calibration)
    threshold = detection_threshold(args, cfg)
    files = expand_inputs(args.input)
    check_output_dir(args.output, files, not args.no_visualization)
    predictor = WSSDLPredictor(cfg, calibration)
    summary = predict_files(predictor, files, args.output, threshold=threshold, frame=args.frame,
                            visualize=not args.no_visualization, progress=not args.quiet)
    if not args.quiet:
        for record in summary["images"]:
            print(diagnosis_line(record, threshold))
    print(f"{len(summary['images'])} image(s) in {summary['seconds']:.2f} s "
          f"({summary['images_per_second']:.2f} images/s; model {summary['model_seconds']:.2f} s)"
          + (f"; results in {args.output}" if args.output else ""))
    for error in summary["errors"]:
        print(f"error: {error['file']}: {error['error']}", file=sys.stderr)
    return 1 if summary["errors"] else 0


#: The user's mistakes besides any UserError (a shipped model missing, an unreadable config, ...).
ERRORS = (FileNotFoundError, ValueError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

#!/usr/bin/env python
"""Run a trained model on images: drawings plus one JSON / CSV with the detections and the image diagnosis.

    python tools/demo.py --config-file configs/BUSI/wssdl.yaml --input scans/ more/*.dcm one.png \\
        --output demo_out MODEL.WEIGHTS output/busi/wssdl/model_final.pth

Inputs: files, folders (searched recursively) and glob patterns of PNG / JPEG / TIFF / BMP and DICOM images
(multi-frame DICOM: ``--frame``, default 0 = the first frame). Writes ``<output>/<name>.png`` per image
(boxes with class and score >= ``--confidence-threshold``, the diagnosis in the corner), ``predictions.json``
and ``predictions.csv``. Files that cannot be read are listed in the JSON's ``errors`` and make the exit
status 1; the other images are still processed.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import wssdl_d2  # noqa: E402  (registers the project's components; first, to quiet Detectron2's import warnings)
from detectron2.config import get_cfg  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from wssdl_d2.inference import WSSDLPredictor, predict_files  # noqa: E402
from wssdl_d2.inference.inputs import expand_inputs  # noqa: E402


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--config-file", required=True, metavar="FILE", help="the model's config file")
    parser.add_argument("--input", nargs="+", required=True, help="image files, folders or glob patterns")
    parser.add_argument("--output", help="folder for the drawings and predictions.json / .csv "
                                         "(default: print the diagnoses only)")
    parser.add_argument("--confidence-threshold", type=float, default=None,
                        help="draw and list detections with score >= this (default WSSDL.EVAL.SCORE_THRESH)")
    parser.add_argument("--frame", type=int, default=0,
                        help="frame of multi-frame DICOM / page of multi-page TIFF files (negative: from the end)")
    parser.add_argument("--no-visualization", action="store_true", help="write the JSON / CSV only")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no per-image lines")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                        help="config overrides as KEY VALUE pairs, e.g. MODEL.WEIGHTS model_final.pth")
    return parser


def split_trailing_opts(args, cfg):
    """``--input a b MODEL.WEIGHTS w``: argparse gives the KEY VALUE pairs to --input; move everything from
    the first config key on to ``args.opts``."""
    for k, item in enumerate(args.input):
        node = cfg
        for part in item.split("."):
            node = node.get(part) if isinstance(node, dict) and part.isupper() else None
        if node is not None and k > 0:
            args.opts = args.input[k:] + list(args.opts)
            args.input = args.input[:k]
            break
    return args


def setup_cfg(args):
    cfg = get_cfg()
    wssdl_d2.add_wssdl_config(cfg)
    split_trailing_opts(args, cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    wssdl_d2.config.resolve_device(cfg)
    cfg.freeze()
    return cfg


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logger(name="wssdl_d2")
    cfg = setup_cfg(args)
    threshold = cfg.WSSDL.EVAL.SCORE_THRESH if args.confidence_threshold is None else args.confidence_threshold
    try:
        files = expand_inputs(args.input)
        predictor = WSSDLPredictor(cfg)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = predict_files(predictor, files, args.output, threshold=threshold, frame=args.frame,
                            visualize=not args.no_visualization, progress=not args.quiet)
    if not args.quiet:
        for record in summary["images"]:
            print(f"{record['file']}: {record['diagnosis']} ({record['probability']:.2f}), "
                  f"{len(record['detections'])} detection(s) >= {threshold}")
    print(f"{len(summary['images'])} image(s) in {summary['seconds']:.2f} s "
          f"({summary['images_per_second']:.2f} images/s; model {summary['model_seconds']:.2f} s)"
          + (f"; results in {args.output}" if args.output else ""))
    for error in summary["errors"]:
        print(f"error: {error['file']}: {error['error']}", file=sys.stderr)
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

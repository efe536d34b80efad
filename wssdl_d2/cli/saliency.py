"""Grad-CAM overlay for a detection: where the model looks when it scores the top detection or the MoI.

    python tools/saliency.py --config-file configs/BUSI/wssdl.yaml --input scan.png --output saliency/ \\
        MODEL.WEIGHTS output/busi/wssdl/model_final.pth
    python tools/saliency.py ... --target moi --label malignant --feature res4
    python tools/saliency.py --input scan.png --output saliency/        # the model shipped with wssdl_d2

Writes ``<output>/<name>_gradcam.png`` per input image: the image with the Grad-CAM heatmap (JET colours) of the
explained box's class logit and that box. ``--target top`` (default) explains the most confident detection;
``moi`` the mass of interest the MIL rule would pick for ``--label``. ``--feature``: the backbone feature map
(default: the deepest bottom-up feature, e.g. res5). Trailing KEY VALUE pairs override the config.
"""
import os
import sys
from typing import Optional, Sequence


from ..active.contact_sheet import write_png
from ..data.errors import DatasetError
from ..data.image_io import load_image
from ..inference import WSSDLPredictor
from ..inference.saliency import TARGETS, overlay, saliency
from . import add_opts, run_main, split_trailing_opts, tool_model, tool_parser

LABELS = {"benign": 1, "malignant": 2}


def get_parser():
    parser = tool_parser(__doc__, config_required=False)
    parser.add_argument("--input", nargs="+", required=True, help="image files")
    parser.add_argument("--output", required=True, help="folder for the overlays")
    parser.add_argument("--target", default="top", choices=TARGETS)
    parser.add_argument("--label", choices=sorted(LABELS), help="the image label (needed by --target moi)")
    parser.add_argument("--feature", help="backbone feature map (default: the deepest bottom-up one)")
    parser.add_argument("--alpha", type=float, default=0.45, help="heatmap opacity (default 0.45)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing overlays")
    return add_opts(parser)


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Grad-CAM overlays on ``argv``; returns the exit status (1 when an image failed) and raises the
    user's mistakes (:data:`ERRORS`, any UserError) before the first image."""
    args = split_trailing_opts(get_parser().parse_args(argv), "input")
    cfg, _ = tool_model(args.config_file, args.opts, register=True)
    predictor = WSSDLPredictor(cfg)
    failures = 0
    for path in args.input:
        out = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + "_gradcam.png")
        try:
            if os.path.exists(out) and not args.overwrite:
                raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
            image = load_image(path, "BGR").pixels
            result = saliency(predictor, image, args.target, LABELS.get(args.label), args.feature)
            write_png(out, overlay(image, result, args.alpha))
        except (DatasetError, FileExistsError, ValueError) as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            failures += 1
            continue
        print(f"{path}: {('benign', 'malignant')[result.det_class]} {result.score:.3f} box "
              f"{[round(float(v), 1) for v in result.box]} -> {out}")
        if not result.heatmap.any():
            print(f"  note: the Grad-CAM map is zero everywhere (no feature of {result.feature} raises this "
                  "logit); try another --feature", file=sys.stderr)
    return 1 if failures else 0


#: The user's mistakes besides any UserError (a missing model or config, a bad config value).
ERRORS = (FileNotFoundError, ValueError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

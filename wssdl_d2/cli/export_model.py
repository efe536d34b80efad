"""Export a trained model for deployment as TorchScript (traced), and check it against the Python model.

    python tools/export_model.py --config-file configs/BUSI/wssdl.yaml --sample-image scan.png \\
        --output exported/busi_wssdl.ts MODEL.WEIGHTS output/busi/wssdl/model_final.pth

Writes ``<output>.ts`` (load with ``torch.jit.load``; or ``wssdl_d2.inference.export.TorchScriptPredictor``,
which also resizes the input and maps the boxes back) and ``<output>.json`` (input / output contract,
preprocessing, thresholds). The sample image (any format tools/demo.py reads; DICOM included) is traced through
and compared with the Python model; extra ``--check-images`` are compared too. Exit status 1 when the exported
model's boxes differ by more than ``--tolerance`` pixels.

Tracing is used because it works with this torch (whose torch.jit is deprecated but functional), while
torch.export (and the ONNX exporter built on it) stops at data-dependent control flow in Detectron2's RPN.
"""
import os
import sys
from typing import Optional, Sequence

from detectron2.utils.logger import setup_logger

from ..config import merge_config
from ..data.image_io import read_image
from ..inference import WSSDLPredictor
from ..inference.export import TorchScriptPredictor, export_torchscript
from . import add_opts, run_main, tool_parser


def get_parser():
    parser = tool_parser(__doc__)
    parser.add_argument("--sample-image", required=True, help="an image to trace with (a real scan is best)")
    parser.add_argument("--output", required=True, help="the .ts file to write (its .json is written beside)")
    parser.add_argument("--check-images", nargs="*", default=[], help="more images to compare on")
    parser.add_argument("--tolerance", type=float, default=0.01, help="largest box difference in pixels")
    return add_opts(parser)


def compare(python_predictor, exported_predictor, image):
    """Largest box and score differences (and whether the detection counts and classes agree)."""
    a, b = python_predictor(image), exported_predictor(image)
    if len(a.scores) != len(b.scores) or (a.classes != b.classes).any():
        return float("inf"), float("inf")
    if not len(a.scores):
        return 0.0, 0.0
    return float(abs(a.boxes - b.boxes).max()), float(abs(a.scores - b.scores).max())


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Export and check on ``argv``; returns the exit status (1 when the exported model differs) and raises
    the user's mistakes (:data:`ERRORS`, any UserError) before exporting."""
    args = get_parser().parse_args(argv)
    setup_logger(name="wssdl_d2")
    output = args.output if args.output.endswith(".ts") else args.output + ".ts"
    # the traced file runs on the device it was traced on; CPU is the portable one
    cfg = merge_config(args.config_file, args.opts, device="cpu")
    cfg.freeze()
    python_predictor = WSSDLPredictor(cfg)
    images = {path: read_image(path) for path in [args.sample_image] + list(args.check_images)}
    meta = export_torchscript(cfg, images[args.sample_image], output)
    exported = TorchScriptPredictor(output)
    worst = 0.0
    for path, image in images.items():
        box_diff, score_diff = compare(python_predictor, exported, image)
        worst = max(worst, box_diff)
        print(f"{path}: max box difference {box_diff:.3g} px, max score difference {score_diff:.3g}")
    print(f"exported {output} ({meta['exporter']}; {os.path.getsize(output) / 1e6:.1f} MB)")
    if worst > args.tolerance:
        print(f"error: exported model differs from the Python model by {worst:.3g} px", file=sys.stderr)
        return 1
    return 0


#: The user's mistakes besides any UserError (a missing file, a bad config value, ...).
ERRORS = (FileNotFoundError, ValueError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

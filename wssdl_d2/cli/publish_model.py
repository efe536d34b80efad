"""Publish a trained checkpoint to the wssdl_d2 model zoo.

    python tools/publish_model.py output/busi/wssdl/model_final.pth --config configs/BUSI/wssdl.yaml \\
        --metrics output/busi/wssdl/inference/corloc.json --out-dir published/ --base-url https://HOST/wssdl_d2 [--opts KEY VALUE ...]

writes published/BUSI/wssdl/model_final_<sha8>.pth (weights only: no optimizer state, nothing that runs code
when loaded), the config's entry in the checkpoint index (default: the packaged wssdl_d2/model_zoo/checkpoints.json)
and its row in MODEL_ZOO.md. Upload --out-dir to --base-url; users then load it with
``wssdl_d2.model_zoo.get("BUSI/wssdl.yaml", trained=True)`` or ``MODEL.WEIGHTS wssdl_d2://BUSI/wssdl.yaml``.

Shipping a model inside the package (used offline, and by the tools when given no config):

    python tools/publish_model.py output/busi_ship/wssdl/model_final.pth --config configs/BUSI/wssdl.yaml --ship \
        --calibration output/calibration/wssdl_20/calibration.json --check-dataset busi_pool_train_all

writes wssdl_d2/model_zoo/trained/BUSI/wssdl/{model_<sha8>.safetensors,config.yaml,calibration.json} (weights
float16 unless --fp32) and the index entry with their sha256 and the storage check: the model run with float32
and with the stored weights on --check-images / the --check-dataset images (CorLoc both ways on its boxed ones).
"""
import argparse
import json
import os
from typing import Optional, Sequence

from ..inference.inputs import expand_inputs
from ..model_zoo.index import PACKAGED_INDEX
from ..release.publish import publish_checkpoint
from ..release.ship import ship_checkpoint
from . import console_command

#: The repository root when the package runs from a source checkout (MODEL_ZOO.md lies there).
SOURCE_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="the run's checkpoint (e.g. OUTPUT_DIR/model_final.pth)")
    parser.add_argument("--config", required=True, help="the zoo config it was trained with (configs/...yaml)")
    parser.add_argument("--metrics", help="corloc.json of its evaluation (or the folder holding it); needed "
                                          "unless --ship")
    parser.add_argument("--out-dir", default="published", help="where the weights file is written")
    parser.add_argument("--base-url", default=None, help="URL of --out-dir once uploaded (default: file://)")
    parser.add_argument("--index", default=PACKAGED_INDEX, help="checkpoint index JSON to update")
    parser.add_argument("--model-zoo-md", default=os.path.join(SOURCE_CHECKOUT, "MODEL_ZOO.md"),
                        help="MODEL_ZOO.md to update ('' to skip)")
    parser.add_argument("--trained-on", default=None, help="training data (default: the config's DATASETS.TRAIN)")
    parser.add_argument("--command", default=None, help="the training command (default: train_net.py + config)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="also read a .pkl checkpoint (runs code from it: only for files you trust)")
    ship = parser.add_argument_group("shipping in the package (--ship)")
    ship.add_argument("--ship", action="store_true", help="ship the model in the package (safetensors) instead of "
                                                          "publishing a .pth to download")
    ship.add_argument("--fp32", action="store_true", help="store float32 weights (default: float16)")
    ship.add_argument("--calibration", help="calibration.json of tools/calibrate.py to ship with the model")
    ship.add_argument("--check-images", nargs="*", default=[], help="images (files, folders, globs) for the check "
                                                                    "of float32 vs stored detections")
    ship.add_argument("--check-dataset", help="a registered dataset whose images are checked too (CorLoc both ways)")
    ship.add_argument("--max-check-images", type=int, default=0, help="at most this many --check-dataset images "
                                                                      "(0: all)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE ... config overrides the run used on top of --config (last argument)")
    return parser.parse_args(argv)


def run(argv: Optional[Sequence[str]] = None) -> dict:
    """The command on ``argv`` (default: ``sys.argv[1:]``); returns its result and raises the user's
    mistakes (:data:`ERRORS`, any UserError)."""
    args = parse_args(argv)
    if args.ship:
        if args.check_dataset:
            from ..data import default_dataset_root, register_datasets_under

            register_datasets_under(default_dataset_root())
        name, entry = ship_checkpoint(
            args.checkpoint, args.config, index_path=args.index, fp16=not args.fp32, calibration=args.calibration,
            check_images=expand_inputs(args.check_images) if args.check_images else [],
            check_dataset=args.check_dataset, max_check_images=args.max_check_images, config_overrides=args.opts,
            trained_on=args.trained_on, command=args.command, metrics=args.metrics, allow_pickle=args.allow_pickle)
        print(json.dumps({name: entry}, indent=2))
        return entry
    if not args.metrics:
        raise ValueError("--metrics is needed to publish a checkpoint (the CorLoc report of its evaluation)")
    name, entry = publish_checkpoint(
        args.checkpoint, args.config, args.metrics, args.out_dir, index_path=args.index, base_url=args.base_url,
        zoo_md=args.model_zoo_md or None, trained_on=args.trained_on, command=args.command,
        config_overrides=args.opts, allow_pickle=args.allow_pickle)
    print(json.dumps({name: entry}, indent=2))
    return entry


#: The user's mistakes besides any UserError: one ``error: ...`` line, exit status 2.
ERRORS = (FileNotFoundError, ValueError)


#: The console command (``[project.scripts]``) and the tools/ shim's entry point.
main = console_command(run, ERRORS)

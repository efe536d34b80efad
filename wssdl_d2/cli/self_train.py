"""Self-training with pseudo boxes (paper Table IV), resumable round by round.

    python tools/self_train.py --config-file configs/BUSI/wssdl.yaml --rounds 1 --fraction 0.5 \\
        --output-dir output/busi/selftrain_50 DATASETS.TRAIN "('busi_train_strong_10','busi_train_weak_10')"
    python tools/self_train.py ... --initial-weights output/busi/wssdl_10/model_final.pth   # skip training round 0
    python tools/self_train.py ... --resume          # continue a run that stopped (same settings)
    python tools/self_train.py ... --selection adaptive WSSDL.SELFTRAIN.ADAPTIVE.THRESH 0.9

Round 0 is the initial model (trained on DATASETS.TRAIN, or --initial-weights). Each round then runs the last
model on the weak images, keeps those whose most confident detection has the class of the image label, moves
the top --fraction of them (ranked by that detection's score, over both classes, or within each class with
--selection fraction_per_class; or, with --selection adaptive, those above their class's adaptive bar) into
the strong set with that detection as a pseudo box, and retrains (--init initial: from MODEL.WEIGHTS; previous:
fine-tune the last model) for --round-iters iterations. Everything goes to
OUTPUT_DIR/round_<k>/ (config.yaml, checkpoints, datasets/ with provenance, inference/corloc.json); compare
rounds with tools/compare.py OUTPUT_DIR/round_1 OUTPUT_DIR/round_0. Trailing KEY VALUE pairs override the
config (WSSDL.SELFTRAIN.* included).
"""
import os
from typing import Optional, Sequence

from tabulate import tabulate

from ..pseudo.selection import SELECTIONS
from ..selftrain import self_train
from . import add_opts, load_config, run_main, setup_run, tool_parser


def get_parser():
    parser = tool_parser(__doc__, "config of the initial model")
    parser.add_argument("--rounds", type=int, help="self-training rounds after round 0 (WSSDL.SELFTRAIN.ROUNDS)")
    parser.add_argument("--fraction", type=float, help="top fraction of the class-consistent weak images "
                                                       "(WSSDL.SELFTRAIN.FRACTION, e.g. 0.5 or 0.75)")
    parser.add_argument("--selection", choices=SELECTIONS, help="WSSDL.SELFTRAIN.SELECTION")
    parser.add_argument("--init", choices=("initial", "previous"), help="retrain from MODEL.WEIGHTS or fine-tune "
                                                                        "the previous round (WSSDL.SELFTRAIN.INIT)")
    parser.add_argument("--round-iters", type=int, help="iterations of rounds >= 1 (WSSDL.SELFTRAIN.MAX_ITER)")
    parser.add_argument("--initial-weights", metavar="PTH", help="a trained initial model: round 0 only evaluates it")
    parser.add_argument("--output-dir", help="run folder (default OUTPUT_DIR of the config)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the output folder")
    parser.add_argument("--overwrite", action="store_true", help="start again over an earlier run's folder")
    return add_opts(parser)


def _overrides(args):
    flags = {"ROUNDS": args.rounds, "FRACTION": args.fraction, "SELECTION": args.selection, "INIT": args.init,
             "MAX_ITER": args.round_iters}
    return [item for key, value in flags.items() if value is not None
            for item in (f"WSSDL.SELFTRAIN.{key}", str(value))]


def summary_table(steps):
    rows = []
    for k in sorted(steps):
        step = steps[k]
        sel, corloc = step.get("selection") or {}, step.get("corloc") or {}
        ci = (f"{corloc['CorLoc']:.1f} [{corloc['CorLoc_lo']:.1f}, {corloc['CorLoc_hi']:.1f}]"
              if corloc.get("CorLoc") is not None else "-")
        rows.append([k, sel.get("strong", "-"), sel.get("pseudo", "-"), sel.get("weak", "-"), ci,
                     step.get("status", "-"), step.get("weights", "")])
    return tabulate(rows, headers=["round", "strong", "pseudo", "weak", "CorLoc % [95% CI]", "status", "weights"],
                    tablefmt="pipe")


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Self-training on ``argv``; returns 0 and raises the user's mistakes (:data:`ERRORS`, any
    UserError)."""
    args = get_parser().parse_args(argv)
    cfg = load_config(args.config_file, args.opts, _overrides(args), args.output_dir)
    setup_run(cfg)
    steps = self_train(cfg, initial_weights=args.initial_weights, resume=args.resume, overwrite=args.overwrite)
    print(summary_table(steps))
    last = max(steps)
    if last > 0:
        print(f"compare: python tools/compare.py {os.path.join(cfg.OUTPUT_DIR, f'round_{last}')} "
              f"{os.path.join(cfg.OUTPUT_DIR, 'round_0')}")
    return 0


#: The user's mistakes besides any UserError (a missing file, a bad value, an unknown dataset).
ERRORS = (FileNotFoundError, ValueError, KeyError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

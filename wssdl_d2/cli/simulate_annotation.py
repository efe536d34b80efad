"""Simulated annotator: CorLoc against the number of boxes, active vs random choice of the images to box.

    python tools/simulate_annotation.py --config-file configs/BUSI/wssdl.yaml --truth busi_train_all \\
        --initial-weights output/busi/wssdl_10/model_final.pth --steps 4 --per-step 20 --step-iters 200 \\
        --output-dir output/busi/annotation_sim DATASETS.TRAIN "('busi_train_strong_10','busi_train_weak_10')"
    python tools/simulate_annotation.py ... --resume          # continue after a stop (same settings)

Each step, each strategy queries --per-step benign / malignant weak images (active: highest --acquisition score
under its current model; random: seeded draw), the true boxes of those images are taken from --truth, the
strategy's model is fine-tuned --step-iters iterations (at the LR and alpha where the config's schedule ends;
WSSDL.FINETUNE_SCHEDULE restart runs the whole schedule again) and evaluated on DATASETS.TEST. Without
--initial-weights the initial model is first trained from the config. Writes annotation_curve.csv and
annotation_curve.png (CorLoc with CI bands vs boxes in the strong set) into the output folder. Trailing
KEY VALUE pairs override the config.
"""
import os
from typing import Optional, Sequence

from tabulate import tabulate

from ..active.scoring import ACQUISITIONS
from ..active.simulate import STRATEGIES, AnnotationSimulation
from . import add_opts, load_config, run_main, setup_run, split_trailing_opts, tool_parser


def get_parser():
    parser = tool_parser(__doc__)
    parser.add_argument("--truth", required=True, help="registered dataset with every true box (e.g. busi_train_all)")
    parser.add_argument("--steps", type=int, default=3, help="annotation steps (default 3)")
    parser.add_argument("--per-step", type=int, default=10, help="images queried per step (default 10)")
    parser.add_argument("--step-iters", type=int, default=100, help="fine-tuning iterations per step (default 100)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), help=f"among {STRATEGIES} (default both)")
    parser.add_argument("--acquisition", default="combined", choices=[a for a in ACQUISITIONS if a != "random"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy")
    parser.add_argument("--initial-weights", metavar="PTH", help="a trained initial model (else one is trained)")
    parser.add_argument("--output-dir", help="run folder (default OUTPUT_DIR of the config)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    return add_opts(parser)


def run(argv: Optional[Sequence[str]] = None) -> int:
    """The simulation on ``argv``; returns 0 and raises the user's mistakes (:data:`ERRORS`, any
    UserError)."""
    args = split_trailing_opts(get_parser().parse_args(argv), "strategies")
    cfg = load_config(args.config_file, args.opts, output_dir=args.output_dir)
    setup_run(cfg)
    sim = AnnotationSimulation(cfg, args.truth, args.steps, args.per_step, args.step_iters, args.strategies,
                               args.acquisition, args.seed, args.initial_weights, args.resume, args.overwrite)
    rows = sim.run()
    table = [[r["strategy"], r["step"], r["queried_images"], r["n_boxes"],
              f"{r['corloc']:.1f} [{r['corloc_lo']:.1f}, {r['corloc_hi']:.1f}]"] for r in rows]
    print(tabulate(table, headers=["strategy", "step", "queried images", "boxes", "CorLoc % [95% CI]"], tablefmt="pipe"))
    print("written: " + ", ".join(os.path.join(cfg.OUTPUT_DIR, f) for f in ("annotation_curve.csv",
                                                                            "annotation_curve.png")))
    return 0


#: The user's mistakes besides any UserError (a missing file, a bad value, an unknown dataset).
ERRORS = (FileNotFoundError, ValueError, KeyError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``); returns the exit status. A user's mistake
    ends the process with one ``error: ...`` line and exit status 2 (:func:`~wssdl_d2.cli.run_main`)."""
    return run_main(run, argv, errors=ERRORS)

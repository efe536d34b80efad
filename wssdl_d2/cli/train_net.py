"""Train or evaluate a wssdl_d2 model, in Detectron2's style.

    python tools/train_net.py --config-file configs/Phantom/strong_only.yaml
    python tools/train_net.py --config-file configs/Phantom/strong_only.yaml --eval-only MODEL.WEIGHTS output/.../model_final.pth
    python tools/train_net.py --config-file CFG --resume            # continue from OUTPUT_DIR/last_checkpoint
    python tools/train_net.py --config-file CFG --eval-only --resume OUTPUT_DIR RUN   # evaluate RUN's last checkpoint
    python tools/train_net.py --config-file CFG --num-gpus 4        # one process per GPU (or CPU processes: gloo)
    python tools/train_net.py --config-file CFG --num-machines 2 --machine-rank 0 --dist-url tcp://HOST:PORT

--eval-only needs trained weights (MODEL.WEIGHTS, or --resume for OUTPUT_DIR's last checkpoint) and refuses to
write over OUTPUT_DIR/inference when it holds the results of another model (give the evaluation its own
OUTPUT_DIR). A bad config (bad YAML, a Python tag, an unknown key, a value out of range), training data the checks
refuse, or a checkpoint that cannot be read or saved ends with one ``error:`` message and exit status 2.
"""

import argparse
import os
from typing import Any, Optional, Sequence

from detectron2.config import CfgNode
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..config import load_config
from ..engine import WSSDLTrainer
from ..engine.evaluate import (EvalOnlyError, check_results_owner, eval_only_weights,
                               record_evaluated_weights)
from ..engine.reference import build_trainer
from ..model_zoo import load_model_weights
from ..model_zoo.safe_load import evaluates_teacher
from . import run_main


def setup(args: argparse.Namespace) -> CfgNode:
    """The config (file + command line, datasets registered), Detectron2's logging / output folder setup. With
    --eval-only: the weights are checked first (:func:`eval_only_weights`, :func:`check_results_owner`), and a run's
    ``OUTPUT_DIR/config.yaml`` is kept (the evaluation's config and log go to ``OUTPUT_DIR/inference``)."""
    cfg = load_config(args.config_file, args.opts)
    setup_cfg = cfg
    if args.eval_only:
        check_results_owner(cfg, eval_only_weights(cfg, args.resume))
        if os.path.isfile(os.path.join(cfg.OUTPUT_DIR, "config.yaml")):
            setup_cfg = cfg.clone()
            setup_cfg.defrost()
            setup_cfg.OUTPUT_DIR = os.path.join(cfg.OUTPUT_DIR, "inference")
    default_setup(setup_cfg, args)
    setup_logger(setup_cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="wssdl_d2", abbrev_name="wssdl")
    return cfg


def train_or_evaluate(args: argparse.Namespace) -> Any:
    """One process's work (what ``launch`` runs on every rank): train, or with --eval-only evaluate, the
    config of ``args``. Returns the evaluation results (or the trainer's)."""
    cfg = setup(args)
    if args.eval_only:
        weights = eval_only_weights(cfg, args.resume)
        model = WSSDLTrainer.build_model(cfg)
        # every parameter from the checkpoint: never evaluate (and write the results of) a random model
        load_model_weights(model, cfg.MODEL.WEIGHTS, allow_pickle=cfg.WSSDL.ALLOW_PICKLE_WEIGHTS,
                           save_dir=cfg.OUTPUT_DIR, resume=args.resume, teacher=evaluates_teacher(cfg),
                           require_complete=True)
        results = WSSDLTrainer.test(cfg, model)
        if comm.is_main_process():
            record_evaluated_weights(cfg, weights)
        verify_results(cfg, results)
        return results
    trainer = build_trainer(cfg)  # WSSDLTrainer, or Detectron2's DefaultTrainer with WSSDL.TRAINER detectron2
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console command on ``argv`` (default: ``sys.argv[1:]``; Detectron2's command line: --num-gpus,
    --resume, --eval-only, ...): :func:`train_or_evaluate` under Detectron2's ``launch`` (one process per GPU).
    A refused checkpoint or a diverged run ends the process with one ``error: ...`` line and exit status 2
    (:func:`~wssdl_d2.cli.run_main`). Returns 0."""
    args = default_argument_parser().parse_args(argv)
    print("Command Line Args:", args)
    run_main(launch, train_or_evaluate, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url, (args,),
             errors=(FileNotFoundError, EvalOnlyError))
    return 0

#!/usr/bin/env python
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

from wssdl_d2.config import load_config  # first: importing wssdl_d2 quiets Detectron2's import warnings
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import os

from wssdl_d2.engine import WSSDLTrainer
from wssdl_d2.engine.evaluate import (EvalOnlyError, check_results_owner, eval_only_weights,
                                      record_evaluated_weights)
from wssdl_d2.engine.reference import build_trainer
from wssdl_d2.model_zoo import load_model_weights
from wssdl_d2.model_zoo.safe_load import evaluates_teacher
from wssdl_d2.cli import run_main


def setup(args):
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


def main(args):
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


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    # launch(main, num_gpus, num_machines, machine_rank, dist_url, args); run_main prints a refused checkpoint or
    # a diverged run as one error line
    run_main(launch, main, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url, (args,),
             errors=(FileNotFoundError, EvalOnlyError))

#!/usr/bin/env python
"""Train or evaluate a wssdl_d2 model, in Detectron2's style.

    python tools/train_net.py --config-file configs/Phantom/strong_only.yaml
    python tools/train_net.py --config-file configs/Phantom/strong_only.yaml --eval-only MODEL.WEIGHTS output/.../model_final.pth
    python tools/train_net.py --config-file CFG --resume            # continue from OUTPUT_DIR/last_checkpoint
    python tools/train_net.py --config-file CFG --num-gpus 4        # one process per GPU (or CPU processes: gloo)
    python tools/train_net.py --config-file CFG --num-machines 2 --machine-rank 0 --dist-url tcp://HOST:PORT
"""

from wssdl_d2.config import load_config  # first: importing wssdl_d2 quiets Detectron2's import warnings
from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from wssdl_d2.engine import WSSDLTrainer
from wssdl_d2.model_zoo import load_model_weights
from wssdl_d2.model_zoo.safe_load import evaluates_teacher
from wssdl_d2.utils.cli import run_main


def setup(args):
    """The config (file + command line, datasets registered), Detectron2's logging / output folder setup."""
    cfg = load_config(args.config_file, args.opts)
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="wssdl_d2", abbrev_name="wssdl")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = WSSDLTrainer.build_model(cfg)
        load_model_weights(model, cfg.MODEL.WEIGHTS, allow_pickle=cfg.WSSDL.ALLOW_PICKLE_WEIGHTS,
                           save_dir=cfg.OUTPUT_DIR, resume=args.resume, teacher=evaluates_teacher(cfg))
        results = WSSDLTrainer.test(cfg, model)
        verify_results(cfg, results)
        return results
    trainer = WSSDLTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    # launch(main, num_gpus, num_machines, machine_rank, dist_url, args); run_main prints a refused checkpoint or
    # a diverged run as one error line
    run_main(launch, main, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url, (args,),
             errors=(FileNotFoundError,))

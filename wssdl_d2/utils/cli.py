"""What the self-training / active-annotation / saliency tools share: the config from a file plus trailing
``KEY VALUE`` overrides (Detectron2's ``opts``), logging into the output folder, and dataset registration."""
import argparse
import os
import re
import sys

from detectron2.config import get_cfg
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger


def tool_parser(doc, config_help="the model's config file"):
    """An ArgumentParser for a tool whose module docstring is ``doc``: description = its first paragraph, the
    whole docstring as epilog, and ``--config-file``. Finish with :func:`add_opts` after the tool's own flags."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], epilog=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE", help=config_help)
    return parser


def add_opts(parser):
    """The trailing ``KEY VALUE`` config overrides (Detectron2's ``opts``). Returns ``parser``."""
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser


_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def split_trailing_opts(args, *names):
    """``--input a.png MODEL.WEIGHTS w.pth``: argparse hands the trailing KEY VALUE pairs to the last
    many-valued flag. Move everything from the first config key (``SOME.KEY``) in the flags ``names`` to
    ``args.opts``. Returns ``args``."""
    for name in names:
        values = getattr(args, name, None) or []
        for k, item in enumerate(values):
            if k > 0 and _CONFIG_KEY.match(str(item)):
                args.opts = list(values[k:]) + list(args.opts)
                setattr(args, name, values[:k])
                break
    return args


def load_config(config_file, opts=(), overrides=(), output_dir=None):
    """A frozen wssdl_d2 config: ``config_file``, then ``opts`` (command line), then ``overrides`` (KEY VALUE
    pairs the tool's own flags set), ``OUTPUT_DIR`` = ``output_dir`` when given; CUDA falls back to the CPU.
    Registers the prepared datasets under ``WSSDL.DATASET_ROOT`` (or $WSSDL_DATASETS / ./datasets)."""
    from .. import config as wssdl_config
    from ..data import default_dataset_root, register_datasets_under

    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"--config-file {config_file}: file not found")
    cfg = get_cfg()
    wssdl_config.add_wssdl_config(cfg)
    cfg.merge_from_file(config_file)
    for pairs in (list(opts), list(overrides)):
        try:
            cfg.merge_from_list(pairs)
        except (AssertionError, KeyError, ValueError, TypeError) as err:  # yacs reports bad keys by assertion
            raise ValueError(f"config override {' '.join(map(str, pairs))}: {err}") from None
    if output_dir:
        cfg.OUTPUT_DIR = output_dir
    wssdl_config.resolve_device(cfg)
    cfg.freeze()
    register_datasets_under(cfg.WSSDL.DATASET_ROOT or default_dataset_root())
    return cfg


def setup_run(cfg, log_dir=None):
    """Detectron2's and wssdl_d2's loggers (console + ``<log_dir or OUTPUT_DIR>/log.txt``) and the seed."""
    folder = log_dir or cfg.OUTPUT_DIR
    os.makedirs(folder, exist_ok=True)
    setup_logger(folder, name="detectron2", abbrev_name="d2")
    setup_logger(folder, name="fvcore")
    setup_logger(folder, name="wssdl_d2", abbrev_name="wssdl")
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)


def run_main(main, *args):
    """``main(*args)``, for a tool's ``if __name__ == "__main__"``: a refused checkpoint or a diverged training run
    ends the process with one ``error: ...`` line (exit status 2) instead of a traceback. Returns main's value."""
    from ..engine.divergence import TrainingDivergedError
    from ..model_zoo.safe_load import UnsafeCheckpointError

    try:
        return main(*args)
    except (UnsafeCheckpointError, TrainingDivergedError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)

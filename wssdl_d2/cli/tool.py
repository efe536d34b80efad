"""What the tools share: the config from a file plus trailing ``KEY VALUE`` overrides (Detectron2's ``opts``),
logging into the output folder, and one ``error: ...`` line instead of a traceback for a user's mistake (any
:class:`~wssdl_d2.errors.UserError`).

The config itself is loaded by :func:`wssdl_d2.config.load_config` (re-exported here)."""
import argparse
import os
import re
import sys
from typing import Any, Callable, Optional, Sequence, Tuple, Type

from detectron2.config import CfgNode
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger

from ..config import load_config  # re-exported: the tools' config entry point
from ..errors import UserError
from .default_model import DEFAULT_MODEL

__all__ = ["load_config", "tool_parser", "add_opts", "split_trailing_opts", "setup_run", "run_main", "console_command", "check_split_args"]


def tool_parser(doc: str, config_help: str = "the model's config file",
                config_required: bool = True) -> argparse.ArgumentParser:
    """An ArgumentParser for a tool whose module docstring is ``doc``: description = its first paragraph, the
    whole docstring as epilog, and ``--config-file`` (optional with ``config_required=False``: the tool then runs
    the shipped model, :func:`.default_model.tool_model`). Finish with :func:`add_opts` after the
    tool's own flags."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], epilog=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if not config_required:
        config_help += " (default: the model shipped with wssdl_d2, " + DEFAULT_MODEL + ", with its weights)"
    parser.add_argument("--config-file", required=config_required, metavar="FILE", help=config_help)
    return parser


def add_opts(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The trailing ``KEY VALUE`` config overrides (Detectron2's ``opts``). Returns ``parser``."""
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides: KEY VALUE ...")
    return parser


_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def split_trailing_opts(args: argparse.Namespace, *names: str) -> argparse.Namespace:
    """``--input a.png MODEL.WEIGHTS w.pth``: argparse hands the trailing KEY VALUE pairs to the last
    many-valued flag. Move everything from the first config key (``SOME.KEY``, not the first value) in the
    flags ``names`` to the front of ``args.opts`` (created when absent). Returns ``args``."""
    args.opts = list(getattr(args, "opts", None) or [])
    for name in names:
        values = getattr(args, name, None) or []
        for k, item in enumerate(values):
            if k > 0 and _CONFIG_KEY.match(str(item)):
                args.opts = list(values[k:]) + args.opts
                setattr(args, name, values[:k])
                break
    return args


def setup_run(cfg: CfgNode, log_dir: Optional[str] = None) -> None:
    """Detectron2's and wssdl_d2's loggers (console + ``<log_dir or OUTPUT_DIR>/log.txt``) and the seed."""
    folder = log_dir or cfg.OUTPUT_DIR
    os.makedirs(folder, exist_ok=True)
    setup_logger(folder, name="detectron2", abbrev_name="d2")
    setup_logger(folder, name="fvcore")
    setup_logger(folder, name="wssdl_d2", abbrev_name="wssdl")
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)


def run_main(main: Callable[..., Any], *args: Any, errors: Tuple[Type[BaseException], ...] = ()) -> Any:
    """``main(*args)``, for a tool's ``if __name__ == "__main__"``: a :class:`~wssdl_d2.errors.UserError` (a
    refused checkpoint, a checkpoint that cannot be read or saved, a bad config file
    (:class:`~wssdl_d2.config_file.ConfigError`: bad YAML, a Python tag, an unknown key, a wrong type, a ``_BASE_``
    loop, a value out of range), training data the checks refuse, a diverged training run, ...) or one of the
    tool's own ``errors`` (a mistake of the user's, whose message names the file / key) ends the process with one
    ``error: ...`` message on stderr (exit status 2) instead of a traceback. Returns main's value."""
    try:
        return main(*args)
    except (UserError, *errors) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def console_command(run: Callable[[Optional[Sequence[str]]], Any],
                    errors: Tuple[Type[BaseException], ...] = ()) -> Callable[[Optional[Sequence[str]]], int]:
    """The ``main(argv=None) -> int`` of a command whose work is ``run(argv)`` (the target of its
    ``[project.scripts]`` entry and of its ``tools/`` shim): :func:`run_main` turns a user's mistake (any UserError
    or one of ``errors``) into one ``error: ...`` line and exit status 2; otherwise it returns 0."""
    def main(argv: Optional[Sequence[str]] = None) -> int:
        run_main(run, argv, errors=errors)
        return 0

    main.__doc__ = (f"The console command of :func:`{run.__module__}.run`: a user's mistake ends the process with "
                    "one ``error: ...`` line and exit status 2. Returns 0.")
    return main


def check_split_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The split and fold flags that the dataset preparations share (``--folds``, ``--strong-count``,
    ``--test-all`` with ``--val-fraction`` / ``--test-fraction``): a bad combination ends with ``parser.error``."""
    if args.folds == 1 or args.folds < 0:
        parser.error(f"--folds must be 0 (none) or >= 2, not {args.folds}")
    if any(n < 0 for n in args.strong_count):
        parser.error(f"--strong-count must be >= 0, not {args.strong_count}")
    if args.test_all and (args.val_fraction or args.test_fraction):
        parser.error("--test-all puts every image in test.json: pass --val-fraction 0 (and no --test-fraction)")

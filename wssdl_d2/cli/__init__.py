"""The commands, on the top floor of the package: one module per command (``wssdl_d2.cli.train_net``,
``.demo``, ...), each with ``main(argv=None) -> int``, installed as console commands (``wssdl-train``,
``wssdl-demo``, ...; pyproject.toml) and run by the shims ``tools/<name>.py``. What they share: the config from a
file plus trailing ``KEY VALUE`` overrides, logging, one ``error: ...`` line and exit status 2 for a user's mistake
(:mod:`.tool`: :func:`run_main`), and the model a command runs with when it is given no config
(:mod:`.default_model`). Importing this package does not import the command modules."""
from .default_model import DEFAULT_MODEL, default_model_config, default_model_note, tool_model
from .tool import (add_opts, check_split_args, console_command, load_config, run_main, setup_run, split_trailing_opts,
                   tool_parser)

__all__ = ["DEFAULT_MODEL", "default_model_config", "default_model_note", "tool_model",
           "load_config", "tool_parser", "add_opts", "split_trailing_opts", "setup_run", "run_main", "console_command",
           "check_split_args"]

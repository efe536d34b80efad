"""What the command-line tools share, on the top floor of the package: the config from a file plus trailing
``KEY VALUE`` overrides, logging, one ``error: ...`` line for a user's mistake (:mod:`.tool`), and the model a
tool runs with when it is given no config (:mod:`.default_model`)."""
from .default_model import DEFAULT_MODEL, default_model_config, default_model_note, tool_model
from .tool import add_opts, load_config, run_main, setup_run, split_trailing_opts, tool_parser

__all__ = ["DEFAULT_MODEL", "default_model_config", "default_model_note", "tool_model",
           "load_config", "tool_parser", "add_opts", "split_trailing_opts", "setup_run", "run_main"]

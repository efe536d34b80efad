"""What the command-line tools share, on the top floor of the package: the model a tool runs with when it is
given no config (:mod:`.default_model`)."""
from .default_model import DEFAULT_MODEL, default_model_config, default_model_note, tool_model

__all__ = ["DEFAULT_MODEL", "default_model_config", "default_model_note", "tool_model"]

"""The one base of every error meant for a user, on the ground floor (it imports nothing of the package).

An error whose message tells a person what is wrong with their input (a config file, a dataset, a checkpoint, a
results folder, ...) and how to mend it subclasses :class:`UserError` beside its usual built-in base, e.g.
``class ConfigError(UserError, ValueError)``: code that catches ``ValueError`` still catches it, and a tool's
entry point (:func:`wssdl_d2.cli.run_main`) catches every such error with this one class, printing one
``error: ...`` line instead of a traceback, without knowing where each is defined.
"""

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake of the user's, or a refusal meant for them; ``str(err)`` says what is wrong (naming the file or
    key) and, where it can, how to mend it."""

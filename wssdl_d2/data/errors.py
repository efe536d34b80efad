"""The one exception type every dataset reader raises: it always names the file and the problem."""
import os


class DatasetError(ValueError):
    """Bad input data. ``str(err)`` reads ``"<path>: <problem>"``."""

    def __init__(self, path, problem):
        self.path = os.fspath(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

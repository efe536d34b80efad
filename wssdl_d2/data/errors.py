"""The one exception type every dataset reader raises, and the structured problem records it carries.

A reader that finds problems raises :class:`DatasetError`: ``str(err)`` names the file and the (first) problem for a
person, ``err.problems`` lists every problem found as :class:`DatasetProblem` records for a program (the dataset
checker, :mod:`.dataset_check`, reports them without parsing the text).
"""
import os
from dataclasses import dataclass
from typing import Iterable, Optional

from ..errors import UserError


@dataclass(frozen=True)
class DatasetProblem:
    """One problem of a dataset: ``path`` the file it is in (dataset file, XML, image or mask), ``message`` what is
    wrong, ``kind`` its class in the dataset checker's terms: ``"format"`` (malformed file or entry), ``"record"``
    (an entry the training checks refuse: unknown supervision / image label, empty box, box outside the image,
    image not found) or ``"duplicate"`` (an image id used twice)."""

    path: str
    message: str
    kind: str = "format"


class DatasetError(UserError, ValueError):
    """Bad input data. ``str(err)`` reads ``"<path>: <problem>"``; ``problems`` lists every
    :class:`DatasetProblem` the reader found (just ``(path, problem)`` when it stopped at the first)."""

    def __init__(self, path, problem: str, problems: Optional[Iterable[DatasetProblem]] = None):
        self.path = os.fspath(path) if path is not None else None
        self.problem = problem
        self.problems = list(problems) if problems is not None else [DatasetProblem(self.path, problem)]
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

"""Post-hoc score rules: a rule fitted on image-level scores and image labels after training, applied to a model's
scores without retraining it. The calibration of the malignancy score (:mod:`.calibration`) and a site's detection
score threshold (:mod:`.site_threshold`) are the two; they share one interface so they are fitted, judged, shipped
and applied the same way:

- ``Rule.fit(scores, labels, **options)``: fit on (N,) scores and (N,) labels;
- ``Rule.cross_fit(scores, labels, folds, **options)``: {fold: the rule fitted on the other folds' images only},
  so each fold is judged by a rule its own labels never reached (:func:`held_out` spreads them over the images);
- ``rule(scores)``: the rule applied to scores (any shape);
- ``rule.save(path)`` / ``Rule.load(path)``: a versioned JSON file (``{"format": Rule.FORMAT, ...}``), read back
  with every field checked (ValueError naming the file otherwise).
"""
import json
import os
from typing import Any, Callable, ClassVar, Dict, Iterable, Mapping, Type, TypeVar

import numpy as np

from ..utils.atomic import atomic_write_json

RuleT = TypeVar("RuleT", bound="ScoreRule")


def refuse_existing(paths: Iterable[str], overwrite: bool) -> None:
    """FileExistsError naming the first of ``paths`` that exists, unless ``overwrite``."""
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists; pass --overwrite to replace it")


def read_versioned_json(path: str, what: str, file_format: int) -> Dict[str, Any]:
    """The JSON object of a ``what`` file (e.g. "calibration") of format ``file_format``. FileNotFoundError or
    ValueError naming the file when it is missing, not JSON, or not of that format."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} file {path}: file not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} file {path}: not readable JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != file_format:
        raise ValueError(f"{what} file {path}: not a wssdl_d2 {what} (format {file_format})")
    return data


def held_out(rules: Mapping[int, Any], folds, value: Callable[[Any, np.ndarray], np.ndarray]) -> np.ndarray:
    """(N,) float64: for each fold k of ``rules`` (:meth:`ScoreRule.cross_fit`), ``value(rules[k], mask of fold
    k's images)`` at fold k's images."""
    folds = np.asarray(folds)
    out = np.empty(len(folds), dtype=np.float64)
    for fold, rule in rules.items():
        held = folds == fold
        out[held] = value(rule, held)
    return out


class ScoreRule:
    """The interface of a post-hoc score rule (see the module docstring). A subclass sets :attr:`WHAT` and
    :attr:`FORMAT` and implements :meth:`fit`, :meth:`__call__`, :meth:`to_json` and :meth:`from_json`."""

    #: What the rule's files are called in messages ("calibration", "site threshold").
    WHAT: ClassVar[str] = "score rule"
    #: The version of the rule's JSON file (``"format"``).
    FORMAT: ClassVar[int] = 1

    @classmethod
    def fit(cls: Type[RuleT], scores, labels, **options: Any) -> RuleT:
        """The rule fitted on scores (N,) and labels (N,)."""
        raise NotImplementedError

    def __call__(self, scores) -> np.ndarray:
        """The rule applied to ``scores`` (any shape)."""
        raise NotImplementedError

    def to_json(self) -> Dict[str, Any]:
        """The rule's fields as they are saved (without ``format``)."""
        raise NotImplementedError

    @classmethod
    def from_json(cls: Type[RuleT], data: Mapping[str, Any], path: str) -> RuleT:
        """The rule of a saved file's content ``data``; ValueError naming ``path`` when a field is not usable."""
        raise NotImplementedError

    @classmethod
    def cross_fit(cls: Type[RuleT], scores, labels, folds, **options: Any) -> Dict[int, RuleT]:
        """{fold: the rule fitted on the images of the other folds} for every fold of ``folds`` (N,); ValueError
        when the lengths differ or there are fewer than two folds."""
        scores, labels, folds = np.asarray(scores), np.asarray(labels), np.asarray(folds)
        if not len(scores) == len(labels) == len(folds):
            raise ValueError(f"scores ({len(scores)}), labels ({len(labels)}) and folds ({len(folds)}) differ in "
                             "length")
        if len(np.unique(folds)) < 2:
            raise ValueError(f"cross-fitting needs images from at least two folds, got folds "
                             f"{np.unique(folds).tolist()}")
        rules = {}
        for fold in np.unique(folds).tolist():
            held = folds == fold
            rules[int(fold)] = cls.fit(scores[~held], labels[~held], **options)  # the held-out fold is not passed
        return rules

    def save(self, path: str, extra: Mapping[str, Any] = (), overwrite: bool = True) -> str:
        """Write the rule (``format``, :meth:`to_json`, then the ``extra`` fields) atomically to ``path``;
        FileExistsError when it exists and not ``overwrite``. Returns ``path``."""
        refuse_existing([path], overwrite)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        atomic_write_json(path, {"format": self.FORMAT, **self.to_json(), **dict(extra)}, indent=1)
        return path

    @classmethod
    def load(cls: Type[RuleT], path: str) -> RuleT:
        """The rule saved in ``path`` (:meth:`save`); FileNotFoundError / ValueError naming the file otherwise."""
        return cls.from_json(read_versioned_json(path, cls.WHAT, cls.FORMAT), path)

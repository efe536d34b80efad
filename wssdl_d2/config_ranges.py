"""The allowed range of every numeric ``WSSDL`` config key, checked when a config is finalised.

A value out of its range (a negative static MIL scale, a probability above 1, a window of 0 images) would train
without an error and give a wrong model; :func:`check_wssdl_ranges` refuses it with the key, its value and the
range. Keys that name a choice (``SCHEDULE``, ``MOI_*``, ``SELECTION``, ...) are checked where they are used.
"""
import math
from typing import Iterable, Optional, Tuple

from .config_file import ConfigError

INF = math.inf

#: key (under WSSDL) -> (low, high, low_open, high_open): the value must lie in that interval.
RANGES = {
    "STRONG_PER_BATCH": (0, INF, False, True),
    "WEAK_PER_BATCH": (0, INF, False, True),
    "MIL.MAX_PROPOSALS": (0, INF, False, True),
    "MIL.ALPHA.VALUE": (0, 1, False, False),
    "MIL.ALPHA.A0": (0, 1, False, False),
    "MIL.ALPHA.R": (0, 1, True, False),
    "MIL.ALPHA.STEP": (0, INF, False, True),
    "AUG.BRIGHTNESS": (0, 1, False, False),
    "AUG.WEAK_ROTATION": (0, 180, False, False),
    "AUG.WEAK_CROP_MARGIN": (0, 0.5, False, True),
    "SOLVER.ADAM_EPS": (0, INF, True, True),
    "EVAL.SCORE_THRESH": (0, 1, False, False),
    "EVAL.IOU_THRESH": (0, 1, False, True),
    "EVAL.BOOTSTRAP_SAMPLES": (0, INF, False, True),
    "EVAL.CI_LEVEL": (0, 1, True, True),
    "SELFTRAIN.ROUNDS": (0, INF, False, True),
    "SELFTRAIN.FRACTION": (0, 1, True, False),
    "SELFTRAIN.ADAPTIVE.THRESH": (0, 1, False, False),
    "SELFTRAIN.ADAPTIVE.MIN_THRESH": (0, 1, False, False),
    "SELFTRAIN.MAX_ITER": (0, INF, False, True),
    "FINETUNE_LR": (0, INF, False, True),
    "ADAPT.MAX_ITER": (1, INF, False, True),
    "ADAPT.BASE_LR": (0, INF, True, True),
    "ADAPT.ALPHA": (0, 1, False, False),
    "TEACHER.BURN_IN": (0, INF, False, True),
    "TEACHER.EMA_DECAY": (0, 1, False, False),
    "TEACHER.SCORE_THRESH": (0, 1, False, False),
    "TEACHER.ADAPTIVE.MIN_THRESH": (0, 1, False, False),
    "TEACHER.ADAPTIVE.WINDOW": (1, INF, False, True),
    "TEACHER.LOSS_WEIGHT": (0, INF, False, True),
    "TEACHER.STRONG_AUG.ROTATION": (0, 180, False, False),
}
#: keys holding a list of numbers, each of which must lie in the range.
LIST_RANGES = {
    "MIL.CLASS_WEIGHTS": (0, INF, False, True),
    "AUG.CONTRAST": (0, INF, True, True),
}
#: keys holding a (low, high) pair: low <= high.
PAIRS = ("AUG.CONTRAST",)


def describe(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """The interval as text: ``[0, 1]``, ``(0, 1]``, ``>= 0``, ``> 0``."""
    if high == INF:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _inside(value: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    if not math.isfinite(value) and not (value == INF and high == INF and not high_open):
        return False
    return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)


def _get(node, key: str):
    for part in key.split("."):
        node = node.get(part) if hasattr(node, "get") else None
        if node is None:
            return None
    return node


def _check(value, key: str, bounds: Tuple[float, float, bool, bool], source: Optional[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _inside(float(value), *bounds):
        raise ConfigError(source, f"WSSDL.{key} = {value!r} is out of range: allowed {describe(*bounds)}")


def check_wssdl_ranges(cfg, source: Optional[str] = None, keys: Optional[Iterable[str]] = None) -> None:
    """Raise :class:`ConfigError` (naming ``source``, the config file, when given) for the first ``WSSDL`` key whose
    value lies outside its range in :data:`RANGES` / :data:`LIST_RANGES` (only ``keys`` when given). Keys the
    config does not have are skipped."""
    wssdl = cfg.get("WSSDL")
    if wssdl is None:
        return
    wanted = set(keys) if keys is not None else None
    for key, bounds in RANGES.items():
        value = _get(wssdl, key)
        if value is not None and (wanted is None or key in wanted):
            _check(value, key, bounds, source)
    for key, bounds in LIST_RANGES.items():
        values = _get(wssdl, key)
        if values is None or (wanted is not None and key not in wanted):
            continue
        for value in values:
            _check(value, key, bounds, source)
        if key in PAIRS and (len(values) != 2 or values[0] > values[1]):
            raise ConfigError(source, f"WSSDL.{key} = {tuple(values)!r} must be a (low, high) pair with low <= high")

"""Self-training with pseudo boxes (paper Table IV): selection rules, round dataset files, the round loop."""
from ..pseudo.selection import (Candidate, adaptive_thresholds, select_adaptive, select_fraction,
                                select_fraction_per_class, select_from_config)
from .loop import self_train

__all__ = ["Candidate", "adaptive_thresholds", "select_adaptive", "select_fraction",
           "select_fraction_per_class", "select_from_config", "self_train"]

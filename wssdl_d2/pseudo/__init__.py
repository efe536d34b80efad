"""Pseudo labels, shared by self-training (:mod:`wssdl_d2.selftrain`), the mean teacher (:mod:`wssdl_d2.teacher`)
and active annotation: which weak images get a pseudo box (the consistency rule, fixed fractions, adaptive
per-class bars; :mod:`.selection`) and the audit of pseudo boxes against true ones (:mod:`.audit`). It imports
neither the engine nor the loops that use it."""
from .selection import (Candidate, adaptive_thresholds, select_adaptive, select_fraction, select_fraction_per_class,
                        select_from_config)

__all__ = ["Candidate", "adaptive_thresholds", "select_adaptive", "select_fraction", "select_fraction_per_class",
           "select_from_config"]

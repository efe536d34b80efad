"""K-fold cross-validation: train configs on every fold, evaluate each on its held-out fold, pool the per-image
outcomes over all folds and compare configs pairwise (bootstrap stratified by fold, McNemar's exact test).

- :mod:`wssdl_d2.evaluation.stratified`: bootstrap index matrices resampled within strata (folds).
- :mod:`wssdl_d2.evaluation.pooled`: pooling per-image outcomes of the folds, pooled / per-fold metrics, paired
  pooled comparisons (statistics only, so the evaluation reports use them too).
- :mod:`.runs`: one (config, fold) run: its config on the fold's datasets, state file, resumable training, evaluation.
- :mod:`.report`: the Markdown table, JSON, CSV and plot (``tools/crossval.py``).
"""
from ..evaluation.pooled import compare_pooled, per_fold_metrics, pool_folds, pooled_metrics
from ..evaluation.stratified import stratified_bootstrap_indices
from .runs import CrossValError, RunSpec, fold_dataset_for, fold_config, run_fold

__all__ = ["CrossValError", "RunSpec", "compare_pooled", "fold_config", "fold_dataset_for", "per_fold_metrics",
           "pool_folds", "pooled_metrics", "run_fold", "stratified_bootstrap_indices"]

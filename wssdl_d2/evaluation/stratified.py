"""Bootstrap resampling within strata: every resample draws, for each stratum (a cross-validation fold), as many
images as the stratum holds, with replacement, from that stratum only. The fold sizes are then fixed in every
resample, as they are in the design (each image is tested once, in its own fold), so the between-fold variation of
the pooled estimate is not counted as noise.
"""
import numpy as np


def stratified_bootstrap_indices(strata, num_samples: int = 2000, seed: int = 0) -> np.ndarray:
    """(num_samples, N) int64 matrix of image indices resampled with replacement within each stratum.

    Args:
        strata: (N,) stratum (fold) of each image; any hashable integer labels.
        num_samples: B resamples.
        seed: reproducible from it.
    Returns:
        (B, N) indices into the N images; the columns of stratum s hold only indices of stratum s, and each row
        holds exactly as many images of each stratum as there are. Plugs into
        :func:`wssdl_d2.evaluation.metrics.estimate` like :func:`~wssdl_d2.evaluation.bootstrap.bootstrap_indices`.
    """
    strata = np.asarray(strata)
    if strata.ndim != 1 or len(strata) < 1 or num_samples < 1:
        raise ValueError(f"stratified bootstrap needs a 1-D array of at least one stratum label and at least one "
                         f"sample, got shape {strata.shape} and {num_samples} samples")
    rng = np.random.default_rng(seed)
    out = np.empty((num_samples, len(strata)), dtype=np.int64)
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        out[:, members] = members[rng.integers(0, len(members), size=(num_samples, len(members)))]
    return out

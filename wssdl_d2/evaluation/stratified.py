"""Bootstrap resampling within strata: every resample draws, for each stratum (a cross-validation fold), as many
images as the stratum holds, with replacement, from that stratum only. The fold sizes are then fixed in every
resample, as they are in the design (each image is tested once, in its own fold), so the between-fold variation of
the pooled estimate is not counted as noise.

Images are not independent when several show the same lesion (near-duplicate groups: crops, adjacent frames).
:func:`cluster_bootstrap_counts` then resamples whole groups within each stratum, so the intervals and p-values
account for the groups (a cluster bootstrap); its (B, N) multiplicity matrix goes to
:func:`wssdl_d2.evaluation.metrics.estimate` as ``counts``.
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


def cluster_bootstrap_counts(strata, clusters, num_samples: int = 2000, seed: int = 0) -> np.ndarray:
    """(num_samples, N) float64 multiplicities of a cluster bootstrap within strata: for each stratum holding G
    clusters, G clusters are drawn with replacement and every image of a drawn cluster counts once per draw.

    Args:
        strata: (N,) stratum (fold) of each image.
        clusters: (N,) cluster (near-duplicate group) of each image; a cluster must lie in one stratum (a group
            split over two folds means the folds leak), else ValueError.
        num_samples: B resamples; seed: reproducible from it.
    Returns:
        (B, N) counts: how often each image is in each resample (rows need not sum to N: clusters differ in size).
        With one image per cluster this is the stratified image bootstrap, as counts.
    """
    strata, clusters = np.asarray(strata), np.asarray(clusters)
    if strata.ndim != 1 or clusters.shape != strata.shape or len(strata) < 1 or num_samples < 1:
        raise ValueError(f"cluster bootstrap needs a stratum and a cluster per image and at least one sample, got "
                         f"shapes {strata.shape} and {clusters.shape} and {num_samples} samples")
    _, cluster_index = np.unique(clusters, return_inverse=True)
    rng = np.random.default_rng(seed)
    counts = np.zeros((num_samples, len(strata)), dtype=np.float64)
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        local = np.unique(cluster_index[members])
        elsewhere = np.isin(cluster_index[strata != stratum], local)
        if elsewhere.any():
            raise ValueError(f"cluster bootstrap: {int(elsewhere.sum())} images share a cluster with images of "
                             f"stratum {stratum} but lie in another stratum; a cluster must stay in one fold")
        draws = rng.integers(0, len(local), size=(num_samples, len(local)))
        times_drawn = np.zeros((num_samples, len(local)))
        np.add.at(times_drawn, (np.arange(num_samples)[:, None], draws), 1.0)
        position = np.searchsorted(local, cluster_index[members])
        counts[:, members] = times_drawn[:, position]
    return counts

"""Senone priors, which hybrid decoding divides the DNN posteriors by.

Two estimates:

* frame counts of the final training alignment: ``<exp>/tree/senone_counts.npy`` holds int64
  ``(num_senones,)`` counts (:func:`load_senone_log_priors`), the same for every model;
* a model's own mean posterior over frames it was not trained on (:func:`mean_posterior_log_priors`),
  as Kaldi's ``nnet-adjust-priors`` / ``nnet3-am-adjust-priors`` do: a model trained on soft targets
  predicts another senone distribution on average than the alignment has, and dividing by its own
  average keeps the likelihoods it hands the search unbiased. Stored as ``.npy`` log-priors
  (:func:`save_log_priors`, read back by :func:`load_log_priors`) for ``asr-kd decode --log-priors``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asr_kd.experiment import COUNTS_FILE
from asr_kd.utils.array_store import ArrayStore
from asr_kd.utils.atomic import write_with
from asr_kd.utils.errors import AsrKdError

#: Mean-posterior priors are floored here (relative to 1) before renormalising: a senone the model
#: never predicts would otherwise get a log-prior of -inf and an infinite likelihood.
PRIOR_FLOOR = 1e-8
#: How far a frame's posteriors may sum from 1 (float16 stores round each of ~1000 terms).
ROW_SUM_TOLERANCE = 0.02


def save_senone_counts(tree_dir: str | os.PathLike, counts: np.ndarray) -> None:
    write_with(Path(tree_dir) / COUNTS_FILE, lambda tmp: np.save(tmp, counts.astype(np.int64)), suffix=".npy")


def load_senone_log_priors(tree_dir: str | os.PathLike) -> np.ndarray:
    """``(num_senones,)`` float64 log of add-one-smoothed relative senone frequencies.

    Read from ``<tree_dir>/senone_counts.npy`` (frame counts of the final training alignment).
    """
    path = Path(tree_dir) / COUNTS_FILE
    if not path.exists():
        raise AsrKdError(f"{path}: senone counts are missing (run `asr-kd tree` or `asr-kd align --import-kaldi`)")
    counts = np.load(path).astype(np.float64)
    if counts.ndim != 1 or len(counts) == 0 or np.any(counts < 0):
        raise AsrKdError(f"{path}: expected a 1-D array of non-negative frame counts, got shape {counts.shape}")
    smoothed = counts + 1.0
    return np.log(smoothed / smoothed.sum())



def mean_posterior_log_priors(
    scores_dir: str | os.PathLike, utt_ids: list[str] | None = None
) -> tuple[np.ndarray, int]:
    """``(num_senones,)`` float64 log of a model's mean posterior over the frames of a log-posterior store.

    Args:
        scores_dir: ``asr-kd posteriors`` output, ``(T, S)`` log-posteriors per utterance.
        utt_ids: default every utterance of the store.

    Returns:
        The log-priors (floored at :data:`PRIOR_FLOOR`, renormalised) and the number of frames averaged.
    """
    store = ArrayStore(scores_dir)
    ids = list(utt_ids) if utt_ids is not None else sorted(store.keys())
    missing = [u for u in ids if u not in store]
    if missing:
        raise AsrKdError(f"{scores_dir}: no scores for {len(missing)} utterance(s) of the list, e.g. {missing[0]}")
    total, frames = None, 0
    for utt_id in ids:
        log_post = store[utt_id].astype(np.float64)
        if log_post.ndim != 2:
            raise AsrKdError(f"{scores_dir}: {utt_id} has shape {log_post.shape}, expected (frames, senones)")
        posteriors = np.exp(log_post)  # the store refuses NaN/Inf itself
        row_sums = posteriors.sum(1)
        if len(row_sums) and np.abs(row_sums - 1).max() > ROW_SUM_TOLERANCE:
            raise AsrKdError(f"{scores_dir}: {utt_id}: exp(scores) of a frame sums to {row_sums.min():.3g}.."
                             f"{row_sums.max():.3g}, not 1: logits or log-likelihoods, not log-posteriors")
        mass = posteriors.sum(0)
        if total is not None and len(mass) != len(total):
            raise AsrKdError(f"{scores_dir}: {utt_id} has {len(mass)} senones, the others {len(total)}")
        total = mass if total is None else total + mass
        frames += len(log_post)
    if not frames:
        raise AsrKdError(f"{scores_dir}: no frames to average")
    priors = np.maximum(total / frames, PRIOR_FLOOR)
    return np.log(priors / priors.sum()), frames


def save_log_priors(path: str | os.PathLike, log_priors: np.ndarray) -> None:
    """Atomically write ``(num_senones,)`` natural-log priors as ``.npy``."""
    write_with(Path(path), lambda tmp: np.save(tmp, np.asarray(log_priors, dtype=np.float64)), suffix=".npy")


def load_log_priors(path: str | os.PathLike) -> np.ndarray:
    """``(num_senones,)`` float64 log-priors from ``.npy``, checked: 1-D, finite. Not renormalised: a
    constant offset adds the same cost to every path of an utterance and changes no decision."""
    path = Path(path)
    try:
        log_priors = np.load(path)
    except (OSError, ValueError) as err:
        raise AsrKdError(f"{path}: not a readable .npy file of log-priors ({err})") from None
    if log_priors.ndim != 1 or len(log_priors) == 0 or not np.issubdtype(log_priors.dtype, np.floating):
        raise AsrKdError(f"{path}: expected a 1-D float array of log-priors, got {log_priors.dtype} {log_priors.shape}")
    if not np.isfinite(log_priors).all():
        raise AsrKdError(f"{path}: log-priors must be finite")
    return log_priors.astype(np.float64)

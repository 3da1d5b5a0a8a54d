"""Senone priors: frame counts of the final training alignment.

``<exp>/tree/senone_counts.npy`` holds int64 ``(num_senones,)`` counts; hybrid decoding divides
DNN posteriors by the priors derived from them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from asr_kd.experiment import COUNTS_FILE
from asr_kd.utils.atomic import write_with
from asr_kd.utils.errors import AsrKdError


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


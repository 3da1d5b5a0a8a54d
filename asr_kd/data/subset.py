"""Deterministic subsets of the training data (the paper's 3% experiment)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asr_kd.data.audio import num_frames
from asr_kd.data.manifest import Utterance
from asr_kd.utils.errors import AsrKdError


@dataclass(frozen=True)
class SubsetSummary:
    """Size of a set of utterances."""

    utterances: int
    hours: float
    frames: int

    def __str__(self) -> str:
        return f"{self.utterances} utterances, {self.hours:.3f} h, {self.frames} frames"


def summarize(utterances: list[Utterance]) -> SubsetSummary:
    """Utterance count, hours and 10 ms frames of ``utterances``."""
    return SubsetSummary(
        utterances=len(utterances),
        hours=sum(u.duration_s for u in utterances) / 3600,
        frames=sum(num_frames(u.num_samples) for u in utterances),
    )


def select_fraction(utterances: list[Utterance], fraction: float, seed: int = 0) -> list[Utterance]:
    """Pick ``ceil(fraction * N)`` utterances uniformly at random, reproducibly.

    The result depends only on the set of utterance ids, ``fraction`` and ``seed`` (not on the
    input order) and is returned sorted by id. Different seeds give different subsets.
    """
    if not 0.0 < fraction <= 1.0:
        raise AsrKdError(f"fraction must be in (0, 1], got {fraction}")
    ordered = sorted(utterances, key=lambda u: u.utt_id)
    count = max(1, math.ceil(fraction * len(ordered)))
    order = np.random.default_rng(seed).permutation(len(ordered))[:count]
    return sorted((ordered[i] for i in order), key=lambda u: u.utt_id)

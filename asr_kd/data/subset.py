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


def fraction_of_ids(ids: list[str], fraction: float, seed: int = 0) -> list[str]:
    """``ceil(fraction * N)`` of ``ids`` chosen uniformly at random with ``seed``, sorted.

    Depends only on the set of ids (not their order), ``fraction`` and ``seed``.
    """
    if not 0.0 < fraction <= 1.0:
        raise AsrKdError(f"fraction must be in (0, 1], got {fraction}")
    ordered = sorted(ids)
    if fraction == 1.0:
        return ordered
    count = max(1, math.ceil(fraction * len(ordered)))
    chosen = np.random.default_rng(seed).permutation(len(ordered))[:count]
    return sorted(ordered[i] for i in chosen)


def select_fraction(utterances: list[Utterance], fraction: float, seed: int = 0) -> list[Utterance]:
    """The utterances of :func:`fraction_of_ids` (the paper's 3% subset), sorted by id."""
    by_id = {u.utt_id: u for u in utterances}
    return [by_id[i] for i in fraction_of_ids(list(by_id), fraction, seed)]

"""Cepstral mean and variance normalisation statistics, per speaker and global."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from asr_kd.utils.atomic import write_with
from asr_kd.utils.errors import AsrKdError

CMVN_MODES = ("speaker", "global", "none")
#: Weight, in frames, of the global statistics that smooth one utterance's own (Kaldi's online
#: CMVN ``--global-frames`` default): a short utterance's variance is not trusted alone.
UTTERANCE_PRIOR_FRAMES = 200.0


@dataclass
class CmvnStats:
    """Accumulated statistics of a set of frames, in float64.

    Attributes:
        count: number of frames.
        sum: ``(D,)`` sum of feature vectors.
        sumsq: ``(D,)`` sum of squared feature vectors.
    """

    count: int
    sum: np.ndarray
    sumsq: np.ndarray

    @classmethod
    def zeros(cls, dim: int) -> CmvnStats:
        return cls(0, np.zeros(dim), np.zeros(dim))

    def add(self, feats: np.ndarray) -> None:
        """Accumulate ``(T, D)`` frames."""
        feats = np.asarray(feats, dtype=np.float64)
        self.count += len(feats)
        self.sum += feats.sum(axis=0)
        self.sumsq += np.square(feats).sum(axis=0)

    def merge(self, other: CmvnStats) -> CmvnStats:
        return CmvnStats(self.count + other.count, self.sum + other.sum, self.sumsq + other.sumsq)

    def scaled_to(self, frames: float) -> CmvnStats:
        """The same mean and variance, weighted as ``frames`` frames (a prior for :meth:`merge`)."""
        if self.count == 0:
            raise AsrKdError("CMVN statistics of zero frames")
        factor = frames / self.count
        return CmvnStats(frames, self.sum * factor, self.sumsq * factor)

    def mean_std(self, floor: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
        """``(D,)`` mean and standard deviation (variance floored)."""
        if self.count == 0:
            raise AsrKdError("CMVN statistics of zero frames")
        mean = self.sum / self.count
        var = np.maximum(self.sumsq / self.count - mean**2, floor)
        return mean, np.sqrt(var)


@dataclass
class Cmvn:
    """Per-speaker statistics plus their global sum; normalises features of one utterance."""

    speakers: dict[str, CmvnStats]

    @cached_property  # summed once: global-mode normalisation of each utterance would re-sum every speaker
    def global_stats(self) -> CmvnStats:
        stats = iter(self.speakers.values())
        total = next(stats)
        for s in stats:
            total = total.merge(s)
        return total

    def normalize(self, feats: np.ndarray, speaker: str | None, mode: str = "speaker") -> np.ndarray:
        """Return ``(T, D)`` float32 ``(feats - mean) / std`` with the statistics of ``mode``.

        ``mode``: ``"speaker"`` (the utterance's speaker; falls back to global for unknown
        speakers), ``"global"`` or ``"none"``.
        """
        if mode == "none":
            return np.asarray(feats, dtype=np.float32)
        if mode not in CMVN_MODES:
            raise AsrKdError(f"unknown CMVN mode {mode!r}; choose from {CMVN_MODES}")
        stats = self.speakers.get(speaker) if mode == "speaker" and speaker is not None else None
        mean, std = (stats or self.global_stats).mean_std()
        return ((np.asarray(feats, dtype=np.float64) - mean) / std).astype(np.float32)

    def save(self, path: str | os.PathLike) -> None:
        names = sorted(self.speakers)
        arrays = {
            "speakers": np.array(names),
            "count": np.array([self.speakers[s].count for s in names], dtype=np.int64),
            "sum": np.stack([self.speakers[s].sum for s in names]),
            "sumsq": np.stack([self.speakers[s].sumsq for s in names]),
        }
        write_with(path, lambda tmp: np.savez(tmp, **arrays), suffix=".npz")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Cmvn:
        path = Path(path)
        if not path.exists():
            raise AsrKdError(f"{path}: CMVN statistics are missing (run `asr-kd features`)")
        with np.load(path) as z:
            return cls({
                str(s): CmvnStats(int(c), su, sq)
                for s, c, su, sq in zip(z["speakers"], z["count"], z["sum"], z["sumsq"])
            })

    @classmethod
    def from_store(cls, store: Mapping[str, np.ndarray], utt2spk: Mapping[str, str]) -> Cmvn:
        """Accumulate per-speaker statistics over every utterance of a feature store."""
        speakers: dict[str, CmvnStats] = {}
        for utt_id in store:
            feats = store[utt_id]
            speakers.setdefault(utt2spk[utt_id], CmvnStats.zeros(feats.shape[1])).add(feats)
        return cls(speakers)


def utterance_cmvn(feats: np.ndarray, prior: CmvnStats, prior_frames: float = UTTERANCE_PRIOR_FRAMES) -> np.ndarray:
    """``(T, D)`` float32 features normalised with their own statistics, smoothed by ``prior``.

    The stand-in for per-speaker CMVN when a model trained with it meets one utterance of an
    unseen speaker: the utterance's mean and variance, plus ``prior`` (e.g. the training data's
    global statistics) weighted as ``prior_frames`` frames. Whole-utterance (offline) statistics,
    like Kaldi's ``apply-cmvn`` with per-utterance stats, not a running window.
    """
    feats = np.asarray(feats, dtype=np.float64)
    stats = CmvnStats.zeros(feats.shape[1])
    stats.add(feats)
    mean, std = stats.merge(prior.scaled_to(prior_frames)).mean_std()
    return ((feats - mean) / std).astype(np.float32)

"""Is one system's WER really lower than another's? Paired bootstrap over utterances.

Bisani & Ney (2004), "Bootstrap estimates for confidence intervals in ASR performance
evaluation" (what Kaldi's ``compute-wer-bootci`` computes): resample the scored utterances with
replacement, recompute both systems' WER on each resample, and read off the distribution of
their difference: its 95% interval and the probability of improvement (the share of resamples
where system B has fewer errors than A). Written here with numpy because the project has no
SciPy and the whole method is a few vectorised lines.

Each side may be several result files (e.g. 3 seeds of a student): its per-utterance errors are
the mean over those files, i.e. the comparison is of the seed-averaged systems; the utterance
sampling is the only noise it measures (not the seed-to-seed spread: report that beside it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_kd.utils.errors import AsrKdError

#: Resamples: the 2.5% / 97.5% quantiles move by < 0.02 WER points between seeds at 10,000.
DEFAULT_SAMPLES = 10_000


@dataclass(frozen=True)
class UtteranceCounts:
    """Per-utterance counts of one system (seed-averaged): ``errors`` and ``ref_words``, ``(U,)``."""

    utt_ids: tuple[str, ...]
    errors: np.ndarray
    ref_words: np.ndarray

    @property
    def wer(self) -> float:
        return float(self.errors.sum() / self.ref_words.sum())


@dataclass(frozen=True)
class BootstrapResult:
    """WERs (fractions) of A and B on the scored utterances, ``delta = B - A`` and its bootstrap."""

    wer_a: float
    wer_b: float
    delta: float
    ci_low: float
    ci_high: float
    prob_b_better: float
    utterances: int
    samples: int


def read_counts(paths: Sequence[str | os.PathLike]) -> UtteranceCounts:
    """Seed-averaged per-utterance errors of ``asr-kd score`` JSON files (``<hyp>.wer.json``).

    Raises:
        AsrKdError: a file that is not a score JSON with per-utterance counts, or files that
            scored different utterances or references.
    """
    if not paths:
        raise AsrKdError("no score files to compare")
    per_file = []
    for path in paths:
        try:
            utterances = json.loads(Path(path).read_text())["utterances"]
            per_file.append({u: (c["substitutions"] + c["deletions"] + c["insertions"], c["ref_words"])
                             for u, c in utterances.items()})
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise AsrKdError(f"{path}: not an `asr-kd score` JSON with per-utterance counts ({err})") from None
    utt_ids = tuple(sorted(per_file[0]))
    for path, counts in zip(paths, per_file):
        if tuple(sorted(counts)) != utt_ids or any(counts[u][1] != per_file[0][u][1] for u in utt_ids):
            raise AsrKdError(f"{path}: scores other utterances or references than {paths[0]}")
    errors = np.mean([[counts[u][0] for u in utt_ids] for counts in per_file], axis=0)
    ref_words = np.array([per_file[0][u][1] for u in utt_ids], dtype=float)
    if ref_words.sum() == 0:
        raise AsrKdError(f"{paths[0]}: scores no reference words: no WER to compare")
    return UtteranceCounts(utt_ids, errors, ref_words)


def paired_bootstrap(a: UtteranceCounts, b: UtteranceCounts, samples: int = DEFAULT_SAMPLES,
                     seed: int = 0) -> BootstrapResult:
    """Bootstrap of ``WER(B) - WER(A)`` over the utterances both scored (same references).

    Raises:
        AsrKdError: the two sides scored other utterances, or ``samples`` < 100.
    """
    if a.utt_ids != b.utt_ids or not np.array_equal(a.ref_words, b.ref_words):
        raise AsrKdError("the two systems were scored on other utterances or references: not comparable")
    if samples < 100:
        raise AsrKdError(f"--samples must be >= 100 for a 95% interval, got {samples}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(a.utt_ids), size=(samples, len(a.utt_ids)))
    words = a.ref_words[picks].sum(axis=1)
    delta = (b.errors[picks].sum(axis=1) - a.errors[picks].sum(axis=1)) / words
    low, high = np.quantile(delta, [0.025, 0.975])
    return BootstrapResult(wer_a=a.wer, wer_b=b.wer, delta=b.wer - a.wer, ci_low=float(low), ci_high=float(high),
                           prob_b_better=float((delta < 0).mean()), utterances=len(a.utt_ids), samples=samples)

"""Kaldi ``score.sh`` style tuning: sweep LM weight, insertion penalty and prior scale on N-best lists.

Every setting of the grid re-ranks the N-best lists (:mod:`asr_kd.decoding.nbest`, no new
search) and is scored with the same WER code as any hypothesis file. The chosen setting comes
from a *tuning* set (utterances with references that are not the reported set, e.g. held-out
training utterances) and is then applied to the reported set; Kaldi's RESULTS files instead
report the best setting on the test set itself, which :data:`BEST_ON_DEV` labels as such.

Ties (the same number of errors) go to the setting that comes first in the grid order
(LM weights, then penalties, then prior scales, each as given), so a choice is reproducible.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from asr_kd.decoding.nbest import DEFAULT_LM_WEIGHTS, DEFAULT_WORD_INS_PENALTIES, NBestLists, ScoringSetting
from asr_kd.scoring.wer import WerSummary, align_words, summarize
from asr_kd.utils.errors import AsrKdError

__all__ = ["DEFAULT_LM_WEIGHTS", "DEFAULT_WORD_INS_PENALTIES", "SweepResult", "check_coverage", "choose",
           "describe", "grid", "sweep"]
TUNED, BEST_ON_DEV, UNTUNED = "tuned on a tuning set", "best on dev (chosen on the reported set)", "untuned"


@dataclass(frozen=True)
class SweepResult:
    """WER of one setting on one set."""

    setting: ScoringSetting
    summary: WerSummary

    @property
    def errors(self) -> int:
        s = self.summary
        return s.substitutions + s.deletions + s.insertions

    def as_dict(self) -> dict:
        return {**self.setting.as_dict(), "wer": self.summary.wer, "errors": self.errors}


def grid(lm_weights: Sequence[float], word_ins_penalties: Sequence[float],
         prior_scales: Sequence[float]) -> list[ScoringSetting]:
    """All combinations, in the tie-breaking order of the module docstring."""
    if not lm_weights or not word_ins_penalties or not prior_scales:
        raise AsrKdError("the scoring grid needs at least one LM weight, penalty and prior scale")
    if any(w <= 0 for w in lm_weights):
        raise AsrKdError(f"LM weights must be positive, got {list(lm_weights)}")
    return [ScoringSetting(w, p, k) for w, p, k in itertools.product(lm_weights, word_ins_penalties, prior_scales)]


def check_coverage(refs: Mapping[str, str], lists: NBestLists, name: str) -> None:
    """An N-best list for an utterance without reference is an error (it would be a scoring mistake)."""
    unknown = [u for u in lists.utterances if u not in refs]
    if unknown:
        raise AsrKdError(f"{name}: {len(unknown)} N-best lists have no reference, e.g. {unknown[:3]}")


def sweep(refs: Mapping[str, str], lists: NBestLists, settings: Sequence[ScoringSetting]) -> list[SweepResult]:
    """WER of each setting; utterances without an N-best list count as all deletions."""
    results = []
    for setting in settings:
        hyps = lists.best(setting)
        results.append(SweepResult(setting, summarize(align_words(refs, hyps), sum(u not in hyps for u in refs))))
    return results


def choose(results: Sequence[SweepResult]) -> SweepResult:
    """The setting with the fewest errors (first in grid order on ties)."""
    if not results:
        raise AsrKdError("nothing to choose from: empty sweep")
    return min(results, key=lambda r: r.errors)


def describe(mode: str, chosen: SweepResult, tuning_set: str | None, results: Sequence[SweepResult]) -> dict:
    """The ``scoring`` block stored with a WER: mode, chosen setting, where it was chosen, the sweep."""
    return {
        "mode": mode,
        "setting": chosen.setting.as_dict(),
        "chosen_on": tuning_set,
        "chosen_on_wer": chosen.summary.wer if mode != UNTUNED else None,
        "sweep": [r.as_dict() for r in results],
        "chosen_summary": asdict(chosen.summary),
    }

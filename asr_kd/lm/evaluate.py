"""Perplexity and OOV rate of an LM on text (evaluation only: never train on this text).

Conventions are SRILM's ``ngram -ppl``: every sentence is scored from ``<s>`` and ends with
``</s>``; words outside the LM vocabulary (OOVs) are counted and left out of the perplexity
(an OOV in a history cuts the history there, or becomes ``<unk>`` if the model has one);
``ppl = 10 ** (-sum log10 P / (in-vocabulary words + sentences))``. Models with different
vocabularies are scored on different tokens, so compare their perplexities together with
their OOV rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from asr_kd.lm.model import LOG10_ZERO, BackoffLM


@dataclass(frozen=True)
class TextScore:
    """Perplexity and OOV counts of one text.

    Attributes:
        sentences: number of sentences.
        words: running words (without ``</s>``).
        oov_words: words not in the LM vocabulary (left out of the perplexity).
        zero_prob_words: in-vocabulary words the model gives probability 0 (also left out).
        log10_prob: total log10 probability of the scored tokens (words and ``</s>``).
        perplexity: ``10 ** (-log10_prob / scored tokens)``.
    """

    sentences: int
    words: int
    oov_words: int
    zero_prob_words: int
    log10_prob: float
    perplexity: float

    @property
    def oov_rate(self) -> float:
        return self.oov_words / max(self.words, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "oov_rate": self.oov_rate}


def score_text(lm: BackoffLM, sentences: Sequence[Sequence[str]]) -> TextScore:
    """Score word sequences (module docstring)."""
    log_probs, is_oov = lm.token_log_probs(sentences)
    zero = ~is_oov & (log_probs <= LOG10_ZERO)
    scored = ~is_oov & ~zero
    total = float(log_probs[scored].sum())
    count = int(np.count_nonzero(scored))
    return TextScore(
        sentences=len(sentences),
        words=len(log_probs) - len(sentences),
        oov_words=int(np.count_nonzero(is_oov)),
        zero_prob_words=int(np.count_nonzero(zero)),
        log10_prob=total,
        perplexity=float(10.0 ** (-total / count)) if count else float("nan"),
    )


def mixture_perplexity(first: BackoffLM, second: BackoffLM, weight: float,
                       sentences: Sequence[Sequence[str]]) -> TextScore:
    """Perplexity of the exact (dynamic) mixture ``weight * first + (1 - weight) * second``.

    A token is OOV only if neither model knows it; a word one model lacks gets probability 0
    from that model. For choosing ``weight`` on held-out *training* text before building the
    static mixture (:func:`asr_kd.lm.interpolate.interpolate`).
    """
    log1, oov1 = first.token_log_probs(sentences)
    log2, oov2 = second.token_log_probs(sentences)
    prob = weight * np.where(oov1, 0.0, 10.0 ** log1) + (1.0 - weight) * np.where(oov2, 0.0, 10.0 ** log2)
    oov = oov1 & oov2
    zero = ~oov & (prob <= 0.0)
    scored = ~oov & ~zero
    total = float(np.log10(prob[scored]).sum())
    count = int(np.count_nonzero(scored))
    return TextScore(sentences=len(sentences), words=len(prob) - len(sentences), oov_words=int(oov.sum()),
                     zero_prob_words=int(zero.sum()), log10_prob=total,
                     perplexity=float(10.0 ** (-total / count)) if count else float("nan"))

"""Linear interpolation of two back-off LMs into one back-off LM (SRILM's static ``-mix-lm``).

Every n-gram explicit in either model becomes explicit in the mixture with probability
``weight * P1(w | h) + (1 - weight) * P2(w | h)``, each term the model's own back-off estimate
(0 for a word outside that model's vocabulary); the vocabulary is the union of both, and the
back-off weights are then solved so that every history sums to one (SRILM's ``mixProbs`` +
``recomputeBOWs``). For histories seen in both models this is exact; elsewhere it approximates
the dynamic mixture, as SRILM's static mix does.
"""

from __future__ import annotations

import numpy as np

from asr_kd.lm.model import BOS, LOG10_ZERO, BackoffLM
from asr_kd.lm.normalisation import recompute_backoffs
from asr_kd.utils.errors import AsrKdError


def _log_mix(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        mixed = np.log10(weight * 10.0 ** a + (1.0 - weight) * 10.0 ** b)
    return np.maximum(mixed, LOG10_ZERO)


def interpolate(first: BackoffLM, second: BackoffLM, weight: float) -> BackoffLM:
    """``weight * first + (1 - weight) * second`` as one back-off LM (module docstring).

    Raises:
        AsrKdError: ``weight`` outside [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise AsrKdError(f"interpolation weight must be in [0, 1], got {weight}")
    vocab = list(first.vocab) + [w for w in second.vocab if w not in first.word_id]
    union = {w: i for i, w in enumerate(vocab)}
    to_first = np.array([first.word_id.get(w, -1) for w in vocab])
    to_second = np.array([second.word_id.get(w, -1) for w in vocab])
    order = max(first.order, second.order)
    ngrams = []
    for n in range(1, order + 1):
        rows = [np.array([union[w] for w in lm.vocab])[lm.ngram_words(n)] for lm in (first, second) if n <= lm.order]
        words = np.unique(np.concatenate(rows), axis=0)
        # log_prob truncates histories longer than a model's order
        mixed = _log_mix(first.log_prob(to_first[words]), second.log_prob(to_second[words]), weight)
        ngrams.append((words, mixed, np.zeros(len(words))))
    bos = union.get(BOS)
    if bos is not None:  # <s> is never predicted
        ngrams[0][1][ngrams[0][0][:, 0] == bos] = LOG10_ZERO
    return recompute_backoffs(BackoffLM.from_ngrams(vocab, ngrams))

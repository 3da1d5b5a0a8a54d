"""Relative-entropy pruning: SRILM's criterion, n-gram by n-gram, and a normalised result."""

from __future__ import annotations

import math

import numpy as np
import pytest
from lm_fixtures import random_lm

from asr_kd.lm.normalisation import check_normalisation
from asr_kd.lm.prune import prune_decisions, prune_entropy
from asr_kd.utils.errors import AsrKdError


def srilm_delta(lm, n: int, row: int) -> float:
    """Stolcke's relative perplexity change for removing one n-gram, straight from the formula."""
    words = lm.ngram_words(n)[row]
    h = words[:-1]
    siblings = lm.ngram_words(n)[lm.tables[n - 1].context == lm.tables[n - 1].context[row]]
    numerator = 1 - sum(10 ** lm.log_prob(siblings))
    denominator = 1 - sum(10 ** lm.log_prob(siblings[:, 1:]))
    p = 10 ** lm.log_prob(words[None])[0]
    backoff = lm.log_prob(words[None, 1:])[0]
    new_bow = math.log10(numerator + p) - math.log10(denominator + 10 ** backoff)
    old_bow = lm.tables[n - 2].log_bow[lm.find(h[None])[0]]
    first = [lm.word_id["</s>"]] if h[0] == lm.word_id["<s>"] else [h[0]]
    context = lm.log_prob(np.array([first]))[0] + sum(lm.log_prob(h[None, : j + 1])[0] for j in range(1, len(h)))
    delta_h = -(10 ** context) * (p * (backoff + new_bow - math.log10(p)) + numerator * (new_bow - old_bow))
    return 10 ** delta_h - 1


def test_decisions_follow_the_formula(trigram) -> None:
    threshold = 1e-4
    for n in (2, 3):
        decided = prune_decisions(trigram, n, threshold)
        for row in range(0, trigram.counts[n - 1], 7):
            assert decided[row] == (srilm_delta(trigram, n, row) < threshold), (n, row)


@pytest.mark.parametrize("threshold", [1e-5, 1e-4, 1e-3])
def test_pruned_model_is_normalised_and_prefix_closed(trigram, threshold) -> None:
    pruned, report = prune_entropy(trigram, threshold)
    assert report.counts_before == trigram.counts
    assert pruned.counts[0] == trigram.counts[0]
    assert pruned.counts[1] < trigram.counts[1] and pruned.counts[2] < trigram.counts[2]
    assert check_normalisation(pruned).ok
    # every kept n-gram was in the original model with the same probability
    for n in (2, 3):
        rows = trigram.find(pruned.ngram_words(n))
        assert np.all(rows >= 0)
        np.testing.assert_allclose(pruned.tables[n - 1].log_prob, trigram.tables[n - 1].log_prob[rows])


def test_larger_thresholds_prune_more_and_zero_prunes_nothing(trigram) -> None:
    sizes = [sum(prune_entropy(trigram, t)[0].counts) for t in (1e-6, 1e-4, 1e-2)]
    assert sizes[0] >= sizes[1] >= sizes[2]
    same, _ = prune_entropy(trigram, 0.0)
    assert same.counts == trigram.counts
    with pytest.raises(AsrKdError, match="min_order"):
        prune_entropy(trigram, 1e-5, min_order=1)


def test_an_order_pruned_away_is_dropped() -> None:
    lm = random_lm(trigrams=30)
    pruned, _ = prune_entropy(lm, 10.0)
    assert pruned.order <= 2 and check_normalisation(pruned).ok

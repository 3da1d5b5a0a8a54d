"""The normalisation check passes a normalised model and names the history a broken one gets wrong."""

from __future__ import annotations

import numpy as np
import pytest

from asr_kd.lm.model import NGramTable
from asr_kd.lm.normalisation import check_normalisation, history_totals, recompute_backoffs
from asr_kd.utils.errors import AsrKdError


def _with(lm, n, log_prob=None, log_bow=None):
    tables = list(lm.tables)
    t = tables[n - 1]
    tables[n - 1] = NGramTable(t.context, t.word, t.log_prob if log_prob is None else log_prob,
                               t.log_bow if log_bow is None else log_bow)
    return lm.with_tables(tables)


def test_a_normalised_model_passes(trigram) -> None:
    report = check_normalisation(trigram)
    assert report.ok and report.max_abs_error < 1e-12
    assert report.histories == 1 + trigram.counts[0] + trigram.counts[1]
    # brute force for one history: sum over the whole vocabulary of the back-off probability
    h = trigram.ngram_words(2)[7]
    queries = np.array([[*h, w] for w in range(len(trigram.vocab))])
    assert 10.0 ** trigram.log_prob(queries) @ np.ones(len(queries)) == pytest.approx(1.0)
    assert history_totals(trigram, 2)[7] == pytest.approx(1.0)


def test_a_wrong_backoff_weight_is_caught_and_named(trigram) -> None:
    bow = trigram.tables[1].log_bow.copy()
    row = int(np.flatnonzero(np.bincount(trigram.tables[2].context, minlength=len(bow)) > 0)[0])
    bow[row] += 0.05
    report = check_normalisation(_with(trigram, 2, log_bow=bow))
    assert not report.ok
    words = " ".join(trigram.vocab[w] for w in trigram.ngram_words(2)[row])
    assert report.orders[2].over_tolerance == 1 and report.orders[2].worst[0][0] == words
    assert "NOT normalised (1 histories" in report.summary()


def test_a_wrong_unigram_is_caught(trigram) -> None:
    prob = trigram.tables[0].log_prob.copy()
    prob[np.argmax(prob)] += 0.05  # +12% of the likeliest word's probability
    report = check_normalisation(_with(trigram, 1, log_prob=prob))
    assert not report.ok and report.orders[0].over_tolerance == 1
    assert report.orders[1].over_tolerance > 0  # histories that back off to that unigram


def test_recompute_backoffs_repairs_and_rejects_improper_histories(trigram) -> None:
    broken = _with(trigram, 1, log_bow=trigram.tables[0].log_bow + 0.1)
    assert not check_normalisation(broken).ok
    repaired = recompute_backoffs(broken)
    assert check_normalisation(repaired).ok
    np.testing.assert_allclose(repaired.tables[0].log_bow, trigram.tables[0].log_bow, atol=1e-12)
    prob = trigram.tables[2].log_prob.copy()
    prob[trigram.tables[2].context == trigram.tables[2].context[0]] = 0.0  # probability 1 each
    with pytest.raises(AsrKdError, match="is improper: explicit mass"):
        recompute_backoffs(_with(trigram, 3, log_prob=prob))

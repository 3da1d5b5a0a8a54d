"""BackoffLM: vectorised lookup and back-off probabilities against a plain dict implementation."""

from __future__ import annotations

import numpy as np
import pytest
from lm_fixtures import random_lm

from asr_kd.lm.model import BackoffLM
from asr_kd.utils.errors import AsrKdError


def reference_log_prob(lm: BackoffLM, words: tuple[int, ...]) -> float:
    """ARPA back-off, written the obvious recursive way over dicts."""
    prob = {tuple(r): p for n in range(1, lm.order + 1)
            for r, p in zip(lm.ngram_words(n).tolist(), lm.tables[n - 1].log_prob)}
    bow = {tuple(r): b for n in range(1, lm.order + 1)
           for r, b in zip(lm.ngram_words(n).tolist(), lm.tables[n - 1].log_bow)}

    def p(ngram: tuple[int, ...]) -> float:
        if ngram in prob:
            return prob[ngram]
        return bow.get(ngram[:-1], 0.0) + p(ngram[1:])

    return p(words[-lm.order:])


def test_log_prob_matches_the_recursive_definition(trigram) -> None:
    rng = np.random.default_rng(1)
    queries = np.concatenate([trigram.ngram_words(3)[:50], rng.integers(1, len(trigram.vocab), (200, 3))])
    ours = trigram.log_prob(queries)
    expected = [reference_log_prob(trigram, tuple(q)) for q in queries.tolist()]
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    # a shorter history, and -1 ("before <s>" / unknown) cutting the history
    np.testing.assert_allclose(trigram.log_prob(queries[:, 1:]),
                               [reference_log_prob(trigram, tuple(q)) for q in queries[:, 1:].tolist()])
    cut = queries.copy()
    cut[:, 0] = -1
    np.testing.assert_allclose(trigram.log_prob(cut), trigram.log_prob(queries[:, 1:]))
    assert np.all(np.isneginf(trigram.log_prob(np.array([[2, 3, -1]]))))


def test_missing_prefixes_are_added_with_their_backoff_probability() -> None:
    lm = random_lm(order=2)
    vocab = lm.vocab
    # a trigram whose prefix bigram (W005 W006) is not in the model
    a, b, c = (vocab.index(w) for w in ("W005", "W006", "W007"))
    assert lm.find(np.array([[a, b]]))[0] == -1
    before = lm.log_prob(np.array([[a, b]]))[0]
    ngrams = [(lm.ngram_words(n), lm.tables[n - 1].log_prob, lm.tables[n - 1].log_bow) for n in (1, 2)]
    ngrams.append((np.array([[a, b, c]]), np.array([-0.5]), np.zeros(1)))
    closed = BackoffLM.from_ngrams(vocab, ngrams)
    row = closed.find(np.array([[a, b]]))[0]
    assert row >= 0 and closed.tables[1].log_bow[row] == 0.0
    assert closed.tables[1].log_prob[row] == pytest.approx(before)
    assert closed.log_prob(np.array([[a, b, c]]))[0] == -0.5


def test_construction_errors() -> None:
    lm = random_lm(order=2)
    uni = (lm.ngram_words(1), lm.tables[0].log_prob, lm.tables[0].log_bow)
    words = lm.ngram_words(2)
    twice = (np.concatenate([words, words[:1]]), np.zeros(len(words) + 1), np.zeros(len(words) + 1))
    with pytest.raises(AsrKdError, match="duplicate 2-grams"):
        BackoffLM.from_ngrams(lm.vocab, [uni, twice])
    with pytest.raises(AsrKdError, match="outside the vocabulary"):
        BackoffLM.from_ngrams(lm.vocab, [uni, (np.array([[0, 99]]), np.zeros(1), np.zeros(1))])
    with pytest.raises(AsrKdError, match="every vocabulary word exactly once"):
        BackoffLM.from_ngrams(lm.vocab, [(uni[0][1:], uni[1][1:], uni[2][1:])])


def test_truncated_and_sentence_windows(trigram) -> None:
    bigram = trigram.truncated(2)
    assert bigram.counts == trigram.counts[:2] and np.all(bigram.tables[1].log_bow == 0)
    windows, oov = trigram.sentence_windows([["W003", "NOPE", "W004"], []])
    bos, eos = trigram.word_id["<s>"], trigram.word_id["</s>"]
    w3, w4 = trigram.word_id["W003"], trigram.word_id["W004"]
    assert windows.tolist() == [[-1, bos, w3], [bos, w3, -1], [w3, -1, w4], [-1, w4, eos], [-1, bos, eos]]
    assert oov.tolist() == [False, True, False, False, False]


def test_interpolation_is_normalised_and_mixes_probabilities() -> None:
    from asr_kd.lm.interpolate import interpolate
    from asr_kd.lm.normalisation import check_normalisation

    a = random_lm(seed=1)
    b = random_lm(seed=2, order=2).renamed([*random_lm(seed=2, order=2).vocab[:-3], "X1", "X2", "X3"])
    mixed = interpolate(a, b, 0.7)
    assert check_normalisation(mixed).ok
    assert set(mixed.vocab) == set(a.vocab) | set(b.vocab)
    # an n-gram explicit in a: exactly the mixture of both models' probabilities
    row = a.ngram_words(3)[0]
    names = [a.vocab[w] for w in row]
    expected = np.log10(0.7 * 10 ** a.log_prob(row[None])[0] + 0.3 * 10 ** b.log_prob(b.ids(names)[None])[0])
    assert mixed.log_prob(mixed.ids(names)[None])[0] == pytest.approx(expected)
    assert mixed.log_prob(mixed.ids(["<s>", "X1"])[None])[0] > -99  # a word only b knows
    with pytest.raises(AsrKdError, match="weight"):
        interpolate(a, b, 1.5)


def test_mixture_perplexity_matches_the_static_mixture_on_its_own_ngrams() -> None:
    from asr_kd.lm.evaluate import mixture_perplexity, score_text
    from asr_kd.lm.interpolate import interpolate

    a, b = random_lm(seed=1), random_lm(seed=2)
    sentences = [[a.vocab[w] for w in row] for row in a.ngram_words(3)[:40, 1:].tolist() if 0 not in row[1:]]
    for weight in (0.0, 1.0):  # the mixture of one model is that model
        expected = score_text(a if weight == 1.0 else b, sentences).perplexity
        assert mixture_perplexity(a, b, weight, sentences).perplexity == pytest.approx(expected)
    dynamic = mixture_perplexity(a, b, 0.5, sentences).perplexity
    static = score_text(interpolate(a, b, 0.5), sentences).perplexity
    assert dynamic == pytest.approx(static, rel=0.05)  # static = dynamic where both models are explicit

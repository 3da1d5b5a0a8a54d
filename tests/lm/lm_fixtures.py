"""Test helpers: a random, exactly normalised back-off trigram over a small vocabulary."""

from __future__ import annotations

import numpy as np

from asr_kd.lm.model import BOS, EOS, LOG10_ZERO, BackoffLM
from asr_kd.lm.normalisation import recompute_backoffs


def random_lm(num_words: int = 40, bigrams: int = 300, trigrams: int = 400, seed: int = 0,
              order: int = 3, suffix_closed: bool = False) -> BackoffLM:
    """A prefix-closed random back-off LM with solved (normalising) back-off weights.

    Word 0 is ``<s>`` (probability 0, never predicted), word 1 ``</s>`` (never a history);
    explicit probabilities of one history share at most 80% of its mass and ``W000`` is never
    predicted by a bigram or trigram, so every back-off weight is positive. ``suffix_closed``:
    every trigram's last two words are a bigram too (as in a KenLM model; sphinx's trie then
    stores exactly the model's n-grams).
    """
    rng = np.random.default_rng(seed)
    vocab = [BOS, EOS] + [f"W{i:03d}" for i in range(num_words - 2)]
    uni = rng.dirichlet(np.ones(num_words - 1))
    uni_log = np.concatenate([[LOG10_ZERO], np.log10(uni)])
    ngrams = [(np.arange(num_words)[:, None], uni_log, np.zeros(num_words))]
    history_words = np.arange(num_words) != 1  # </s> is never a history
    # W000 only ever comes from backing off, so every history keeps mass to back off to
    predictable = np.concatenate([[1], np.arange(3, num_words)])
    for n, count in ((2, bigrams), (3, trigrams))[: order - 1]:
        prev = ngrams[-1][0]
        prev = prev[history_words[prev[:, -1]]]  # histories that do not end in </s>
        last = rng.choice(predictable, count)
        rows = np.concatenate([prev[rng.integers(0, len(prev), count)], last[:, None]], axis=1)
        if n == 3 and suffix_closed:  # continue each bigram "a b" with a bigram "b c"
            bigram_rows = ngrams[1][0]
            starts = [bigram_rows[bigram_rows[:, 0] == b] for b in rows[:, 1]]
            keep = np.array([len(s) > 0 for s in starts])
            rows = np.stack([np.concatenate([r[:2], s[rng.integers(0, len(s))][1:]])
                             for r, s, k in zip(rows, starts, keep) if k])
        rows = np.unique(rows, axis=0)
        log_prob = np.empty(len(rows))
        for h in np.unique(rows[:, :-1], axis=0):  # a Dirichlet share of 80% of each history's mass
            mine = np.all(rows[:, :-1] == h, axis=1)
            log_prob[mine] = np.log10(0.8 * rng.dirichlet(np.ones(mine.sum() + 1))[:-1])
        ngrams.append((rows, log_prob, np.zeros(len(rows))))
    return recompute_backoffs(BackoffLM.from_ngrams(vocab, ngrams))

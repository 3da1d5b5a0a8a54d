"""Relative-entropy pruning of a back-off LM (Stolcke 1998), as SRILM's ``ngram -prune``.

An explicit n-gram ``h w`` is removed when backing off instead raises the model's perplexity
(its entropy, weighted by the marginal probability ``P(h)`` of the history) by a relative
amount below ``threshold``. As in SRILM's ``Ngram::pruneProbs``:

* orders go from the highest down to ``min_order`` (SRILM's ``-minprune``, default 2:
  unigrams are never pruned); within an order every n-gram is judged on the unpruned model of
  that order, with the history's back-off numerator and denominator computed once;
* ``P(h)`` is the chain-rule probability of the history's words, ``P(</s>)`` standing in for
  the zero probability of a leading ``<s>`` (``computeContextProb``);
* an n-gram that is still the history of a kept higher-order n-gram is kept;
* afterwards every back-off weight is recomputed (``recomputeBOWs``), so the pruned model is
  normalised again.

Vectorised over whole tables (SRILM and the pure-Python ``kaldingram.prune`` loop over
n-grams): pruning the 72k-word pocketsphinx trigram takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr_kd.lm.model import BackoffLM, NGramTable
from asr_kd.lm.normalisation import backoff_fractions, continuation_masses, recompute_backoffs
from asr_kd.utils.errors import AsrKdError


@dataclass(frozen=True)
class PruneReport:
    """Counts before and after pruning, unigrams first."""

    threshold: float
    counts_before: list[int]
    counts_after: list[int]


def prune_decisions(lm: BackoffLM, n: int, threshold: float) -> np.ndarray:
    """(N_n,) bool: which n-grams of order ``n >= 2`` the entropy criterion removes (module docstring),
    before the "still a history" exception."""
    table = lm.tables[n - 1]
    history = table.context
    explicit, lower = continuation_masses(lm, n - 1)
    numerator, denominator, valid = backoff_fractions(explicit, lower)
    old_bow = lm.tables[n - 2].log_bow
    context_log_prob = lm.context_log_prob(n - 1)

    log_p = table.log_prob
    backoff_log_p = lm.lower_order_log_prob(n)
    p = 10.0 ** log_p
    with np.errstate(divide="ignore", invalid="ignore"):
        new_bow = (np.log10(numerator[history] + p)
                   - np.log10(denominator[history] + 10.0 ** backoff_log_p))
        delta_log_p = backoff_log_p + new_bow - log_p
        delta_entropy = -(10.0 ** context_log_prob[history]) * (
            p * delta_log_p + numerator[history] * (new_bow - old_bow[history]))
        perplexity_change = 10.0 ** delta_entropy - 1.0
    return valid[history] & np.isfinite(perplexity_change) & (perplexity_change < threshold)


def prune_entropy(lm: BackoffLM, threshold: float, min_order: int = 2) -> tuple[BackoffLM, PruneReport]:
    """Prune ``lm`` with SRILM's relative-entropy criterion (module docstring).

    Args:
        threshold: relative perplexity increase below which an n-gram goes (e.g. ``1e-7``,
            LibriSpeech's ``3-gram.pruned.1e-7``); 0 prunes nothing.
        min_order: lowest order that may lose n-grams (>= 2).

    Returns:
        ``(pruned model with recomputed back-off weights, report)``.
    """
    if threshold < 0:
        raise AsrKdError(f"pruning threshold must be >= 0, got {threshold}")
    if min_order < 2:
        raise AsrKdError(f"pruning keeps every unigram: min_order must be >= 2, got {min_order}")
    before = lm.counts
    current = lm
    for n in range(lm.order, min_order - 1, -1):
        if threshold == 0:
            break
        prune = prune_decisions(current, n, threshold)
        if n < current.order:  # keep n-grams that are still histories of kept (n+1)-grams
            prune &= np.bincount(current.tables[n].context, minlength=len(prune)) == 0
        keep = ~prune
        tables = list(current.tables)
        tables[n - 1] = tables[n - 1].select(keep)
        if n < current.order:  # rows of order n moved: renumber the contexts of order n + 1
            new_row = np.cumsum(keep) - 1
            above = tables[n]
            tables[n] = NGramTable(new_row[above.context], above.word, above.log_prob, above.log_bow)
        current = current.with_tables(tables)
    while current.order > 1 and current.counts[-1] == 0:  # an order pruned away entirely
        top = current.tables[-2]
        current = current.with_tables([*current.tables[:-2], NGramTable(
            top.context, top.word, top.log_prob, np.zeros(len(top)))])
    pruned = recompute_backoffs(current)
    return pruned, PruneReport(threshold=threshold, counts_before=before, counts_after=pruned.counts)

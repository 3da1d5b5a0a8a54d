"""Is a back-off LM a probability distribution? The per-history check and back-off weight recomputation.

For every history ``h`` (the empty one, and every explicit n-gram below the top order) the
model's ``P(. | h)`` must sum to one::

    sum_{w in C(h)} P*(w | h)  +  BOW(h) * (1 - sum_{w in C(h)} P(w | h'))  =  1

where ``C(h)`` are the words with an explicit n-gram ``h w`` and ``h'`` is ``h`` without its
first word (for the empty history: the unigram probabilities sum to one). Everything is a
``np.bincount`` over the tables of :class:`~asr_kd.lm.model.BackoffLM`, so a 72k-word trigram
(3.7M n-grams) checks in seconds.

:func:`recompute_backoffs` solves the same equation for ``BOW(h)`` (SRILM's ``computeBOW``,
with its rounding guards), which pruning and vocabulary changes need.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from asr_kd.lm.model import LOG10_ZERO, BackoffLM, NGramTable
from asr_kd.utils.errors import AsrKdError

#: SRILM's ``Prob_Epsilon``: masses this close to zero are rounding noise.
PROB_EPSILON = 3e-6
#: Default tolerance on |sum - 1| per history: ARPA files round log10 values to 4-7 decimals
#: (|error| <= 1.2e-4 per value at 4 decimals), so a correct model stays well inside 1e-3.
DEFAULT_TOLERANCE = 1e-3


def continuation_masses(lm: BackoffLM, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Explicit and lower-order mass of the continuations of every history of order ``n``.

    Args:
        n: history order, ``0`` (the empty history) to ``lm.order - 1``.

    Returns:
        ``(explicit, lower)``, each (H,) float64 with H = 1 for ``n = 0``, else the number of
        n-grams of order n: ``sum_w P*(w | h)`` and ``sum_w P(w | h')`` over the explicit
        continuations ``h w`` (``lower`` is all zero for the empty history).
    """
    successors = lm.tables[n]
    size = 1 if n == 0 else len(lm.tables[n - 1])
    explicit = np.bincount(successors.context, weights=10.0 ** successors.log_prob, minlength=size)
    if n == 0:
        return explicit, np.zeros(1)
    lower = np.bincount(successors.context, weights=10.0 ** lm.lower_order_log_prob(n + 1), minlength=size)
    return explicit, lower


def history_totals(lm: BackoffLM, n: int) -> np.ndarray:
    """(H,) the total probability ``sum_w P(w | h)`` of every history of order ``n`` (module docstring)."""
    explicit, lower = continuation_masses(lm, n)
    if n == 0:
        return explicit
    return explicit + 10.0 ** lm.tables[n - 1].log_bow * (1.0 - lower)


@dataclass(frozen=True)
class OrderCheck:
    """Normalisation of the histories of one order.

    Attributes:
        history_order: 0 = the empty history (unigram distribution), 1 = single words, ...
        histories: number of histories checked.
        max_abs_error: largest |sum - 1|.
        quantiles: |sum - 1| at the 50th, 90th, 99th and 99.9th percentile.
        over_tolerance: histories with |sum - 1| above the tolerance.
        worst: up to 5 ``(history words, sum)`` with the largest error.
    """

    history_order: int
    histories: int
    max_abs_error: float
    quantiles: dict[str, float]
    over_tolerance: int
    worst: list[tuple[str, float]]


@dataclass(frozen=True)
class NormalisationReport:
    """Result of :func:`check_normalisation`."""

    tolerance: float
    seconds: float
    orders: list[OrderCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.over_tolerance == 0 for o in self.orders)

    @property
    def max_abs_error(self) -> float:
        return max(o.max_abs_error for o in self.orders)

    @property
    def histories(self) -> int:
        return sum(o.histories for o in self.orders)

    def summary(self) -> str:
        """One line: verdict, histories, worst error, time."""
        bad = sum(o.over_tolerance for o in self.orders)
        verdict = "normalised" if self.ok else f"NOT normalised ({bad} histories off by more than {self.tolerance:g})"
        return (f"{verdict}: {self.histories} histories, max |sum P - 1| = {self.max_abs_error:.2e} "
                f"(checked in {self.seconds:.1f} s)")

    def to_dict(self) -> dict:
        return {"ok": self.ok, "tolerance": self.tolerance, "seconds": round(self.seconds, 3),
                "max_abs_error": self.max_abs_error, "orders": [asdict(o) for o in self.orders]}


def check_normalisation(lm: BackoffLM, tolerance: float = DEFAULT_TOLERANCE) -> NormalisationReport:
    """Check that every history's distribution sums to 1 within ``tolerance`` (module docstring)."""
    t0 = time.perf_counter()
    orders = []
    for n in range(lm.order):
        totals = history_totals(lm, n)
        error = np.abs(totals - 1.0)
        worst = [int(i) for i in np.argsort(error)[::-1][:5] if error[i] > 0]
        words = lm.ngram_words(n) if n > 0 else np.zeros((1, 0), np.int64)
        orders.append(OrderCheck(
            history_order=n,
            histories=len(error),
            max_abs_error=float(error.max(initial=0.0)),
            quantiles={f"p{q:g}": float(np.percentile(error, q)) for q in (50, 90, 99, 99.9)},
            over_tolerance=int(np.count_nonzero(error > tolerance)),
            worst=[(" ".join(lm.vocab[w] for w in words[i]) or "(empty history)", float(totals[i])) for i in worst],
        ))
    return NormalisationReport(tolerance=tolerance, seconds=time.perf_counter() - t0, orders=orders)


def backoff_fractions(explicit: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SRILM's ``computeBOW``: ``numerator = 1 - explicit``, ``denominator = 1 - lower`` per history.

    Returns:
        ``(numerator, denominator, valid)``; masses within :data:`PROB_EPSILON` below zero are
        rounded to 0, and ``valid`` is false for improper histories (explicit mass above 1, or
        no lower-order mass left for a positive numerator).
    """
    numerator = 1.0 - explicit
    denominator = 1.0 - lower
    numerator[(numerator < 0) & (numerator > -PROB_EPSILON)] = 0.0
    denominator[(denominator < 0) & (denominator > -PROB_EPSILON)] = 0.0
    valid = (numerator >= 0) & ((denominator > 0) | (numerator <= PROB_EPSILON))
    numerator[valid & (denominator <= 0)] = 0.0
    return numerator, denominator, valid


def recompute_backoffs(lm: BackoffLM) -> BackoffLM:
    """The model with every back-off weight solved from the normalisation equation.

    Orders go from low to high, because the lower-order probabilities of a history's
    continuations use the lower-order weights. A history whose explicit mass leaves nothing
    (numerator and denominator both 0) gets weight 1, as in SRILM.

    Raises:
        AsrKdError: improper histories (explicit probabilities summing to more than 1, or mass
            left but none to back off to), naming the first one.
    """
    tables = list(lm.tables)
    for n in range(1, lm.order):
        current = lm.with_tables(tables)
        explicit, lower = continuation_masses(current, n)
        numerator, denominator, valid = backoff_fractions(explicit, lower)
        if not valid.all():
            bad = int(np.flatnonzero(~valid)[0])
            words = " ".join(lm.vocab[w] for w in current.ngram_words(n)[bad])
            raise AsrKdError(f"LM history {words!r} is improper: explicit mass {explicit[bad]:.6f}, "
                             f"lower-order mass {lower[bad]:.6f} ({np.count_nonzero(~valid)} such histories)")
        # numerator 0 with mass left to back off to: BOW = 0 (log LOG10_ZERO); both 0: BOW = 1
        safe_num = np.where(numerator > 0, numerator, 1.0)
        safe_den = np.where(denominator > 0, denominator, 1.0)
        log_bow = np.where(numerator > 0, np.log10(safe_num) - np.log10(safe_den), LOG10_ZERO)
        log_bow[denominator <= 0] = 0.0
        table = tables[n - 1]
        tables[n - 1] = NGramTable(table.context, table.word, table.log_prob, log_bow)
    return lm.with_tables(tables)

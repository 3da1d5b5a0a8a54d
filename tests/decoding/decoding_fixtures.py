"""Test helpers of the decoding tests: a synthetic senone tree, a toy lexicon, a bigram ARPA LM, crafted scores.

(A uniquely named module rather than ``conftest`` so that ``import`` finds it unambiguously.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from asr_kd.data.lexicon import PHONES


class SyntheticTree:
    """A senone tree with the interface of contract (A), for tests and graph benchmarks.

    Silence phones are context independent. Other phones get one senone per
    ``(phone, state, class(left), class(right))`` where ``class`` hashes the context phone into
    ``context_classes`` buckets (1 = a monophone tree): 39 * 3 * 3 * 3 + 2 * 3 = 1059 senones
    for ``context_classes=3``.
    """

    def __init__(self, context_classes: int = 1, states: int = 3, self_loop_prob: float = 0.7) -> None:
        self.phones: tuple[str, ...] = PHONES
        self.silence_phones = frozenset({"SIL", "SPN"})
        self.context_classes = context_classes
        self.states = states
        self._loop = (math.log(self_loop_prob), math.log(1.0 - self_loop_prob))
        self._silence = {p: i * states for i, p in enumerate(sorted(self.silence_phones))}
        self._first = len(self._silence) * states
        self._speech = [p for p in self.phones if p not in self.silence_phones]
        self.num_senones = self._first + len(self._speech) * states * context_classes**2

    def num_states(self, phone: str) -> int:
        return self.states

    def _class(self, phone: str | None) -> int:
        return 0 if phone is None else (self.phones.index(phone) * 7) % self.context_classes

    def senone(self, left: str | None, phone: str, right: str | None, state: int) -> int:
        if phone in self._silence:
            return self._silence[phone] + state
        k = self.context_classes
        cell = (self._speech.index(phone) * self.states + state) * k * k
        return self._first + cell + self._class(left) * k + self._class(right)

    def transition_logprobs(self, phone: str, state: int) -> tuple[float, float]:
        return self._loop


TOY_PRONS = {
    "A": [("AH",), ("EY",)],
    "CAT": [("K", "AE", "T")],
    "CATS": [("K", "AE", "T", "S")],
    "SAT": [("S", "AE", "T")],
    "ON": [("AA", "N")],
    "THE": [("DH", "AH")],
    "MAT": [("M", "AE", "T")],
    "TO": [("T", "UW")],
    "TWO": [("T", "UW")],
    "DOGS": [("D", "AO", "G", "Z")],
}

# log10 probabilities; every listed word is reachable, unlisted bigrams back off.
TOY_ARPA = """\\data\\
ngram 1=12
ngram 2=9

\\1-grams:
-1.0 </s>
-99 <s> -0.5
-1.2 A -0.3
-1.1 CAT -0.3
-1.4 CATS -0.3
-1.2 SAT -0.3
-1.3 ON -0.3
-0.9 THE -0.3
-1.3 MAT -0.3
-1.3 TO -0.3
-1.3 TWO -0.3
-1.4 DOGS -0.3

\\2-grams:
-0.3 <s> THE
-0.4 THE CAT
-0.5 CAT SAT
-0.4 SAT ON
-0.3 ON THE
-0.5 THE MAT
-0.2 MAT </s>
-0.6 TWO DOGS
-0.4 DOGS </s>

\\end\\
"""


def utterance_senones(tree: SyntheticTree, phones: Sequence[str], frames_per_state: int = 3) -> list[int]:
    """Frame-level senones of a phone sequence (triphone contexts over the whole sequence)."""
    senones = []
    for i, phone in enumerate(phones):
        left = phones[i - 1] if i > 0 else None
        right = phones[i + 1] if i + 1 < len(phones) else None
        for state in range(tree.num_states(phone)):
            senones += [tree.senone(left, phone, right, state)] * frames_per_state
    return senones


def crafted_loglik(num_senones: int, senones: Sequence[int], low: float = -8.0, seed: int = 0) -> np.ndarray:
    """``(T, num_senones)`` log-likelihoods: ~0 on the given senone of each frame, ``low`` + noise elsewhere."""
    rng = np.random.default_rng(seed)
    loglik = low + 0.5 * rng.standard_normal((len(senones), num_senones))
    loglik[np.arange(len(senones)), senones] = -0.1 * rng.random(len(senones))
    return loglik.astype(np.float32)

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


def read_kaldifst_lattice(lattice, reached_final: bool):
    """A ``kaldifst.Lattice`` as a :class:`RawLattice`, through its OpenFst binary (``vector`` / ``lattice4``) layout.

    Layout: header (magic, "vector", "lattice4", version, flags, properties, start, #states,
    #arcs), then per state its final weight (2 x f32), its arc count (i64) and its arcs
    (ilabel i32, olabel i32, graph f32, acoustic f32, nextstate i32).
    """
    import struct
    import tempfile
    from pathlib import Path

    from asr_kd.decoding.lattice import raw_lattice

    arc = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("graph", "<f4"), ("acoustic", "<f4"), ("next", "<i4")])
    state_header = struct.Struct("<ffq")
    with tempfile.TemporaryDirectory(prefix="asr_kd_lat_") as tmp:
        path = Path(tmp) / "lat.fst"
        lattice.write(str(path))
        data = path.read_bytes()
    offset, kinds = 4, []
    for _ in range(2):
        (length,) = struct.unpack_from("<i", data, offset)
        kinds.append(data[offset + 4 : offset + 4 + length].decode())
        offset += 4 + length
    assert kinds == ["vector", "lattice4"], kinds
    _, _, _, start, num_states, _ = struct.unpack_from("<iiQqqq", data, offset)
    offset += struct.calcsize("<iiQqqq")
    finals = np.empty((num_states, 2))
    src, arcs = [], []
    for state in range(num_states):
        finals[state, 0], finals[state, 1], count = state_header.unpack_from(data, offset)
        offset += state_header.size
        arcs.append(np.frombuffer(data, dtype=arc, count=count, offset=offset))
        src.append(np.full(count, state))
        offset += arc.itemsize * count
    arcs, src = np.concatenate(arcs), np.concatenate(src)
    return raw_lattice(int(start), int(num_states), src, arcs["next"], arcs["ilabel"], arcs["olabel"], arcs["graph"],
                       arcs["acoustic"], finals[:, 0], finals[:, 1], reached_final)


def lattice_simple_decoder(graph, scaled_loglik: np.ndarray, beam: float, lattice_beam: float):
    """The reference lattice search: kaldi-decoder's ``LatticeSimpleDecoder`` (beam only) as a :class:`RawLattice`."""
    import math

    import kaldi_decoder

    config = kaldi_decoder.LatticeSimpleDecoderConfig()
    config.beam = beam
    config.lattice_beam = lattice_beam
    decoder = kaldi_decoder.LatticeSimpleDecoder(graph.fst, config)
    decoder.decode(kaldi_decoder.DecodableCtc(np.ascontiguousarray(scaled_loglik, dtype=np.float32)))
    ok, lattice = decoder.get_raw_lattice()
    assert ok and lattice.num_states > 0
    return read_kaldifst_lattice(lattice, math.isfinite(decoder.final_relative_cost()))

"""From a raw state-level lattice to an N-best list whose entries keep graph and acoustic costs apart.

``kaldi_decoder.LatticeSimpleDecoder`` returns Kaldi's raw lattice: one state per surviving
token (frame, HCLG state), arcs weighted by the pair (graph cost, scaled acoustic cost). Kaldi
turns it into a word lattice with ``DeterminizeLatticePruned`` in the lattice semiring; the
Python bindings have no lattice-semiring determinization, composition or epsilon removal
(kaldifst binds those for the tropical ``StdVectorFst`` only, and OpenFst's tropical
``RmEpsilon`` over the whole raw lattice costs a closure per state: ~1 s for a 25k-arc lattice).
So the word-level structure is built in two steps, each exact:

1. :func:`word_graph`, frame-synchronous epsilon removal over the word labels in numpy: a
   *segment* starts at an *anchor* (the start state, or the destination of an arc with a word)
   and follows arcs without a word. Per (anchor, state) pair only the cheapest segment is kept,
   with its graph cost, acoustic cost and prior sum carried alongside. Every word arc reached
   from (anchor ``u``, state ``s``) becomes a word-graph arc ``u -> dst`` whose costs are the
   segment's plus the arc's. Paths of the word graph are the raw lattice's paths with the best
   segment between consecutive words, so the best word-graph path of every word sequence is its
   best raw path, with the same split of costs.
2. :func:`nbest`: the word graph has no epsilons; its tropical determinization (pruned at
   ``beam``, OpenFst through kaldifst) gives the ``n`` best distinct word sequences, and a
   composition of each one with the word graph (arc ids on the input side) recovers the arcs
   of its best path, hence its exact (graph, acoustic, prior) costs.

The N-best list is what LM-weight / insertion-penalty / prior-scale sweeps and LM rescoring work
on (:mod:`asr_kd.decoding.nbest`), as Kaldi's N-best rescoring does.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import kaldifst
import numpy as np

from asr_kd.decoding.fst_arrays import FstArrays, arrays_to_fst
from asr_kd.utils.errors import AsrKdError

_ARC = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("graph", "<f4"), ("acoustic", "<f4"), ("next", "<i4")])
_STATE_HEADER = struct.Struct("<ffq")  # final weight (graph, acoustic), number of arcs


@dataclass(frozen=True)
class LatticeArrays:
    """A raw lattice as arrays; arcs sorted by source state (CSR by ``arc_start``).

    Attributes:
        start, num_states: start state and number of states.
        src, dst, ilabel, olabel: ``(A,)`` int arrays (``ilabel`` = senone + 1, 0 = no frame
            consumed; ``olabel`` = word id, 0 = none).
        graph, acoustic: ``(A,)`` float64 costs (acoustic already multiplied by the search's
            acoustic scale, as ``DecodableCtc`` saw it).
        final_graph, final_acoustic: ``(num_states,)`` final costs (``inf`` = not final).
        arc_start: ``(num_states + 1,)`` first arc of each state.
    """

    start: int
    num_states: int
    src: np.ndarray
    dst: np.ndarray
    ilabel: np.ndarray
    olabel: np.ndarray
    graph: np.ndarray
    acoustic: np.ndarray
    final_graph: np.ndarray
    final_acoustic: np.ndarray
    arc_start: np.ndarray


def lattice_to_arrays(lattice: kaldifst.Lattice) -> LatticeArrays:
    """Read a ``kaldifst.Lattice`` through its OpenFst binary (``vector`` / ``lattice4``) layout.

    Layout: header (magic, "vector", "lattice4", version, flags, properties, start, #states,
    #arcs), then per state its final weight (2 x f32), its arc count (i64) and its arcs
    (ilabel i32, olabel i32, graph f32, acoustic f32, nextstate i32).
    """
    with tempfile.TemporaryDirectory(prefix="asr_kd_lat_") as tmp:
        path = Path(tmp) / "lat.fst"
        lattice.write(str(path))
        data = path.read_bytes()
    offset = 4
    kinds = []
    for _ in range(2):
        (length,) = struct.unpack_from("<i", data, offset)
        kinds.append(data[offset + 4 : offset + 4 + length].decode())
        offset += 4 + length
    if kinds != ["vector", "lattice4"]:
        raise AsrKdError(f"unexpected lattice binary layout {kinds}; kaldifst changed?")
    _, _, _, start, num_states, _ = struct.unpack_from("<iiQqqq", data, offset)
    offset += struct.calcsize("<iiQqqq")
    finals = np.empty((num_states, 2), dtype=np.float64)
    counts = np.empty(num_states, dtype=np.int64)
    first = np.empty(num_states, dtype=np.int64)
    for state in range(num_states):  # records have variable length: one pass finds them
        finals[state, 0], finals[state, 1], counts[state] = _STATE_HEADER.unpack_from(data, offset)
        first[state] = offset + _STATE_HEADER.size
        offset = first[state] + _ARC.itemsize * counts[state]
    arc_start = np.concatenate([[0], np.cumsum(counts)])
    within = np.arange(arc_start[-1]) - np.repeat(arc_start[:-1], counts)
    byte_pos = np.repeat(first, counts) + _ARC.itemsize * within
    raw = np.frombuffer(data, dtype=np.uint8)
    arcs = raw[byte_pos[:, None] + np.arange(_ARC.itemsize)].copy().view(_ARC).reshape(-1)
    return LatticeArrays(
        start=int(start), num_states=int(num_states),
        src=np.repeat(np.arange(num_states, dtype=np.int64), counts), dst=arcs["next"].astype(np.int64),
        ilabel=arcs["ilabel"].astype(np.int64), olabel=arcs["olabel"].astype(np.int64),
        graph=arcs["graph"].astype(np.float64), acoustic=arcs["acoustic"].astype(np.float64),
        final_graph=finals[:, 0], final_acoustic=finals[:, 1], arc_start=arc_start,
    )


@dataclass(frozen=True)
class WordGraph:
    """Epsilon-free word graph (see the module docstring). Costs per arc and per final state.

    Attributes:
        num_states, start: nodes are anchors of the raw lattice, renumbered ``0..num_states-1``.
        src, dst, word: ``(E,)`` arcs.
        graph, acoustic, prior: ``(E,)`` graph cost, scaled acoustic cost and sum of the log
            priors of the senones on the arc's best segment (0 without priors).
        final_graph, final_acoustic, final_prior: ``(num_states,)`` (``inf`` graph = not final).
    """

    num_states: int
    start: int
    src: np.ndarray
    dst: np.ndarray
    word: np.ndarray
    graph: np.ndarray
    acoustic: np.ndarray
    prior: np.ndarray
    final_graph: np.ndarray
    final_acoustic: np.ndarray
    final_prior: np.ndarray


@dataclass
class _Pairs:
    """Segments alive at one frame: (anchor, state) with the costs of the best segment."""

    anchor: np.ndarray
    state: np.ndarray
    graph: np.ndarray
    acoustic: np.ndarray
    prior: np.ndarray

    @staticmethod
    def concat(parts: Sequence[_Pairs]) -> _Pairs:
        return _Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in _PAIR_FIELDS))

    def take(self, index: np.ndarray) -> _Pairs:
        return _Pairs(*(getattr(self, f)[index] for f in _PAIR_FIELDS))

    def __len__(self) -> int:
        return len(self.state)


_PAIR_FIELDS = ("anchor", "state", "graph", "acoustic", "prior")


class _WordGraphBuilder:
    """Runs the frame-synchronous segment search of :func:`word_graph` over one raw lattice.

    With ``anchor_words=False`` word arcs are ordinary arcs (a plain Viterbi pass, used to get
    forward costs and the states of each frame). With :meth:`set_pruning`, pairs and word-graph
    arcs whose best complete path costs more than ``limit`` are dropped as they appear.
    """

    def __init__(self, lat: LatticeArrays, arc_prior: np.ndarray, anchor_words: bool = True) -> None:
        self.lat = lat
        self.arc_prior = arc_prior
        self.anchor_words = anchor_words
        emitting = lat.ilabel != 0
        # per-kind CSR: arcs of state s of that kind are index[first[s]:first[s+1]]
        self.csr = {kind: self._csr(emitting == kind) for kind in (True, False)}
        self.arcs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.alpha: np.ndarray | None = None
        self.beta: np.ndarray | None = None
        self.limit = np.inf

    def _csr(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.flatnonzero(mask)
        counts = np.bincount(self.lat.src[index], minlength=self.lat.num_states)
        return index, np.concatenate([[0], np.cumsum(counts)])

    def arcs_of(self, states: np.ndarray, emitting: bool) -> tuple[np.ndarray, np.ndarray]:
        """``(rep, arc)``: the arcs of one kind out of ``states``; ``rep`` indexes ``states``."""
        index, first = self.csr[emitting]
        counts = first[states + 1] - first[states]
        rep = np.repeat(np.arange(len(states)), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return rep, index[first[states][rep] + within]

    def set_pruning(self, alpha: np.ndarray, beta: np.ndarray, beam: float) -> None:
        self.alpha, self.beta = alpha, beta
        self.limit = float(beta[self.lat.start]) + beam + 1e-6

    def prune(self, pairs: _Pairs) -> _Pairs:
        if self.alpha is None:
            return pairs
        total = self.alpha[pairs.anchor] + pairs.graph + pairs.acoustic + self.beta[pairs.state]
        return pairs.take(np.flatnonzero(total <= self.limit))

    def expand(self, pairs: _Pairs, emitting: bool) -> _Pairs:
        """Follow the arcs of one kind out of every pair; word arcs are recorded and start anchors."""
        rep, arc = self.arcs_of(pairs.state, emitting)
        lat = self.lat
        graph = pairs.graph[rep] + lat.graph[arc]
        acoustic = pairs.acoustic[rep] + lat.acoustic[arc]
        prior = pairs.prior[rep] + self.arc_prior[arc]
        dst = lat.dst[arc]
        word = lat.olabel[arc] != 0 if self.anchor_words else np.zeros(len(arc), dtype=bool)
        if word.any():
            record = word.copy()
            if self.alpha is not None:
                total = self.alpha[pairs.anchor[rep]] + graph + acoustic + self.beta[dst]
                record &= total <= self.limit
            self.arcs.append((pairs.anchor[rep][record], arc[record], graph[record], acoustic[record], prior[record]))
        # after a word arc a new segment starts at its destination (the arc's costs went into the record)
        return self.prune(_Pairs(
            anchor=np.where(word, dst, pairs.anchor[rep]), state=dst,
            graph=np.where(word, 0.0, graph), acoustic=np.where(word, 0.0, acoustic),
            prior=np.where(word, 0.0, prior),
        ))

    def best(self, pairs: _Pairs, prefer: np.ndarray | None = None) -> tuple[_Pairs, np.ndarray]:
        """Cheapest pair per (anchor, state); ties keep the lower ``prefer`` (e.g. existing pairs)."""
        key = pairs.anchor * self.lat.num_states + pairs.state
        cost = pairs.graph + pairs.acoustic
        # stable sorts from the last key to the first (twice as fast as np.lexsort here)
        order = np.argsort(prefer, kind="stable") if prefer is not None else np.arange(len(key))
        order = order[np.argsort(cost[order], kind="stable")]
        order = order[np.argsort(key[order], kind="stable")]
        keep = np.ones(len(order), dtype=bool)
        keep[1:] = key[order][1:] != key[order][:-1]
        chosen = order[keep]
        return pairs.take(chosen), chosen

    def closure(self, pairs: _Pairs) -> _Pairs:
        """Relax the arcs that consume no frame until no pair improves (Bellman-Ford within a frame)."""
        current, frontier = pairs, pairs
        for _ in range(self.lat.num_states + 1):
            new = self.expand(frontier, emitting=False)
            if len(new) == 0:
                return current
            merged = _Pairs.concat([current, new])
            is_new = np.concatenate([np.zeros(len(current)), np.ones(len(new))])
            current, chosen = self.best(merged, prefer=is_new)
            frontier = current.take(np.flatnonzero(is_new[chosen] == 1))
            if len(frontier) == 0:
                return current
        raise AsrKdError("lattice has a cycle of arcs that consume no frame (internal error)")

    def run(self, num_frames: int) -> list[_Pairs]:
        """All frames; returns the pairs alive at each frame (the last entry: after the last frame)."""
        zero = np.zeros(1)
        start = np.array([self.lat.start])
        frames = [self.closure(_Pairs(start, start, zero, zero, zero))]
        for _ in range(num_frames):
            pairs, _ = self.best(self.expand(frames[-1], emitting=True))
            frames.append(self.closure(pairs))
        return frames


def _forward_backward(lat: LatticeArrays, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Best cost from the start (``alpha``) and to the end (``beta``) of every raw state ``(num_states,)``."""
    viterbi = _WordGraphBuilder(lat, np.zeros(len(lat.src)), anchor_words=False)
    frames = viterbi.run(num_frames)
    alpha = np.full(lat.num_states, np.inf)
    for pairs in frames:  # a token belongs to one frame; one pair per state there (a single anchor)
        alpha[pairs.state] = pairs.graph + pairs.acoustic
    cost = lat.graph + lat.acoustic
    beta = np.full(lat.num_states, np.inf)
    last = frames[-1].state
    beta[last] = (lat.final_graph + lat.final_acoustic)[last]
    for t in range(len(frames) - 1, -1, -1):
        states = frames[t].state
        if t + 1 < len(frames):
            _, arc = viterbi.arcs_of(states, emitting=True)
            np.minimum.at(beta, lat.src[arc], cost[arc] + beta[lat.dst[arc]])
        _, arc = viterbi.arcs_of(states, emitting=False)
        for _ in range(len(states) + 1):  # arcs within a frame: relax until nothing improves
            before = beta[states].copy()
            np.minimum.at(beta, lat.src[arc], cost[arc] + beta[lat.dst[arc]])
            if np.array_equal(before, beta[states]):
                break
    return alpha, beta


def word_graph(
    lat: LatticeArrays, num_frames: int, log_priors: np.ndarray | None = None, beam: float | None = None
) -> WordGraph:
    """The word graph of a raw lattice of ``num_frames`` frames (see the module docstring).

    Args:
        lat: the raw lattice.
        num_frames: frames the search consumed (the lattice's number of emitting steps).
        log_priors: ``(num_senones,)`` log senone priors; each emitting arc adds the log prior of
            its senone to the ``prior`` sums (so that the prior scale can be changed afterwards).
        beam: keep only segments and arcs on complete paths within ``beam`` of the best path
            (forward-backward costs of a Viterbi pass first); ``None`` keeps everything.
    """
    arc_prior = np.zeros(len(lat.src))
    if log_priors is not None:
        emitting = lat.ilabel != 0
        arc_prior[emitting] = np.asarray(log_priors, dtype=np.float64)[lat.ilabel[emitting] - 1]
    builder = _WordGraphBuilder(lat, arc_prior)
    if beam is not None:
        builder.set_pruning(*_forward_backward(lat, num_frames), beam)
    pairs = builder.run(num_frames)[-1]
    final = np.isfinite(lat.final_graph[pairs.state])
    ends = pairs.take(np.flatnonzero(final))
    ends = _Pairs(ends.anchor, ends.state, ends.graph + lat.final_graph[ends.state],
                  ends.acoustic + lat.final_acoustic[ends.state], ends.prior)
    if len(ends) == 0:
        raise AsrKdError("lattice has no complete path (no final state after the last frame)")
    return _assemble(lat, builder, ends)


def _assemble(lat: LatticeArrays, builder: _WordGraphBuilder, ends: _Pairs) -> WordGraph:
    """Renumber anchors, keep the best copy of each (anchor, word arc), attach final costs."""
    if builder.arcs:
        anchor, arc, graph, acoustic, prior = (np.concatenate(parts) for parts in zip(*builder.arcs))
    else:
        anchor = arc = np.empty(0, dtype=np.int64)
        graph = acoustic = prior = np.empty(0)
    # a pair can improve during a closure after its word arcs were recorded: keep the best record
    key = anchor * len(lat.src) + arc
    order = np.lexsort((graph + acoustic, key))
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = key[order][1:] != key[order][:-1]
    sel = order[keep]
    anchor, arc, graph, acoustic, prior = anchor[sel], arc[sel], graph[sel], acoustic[sel], prior[sel]
    # per anchor the cheapest final segment
    best_end, _ = builder.best(_Pairs(ends.anchor, np.zeros_like(ends.anchor), ends.graph, ends.acoustic, ends.prior))
    nodes, inverse = np.unique(np.concatenate([[lat.start], anchor, lat.dst[arc], best_end.anchor]),
                               return_inverse=True)
    n_arcs = len(arc)
    src_id, dst_id = inverse[1 : 1 + n_arcs], inverse[1 + n_arcs : 1 + 2 * n_arcs]
    end_id = inverse[1 + 2 * n_arcs :]
    final_graph = np.full(len(nodes), np.inf)
    final_acoustic = np.zeros(len(nodes))
    final_prior = np.zeros(len(nodes))
    final_graph[end_id], final_acoustic[end_id], final_prior[end_id] = (
        best_end.graph, best_end.acoustic, best_end.prior)
    return WordGraph(
        num_states=len(nodes), start=int(inverse[0]), src=src_id, dst=dst_id, word=lat.olabel[arc],
        graph=graph, acoustic=acoustic, prior=prior,
        final_graph=final_graph, final_acoustic=final_acoustic, final_prior=final_prior,
    )


@dataclass(frozen=True)
class PathCosts:
    """One N-best entry as word ids: ``graph`` cost, scaled ``acoustic`` cost, ``prior`` sum."""

    word_ids: tuple[int, ...]
    graph: float
    acoustic: float
    prior: float


def _fst(graph: WordGraph, ilabel: np.ndarray) -> kaldifst.StdVectorFst:
    cost = (graph.graph + graph.acoustic).astype(np.float32)
    final = (graph.final_graph + graph.final_acoustic).astype(np.float32)
    return arrays_to_fst(FstArrays(graph.start, graph.num_states, graph.src.astype(np.int32),
                                   graph.dst.astype(np.int32), ilabel.astype(np.int32),
                                   graph.word.astype(np.int32), cost, final))


def _levels(num_states: int, src: np.ndarray, dst: np.ndarray) -> Iterator[np.ndarray]:
    """Arcs of a DAG in Kahn's levels: each batch leaves states whose predecessors are all done."""
    indegree = np.bincount(dst, minlength=num_states)
    order = np.argsort(src, kind="stable")
    first = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=num_states))])
    frontier = np.flatnonzero(indegree == 0)
    while len(frontier):
        counts = first[frontier + 1] - first[frontier]
        arcs = order[np.repeat(first[frontier], counts) + np.arange(counts.sum())
                     - np.repeat(np.cumsum(counts) - counts, counts)]
        yield arcs
        np.subtract.at(indegree, dst[arcs], 1)
        reached = np.unique(dst[arcs])
        frontier = reached[indegree[reached] == 0]


def _best_costs(num_states: int, src: np.ndarray, dst: np.ndarray, cost: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Cheapest path cost from the ``start`` costs ``(num_states,)`` to every state of a DAG."""
    best = start.copy()
    for arcs in _levels(num_states, src, dst):
        np.minimum.at(best, dst[arcs], best[src[arcs]] + cost[arcs])
    return best


def prune_word_graph(graph: WordGraph, beam: float) -> WordGraph:
    """Drop the arcs and final costs of ``graph`` whose best complete path costs more than best + ``beam``."""
    cost = graph.graph + graph.acoustic
    final = graph.final_graph + graph.final_acoustic
    start = np.full(graph.num_states, np.inf)
    start[graph.start] = 0.0
    alpha = _best_costs(graph.num_states, graph.src, graph.dst, cost, start)
    beta = _best_costs(graph.num_states, graph.dst, graph.src, cost, final)
    limit = beta[graph.start] + beam
    keep = alpha[graph.src] + cost + beta[graph.dst] <= limit
    final_graph = np.where(alpha + final <= limit, graph.final_graph, np.inf)
    return WordGraph(graph.num_states, graph.start, graph.src[keep], graph.dst[keep], graph.word[keep],
                     graph.graph[keep], graph.acoustic[keep], graph.prior[keep],
                     final_graph, graph.final_acoustic, graph.final_prior)


def cheapest_path(graph: WordGraph, arc_cost: np.ndarray, final_cost: np.ndarray) -> PathCosts:
    """The cheapest path of the (acyclic) word graph under other arc and final costs, with its original costs.

    Args:
        arc_cost: ``(E,)`` cost of each arc under some scoring setting.
        final_cost: ``(num_states,)`` final cost of each state under that setting.
    """
    best = np.full(graph.num_states, np.inf)
    best[graph.start] = 0.0
    back = np.full(graph.num_states, -1)
    for arcs in _levels(graph.num_states, graph.src, graph.dst):
        candidate = best[graph.src[arcs]] + arc_cost[arcs]
        np.minimum.at(best, graph.dst[arcs], candidate)
        winners = arcs[candidate == best[graph.dst[arcs]]]
        back[graph.dst[winners]] = winners
    end = int(np.argmin(best + final_cost))
    path = []
    state = end
    while state != graph.start:
        path.append(back[state])
        state = graph.src[back[state]]
    arcs = np.asarray(path[::-1], dtype=np.int64)
    return PathCosts(
        word_ids=tuple(int(w) for w in graph.word[arcs]),
        graph=float(graph.graph[arcs].sum() + graph.final_graph[end]),
        acoustic=float(graph.acoustic[arcs].sum() + graph.final_acoustic[end]),
        prior=float(graph.prior[arcs].sum() + graph.final_prior[end]),
    )


def nbest(graph: WordGraph, n: int, beam: float) -> list[PathCosts]:
    """The ``n`` cheapest distinct word sequences of ``graph`` (within ``beam`` of the best), best first."""
    acceptor = _fst(graph, graph.word)
    det = kaldifst.determinize(acceptor, weight=f"{beam:g}")
    paths = kaldifst.convert_nbest_to_vector(kaldifst.shortest_path(det, n=n))
    by_arc = _fst(graph, np.arange(1, len(graph.src) + 1))
    # compose needs a side known to be sorted; without it OpenFst returns an empty result
    kaldifst.arcsort(by_arc, sort_type="olabel")
    out = []
    for path in paths:
        _, _, words, _ = kaldifst.get_linear_symbol_sequence(path)
        best = kaldifst.shortest_path(kaldifst.compose(by_arc, kaldifst.make_linear_acceptor(words)))
        ok, arc_ids, _, _ = kaldifst.get_linear_symbol_sequence(best)
        if not ok:
            raise AsrKdError("word sequence of the N-best list not found in its word graph (internal error)")
        arcs = np.asarray(arc_ids, dtype=np.int64) - 1
        end = int(graph.dst[arcs[-1]]) if len(arcs) else graph.start
        out.append(PathCosts(
            word_ids=tuple(int(w) for w in words),
            graph=float(graph.graph[arcs].sum() + graph.final_graph[end]),
            acoustic=float(graph.acoustic[arcs].sum() + graph.final_acoustic[end]),
            prior=float(graph.prior[arcs].sum() + graph.final_prior[end]),
        ))
    out.sort(key=lambda p: p.graph + p.acoustic)
    return out

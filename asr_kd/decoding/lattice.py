"""Raw state-level lattices as arrays, and from them N-best lists that keep graph and acoustic costs apart.

The lattice search (:mod:`asr_kd.decoding.lattice_search`) returns Kaldi's raw lattice: one
state per surviving token (frame, HCLG state), arcs weighted by the pair (graph cost, scaled
acoustic cost). Kaldi turns it into a word lattice with ``DeterminizeLatticePruned`` in the
lattice semiring; the Python bindings have no lattice-semiring determinization, composition or
epsilon removal (kaldifst binds those for the tropical ``StdVectorFst`` only, and OpenFst's
tropical ``RmEpsilon`` over a whole raw lattice costs a closure per state). So the word-level
structure is built in steps, each exact:

1. :func:`raw_lattice` puts any raw lattice in canonical order: states frame by frame (the frame
   of a state is the number of frame-consuming arcs on any path to it), within a frame in
   topological order of the epsilon arcs (Kaldi's ``TopSortTokens``); unreachable states go.
   A graph with an epsilon cycle can make a frame's epsilon arcs cyclic: such a lattice is
   marked ``acyclic=False`` and the passes below repeat over its cyclic frames until nothing
   changes (cycles of positive cost never improve a path, so they converge).
2. :func:`word_graph`, epsilon removal over the word labels: a *segment* starts at an
   *anchor* (the start state, or the destination of an arc with a word) and follows arcs without
   a word. Per (anchor, state) pair only the cheapest segment is kept, with its graph cost,
   acoustic cost and prior sum carried alongside. Every word arc reached from (anchor ``u``,
   state ``s``) becomes a word-graph arc ``u -> dst`` whose costs are the segment's plus the
   arc's. Paths of the word graph are the raw lattice's paths with the best segment between
   consecutive words, so the best word-graph path of every word sequence is its best raw path,
   with the same split of costs. Pairs and arcs whose best complete path is more than ``beam``
   above the best path are dropped as they appear (forward-backward costs of the raw lattice).
3. :func:`nbest`: the word graph has no epsilons; its tropical determinization (pruned at
   ``beam``, OpenFst through kaldifst) gives the ``n`` best distinct word sequences, and a
   search of the word graph constrained to each sequence recovers the arcs of its best path,
   hence its exact (graph, acoustic, prior) costs.
   :func:`cheapest_path` is the word graph's best path under any other per-arc cost.

The passes that visit every arc or segment are compiled with numba: a 16 s utterance's lattice
at lattice beam 6 has ~100k arcs and ~10^6 (anchor, state) pairs. Word-graph nodes keep the
canonical order of their raw states, so an acyclic lattice gives a word graph whose arcs all go
from a lower to a higher node: one pass in node order is a shortest-path computation.

The N-best list is what LM-weight / insertion-penalty / prior-scale sweeps and LM rescoring work
on (:mod:`asr_kd.decoding.nbest`), as Kaldi's N-best rescoring does.
"""

from __future__ import annotations

from dataclasses import dataclass

import kaldifst
import numba
import numpy as np

from asr_kd.decoding.fst_arrays import FstArrays, arrays_to_fst
from asr_kd.utils.errors import AsrKdError


class NoPathError(AsrKdError):
    """The search kept no path to the end of the utterance (beam too small, or a graph/score mismatch).

    A typed error, so that :func:`asr_kd.decoding.store_decoding.decode_store` counts such an
    utterance as failed without reading message text, while any other error stops decoding.
    """


@dataclass(frozen=True)
class RawLattice:
    """A raw state-level lattice in canonical order (see :func:`raw_lattice`); arcs sorted by source.

    Attributes:
        start, num_states: start state (always 0) and number of states.
        state_frame: ``(num_states,)`` frame of each state (0 = before the first frame), non-decreasing.
        frame_start: ``(num_frames + 2,)`` states of frame ``f`` are ``frame_start[f]:frame_start[f+1]``.
        src, dst, ilabel, olabel: ``(A,)`` arcs (``ilabel`` = senone + 1 on the arcs that consume
            a frame, 0 on the others; ``olabel`` = word id, 0 = none).
        graph, acoustic: ``(A,)`` float64 costs; the acoustic cost is ``-scaled log-likelihood``
            as the search saw it (already multiplied by the acoustic scale).
        final_graph, final_acoustic: ``(num_states,)`` final costs (``inf`` graph cost = not final).
        arc_start: ``(num_states + 1,)`` first arc of each state.
        num_frames: frames of the utterance.
        reached_final: the search ended in a final state of the graph (else, as in Kaldi, every
            last-frame state was made final at cost 0).
        cyclic_frames: ``(num_frames + 1,)`` bool, frames whose epsilon arcs form a cycle.
    """

    num_states: int
    state_frame: np.ndarray
    frame_start: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    ilabel: np.ndarray
    olabel: np.ndarray
    graph: np.ndarray
    acoustic: np.ndarray
    final_graph: np.ndarray
    final_acoustic: np.ndarray
    arc_start: np.ndarray
    num_frames: int
    reached_final: bool
    cyclic_frames: np.ndarray
    start: int = 0

    @property
    def num_arcs(self) -> int:
        return len(self.src)

    @property
    def acyclic(self) -> bool:
        return not self.cyclic_frames.any()


@numba.njit(cache=True)
def _csr(num_states: int, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, index)``: arcs of state ``s`` are ``index[first[s]:first[s+1]]`` (input order kept)."""
    first = np.zeros(num_states + 1, dtype=np.int64)
    for a in range(len(src)):
        first[src[a] + 1] += 1
    for s in range(num_states):
        first[s + 1] += first[s]
    fill = first[:-1].copy()
    index = np.empty(len(src), dtype=np.int64)
    for a in range(len(src)):
        index[fill[src[a]]] = a
        fill[src[a]] += 1
    return first, index


@numba.njit(cache=True)
def _canonical_order(num_states: int, start: int, src: np.ndarray, dst: np.ndarray, ilabel: np.ndarray):
    """Step 1 of the module docstring: ``(ok, order (new -> old), frame of each new state, cyclic frames)``.

    ``ok`` is False when two paths reach a state after different numbers of frames (not a lattice).
    """
    first, index = _csr(num_states, src)
    frame = np.full(num_states, -1, dtype=np.int64)
    frame[start] = 0
    queue = np.empty(num_states, dtype=np.int64)
    queue[0] = start
    head, tail, last = 0, 1, 0
    while head < tail:
        s = queue[head]
        head += 1
        for k in range(first[s], first[s + 1]):
            a = index[k]
            f = frame[s] + (1 if ilabel[a] != 0 else 0)
            d = dst[a]
            if frame[d] < 0:
                frame[d] = f
                last = max(last, f)
                queue[tail] = d
                tail += 1
            elif frame[d] != f:
                return False, queue[:0], frame[:0], np.zeros(0, dtype=np.bool_)
    # bucket the reachable states by frame (index order within a frame)
    frame_start = np.zeros(last + 2, dtype=np.int64)
    for s in range(num_states):
        if frame[s] >= 0:
            frame_start[frame[s] + 1] += 1
    for f in range(last + 1):
        frame_start[f + 1] += frame_start[f]
    fill = frame_start[:-1].copy()
    bucket = np.empty(tail, dtype=np.int64)
    for s in range(num_states):
        if frame[s] >= 0:
            bucket[fill[frame[s]]] = s
            fill[frame[s]] += 1
    # Kahn's algorithm on the epsilon arcs of each frame
    indegree = np.zeros(num_states, dtype=np.int64)
    for s in range(num_states):
        if frame[s] >= 0:
            for k in range(first[s], first[s + 1]):
                if ilabel[index[k]] == 0:
                    indegree[dst[index[k]]] += 1
    order = np.empty(tail, dtype=np.int64)
    placed = np.zeros(num_states, dtype=np.bool_)
    cyclic = np.zeros(last + 1, dtype=np.bool_)
    n = 0
    for f in range(last + 1):
        frame_first = n
        for b in range(frame_start[f], frame_start[f + 1]):
            if indegree[bucket[b]] == 0:
                order[n] = bucket[b]
                placed[bucket[b]] = True
                n += 1
        k = frame_first
        while k < n:
            s = order[k]
            k += 1
            for j in range(first[s], first[s + 1]):
                a = index[j]
                if ilabel[a] == 0:
                    d = dst[a]
                    indegree[d] -= 1
                    if indegree[d] == 0 and not placed[d]:
                        order[n] = d
                        placed[d] = True
                        n += 1
        if n - frame_first < frame_start[f + 1] - frame_start[f]:
            cyclic[f] = True
            for b in range(frame_start[f], frame_start[f + 1]):
                if not placed[bucket[b]]:
                    order[n] = bucket[b]
                    placed[bucket[b]] = True
                    n += 1
    new_frame = np.empty(tail, dtype=np.int64)
    for i in range(tail):
        new_frame[i] = frame[order[i]]
    return True, order, new_frame, cyclic


@numba.njit(cache=True)
def _renumber_arcs(num_states: int, order: np.ndarray, src: np.ndarray, dst: np.ndarray):
    """Arc permutation (sorted by new source, input order within a state) and new ``(src, dst, arc_start)``."""
    new_id = np.full(num_states, -1, dtype=np.int64)
    for i in range(len(order)):
        new_id[order[i]] = i
    first, index = _csr(num_states, src)
    perm = np.empty(len(src), dtype=np.int64)
    new_src = np.empty(len(src), dtype=np.int64)
    new_dst = np.empty(len(src), dtype=np.int64)
    arc_start = np.zeros(len(order) + 1, dtype=np.int64)
    n = 0
    for i in range(len(order)):
        s = order[i]
        arc_start[i] = n
        for k in range(first[s], first[s + 1]):
            perm[n] = index[k]
            new_src[n] = i
            new_dst[n] = new_id[dst[index[k]]]
            n += 1
    arc_start[len(order)] = n
    return perm[:n], new_src[:n], new_dst[:n], arc_start


def raw_lattice(start: int, num_states: int, src: np.ndarray, dst: np.ndarray, ilabel: np.ndarray,
                olabel: np.ndarray, graph: np.ndarray, acoustic: np.ndarray, final_graph: np.ndarray,
                final_acoustic: np.ndarray, reached_final: bool) -> RawLattice:
    """A :class:`RawLattice` from the arcs of any raw lattice (renumbered as the module docstring says).

    Raises:
        AsrKdError: some state is reached after different numbers of frames (not a raw lattice).
    """
    src, dst, ilabel = (np.asarray(x, dtype=np.int64) for x in (src, dst, ilabel))
    ok, order, frame, cyclic = _canonical_order(num_states, start, src, dst, ilabel)
    if not ok:
        raise AsrKdError("not a raw lattice: a state is reached after different numbers of frames")
    perm, new_src, new_dst, arc_start = _renumber_arcs(num_states, order, src, dst)
    num_frames = int(frame[-1]) if len(frame) else 0
    frame_start = np.searchsorted(frame, np.arange(num_frames + 2)).astype(np.int64)
    return RawLattice(
        num_states=len(order), state_frame=frame, frame_start=frame_start, src=new_src, dst=new_dst,
        ilabel=ilabel[perm], olabel=np.asarray(olabel, dtype=np.int64)[perm],
        graph=np.asarray(graph, dtype=np.float64)[perm], acoustic=np.asarray(acoustic, dtype=np.float64)[perm],
        final_graph=np.asarray(final_graph, dtype=np.float64)[order],
        final_acoustic=np.asarray(final_acoustic, dtype=np.float64)[order],
        arc_start=arc_start, num_frames=num_frames, reached_final=bool(reached_final), cyclic_frames=cyclic)


@numba.njit(cache=True)
def _forward(start: int, arc_start: np.ndarray, dst: np.ndarray, cost: np.ndarray, frame_start: np.ndarray,
             cyclic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest cost from ``start`` to every state and the arc that reaches it (-1: none / the start).

    States must be in canonical order (arcs of a frame go to the same or a later frame, an acyclic
    frame's epsilon arcs forward); a cyclic frame is relaxed until nothing improves.
    """
    num_states = len(arc_start) - 1
    best = np.full(num_states, np.inf)
    back = np.full(num_states, -1, dtype=np.int64)
    best[start] = 0.0
    for f in range(len(frame_start) - 1):
        changed = True
        while changed:
            changed = False
            for s in range(frame_start[f], frame_start[f + 1]):
                if best[s] == np.inf:
                    continue
                for a in range(arc_start[s], arc_start[s + 1]):
                    c = best[s] + cost[a]
                    if c < best[dst[a]]:
                        best[dst[a]] = c
                        back[dst[a]] = a
                        if dst[a] < frame_start[f + 1]:
                            changed = True
            changed = changed and cyclic[f]
    return best, back


@numba.njit(cache=True)
def _backward(arc_start: np.ndarray, dst: np.ndarray, cost: np.ndarray, final_cost: np.ndarray,
              frame_start: np.ndarray, cyclic: np.ndarray) -> np.ndarray:
    """Cheapest cost from every state to the end (its final cost or onwards); order as :func:`_forward`."""
    best = final_cost.copy()
    for f in range(len(frame_start) - 2, -1, -1):
        changed = True
        while changed:
            changed = False
            for s in range(frame_start[f + 1] - 1, frame_start[f] - 1, -1):
                for a in range(arc_start[s], arc_start[s + 1]):
                    c = cost[a] + best[dst[a]]
                    if c < best[s]:
                        best[s] = c
                        changed = True
            changed = changed and cyclic[f]
    return best


@numba.njit(cache=True)
def grow_rows(table: np.ndarray, needed: int) -> np.ndarray:
    """``table`` (rows = items) with room for at least ``needed`` rows (doubling: amortised O(1))."""
    if table.shape[0] >= needed:
        return table
    out = np.empty((max(needed, 2 * table.shape[0]), table.shape[1]), dtype=table.dtype)
    out[: table.shape[0]] = table
    return out


@numba.njit(cache=True)
def _segments(start: int, num_frames: int, frame_start: np.ndarray, cyclic: np.ndarray, src: np.ndarray,
              dst: np.ndarray, olabel: np.ndarray, arc_costs: np.ndarray, final_costs: np.ndarray,
              alpha: np.ndarray, beta: np.ndarray, limit: float):
    """Step 2 of the module docstring over a canonical raw lattice.

    ``arc_costs`` ``(A, 3)``: graph, acoustic, prior of each arc; ``final_costs`` ``(S, 2)``.
    Returns ``(word_anchor, word_arc, word_costs (n, 3), end_anchor, end_costs (m, 3))``: one
    record per surviving (anchor, word arc) segment and per surviving final segment (a cyclic
    frame may repeat records; keep the cheapest).
    """
    num_states = len(alpha)
    in_first, in_index = _csr(num_states, dst)
    pair_anchor = np.empty((4096, 1), dtype=np.int64)
    pair_cost = np.empty((4096, 4), dtype=np.float64)  # total, graph, acoustic, prior
    block_first = np.zeros(num_states, dtype=np.int64)
    block_count = np.zeros(num_states, dtype=np.int64)
    slot = np.full(num_states, -1, dtype=np.int64)  # anchor -> its pair in the block being built
    rec_anchor = np.empty((1024, 2), dtype=np.int64)  # anchor, arc
    rec_cost = np.empty((1024, 3), dtype=np.float64)
    nrec = 0
    pair_anchor[0, 0] = start
    pair_cost[0] = 0.0
    block_count[start] = 1
    npairs = 1
    for f in range(len(frame_start) - 1):
        changed = True
        while changed:
            changed = False
            for s in range(frame_start[f], frame_start[f + 1]):
                if s == start:
                    continue
                first = npairs
                is_anchor = False
                for k in range(in_first[s], in_first[s + 1]):
                    a = in_index[k]
                    p = src[a]
                    cost = arc_costs[a, 0] + arc_costs[a, 1]
                    pb = block_first[p]
                    pair_anchor = grow_rows(pair_anchor, npairs + block_count[p] + 1)
                    pair_cost = grow_rows(pair_cost, npairs + block_count[p] + 1)
                    rec_anchor = grow_rows(rec_anchor, nrec + block_count[p])
                    rec_cost = grow_rows(rec_cost, nrec + block_count[p])
                    for q in range(pb, pb + block_count[p]):
                        u = pair_anchor[q, 0]
                        total = pair_cost[q, 0] + cost
                        if alpha[u] + total + beta[s] > limit:
                            continue
                        if olabel[a] != 0:
                            rec_anchor[nrec, 0] = u
                            rec_anchor[nrec, 1] = a
                            for c in range(3):
                                rec_cost[nrec, c] = pair_cost[q, c + 1] + arc_costs[a, c]
                            nrec += 1
                            is_anchor = True
                            continue
                        j = slot[u]
                        if j < 0:
                            j = npairs
                            npairs += 1
                            slot[u] = j
                            pair_anchor[j, 0] = u
                        elif total >= pair_cost[j, 0]:
                            continue
                        pair_cost[j, 0] = total
                        for c in range(3):
                            pair_cost[j, c + 1] = pair_cost[q, c + 1] + arc_costs[a, c]
                if is_anchor and alpha[s] + beta[s] <= limit:
                    j = slot[s]
                    if j < 0:
                        j = npairs
                        npairs += 1
                        slot[s] = j
                        pair_anchor[j, 0] = s
                    pair_cost[j] = 0.0
                for q in range(first, npairs):
                    slot[pair_anchor[q, 0]] = -1
                # a cyclic frame repeats until no state's segments change
                same = npairs - first == block_count[s]
                if same and cyclic[f]:
                    old = block_first[s]
                    for q in range(npairs - first):
                        if (pair_anchor[first + q, 0] != pair_anchor[old + q, 0]
                                or pair_cost[first + q, 0] != pair_cost[old + q, 0]):
                            same = False
                            break
                if not same:
                    changed = True
                block_first[s] = first
                block_count[s] = npairs - first
            changed = changed and cyclic[f]
    count = 0
    last_first, last_end = frame_start[num_frames], frame_start[num_frames + 1]
    for s in range(last_first, last_end):
        count += block_count[s]
    end_anchor = np.empty(count, dtype=np.int64)
    end_cost = np.empty((count, 3), dtype=np.float64)
    n = 0
    for s in range(last_first, last_end):
        fin = final_costs[s, 0] + final_costs[s, 1]
        if fin == np.inf:
            continue
        for q in range(block_first[s], block_first[s] + block_count[s]):
            u = pair_anchor[q, 0]
            if alpha[u] + pair_cost[q, 0] + fin > limit:
                continue
            end_anchor[n] = u
            end_cost[n, 0] = pair_cost[q, 1] + final_costs[s, 0]
            end_cost[n, 1] = pair_cost[q, 2] + final_costs[s, 1]
            end_cost[n, 2] = pair_cost[q, 3]
            n += 1
    return rec_anchor[:nrec, 0].copy(), rec_anchor[:nrec, 1].copy(), rec_cost[:nrec], end_anchor[:n], end_cost[:n]


@dataclass(frozen=True)
class WordGraph:
    """Epsilon-free word graph (see the module docstring). Costs per arc and per final state.

    Attributes:
        num_states, start: nodes are anchors of the raw lattice in its canonical order,
            renumbered ``0..num_states-1``.
        src, dst, word: ``(E,)`` arcs, sorted by ``src`` then ``word``.
        graph, acoustic, prior: ``(E,)`` graph cost, scaled acoustic cost and sum of the log
            priors of the senones on the arc's best segment (0 without priors).
        final_graph, final_acoustic, final_prior: ``(num_states,)`` (``inf`` graph = not final).
        acyclic: every arc goes from a lower to a higher node (so node order is topological).
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
    acyclic: bool

    def _csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(arc_start, frame_start, cyclic)`` for :func:`_forward` / :func:`_backward` (one 'frame')."""
        arc_start = np.searchsorted(self.src, np.arange(self.num_states + 1)).astype(np.int64)
        return arc_start, np.array([0, self.num_states], dtype=np.int64), np.array([not self.acyclic])


def word_graph(lat: RawLattice, log_priors: np.ndarray | None = None, beam: float | None = None) -> WordGraph:
    """The word graph of a raw lattice (see the module docstring).

    Args:
        lat: the raw lattice.
        log_priors: ``(num_senones,)`` log senone priors; each emitting arc adds the log prior of
            its senone to the ``prior`` sums (so that the prior scale can be changed afterwards).
        beam: keep only segments and arcs on complete paths within ``beam`` of the best path;
            ``None`` keeps everything.

    Raises:
        NoPathError: the lattice has no complete path.
    """
    arc_costs = np.zeros((lat.num_arcs, 3))
    arc_costs[:, 0], arc_costs[:, 1] = lat.graph, lat.acoustic
    if log_priors is not None:
        emitting = lat.ilabel != 0
        arc_costs[emitting, 2] = np.asarray(log_priors, dtype=np.float64)[lat.ilabel[emitting] - 1]
    final_costs = np.stack([lat.final_graph, lat.final_acoustic], axis=1)
    cost = lat.graph + lat.acoustic
    final = lat.final_graph + lat.final_acoustic
    final[lat.state_frame != lat.num_frames] = np.inf  # a path ends after the last frame
    alpha, _ = _forward(lat.start, lat.arc_start, lat.dst, cost, lat.frame_start, lat.cyclic_frames)
    beta = _backward(lat.arc_start, lat.dst, cost, final, lat.frame_start, lat.cyclic_frames)
    if not np.isfinite(beta[lat.start]):
        raise NoPathError("lattice has no complete path (no final state after the last frame)")
    limit = float(beta[lat.start]) + (np.inf if beam is None else beam + 1e-6)
    final_costs[~np.isfinite(final), 0] = np.inf
    anchor, arc, costs, end_anchor, end_costs = _segments(
        lat.start, lat.num_frames, lat.frame_start, lat.cyclic_frames, lat.src, lat.dst, lat.olabel, arc_costs,
        final_costs, alpha, beta, limit)
    return _assemble(lat, anchor, arc, costs, end_anchor, end_costs)


def _first_of_each(key: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Index of the cheapest entry of each distinct ``key`` (the first on ties), ordered by key."""
    order = np.lexsort((cost, key))
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = key[order][1:] != key[order][:-1]
    return order[keep]


def _assemble(lat: RawLattice, anchor: np.ndarray, arc: np.ndarray, costs: np.ndarray, end_anchor: np.ndarray,
              end_costs: np.ndarray) -> WordGraph:
    """Renumber anchors, keep the best copy of each (anchor, word arc), attach final costs."""
    sel = _first_of_each(anchor * max(lat.num_arcs, 1) + arc, costs[:, 0] + costs[:, 1])
    anchor, arc, costs = anchor[sel], arc[sel], costs[sel]
    best_end = _first_of_each(end_anchor, end_costs[:, 0] + end_costs[:, 1])
    nodes, inverse = np.unique(np.concatenate([[lat.start], anchor, lat.dst[arc], end_anchor[best_end]]),
                               return_inverse=True)
    n = len(arc)
    src, dst, end = inverse[1 : 1 + n], inverse[1 + n : 1 + 2 * n], inverse[1 + 2 * n :]
    by_src = np.lexsort((lat.olabel[arc], src))
    final = np.full((len(nodes), 3), [np.inf, 0.0, 0.0])
    final[end] = end_costs[best_end]
    return WordGraph(
        num_states=len(nodes), start=int(inverse[0]), src=src[by_src], dst=dst[by_src], word=lat.olabel[arc][by_src],
        graph=costs[by_src, 0], acoustic=costs[by_src, 1], prior=costs[by_src, 2],
        final_graph=final[:, 0], final_acoustic=final[:, 1], final_prior=final[:, 2],
        acyclic=bool(np.all(src < dst)) and lat.acyclic,
    )


@dataclass(frozen=True)
class PathCosts:
    """One N-best entry as word ids: ``graph`` cost, scaled ``acoustic`` cost, ``prior`` sum."""

    word_ids: tuple[int, ...]
    graph: float
    acoustic: float
    prior: float


def _path_costs(graph: WordGraph, arcs: np.ndarray, end: int) -> PathCosts:
    return PathCosts(
        word_ids=tuple(int(w) for w in graph.word[arcs]),
        graph=float(graph.graph[arcs].sum() + graph.final_graph[end]),
        acoustic=float(graph.acoustic[arcs].sum() + graph.final_acoustic[end]),
        prior=float(graph.prior[arcs].sum() + graph.final_prior[end]),
    )


def _fst(graph: WordGraph, ilabel: np.ndarray) -> kaldifst.StdVectorFst:
    cost = (graph.graph + graph.acoustic).astype(np.float32)
    final = (graph.final_graph + graph.final_acoustic).astype(np.float32)
    return arrays_to_fst(FstArrays(graph.start, graph.num_states, graph.src.astype(np.int32),
                                   graph.dst.astype(np.int32), ilabel.astype(np.int32),
                                   graph.word.astype(np.int32), cost, final))


def prune_word_graph(graph: WordGraph, beam: float) -> WordGraph:
    """Drop the arcs and final costs of ``graph`` whose best complete path costs more than best + ``beam``."""
    arc_start, frame_start, cyclic = graph._csr()
    cost = graph.graph + graph.acoustic
    final = graph.final_graph + graph.final_acoustic
    alpha, _ = _forward(graph.start, arc_start, graph.dst, cost, frame_start, cyclic)
    beta = _backward(arc_start, graph.dst, cost, final, frame_start, cyclic)
    limit = beta[graph.start] + beam
    keep = alpha[graph.src] + cost + beta[graph.dst] <= limit
    final_graph = np.where(alpha + final <= limit, graph.final_graph, np.inf)
    return WordGraph(graph.num_states, graph.start, graph.src[keep], graph.dst[keep], graph.word[keep],
                     graph.graph[keep], graph.acoustic[keep], graph.prior[keep],
                     final_graph, graph.final_acoustic, graph.final_prior, graph.acyclic)


def cheapest_path(graph: WordGraph, arc_cost: np.ndarray, final_cost: np.ndarray) -> PathCosts:
    """The cheapest path of the word graph under other arc and final costs, with its original costs.

    Args:
        arc_cost: ``(E,)`` cost of each arc under some scoring setting.
        final_cost: ``(num_states,)`` final cost of each state under that setting.
    """
    arc_start, frame_start, cyclic = graph._csr()
    best, back = _forward(graph.start, arc_start, graph.dst, np.asarray(arc_cost, dtype=np.float64), frame_start,
                          cyclic)
    end = int(np.argmin(best + final_cost))
    path = []
    state = end
    while state != graph.start:
        path.append(back[state])
        state = graph.src[back[state]]
    return _path_costs(graph, np.asarray(path[::-1], dtype=np.int64), end)


@numba.njit(cache=True)
def _best_path_with_words(start: int, arc_start: np.ndarray, dst: np.ndarray, word: np.ndarray, cost: np.ndarray,
                          final_cost: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Arcs of the cheapest path that spells ``words`` (empty if none; ``[-1]`` for the empty path missing).

    Every word-graph arc carries one word, so the position in ``words`` grows by one per arc: a
    layered search (layer ``k`` = nodes reached after ``k`` words) over the arcs of each node
    that carry the next word (a binary search: arcs are sorted by word within a node), in any
    graph, cyclic or not.
    """
    num_states = len(arc_start) - 1
    node = np.empty(1024, dtype=np.int64)
    total = np.empty(1024, dtype=np.float64)
    prev = np.empty(1024, dtype=np.int64)
    via = np.empty(1024, dtype=np.int64)
    slot = np.full(num_states, -1, dtype=np.int64)
    node[0], total[0], prev[0], via[0] = start, 0.0, -1, -1
    first, end, n = 0, 1, 1
    for k in range(len(words)):
        for e in range(first, end):
            u = node[e]
            lo, hi = arc_start[u], arc_start[u + 1]
            a = lo + np.searchsorted(word[lo:hi], words[k])
            while a < hi and word[a] == words[k]:
                c = total[e] + cost[a]
                j = slot[dst[a]]
                if j < 0:
                    if n == len(node):
                        node, total = np.concatenate((node, node)), np.concatenate((total, total))
                        prev, via = np.concatenate((prev, prev)), np.concatenate((via, via))
                    j = n
                    n += 1
                    slot[dst[a]] = j
                    node[j] = dst[a]
                    total[j] = np.inf
                if c < total[j]:
                    total[j], prev[j], via[j] = c, e, a
                a += 1
        for e in range(end, n):
            slot[node[e]] = -1
        first, end = end, n
    best, best_e = np.inf, -1
    for e in range(first, end):
        if total[e] + final_cost[node[e]] < best:
            best, best_e = total[e] + final_cost[node[e]], e
    if best_e < 0:
        return np.full(1, -1, dtype=np.int64)
    arcs = np.empty(len(words), dtype=np.int64)
    e = best_e
    for k in range(len(words) - 1, -1, -1):
        arcs[k] = via[e]
        e = prev[e]
    return arcs


def nbest(graph: WordGraph, n: int, beam: float) -> list[PathCosts]:
    """The ``n`` cheapest distinct word sequences of ``graph`` (within ``beam`` of the best), best first."""
    det = kaldifst.determinize(_fst(graph, graph.word), weight=f"{beam:g}")
    paths = kaldifst.convert_nbest_to_vector(kaldifst.shortest_path(det, n=n))
    arc_start, _, _ = graph._csr()
    cost = graph.graph + graph.acoustic
    final = graph.final_graph + graph.final_acoustic
    out = []
    for path in paths:
        _, _, words, _ = kaldifst.get_linear_symbol_sequence(path)
        arcs = _best_path_with_words(graph.start, arc_start, graph.dst, graph.word, cost, final,
                                     np.asarray(words, dtype=np.int64))
        if len(arcs) and arcs[0] < 0:
            raise AsrKdError("word sequence of the N-best list not found in its word graph (internal error)")
        out.append(_path_costs(graph, arcs, int(graph.dst[arcs[-1]]) if len(arcs) else graph.start))
    out.sort(key=lambda p: p.graph + p.acoustic)
    return out


@dataclass(frozen=True)
class LatticePath:
    """A path of a raw lattice: its arcs, words and unscaled cost parts."""

    arcs: np.ndarray
    word_ids: tuple[int, ...]
    graph: float
    acoustic: float


def lattice_best_path(lat: RawLattice, graph_scale: float = 1.0, acoustic_scale: float = 1.0) -> LatticePath:
    """The cheapest complete path of ``lat`` under ``graph_scale * graph + acoustic_scale * acoustic``.

    (Kaldi's ``lattice-scale`` + ``lattice-best-path``; ``graph`` and ``acoustic`` of the result
    are the path's own, unscaled sums.)

    Raises:
        NoPathError: the lattice has no complete path.
    """
    cost = graph_scale * lat.graph + acoustic_scale * lat.acoustic
    best, back = _forward(lat.start, lat.arc_start, lat.dst, cost, lat.frame_start, lat.cyclic_frames)
    total = best + graph_scale * lat.final_graph + acoustic_scale * lat.final_acoustic
    total[lat.state_frame != lat.num_frames] = np.inf
    end = int(np.argmin(total))
    if not np.isfinite(total[end]):
        raise NoPathError("lattice has no complete path (no final state after the last frame)")
    path = []
    state = end
    while state != lat.start:
        path.append(back[state])
        state = lat.src[back[state]]
    arcs = np.asarray(path[::-1], dtype=np.int64)
    return LatticePath(arcs, tuple(int(w) for w in lat.olabel[arcs] if w != 0),
                       float(lat.graph[arcs].sum() + lat.final_graph[end]),
                       float(lat.acoustic[arcs].sum() + lat.final_acoustic[end]))

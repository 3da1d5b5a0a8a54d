"""Lattice-generating Viterbi beam search with the semantics of Kaldi's ``LatticeFasterDecoder``.

Why our own search: the Python bindings offer ``FasterDecoder`` (best path, beam + max-active)
and ``LatticeSimpleDecoder`` (lattices, but no max-active: 14x slower than the best path on a
4.6M-state trigram HCLG), the ``kaldi-hmm-gmm`` wheel's ``LatticeFasterDecoder`` binds no lattice
output and rejects kaldifst graphs, k2 does not install, and nothing else on PyPI searches a
Kaldi HCLG with lattices. The search is compiled with numba rather than written as a C++
extension: the same speed for this kind of loop (arrays, no allocation in the inner loops), no
compiler or build step at ``pip install`` time, and ``cache=True`` keeps the compiled code
between runs (compile times in benchmarks/README.md).

What it does, per utterance of ``T`` frames, as ``LatticeFasterDecoderTpl`` (Kaldi
``src/decoder/lattice-faster-decoder.cc``):

* a token per (frame, graph state) with its best cost ``tot_cost`` from the start and, once
  pruned, its ``extra_cost`` (how much worse than the best complete path through it the best
  path through it is); forward links carry (ilabel, olabel, graph cost, acoustic cost);
* per frame, ``GetCutoff``: the cutoff is ``best + beam``, tightened to the ``max_active``-th
  best cost or loosened to the ``min_active``-th, with the adaptive beam (``beam_delta``) for
  the next frame's online cutoff, first estimated from the best token's arcs;
  ``ProcessEmitting`` (arcs with ``ilabel > 0``, acoustic cost ``-scores[t, ilabel - 1]``) then
  ``ProcessNonemitting`` (epsilon arcs within the frame to a fixed point, links regenerated when
  a token improves);
* every ``prune_interval`` frames ``PruneActiveTokens`` (``PruneForwardLinks`` back through the
  frames whose extra costs changed by more than ``lattice_beam * prune_scale``, then
  ``PruneTokensForFrame``), so memory follows the lattice, not the search; tokens and links live
  in growable arrays that are compacted once pruning has freed more than they hold;
* at the end ``FinalizeDecoding``: final costs (every last-frame token counts as final when none
  is), ``PruneForwardLinksFinal`` and a full backward pruning at ``lattice_beam``.

The output is Kaldi's raw state-level lattice (``GetRawLattice``) as a :class:`RawLattice`.
Costs are float64 in the search; each link keeps the float32 graph weight and float32 acoustic
cost it was made from, so a path's cost recomputed from its arcs is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from asr_kd.decoding.lattice import RawLattice, grow_rows, raw_lattice
from asr_kd.decoding.search_graph import SearchGraph

INT_MAX = 2**31 - 1
#: Status codes of :func:`_search`.
OK, NO_TOKENS, EPSILON_LOOP = 0, 1, 2
# token columns (int32 table: its size is what the search's memory traffic is made of): state (-1 = pruned),
# emitting links (first, count), epsilon links (first, count), and the state's arcs (emitting from, epsilon
# from, end), copied from the graph when the token is made: one random access to the graph's offsets per
# token instead of one per pass over the frame
_STATE, _EMIT, _EMIT_N, _EPS, _EPS_N, _ARCS, _EPS_ARCS, _ARCS_END = 0, 1, 2, 3, 4, 5, 6, 7
# token columns (float64 table): best cost from the start, extra cost
_COST, _EXTRA = 0, 1
# link columns: int32 (destination token, ilabel, olabel), float32 (graph cost, acoustic cost)
_DST, _ILABEL, _OLABEL = 0, 1, 2
_GRAPH, _ACOUSTIC = 0, 1
#: Counters returned with each lattice (max_*_held: table rows in use at the busiest moment).
STAT_NAMES = ("tokens_created", "links_created", "max_tokens_held", "max_links_held", "compactions",
              "pruning_passes", "frames_pruned")


@dataclass(frozen=True)
class SearchOptions:
    """Kaldi ``LatticeFasterDecoderConfig`` (costs in the units of the scaled scores).

    Attributes:
        beam: search beam.
        max_active, min_active: bounds on the tokens expanded per frame (``INT_MAX``: none).
        lattice_beam: links and tokens whose best path is worse than the best by more are pruned.
        prune_interval: frames between two pruning passes.
        beam_delta: added to the beam when max/min-active sets the cutoff (Kaldi's 0.5).
        prune_scale: the pruning passes stop going back once extra costs change by less than
            ``prune_scale * lattice_beam`` (Kaldi's 0.1).
    """

    beam: float = 16.0
    max_active: int = INT_MAX
    min_active: int = 200
    lattice_beam: float = 10.0
    prune_interval: int = 25
    beam_delta: float = 0.5
    prune_scale: float = 0.1


@numba.njit(cache=True)
def _grow1(values: np.ndarray, needed: int) -> np.ndarray:
    if len(values) >= needed:
        return values
    out = np.empty(max(needed, 2 * len(values)), dtype=values.dtype)
    out[: len(values)] = values
    return out


@numba.njit(cache=True)
def _cutoff(costs: np.ndarray, best: float, beam: float, max_active: int, min_active: int,
            beam_delta: float) -> tuple[float, float]:
    """Kaldi's ``GetCutoff``: ``(cutoff, adaptive_beam)`` of one frame's token costs."""
    beam_cutoff = best + beam
    if max_active == INT_MAX and min_active == 0:
        return beam_cutoff, beam
    n = len(costs)
    if n > max_active:
        max_active_cutoff = np.partition(costs, max_active)[max_active]
        if max_active_cutoff < beam_cutoff:
            return max_active_cutoff, max_active_cutoff - best + beam_delta
    min_active_cutoff = np.inf
    if n > min_active:
        min_active_cutoff = best if min_active == 0 else np.partition(costs, min_active)[min_active]
    if min_active_cutoff > beam_cutoff:
        return min_active_cutoff, min_active_cutoff - best + beam_delta
    return beam_cutoff, beam


@numba.njit(cache=True)
def _prune_links_of(i: int, first_col: int, count_col: int, tok_i: np.ndarray, tok_f: np.ndarray,
                    link_i: np.ndarray, link_f: np.ndarray, lattice_beam: float) -> tuple[float, int]:
    """Excise the links of one block of token ``i`` above ``lattice_beam``; ``(best link extra cost, excised)``."""
    first, n = tok_i[i, first_col], tok_i[i, count_col]
    cost = tok_f[i, _COST]
    best = np.inf
    out = first
    for k in range(first, first + n):
        j = link_i[k, _DST]
        extra = tok_f[j, _EXTRA] + ((cost + np.float64(link_f[k, _ACOUSTIC]) + np.float64(link_f[k, _GRAPH]))
                                    - tok_f[j, _COST])
        if extra > lattice_beam:
            continue
        if extra < 0.0:  # rounding; the difference in brackets is >= 0
            extra = 0.0
        if extra < best:
            best = extra
        if out != k:
            link_i[out] = link_i[k]
            link_f[out] = link_f[k]
        out += 1
    tok_i[i, count_col] = out - first
    return best, n - (out - first)


@numba.njit(cache=True)
def _prune_forward_links(first: int, end: int, tok_i: np.ndarray, tok_f: np.ndarray, link_i: np.ndarray,
                         link_f: np.ndarray, lattice_beam: float, delta: float,
                         cyclic: bool) -> tuple[bool, bool, int]:
    """Kaldi's ``PruneForwardLinks`` over tokens ``first..end-1`` of one frame.

    Returns ``(extra costs changed, links pruned, links excised)``. Tokens are in topological
    order of their epsilon links (:func:`_sort_frame`) and visited last first, so each link sees
    its destination's final extra cost; Kaldi sweeps until nothing changes, which only a
    ``cyclic`` frame needs.
    """
    changed, any_change, excised = True, False, 0
    while changed:
        changed = False
        for i in range(end - 1, first - 1, -1):
            if tok_i[i, _STATE] < 0:
                continue
            eps_best, eps_cut = _prune_links_of(i, _EPS, _EPS_N, tok_i, tok_f, link_i, link_f, lattice_beam)
            emit_best, emit_cut = _prune_links_of(i, _EMIT, _EMIT_N, tok_i, tok_f, link_i, link_f, lattice_beam)
            excised += eps_cut + emit_cut
            extra = min(eps_best, emit_best)
            if abs(extra - tok_f[i, _EXTRA]) > delta:
                changed = True
            tok_f[i, _EXTRA] = extra
        any_change = any_change or changed
        changed = changed and cyclic
    return any_change, excised > 0, excised


@numba.njit(cache=True)
def _prune_tokens(first: int, end: int, tok_i: np.ndarray, tok_f: np.ndarray) -> tuple[int, int]:
    """Kaldi's ``PruneTokensForFrame``: tokens with infinite extra cost go; ``(tokens, links) freed``."""
    tokens = links = 0
    for i in range(first, end):
        if tok_i[i, _STATE] >= 0 and tok_f[i, _EXTRA] == np.inf:
            links += tok_i[i, _EMIT_N] + tok_i[i, _EPS_N]
            tok_i[i, _STATE] = -1
            tok_i[i, _EMIT_N] = 0
            tok_i[i, _EPS_N] = 0
            tokens += 1
    return tokens, links


@numba.njit(cache=True)
def _approx_equal(a: float, b: float, tolerance: float) -> bool:
    """Kaldi's ``ApproxEqual`` (relative)."""
    if a == b:
        return True
    diff = abs(a - b)
    if diff == np.inf or diff != diff:
        return False
    return diff <= tolerance * (abs(a) + abs(b))


@numba.njit(cache=True)
def _compact(num_frames: int, frame_start: np.ndarray, ntok: int, nlink: int, live_links: int,
             tok_i: np.ndarray, tok_f: np.ndarray, link_i: np.ndarray,
             link_f: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Drop pruned tokens and dead links; renumber (order kept). Frames ``0..num_frames`` exist.

    Returns ``(ntok, link_i, link_f)``; tokens move in place, links into new tables
    (their blocks are not in token order, so an in-place move could overwrite live links).
    """
    new_index = np.full(ntok, -1, dtype=np.int64)
    pos = 0
    for f in range(num_frames + 1):
        first, end = frame_start[f], frame_start[f + 1]
        frame_start[f] = pos
        for i in range(first, end):
            if tok_i[i, _STATE] >= 0:
                new_index[i] = pos
                pos += 1
    frame_start[num_frames + 1] = pos
    new_link_i = np.empty((max(2 * live_links, 1024), 3), dtype=link_i.dtype)
    new_link_f = np.empty((max(2 * live_links, 1024), 2), dtype=link_f.dtype)
    out = 0
    for i in range(ntok):
        j = new_index[i]
        if j < 0:
            continue
        for first_col, count_col in ((_EPS, _EPS_N), (_EMIT, _EMIT_N)):
            first, n = tok_i[i, first_col], tok_i[i, count_col]
            tok_i[i, first_col] = out
            for k in range(first, first + n):
                new_link_i[out, _DST] = new_index[link_i[k, _DST]]
                new_link_i[out, _ILABEL] = link_i[k, _ILABEL]
                new_link_i[out, _OLABEL] = link_i[k, _OLABEL]
                new_link_f[out] = link_f[k]
                out += 1
        tok_i[j] = tok_i[i]
        tok_f[j] = tok_f[i]
    return pos, new_link_i, new_link_f


@numba.njit(cache=True)
def _sort_frame(first: int, end: int, links_from: int, nlink: int, tok_i: np.ndarray, tok_f: np.ndarray,
                link_i: np.ndarray) -> bool:
    """Renumber tokens ``first..end-1`` (one frame) in topological order of their epsilon links (Kaldi's
    ``TopSortTokens``), so that pruning, which visits them newest first, meets every epsilon successor
    before its predecessor and settles in one sweep. Links ``links_from..nlink-1`` (all links into this
    frame: the last emitting phase's and this frame's epsilon links) get the new numbers.

    Returns False when the frame's epsilon links form a cycle (those tokens keep their order at the end).
    """
    n = end - first
    indegree = np.zeros(n, dtype=np.int64)
    for i in range(first, end):
        for k in range(tok_i[i, _EPS], tok_i[i, _EPS] + tok_i[i, _EPS_N]):
            indegree[link_i[k, _DST] - first] += 1
    order = np.empty(n, dtype=np.int64)
    count = 0
    for i in range(first, end):
        if indegree[i - first] == 0:
            order[count] = i
            count += 1
    head = 0
    while head < count:
        i = order[head]
        head += 1
        for k in range(tok_i[i, _EPS], tok_i[i, _EPS] + tok_i[i, _EPS_N]):
            d = link_i[k, _DST] - first
            indegree[d] -= 1
            if indegree[d] == 0:
                order[count] = d + first
                count += 1
    acyclic = count == n
    if not acyclic:
        for i in range(first, end):
            if indegree[i - first] > 0:
                order[count] = i
                count += 1
    in_order = True
    for p in range(n):
        if order[p] != first + p:
            in_order = False
            break
    if in_order:
        return acyclic
    position = np.empty(n, dtype=np.int64)
    for p in range(n):
        position[order[p] - first] = p
    rows_i = tok_i[first:end].copy()
    rows_f = tok_f[first:end].copy()
    for p in range(n):
        tok_i[first + p] = rows_i[order[p] - first]
        tok_f[first + p] = rows_f[order[p] - first]
    for k in range(links_from, nlink):
        d = link_i[k, _DST]
        if first <= d < end:
            link_i[k, _DST] = first + position[d - first]
    return acyclic


@numba.njit(cache=True)
def _new_token(j: int, state: int, cost: float, tok_i: np.ndarray, tok_f: np.ndarray, offsets: np.ndarray) -> None:
    tok_i[j, _STATE] = state
    tok_i[j, _EMIT:_ARCS] = 0
    tok_i[j, _ARCS] = offsets[2 * state]
    tok_i[j, _EPS_ARCS] = offsets[2 * state + 1]
    tok_i[j, _ARCS_END] = offsets[2 * state + 2]
    tok_f[j, _COST] = cost
    tok_f[j, _EXTRA] = 0.0


@numba.njit(cache=True, inline="always")
def _reach(state: int, cost: float, ntok: int, state_token: np.ndarray, tok_i: np.ndarray, tok_f: np.ndarray,
           offsets: np.ndarray) -> tuple[int, int, bool]:
    """The frame's token of ``state`` reached at ``cost``: created (rows already grown) or improved.

    Returns ``(token, ntok after it, whether the token is new or cheaper)``.
    """
    j = state_token[state]
    if j < 0:
        _new_token(ntok, state, cost, tok_i, tok_f, offsets)
        state_token[state] = ntok
        return ntok, ntok + 1, True
    if cost < tok_f[j, _COST]:
        tok_f[j, _COST] = cost
        return j, ntok, True
    return j, ntok, False


@numba.njit(cache=True)
def _search(offsets, arcs, final, start, scores, beam, max_active, min_active, beam_delta, lattice_beam,
            prune_interval, prune_delta, state_token):
    """The search of the module docstring over ``scores`` ``(T, num_senones)`` (scaled log-likelihoods).

    ``state_token`` ``(num_states,)`` int32 must be all -1 (a scratch map, state -> token of the
    frame being built; left all -1 again). Returns ``(status, reached_final, (num_states, lattice
    arrays), stats)``; :class:`LatticeSearch` wraps it.
    """
    num_frames = scores.shape[0]
    tok_i = np.zeros((4096, 8), dtype=np.int32)
    tok_f = np.zeros((4096, 2), dtype=np.float64)
    link_i = np.zeros((8192, 3), dtype=np.int32)
    link_f = np.zeros((8192, 2), dtype=np.float32)
    stack = np.empty(1024, dtype=np.int64)
    frame_start = np.zeros(num_frames + 2, dtype=np.int64)
    must_prune_links = np.ones(num_frames + 1, dtype=np.bool_)
    must_prune_tokens = np.ones(num_frames + 1, dtype=np.bool_)
    cyclic = np.zeros(num_frames + 1, dtype=np.bool_)  # the frame's epsilon links form a cycle
    stats = np.zeros(len(STAT_NAMES), dtype=np.int64)
    ntok, nlink = 1, 0
    dead_tokens, dead_links = 0, 0
    created_tokens = created_links = 0  # before the last compaction
    created_from = links_from = 0  # ntok / nlink right after it
    _new_token(0, start, 0.0, tok_i, tok_f, offsets)
    state_token[start] = 0
    cutoff = beam  # frame 0's epsilon closure, as InitDecoding's ProcessNonemitting(beam)
    links_into_frame = 0  # first link made by the last emitting phase
    status = OK
    t = 0
    while True:
        # ---- ProcessNonemitting for frame t: tokens frame_start[t]..ntok-1 ----
        first = frame_start[t]
        top = 0
        for i in range(first, ntok):
            if tok_i[i, _ARCS_END] > tok_i[i, _EPS_ARCS]:
                stack = _grow1(stack, top + 1)
                stack[top] = i
                top += 1
        pops = 0
        pop_limit = 1000 * (ntok - first) + 100000
        while top > 0:
            top -= 1
            i = stack[top]
            pops += 1
            if pops > pop_limit:  # costs kept falling: a negative-cost epsilon cycle
                status = EPSILON_LOOP
                break
            cur = tok_f[i, _COST]
            if cur >= cutoff:
                continue
            e0, e1 = tok_i[i, _EPS_ARCS], tok_i[i, _ARCS_END]
            tok_i = grow_rows(tok_i, ntok + e1 - e0)
            tok_f = grow_rows(tok_f, ntok + e1 - e0)
            link_i = grow_rows(link_i, nlink + e1 - e0)
            link_f = grow_rows(link_f, nlink + e1 - e0)
            stack = _grow1(stack, top + e1 - e0)
            dead_links += tok_i[i, _EPS_N]  # revisited: its links are made again below
            block = nlink
            for k in range(e0, e1):
                graph_cost = arcs[k].weight
                tot = cur + np.float64(graph_cost)
                if tot >= cutoff:
                    continue
                j, ntok, changed = _reach(arcs[k].nextstate, tot, ntok, state_token, tok_i, tok_f, offsets)
                link_i[nlink, _DST] = j
                link_i[nlink, _ILABEL] = 0
                link_i[nlink, _OLABEL] = arcs[k].olabel
                link_f[nlink, _GRAPH] = graph_cost
                link_f[nlink, _ACOUSTIC] = 0.0
                nlink += 1
                if changed and tok_i[j, _ARCS_END] > tok_i[j, _EPS_ARCS]:
                    stack[top] = j
                    top += 1
            tok_i[i, _EPS] = block
            tok_i[i, _EPS_N] = nlink - block
        for i in range(first, ntok):
            state_token[tok_i[i, _STATE]] = -1
        if status == OK:
            cyclic[t] = not _sort_frame(first, ntok, links_into_frame, nlink, tok_i, tok_f, link_i)
        frame_start[t + 1] = ntok
        stats[2] = max(stats[2], ntok)
        stats[3] = max(stats[3], nlink)
        if status != OK or t == num_frames:
            break

        # ---- PruneActiveTokens every prune_interval frames (t frames decoded) ----
        if t % prune_interval == 0 and t > 0:
            stats[5] += 1
            for f in range(t - 1, -1, -1):
                if must_prune_links[f]:
                    stats[6] += 1
                    changed_extra, pruned, excised = _prune_forward_links(
                        frame_start[f], frame_start[f + 1], tok_i, tok_f, link_i, link_f, lattice_beam, prune_delta,
                        cyclic[f])
                    dead_links += excised
                    if changed_extra and f > 0:
                        must_prune_links[f - 1] = True
                    if pruned:
                        must_prune_tokens[f] = True
                    must_prune_links[f] = False
                if f + 1 < t and must_prune_tokens[f + 1]:
                    freed_tokens, freed_links = _prune_tokens(frame_start[f + 1], frame_start[f + 2], tok_i, tok_f)
                    dead_tokens += freed_tokens
                    dead_links += freed_links
                    must_prune_tokens[f + 1] = False
            live_links = nlink - dead_links
            if (dead_links > live_links and dead_links > 65536) or (dead_tokens > ntok - dead_tokens
                                                                   and dead_tokens > 16384):
                created_tokens += ntok - created_from
                created_links += nlink - links_from
                ntok, link_i, link_f = _compact(t, frame_start, ntok, nlink, live_links, tok_i, tok_f,
                                                   link_i, link_f)
                nlink = live_links
                created_from, links_from = ntok, nlink
                dead_links = dead_tokens = 0
                stats[4] += 1

        # ---- ProcessEmitting: frame t -> t + 1 ----
        first, end = frame_start[t], frame_start[t + 1]
        best, best_tok = np.inf, -1
        costs = tok_f[first:end, _COST].copy()
        for i in range(first, end):
            if tok_f[i, _COST] < best:
                best, best_tok = tok_f[i, _COST], i
        cur_cutoff, adaptive_beam = _cutoff(costs, best, beam, max_active, min_active, beam_delta)
        bound = 0
        for i in range(first, end):
            if tok_f[i, _COST] <= cur_cutoff:
                bound += tok_i[i, _EPS_ARCS] - tok_i[i, _ARCS]
        tok_i = grow_rows(tok_i, ntok + bound)
        tok_f = grow_rows(tok_f, ntok + bound)
        link_i = grow_rows(link_i, nlink + bound)
        link_f = grow_rows(link_f, nlink + bound)
        scores_t = scores[t]
        links_into_frame = nlink
        next_cutoff = np.inf
        if best_tok >= 0:
            for k in range(tok_i[best_tok, _ARCS], tok_i[best_tok, _EPS_ARCS]):
                tot = best + np.float64(arcs[k].weight) - np.float64(scores_t[arcs[k].ilabel - 1])
                if tot + adaptive_beam < next_cutoff:
                    next_cutoff = tot + adaptive_beam
        next_first = ntok
        for i in range(first, end):
            cur = tok_f[i, _COST]
            block = nlink
            if cur <= cur_cutoff:
                for k in range(tok_i[i, _ARCS], tok_i[i, _EPS_ARCS]):
                    ilabel = arcs[k].ilabel
                    acoustic = -scores_t[ilabel - 1]
                    graph_cost = arcs[k].weight
                    tot = cur + np.float64(acoustic) + np.float64(graph_cost)
                    if tot >= next_cutoff:
                        continue
                    if tot + adaptive_beam < next_cutoff:
                        next_cutoff = tot + adaptive_beam
                    j, ntok, _ = _reach(arcs[k].nextstate, tot, ntok, state_token, tok_i, tok_f, offsets)
                    link_i[nlink, _DST] = j
                    link_i[nlink, _ILABEL] = ilabel
                    link_i[nlink, _OLABEL] = arcs[k].olabel
                    link_f[nlink, _GRAPH] = graph_cost
                    link_f[nlink, _ACOUSTIC] = acoustic
                    nlink += 1
            tok_i[i, _EMIT] = block
            tok_i[i, _EMIT_N] = nlink - block
        t += 1
        if ntok == next_first:  # no token survived into the new frame
            status = NO_TOKENS
            break
        cutoff = next_cutoff
    stats[0] = created_tokens + ntok - created_from
    stats[1] = created_links + nlink - links_from
    if status != OK:
        return status, False, (0, _lattice_arrays(0, 0)), stats

    # ---- FinalizeDecoding: final costs, PruneForwardLinksFinal, then every frame at delta 0 ----
    first, end = frame_start[num_frames], frame_start[num_frames + 1]
    best_cost = best_final = np.inf
    for i in range(first, end):
        best_cost = min(best_cost, tok_f[i, _COST])
        best_final = min(best_final, tok_f[i, _COST] + np.float64(final[tok_i[i, _STATE]]))
    reached_final = best_final != np.inf
    final_best = best_final if reached_final else best_cost
    changed = True
    while changed:
        changed = False
        for i in range(end - 1, first - 1, -1):
            extra = tok_f[i, _COST] - final_best
            if reached_final:
                extra += np.float64(final[tok_i[i, _STATE]])
            eps_best, _ = _prune_links_of(i, _EPS, _EPS_N, tok_i, tok_f, link_i, link_f, lattice_beam)
            extra = min(extra, eps_best)
            if extra > lattice_beam:
                extra = np.inf
            if not _approx_equal(tok_f[i, _EXTRA], extra, 1e-5):
                changed = True
            tok_f[i, _EXTRA] = extra
        changed = changed and cyclic[num_frames]
    for f in range(num_frames - 1, -1, -1):
        _prune_forward_links(frame_start[f], frame_start[f + 1], tok_i, tok_f, link_i, link_f, lattice_beam, 0.0,
                             cyclic[f])
        _prune_tokens(frame_start[f + 1], frame_start[f + 2], tok_i, tok_f)
    _prune_tokens(frame_start[0], frame_start[1], tok_i, tok_f)
    return status, reached_final, _raw_lattice(num_frames, frame_start, tok_i, tok_f, link_i, link_f, final,
                                               reached_final), stats


@numba.njit(cache=True)
def _lattice_arrays(num_states: int, num_arcs: int):
    """Output tables: (src, dst, ilabel, olabel, graph, acoustic, final_graph) of ``num_states`` / ``num_arcs``."""
    return (np.zeros(num_arcs, dtype=np.int64), np.zeros(num_arcs, dtype=np.int64), np.zeros(num_arcs, dtype=np.int64),
            np.zeros(num_arcs, dtype=np.int64), np.zeros(num_arcs, dtype=np.float64),
            np.zeros(num_arcs, dtype=np.float64), np.full(num_states, np.inf, dtype=np.float64))


@numba.njit(cache=True)
def _raw_lattice(num_frames, frame_start, tok_i, tok_f, link_i, link_f, final, reached_final):
    """Kaldi's ``GetRawLattice``: surviving tokens become states (frame by frame), links arcs."""
    ntok = frame_start[num_frames + 1]
    new_index = np.full(ntok, -1, dtype=np.int64)
    num_states = num_arcs = 0
    for i in range(ntok):
        if tok_i[i, _STATE] >= 0:
            new_index[i] = num_states
            num_states += 1
            num_arcs += tok_i[i, _EPS_N] + tok_i[i, _EMIT_N]
    out = _lattice_arrays(num_states, num_arcs)
    src, dst, ilabel, olabel, graph, acoustic, final_graph = out
    a = 0
    for f in range(num_frames + 1):
        for i in range(frame_start[f], frame_start[f + 1]):
            state = new_index[i]
            if state < 0:
                continue
            for first_col, count_col in ((_EPS, _EPS_N), (_EMIT, _EMIT_N)):
                first = tok_i[i, first_col]
                for k in range(first, first + tok_i[i, count_col]):
                    src[a] = state
                    dst[a] = new_index[link_i[k, _DST]]
                    ilabel[a] = link_i[k, _ILABEL]
                    olabel[a] = link_i[k, _OLABEL]
                    graph[a] = link_f[k, _GRAPH]
                    acoustic[a] = link_f[k, _ACOUSTIC]
                    a += 1
            if f == num_frames:
                final_graph[state] = np.float64(final[tok_i[i, _STATE]]) if reached_final else 0.0
    return num_states, out


class LatticeSearch:
    """Lattice search over one :class:`SearchGraph`; holds the per-graph scratch map (reuse it across utterances)."""

    def __init__(self, graph: SearchGraph, options: SearchOptions = SearchOptions()) -> None:
        if options.beam <= 0 or options.lattice_beam <= 0 or options.prune_interval < 1:
            raise ValueError(f"beam, lattice beam and prune interval must be positive: {options}")
        if graph.num_arcs >= 2**31:
            raise ValueError(f"{graph.num_arcs} arcs: the search's token table holds 32-bit arc offsets")
        self.graph = graph
        self.options = options
        self._state_token = np.full(graph.num_states, -1, dtype=np.int32)
        self.last_stats: dict[str, int] = {}

    def __call__(self, scores: np.ndarray) -> tuple[int, RawLattice | None]:
        """Search ``scores`` ``(T, num_senones)`` float32 (acoustic scale applied, ``T >= 1``).

        Returns ``(status, lattice)``: :data:`OK` and the raw lattice, or :data:`NO_TOKENS` /
        :data:`EPSILON_LOOP` and ``None``. Counters of the search go to :attr:`last_stats`.
        """
        o, g = self.options, self.graph
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        status, reached_final, tables, stats = _search(
            g.offsets, g.arcs, g.final, g.start, scores, float(o.beam), int(o.max_active), int(o.min_active),
            float(o.beam_delta), float(o.lattice_beam), int(o.prune_interval), float(o.lattice_beam * o.prune_scale),
            self._state_token)
        self.last_stats = dict(zip(STAT_NAMES, (int(x) for x in stats)))
        num_states, (src, dst, ilabel, olabel, graph, acoustic, final_graph) = tables
        if status != OK or num_states == 0:
            return NO_TOKENS if status == OK else status, None
        return OK, raw_lattice(0, num_states, src, dst, ilabel, olabel, graph, acoustic, final_graph,
                               np.zeros(num_states), bool(reached_final))

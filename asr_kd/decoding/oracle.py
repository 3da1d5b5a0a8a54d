"""Exact Viterbi search over a (small) decoding graph in pure numpy: the test oracle for the decoder.

Frame-synchronous token passing without pruning: each frame relaxes all emitting arcs at once
(vectorized), then the epsilon arcs until nothing improves; back-pointers recover the words.
Costs follow the decoder's convention: arc weight - ``acoustic_scale * M[t, ilabel - 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asr_kd.decoding.fst_arrays import FstArrays


@dataclass(frozen=True)
class OracleResult:
    """Best complete path: output labels (word ids, epsilons removed) and total cost."""

    olabels: tuple[int, ...]
    cost: float


def _best_per_destination(dst: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Positions (into ``dst``) of the cheapest candidate for each distinct destination."""
    order = np.lexsort((candidate, dst))
    first = np.ones(len(order), dtype=bool)
    first[1:] = dst[order][1:] != dst[order][:-1]
    return order[first]


def viterbi(graph: FstArrays, loglik: np.ndarray, acoustic_scale: float = 1.0) -> OracleResult:
    """Exact best path of ``graph`` (input labels ``senone + 1``) for ``loglik`` ``(T, num_senones)``."""
    num_frames = loglik.shape[0]
    eps = np.flatnonzero(graph.ilabel == 0)
    emit = np.flatnonzero(graph.ilabel > 0)
    # back[t][s] = arc that last improved state s at frame t; eps_back marks epsilon moves.
    backs: list[np.ndarray] = []
    eps_backs: list[np.ndarray] = []

    def closure(cost: np.ndarray) -> np.ndarray:
        """Relax epsilon arcs in place until no state improves (Bellman-Ford)."""
        eps_back = np.full(graph.num_states, -1)
        for _ in range(graph.num_states):
            if len(eps) == 0:
                break
            candidate = cost[graph.src[eps]] + graph.weight[eps]
            best = _best_per_destination(graph.dst[eps], candidate)
            targets = graph.dst[eps][best]
            better = candidate[best] < cost[targets] - 1e-9
            if not better.any():
                break
            cost[targets[better]] = candidate[best][better]
            eps_back[targets[better]] = eps[best][better]
        return eps_back

    cost = np.full(graph.num_states, np.inf)
    cost[graph.start] = 0.0
    backs.append(np.full(graph.num_states, -1))
    eps_backs.append(closure(cost))
    for t in range(num_frames):
        new_cost = np.full(graph.num_states, np.inf)
        back = np.full(graph.num_states, -1)
        candidate = cost[graph.src[emit]] + graph.weight[emit] - acoustic_scale * loglik[t, graph.ilabel[emit] - 1]
        best = _best_per_destination(graph.dst[emit], candidate)
        new_cost[graph.dst[emit][best]] = candidate[best]
        back[graph.dst[emit][best]] = emit[best]
        cost = new_cost
        backs.append(back)
        eps_backs.append(closure(cost))
    total = cost + graph.final
    end = int(np.argmin(total))
    if not np.isfinite(total[end]):
        return OracleResult(olabels=(), cost=float("inf"))
    return OracleResult(olabels=_backtrace(graph, backs, eps_backs, end), cost=float(total[end]))


def _backtrace(
    graph: FstArrays, backs: Sequence[np.ndarray], eps_backs: Sequence[np.ndarray], end: int
) -> tuple[int, ...]:
    olabels: list[int] = []
    state, t = end, len(backs) - 1
    while True:
        arc = eps_backs[t][state]
        if arc < 0:
            arc = backs[t][state]
            if arc < 0:
                break
            t -= 1
        if graph.olabel[arc]:
            olabels.append(int(graph.olabel[arc]))
        state = int(graph.src[arc])
    return tuple(reversed(olabels))

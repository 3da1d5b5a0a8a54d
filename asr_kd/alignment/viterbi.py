"""Batched Viterbi forced alignment over :class:`~asr_kd.alignment.utterance_graph.AlignGraph` s.

Several utterances are aligned together by placing their graphs side by side (block-diagonal:
no arc crosses utterances), so that one frame step is a handful of numpy operations over the
states of the whole batch: gather the scores of every state's incoming arcs ``(S, K)``, add
transition log-probs, take the best arc and add the frame's emission score. Only the time loop
is in Python. Utterances shorter than the batch's longest stop contributing once their last
frame is passed (their final scores are kept), so batches should hold similar lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr_kd.alignment.utterance_graph import AlignGraph


@dataclass(frozen=True)
class ViterbiResult:
    """Best path of one utterance: ``states`` ``(T,)`` int32 graph states and its log-score;
    ``states`` is ``None`` when no path ends in a final state (transcript too long)."""

    states: np.ndarray | None
    score: float


def viterbi_batch(graphs: list[AlignGraph], emissions: list[np.ndarray]) -> list[ViterbiResult]:
    """Best state sequence of each utterance.

    Args:
        graphs: one graph per utterance.
        emissions: per utterance ``(T_b, S_b)`` float32 (scaled) log-likelihood of each frame
            in each graph state.
    """
    sizes = [g.num_states for g in graphs]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    total = int(offsets[-1])
    width = max(g.pred.shape[1] for g in graphs)
    pred = np.full((total, width), total, dtype=np.int64)
    pred_logp = np.full((total, width), -np.inf, dtype=np.float64)
    for g, off in zip(graphs, offsets):
        k = g.pred.shape[1]
        pred[off : off + g.num_states, :k] = np.where(g.pred == g.num_states, total, g.pred + off)
        pred_logp[off : off + g.num_states, :k] = g.pred_logp
    lengths = [len(e) for e in emissions]
    frames = max(lengths)
    emit = np.zeros((frames, total), dtype=np.float32)
    for e, g, off in zip(emissions, graphs, offsets):
        emit[: len(e), off : off + g.num_states] = e
    ending: dict[int, list[int]] = {}
    for b, length in enumerate(lengths):
        ending.setdefault(length - 1, []).append(b)

    # Index ``total`` is a sink that stays -inf, the source of every padding arc.
    delta = np.full(total + 1, -np.inf)
    initial = np.concatenate([g.initial for g in graphs])
    delta[:total] = np.where(initial, emit[0], -np.inf)
    backptr = np.zeros((frames, total), dtype=np.uint8 if width < 256 else np.uint16)
    final_scores: list[np.ndarray | None] = [None] * len(graphs)
    rows = np.arange(total)
    for b in ending.get(0, ()):
        final_scores[b] = delta[offsets[b] : offsets[b + 1]].copy()
    for t in range(1, frames):
        cand = delta[pred]
        cand += pred_logp
        best = cand.argmax(axis=1)
        backptr[t] = best
        delta[:total] = cand[rows, best] + emit[t]
        for b in ending.get(t, ()):
            final_scores[b] = delta[offsets[b] : offsets[b + 1]].copy()

    results = []
    for b, g in enumerate(graphs):
        scores = np.where(g.final, final_scores[b], -np.inf)
        end = int(scores.argmax())
        if not np.isfinite(scores[end]):
            results.append(ViterbiResult(None, float("-inf")))
            continue
        states = np.empty(lengths[b], dtype=np.int32)
        s = end + int(offsets[b])
        for t in range(lengths[b] - 1, 0, -1):
            states[t] = s
            s = int(pred[s, backptr[t, s]])
        states[0] = s
        results.append(ViterbiResult(states - np.int32(offsets[b]), float(scores[end])))
    return results

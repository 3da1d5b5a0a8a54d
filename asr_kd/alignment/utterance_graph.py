"""Per-utterance alignment graphs: the transcript expanded to context-dependent HMM states.

The graph allows every pronunciation of every word and an optional silence before, between
and after words. Cross-word triphone contexts depend on the path (the previous word's
pronunciation, silence or not), so word-edge phones are duplicated once per possible context:
a phone node is ``(phone, left, right)`` and only nodes whose contexts agree are connected.
Most words have one pronunciation, so the duplication costs about two copies per word edge.

Every arc consumes one frame (self-loops, state -> next state, last state -> next phone's
first state), so Viterbi can update all states of a frame at once without a topological order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr_kd.alignment.tree import SenoneTree
from asr_kd.data.lexicon import PHONES, SILENCE, Lexicon
from asr_kd.utils.errors import AsrKdError

PHONE_ID = {p: i for i, p in enumerate(PHONES)}


@dataclass(frozen=True)
class PhoneNode:
    """One phone occurrence in the graph; ``word`` is the word index, -1 for optional silence."""

    phone: str
    left: str | None
    right: str | None
    word: int


@dataclass
class AlignGraph:
    """HMM states of one utterance's graph (``S`` states, at most ``K`` incoming arcs each).

    Attributes:
        nodes: phone nodes; ``node_of_state`` ``(S,)`` maps states to them.
        senones, phone_ids, hmm_state: ``(S,)`` int32 per state.
        pred: ``(S, K)`` int32 source state of each incoming arc; padding points at index ``S``.
        pred_logp: ``(S, K)`` float32 transition log-probs (``-inf`` for padding).
        initial, final: ``(S,)`` bool, where a path may start / end.
        flat_start_states: ``(P,)`` states of the canonical path (leading silence, first
            pronunciations, no inner silence, trailing silence) used for equal alignment.
        min_frames: fewest frames any complete path needs.
        words: the transcript.
    """

    nodes: list[PhoneNode]
    node_of_state: np.ndarray
    senones: np.ndarray
    phone_ids: np.ndarray
    hmm_state: np.ndarray
    pred: np.ndarray
    pred_logp: np.ndarray
    initial: np.ndarray
    final: np.ndarray
    flat_start_states: np.ndarray
    min_frames: int
    words: list[str]

    @property
    def num_states(self) -> int:
        return len(self.senones)


def _sorted_contexts(contexts: set[str | None]) -> list[str | None]:
    return sorted(contexts, key=lambda c: (c is None, c or ""))


def build_graph(words: list[str], lexicon: Lexicon, tree: SenoneTree, interword_silence: bool = True) -> AlignGraph:
    """Compile a transcript (upper-case words) into an :class:`AlignGraph`.

    Raises:
        AsrKdError: empty transcript.
    """
    if not words:
        raise AsrKdError("empty transcript")
    prons = [lexicon.lookup(w) for w in words]
    n = len(words)
    nodes: list[PhoneNode] = []
    arcs: list[tuple[int, int]] = []

    def add(phone: str, left: str | None, right: str | None, word: int) -> int:
        nodes.append(PhoneNode(phone, left, right, word))
        return len(nodes) - 1

    gap_has_silence = [g in (0, n) or interword_silence for g in range(n + 1)]
    silence = {g: add(SILENCE, None, None, -1) for g in range(n + 1) if gap_has_silence[g]}
    entries: list[list[tuple[str | None, int, str]]] = []  # (left context, node, first phone)
    exits: list[list[tuple[str | None, int, str]]] = []  # (right context, node, last phone)
    flat_path = [silence[0]]
    for i, word_prons in enumerate(prons):
        lefts = {p[-1] for p in prons[i - 1]} if i > 0 else {None}
        rights = {p[0] for p in prons[i + 1]} if i < n - 1 else {None}
        lefts |= {SILENCE} if gap_has_silence[i] else set()
        rights |= {SILENCE} if gap_has_silence[i + 1] else set()
        # Context of the canonical path: first pronunciations, silence only at the edges.
        flat_left = prons[i - 1][0][-1] if i > 0 else SILENCE
        flat_right = prons[i + 1][0][0] if i < n - 1 else SILENCE
        word_entries, word_exits = [], []
        for pron_index, pron in enumerate(word_prons):
            if len(pron) == 1:
                by_context = {(lc, rc): add(pron[0], lc, rc, i)
                              for lc in _sorted_contexts(lefts) for rc in _sorted_contexts(rights)}
                word_entries += [(lc, nd, pron[0]) for (lc, _), nd in by_context.items()]
                word_exits += [(rc, nd, pron[0]) for (_, rc), nd in by_context.items()]
                path = [by_context[flat_left, flat_right]]
            else:
                firsts = {lc: add(pron[0], lc, pron[1], i) for lc in _sorted_contexts(lefts)}
                chain = [add(pron[j], pron[j - 1], pron[j + 1], i) for j in range(1, len(pron) - 1)]
                lasts = {rc: add(pron[-1], pron[-2], rc, i) for rc in _sorted_contexts(rights)}
                for a, b in zip(chain, chain[1:]):
                    arcs.append((a, b))
                for first in firsts.values():
                    arcs += [(first, chain[0])] if chain else [(first, last) for last in lasts.values()]
                if chain:
                    arcs += [(chain[-1], last) for last in lasts.values()]
                word_entries += [(lc, nd, pron[0]) for lc, nd in firsts.items()]
                word_exits += [(rc, nd, pron[-1]) for rc, nd in lasts.items()]
                path = [firsts[flat_left], *chain, lasts[flat_right]]
            if pron_index == 0:
                flat_path += path
        entries.append(word_entries)
        exits.append(word_exits)
    flat_path.append(silence[n])

    initial_nodes = [nd for lc, nd, _ in entries[0] if lc is None] + [silence[0]]
    final_nodes = [nd for rc, nd, _ in exits[-1] if rc is None] + [silence[n]]
    arcs += [(silence[0], nd) for lc, nd, _ in entries[0] if lc == SILENCE]
    arcs += [(nd, silence[n]) for rc, nd, _ in exits[-1] if rc == SILENCE]
    for g in range(1, n):
        for rc, a, last_phone in exits[g - 1]:
            arcs += [(a, b) for lc, b, first_phone in entries[g] if rc == first_phone and lc == last_phone]
            if rc == SILENCE:
                arcs.append((a, silence[g]))
        arcs += [(silence[g], b) for lc, b, _ in entries[g] if lc == SILENCE]

    min_frames = sum(min(sum(tree.num_states(ph) for ph in p) for p in word_prons) for word_prons in prons)
    return _expand_states(nodes, arcs, initial_nodes, final_nodes, flat_path, tree, min_frames, list(words))


def _expand_states(nodes: list[PhoneNode], arcs: list[tuple[int, int]], initial_nodes: list[int],
                   final_nodes: list[int], flat_path: list[int], tree: SenoneTree, min_frames: int,
                   words: list[str]) -> AlignGraph:
    first_state, node_of_state, senones, hmm_state = [], [], [], []
    for index, node in enumerate(nodes):
        first_state.append(len(senones))
        for k in range(tree.num_states(node.phone)):
            node_of_state.append(index)
            hmm_state.append(k)
            senones.append(tree.senone(node.left, node.phone, node.right, k))
    num_states = len(senones)
    last_state = [first_state[i] + tree.num_states(nd.phone) - 1 for i, nd in enumerate(nodes)]
    incoming: list[list[tuple[int, float]]] = [[] for _ in range(num_states)]
    for s in range(num_states):
        node = nodes[node_of_state[s]]
        self_logp, _ = tree.transition_logprobs(node.phone, hmm_state[s])
        incoming[s].append((s, self_logp))
        if hmm_state[s] > 0:
            incoming[s].append((s - 1, tree.transition_logprobs(node.phone, hmm_state[s] - 1)[1]))
    for a, b in sorted(set(arcs)):
        exit_logp = tree.transition_logprobs(nodes[a].phone, tree.num_states(nodes[a].phone) - 1)[1]
        incoming[first_state[b]].append((last_state[a], exit_logp))
    width = max(len(arcs_in) for arcs_in in incoming)
    pred = np.full((num_states, width), num_states, dtype=np.int32)
    pred_logp = np.full((num_states, width), -np.inf, dtype=np.float32)
    for s, arcs_in in enumerate(incoming):
        pred[s, : len(arcs_in)] = [src for src, _ in arcs_in]
        pred_logp[s, : len(arcs_in)] = [lp for _, lp in arcs_in]
    initial = np.zeros(num_states, dtype=bool)
    initial[[first_state[i] for i in initial_nodes]] = True
    final = np.zeros(num_states, dtype=bool)
    final[[last_state[i] for i in final_nodes]] = True
    node_of_state_arr = np.asarray(node_of_state, dtype=np.int32)
    flat_states = np.concatenate([np.arange(first_state[i], last_state[i] + 1) for i in flat_path])
    return AlignGraph(
        nodes=nodes,
        node_of_state=node_of_state_arr,
        senones=np.asarray(senones, dtype=np.int32),
        phone_ids=np.asarray([PHONE_ID[nodes[i].phone] for i in node_of_state], dtype=np.int32),
        hmm_state=np.asarray(hmm_state, dtype=np.int32),
        pred=pred,
        pred_logp=pred_logp,
        initial=initial,
        final=final,
        flat_start_states=flat_states.astype(np.int32),
        min_frames=min_frames,
        words=words,
    )


def equal_alignment(graph: AlignGraph, num_frames: int) -> np.ndarray:
    """``(T,)`` states of the flat-start path, frames shared out equally (Kaldi's align-equal).

    Raises:
        AsrKdError: fewer frames than states on the path.
    """
    path = graph.flat_start_states
    if num_frames < len(path):
        raise AsrKdError(f"{num_frames} frames are too few for the {len(path)} states of the transcript")
    return path[(np.arange(num_frames) * len(path)) // num_frames]

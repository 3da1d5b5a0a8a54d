"""H: context-dependent phones -> HMM states, built from the senone tree, and self-loop insertion.

As in Kaldi, H is built *without* self-loops: one arc per visited HMM state, labelled with the
state's "transition id" and weighted with its forward (exit) cost. HCLG is determinized and
minimized that way (self-loops with different weights on ambiguous paths would break the twins
property that determinization needs); :func:`add_self_loops` then puts each HMM state's self-loop
on the graph state its entry arcs lead to (Kaldi's ``reorder`` placement), splitting graph states
whose incoming arcs belong to different HMM states. Finally :func:`transition_ids_to_senones`
relabels arcs with ``senone + 1`` so that a decodable returning ``M[t, label - 1]``
(``kaldi_decoder.DecodableCtc``) scores them with column ``senone`` of the log-likelihoods.

A transition id identifies ``(phone, HMM state, senone)`` (Kaldi's transition state), numbered
from 1; ids above :attr:`HmmTable.num_ids` are H-side disambiguation symbols.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import kaldifst
import numpy as np

from asr_kd.decoding.fst_arrays import FstArrays
from asr_kd.utils.errors import AsrKdError


class SenoneTreeLike(Protocol):
    """What decoding uses of the senone tree (``asr_kd.alignment.SenoneTree``, ``<exp>/tree/tree.json``)."""

    phones: tuple[str, ...]
    silence_phones: frozenset[str]
    num_senones: int

    def num_states(self, phone: str) -> int: ...

    def senone(self, left: str | None, phone: str, right: str | None, state: int) -> int: ...

    def transition_logprobs(self, phone: str, state: int) -> tuple[float, float]: ...


@dataclass
class HmmTable:
    """Transition ids of H: ``id - 1`` indexes ``keys`` = ``(phone, state, senone)``.

    Costs follow Kaldi's graph-building scales for a state with self-loop probability ``p`` and
    forward probability ``f``: self-loop ``-s * log p``, forward
    ``-(log(f / (1 - p)) + s * log(1 - p))`` with ``s = self_loop_scale`` (for the usual
    two-transition state, ``f = 1 - p``, both are simply scaled by ``s``).

    Attributes:
        self_loop_scale: Kaldi's ``--self-loop-scale``.
        keys: one ``(phone, state, senone)`` per transition id.
        loop_cost, forward_cost: ``(num_ids,)`` scaled costs of the self-loop and of leaving.
        senone: ``(num_ids,)`` senone (log-likelihood column) of each transition id.
    """

    self_loop_scale: float = 1.0
    keys: list[tuple[str, int, int]] = field(default_factory=list)
    _index: dict[tuple[str, int, int], int] = field(default_factory=dict)
    _loop: list[float] = field(default_factory=list)
    _forward: list[float] = field(default_factory=list)

    def id_of(self, tree: SenoneTreeLike, phone: str, state: int, senone: int) -> int:
        key = (phone, state, senone)
        if key not in self._index:
            if not 0 <= senone < tree.num_senones:
                raise AsrKdError(f"senone tree returned senone {senone} for {key}, outside 0..{tree.num_senones - 1}")
            loop, forward = tree.transition_logprobs(phone, state)
            if not loop < 0.0:
                raise AsrKdError(f"{phone} state {state}: self-loop log-probability {loop} must be < 0")
            log_leave = math.log1p(-math.exp(loop))
            self.keys.append(key)
            self._loop.append(-self.self_loop_scale * loop)
            self._forward.append(-(forward - log_leave) - self.self_loop_scale * log_leave)
            self._index[key] = len(self.keys)
        return self._index[key]

    @property
    def num_ids(self) -> int:
        return len(self.keys)

    @property
    def loop_cost(self) -> np.ndarray:
        return np.asarray(self._loop, dtype=np.float64)

    @property
    def forward_cost(self) -> np.ndarray:
        return np.asarray(self._forward, dtype=np.float64)

    @property
    def senone(self) -> np.ndarray:
        return np.asarray([key[2] for key in self.keys], dtype=np.int64)


@dataclass
class HGraph:
    """H without self-loops. ``disambig`` are its input-side disambiguation ids (> ``table.num_ids``)."""

    fst: kaldifst.StdVectorFst
    table: HmmTable
    disambig: tuple[int, ...]


def make_h_fst(
    tree: SenoneTreeLike, ilabels: Sequence[Sequence[int]], phones: Sequence[str], self_loop_scale: float = 1.0
) -> HGraph:
    """Build H for the context windows ``ilabels`` of C (from ``kaldifst.compose_context``).

    Args:
        tree: the senone tree and HMM topology.
        ilabels: ``ilabels[j]`` is the phone window of C's input label ``j``: ``[]`` for epsilon,
            ``[-d]`` for a disambiguation symbol, ``[0]`` for Kaldi's ``#-1`` (also treated as a
            disambiguation symbol), else ``[left, centre, right]`` phone ids with 0 = no phone.
        phones: phone inventory; phone id = index + 1.
        self_loop_scale: scale of the transition log-probabilities (see :class:`HmmTable`).
    """
    table = HmmTable(self_loop_scale)
    fst = kaldifst.StdVectorFst()
    root = fst.add_state()
    fst.start = root
    fst.set_final(root, 0.0)
    chains: list[tuple[int, list[int]]] = []
    disambig_windows: list[int] = []
    for j, window in enumerate(ilabels):
        if len(window) == 0:
            continue
        if len(window) == 1 and window[0] <= 0:
            disambig_windows.append(j)
            continue
        if len(window) != 3:
            raise AsrKdError(f"context window {list(window)} of C label {j} is not a triphone window")
        left, centre, right = (phones[p - 1] if p > 0 else None for p in window)
        if centre is None:
            raise AsrKdError(f"context window {list(window)} of C label {j} has no central phone")
        ids = [
            table.id_of(tree, centre, state, tree.senone(left, centre, right, state))
            for state in range(tree.num_states(centre))
        ]
        chains.append((j, ids))
    forward = table.forward_cost
    for j, ids in chains:
        state = root
        for position, tid in enumerate(ids):
            nxt = root if position == len(ids) - 1 else fst.add_state()
            olabel = j if position == 0 else 0
            fst.add_arc(state, kaldifst.StdArc(tid, olabel, float(forward[tid - 1]), nxt))
            state = nxt
    disambig = tuple(table.num_ids + 1 + k for k in range(len(disambig_windows)))
    for tid, j in zip(disambig, disambig_windows):
        fst.add_arc(root, kaldifst.StdArc(tid, j, 0.0, root))
    return HGraph(fst=fst, table=table, disambig=disambig)


def add_self_loops(graph: FstArrays, loop_cost: np.ndarray) -> FstArrays:
    """Add each HMM state's self-loop after the arcs that enter it.

    Args:
        graph: HCLG without self-loops; ilabels are transition ids ``1..len(loop_cost)`` or 0.
        loop_cost: ``(num_ids,)`` self-loop cost of each transition id.

    Returns:
        A new graph: a state whose incoming arcs all carry transition id ``h`` (and which is not
        the start state) gets a self-loop ``h``; otherwise one copy of the state (same outgoing
        arcs and final cost) per incoming transition id, holding that id's self-loop.
    """
    n = graph.num_states
    labelled = graph.ilabel > 0
    # (destination state, transition id) of every arc, as one sortable int64 key
    radix = len(loop_cost) + 1
    arc_key = graph.dst.astype(np.int64) * radix + graph.ilabel
    keys = np.unique(arc_key[labelled])
    key_state, key_id = keys // radix, keys % radix
    has_other = np.zeros(n, dtype=bool)
    has_other[graph.dst[~labelled]] = True
    has_other[graph.start] = True
    in_place = (np.bincount(key_state, minlength=n) == 1) & ~has_other
    split = ~in_place[key_state]

    # One new state per split (state, id) pair; arcs entering that state with that id move there.
    split_keys, split_state, split_id = keys[split], key_state[split], key_id[split]
    new_state = n + np.arange(len(split_keys))
    dst = graph.dst.astype(np.int64)
    if len(split_keys):
        pos = np.searchsorted(split_keys, arc_key).clip(max=len(split_keys) - 1)
        moved = labelled & (split_keys[pos] == arc_key)
        dst[moved] = new_state[pos[moved]]

    # Copies of the split states' outgoing arcs (with redirected destinations).
    order = np.argsort(graph.src, kind="stable")
    first = np.searchsorted(graph.src[order], np.arange(n + 1))
    out_count = first[1:] - first[:-1]
    copies_per_pair = out_count[split_state]
    copy_src = np.repeat(new_state, copies_per_pair)
    pair_start = np.cumsum(copies_per_pair) - copies_per_pair
    offsets = np.arange(copies_per_pair.sum()) - np.repeat(pair_start, copies_per_pair)
    copy_arcs = order[np.repeat(first[split_state], copies_per_pair) + offsets]

    loop_states = np.concatenate([key_state[~split], new_state])
    loop_ids = np.concatenate([key_id[~split], split_id])
    final = np.concatenate([graph.final, graph.final[split_state]])
    return FstArrays(
        start=graph.start,
        num_states=n + len(split_keys),
        src=np.concatenate([graph.src, copy_src, loop_states]),
        dst=np.concatenate([dst, dst[copy_arcs], loop_states]),
        ilabel=np.concatenate([graph.ilabel, graph.ilabel[copy_arcs], loop_ids]),
        olabel=np.concatenate([graph.olabel, graph.olabel[copy_arcs], np.zeros_like(loop_ids)]),
        weight=np.concatenate([graph.weight, graph.weight[copy_arcs], loop_cost[loop_ids - 1]]),
        final=final,
    )


def transition_ids_to_senones(graph: FstArrays, senone: np.ndarray) -> FstArrays:
    """Relabel transition ids ``h`` with ``senone[h - 1] + 1`` (epsilons stay 0)."""
    ilabel = graph.ilabel.copy()
    emitting = ilabel > 0
    ilabel[emitting] = senone[ilabel[emitting] - 1] + 1
    return dataclasses.replace(graph, ilabel=ilabel)

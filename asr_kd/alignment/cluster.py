"""Phonetic decision-tree clustering of triphone states (Kaldi ``build-tree`` / HTK ``TB``).

Statistics: one diagonal Gaussian's sufficient statistics (count, sum, sum of squares) per
seen ``(phone, state, left context, right context)``, accumulated over a monophone alignment.
Every non-silence ``(phone, state)`` starts as one leaf. The leaf/question pair with the
largest log-likelihood gain anywhere is split next (a global best-first search, so data-rich
phones get more senones), until the requested number of senones is reached or no split
leaves both children with ``min_leaf_frames`` frames.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from asr_kd.alignment.gmm import LOG_2PI, gaussian_stats, matmul
from asr_kd.alignment.questions import CONTEXTS, EDGE, phonetic_questions
from asr_kd.alignment.tree import SILENCE_PHONES, Node, SenoneTree, Split
from asr_kd.data.lexicon import PHONES
from asr_kd.utils.errors import AsrKdError


@dataclass
class ContextStats:
    """Gaussian statistics per seen triphone context.

    Attributes:
        phone, state, left, right: ``(K,)`` int64 phone id, HMM state, context ids (index
            ``CONTEXTS``) of each of the K seen contexts.
        count: ``(K,)`` frames; ``total``, ``sumsq``: ``(K, D)`` sums of frames and squares.
    """

    phone: np.ndarray
    state: np.ndarray
    left: np.ndarray
    right: np.ndarray
    count: np.ndarray
    total: np.ndarray
    sumsq: np.ndarray


def context_stats(frames: np.ndarray, phone: np.ndarray, state: np.ndarray, left: np.ndarray,
                  right: np.ndarray) -> ContextStats:
    """Accumulate :class:`ContextStats` from ``(N, D)`` frames and their ``(N,)`` labels."""
    c = len(CONTEXTS)
    key = ((phone.astype(np.int64) * 16 + state) * c + left) * c + right
    keys, inverse = np.unique(key, return_inverse=True)
    count, total, sumsq = gaussian_stats(frames, inverse.ravel(), len(keys))
    right_id, rest = keys % c, keys // c
    left_id, rest = rest % c, rest // c
    return ContextStats(rest // 16, rest % 16, left_id, right_id, count, total, sumsq)


def _loglik(count: np.ndarray, total: np.ndarray, sumsq: np.ndarray, var_floor: np.ndarray) -> np.ndarray:
    """Log-likelihood of frames under their own ML diagonal Gaussian; leading axes broadcast."""
    n = np.maximum(count, 1e-10)[..., None]
    var = np.maximum(sumsq / n - (total / n) ** 2, var_floor)
    return -0.5 * count * (np.log(var).sum(-1) + var.shape[-1] * (1.0 + LOG_2PI))


@dataclass
class _Leaf:
    rows: np.ndarray  # indices into ContextStats
    best: tuple[float, str, str] | None = None  # (gain, side, question)


def build_tree(stats: ContextStats, num_senones: int, var_floor: np.ndarray, min_leaf_frames: int = 100,
               transitions: dict[str, list[tuple[float, float]]] | None = None,
               num_states: int = 3) -> SenoneTree:
    """Grow the decision trees to (at most) ``num_senones`` leaves in total.

    Args:
        stats: from :func:`context_stats` over a monophone alignment.
        var_floor: ``(D,)`` variance floor.
        transitions: topology to keep (default: the monophone topology's).
    """
    questions = phonetic_questions()
    names = sorted(questions)
    member = np.array([[c in questions[q] for c in CONTEXTS] for q in names])  # (Q, C)
    roots: dict[tuple[str, int], _Leaf] = {}
    for phone_id, phone in enumerate(PHONES):
        for state in range(num_states):
            rows = np.flatnonzero((stats.phone == phone_id) & (stats.state == state))
            roots[phone, state] = _Leaf(rows)
    if num_senones < len(roots):
        raise AsrKdError(f"--num-senones {num_senones} is below the {len(roots)} (phone, state) pairs")

    def best_split(leaf: _Leaf) -> tuple[float, str, str] | None:
        if len(leaf.rows) < 2:
            return None
        count, total, sumsq = stats.count[leaf.rows], stats.total[leaf.rows], stats.sumsq[leaf.rows]
        parent = _loglik(count.sum(), total.sum(0), sumsq.sum(0), var_floor)
        best = None
        for side, ctx in (("left", stats.left[leaf.rows]), ("right", stats.right[leaf.rows])):
            yes = member[:, ctx].astype(np.float64)  # (Q, k)
            y_n, y_s, y_q = yes @ count, matmul(yes, total), matmul(yes, sumsq)
            n_n, n_s, n_q = count.sum() - y_n, total.sum(0) - y_s, sumsq.sum(0) - y_q
            gain = _loglik(y_n, y_s, y_q, var_floor) + _loglik(n_n, n_s, n_q, var_floor) - parent
            gain[(y_n < min_leaf_frames) | (n_n < min_leaf_frames)] = -np.inf
            q = int(np.argmax(gain))
            if np.isfinite(gain[q]) and gain[q] > 0 and (best is None or gain[q] > best[0]):
                best = (float(gain[q]), side, names[q])
        return best

    # Max-heap of (gain, tie-break counter) so that equal gains split in a fixed order.
    heap: list[tuple[float, int, _Leaf]] = []
    counter = 0
    children: dict[int, tuple[str, str, _Leaf, _Leaf]] = {}
    for (phone, _), leaf in roots.items():
        if phone in SILENCE_PHONES:
            continue
        leaf.best = best_split(leaf)
        if leaf.best is not None:
            heapq.heappush(heap, (-leaf.best[0], counter, leaf))
            counter += 1
    num_leaves = len(roots)
    while heap and num_leaves < num_senones:
        _, _, leaf = heapq.heappop(heap)
        _, side, question = leaf.best
        ctx = stats.left[leaf.rows] if side == "left" else stats.right[leaf.rows]
        in_set = member[names.index(question), ctx]
        yes, no = _Leaf(leaf.rows[in_set]), _Leaf(leaf.rows[~in_set])
        children[id(leaf)] = (side, question, yes, no)
        num_leaves += 1
        for child in (yes, no):
            child.best = best_split(child)
            if child.best is not None:
                heapq.heappush(heap, (-child.best[0], counter, child))
                counter += 1

    next_id = iter(range(num_leaves))

    def to_node(leaf: _Leaf) -> Node:
        if id(leaf) not in children:
            return next(next_id)
        side, question, yes, no = children[id(leaf)]
        return Split(side, question, questions[question], to_node(yes), to_node(no))

    trees = {p: [to_node(roots[p, s]) for s in range(num_states)] for p in PHONES}
    if transitions is None:
        transitions = SenoneTree.monophone(num_states).transitions
    return SenoneTree(trees, transitions)


def estimate_forward_probs(phones: np.ndarray, hmm_state: np.ndarray, entered: np.ndarray,
                           num_states: int = 3, floor: float = 0.05) -> dict[str, list[float]]:
    """Forward-transition probability per (phone, state) from ``(N,)`` aligned frames.

    A state visited ``v`` times over ``n`` frames leaves ``v`` times in ``n`` transitions, so
    the ML estimate is ``v / n``; it is clipped to ``[floor, 1 - floor]``. Phones never seen
    are left out (the caller keeps their previous topology).
    """
    index = phones.astype(np.int64) * num_states + hmm_state
    frames = np.bincount(index, minlength=len(PHONES) * num_states)
    visits = np.bincount(index, weights=entered.astype(np.float64), minlength=len(PHONES) * num_states)
    out = {}
    for p, phone in enumerate(PHONES):
        n = frames[p * num_states : (p + 1) * num_states]
        if np.all(n > 0):
            v = visits[p * num_states : (p + 1) * num_states]
            out[phone] = [float(x) for x in np.clip(v / n, floor, 1 - floor)]
    return out


def tree_senones(tree: SenoneTree, phones: np.ndarray, hmm_state: np.ndarray, left: np.ndarray,
                 right: np.ndarray) -> np.ndarray:
    """``(N,)`` int32 senones of ``tree`` for frames labelled with phone, state and context ids."""
    keys = np.stack([left, phones, right, hmm_state], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    symbols = [None if c == EDGE else c for c in CONTEXTS]
    lookup = np.array([tree.senone(symbols[lc], PHONES[p], symbols[rc], int(s)) for lc, p, rc, s in unique],
                      dtype=np.int32)
    return lookup[inverse.ravel()]

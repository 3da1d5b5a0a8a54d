"""The senone inventory: HMM topology per phone and the decision trees that tie triphone states.

Every phone has ``num_states`` emitting states in a left-to-right HMM with self-loops (3 by
default, like Kaldi's and HTK's standard topology). Each (phone, state) has its own decision
tree over the left and right context phone; its leaves are senone ids. Silence phones
(``SIL``, ``SPN``) are context-independent: their trees are single leaves.

File format (``<exp>/tree/tree.json``, written by :meth:`SenoneTree.save`)::

    {"format": "asr_kd.senone_tree/1", "num_senones": 1000, "phones": [...],
     "silence_phones": ["SIL", "SPN"], "edge_symbol": "<edge>",
     "topology": {"AA": {"num_states": 3, "transitions": [[self_logp, fwd_logp], ...]}, ...},
     "trees": {"AA": [<node of state 0>, <node of state 1>, ...], ...}}

    node = {"senone": 17}
         | {"side": "left"|"right", "question": "VOWEL", "members": ["AA", ...],
            "yes": node, "no": node}

``members`` are context symbols (phones, or ``"<edge>"`` for no phone), so the file is
self-contained; ``question`` only names the set for readers.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from asr_kd.alignment.questions import EDGE
from asr_kd.data.lexicon import PHONES, SILENCE, SPOKEN_NOISE
from asr_kd.utils.atomic import write_json
from asr_kd.utils.errors import AsrKdError

FORMAT = "asr_kd.senone_tree/1"
SILENCE_PHONES = frozenset((SILENCE, SPOKEN_NOISE))
#: Probability of leaving a state in a fresh topology (mean state duration 4 frames).
DEFAULT_FORWARD_PROB = 0.25


@dataclass(frozen=True)
class Split:
    """Inner tree node: go to ``yes`` if the context on ``side`` is in ``members``."""

    side: str
    question: str
    members: frozenset[str]
    yes: Node
    no: Node


Node = Split | int


def context_symbol(phone: str | None) -> str:
    """Map a context phone (``None`` = utterance edge) to its symbol in the tree."""
    return EDGE if phone is None else phone


class SenoneTree:
    """Tied triphone states (senones) plus topology; see the module docstring for the file.

    Args:
        trees: phone -> one root node per emitting state.
        transitions: phone -> per state ``(self-loop log-prob, forward log-prob)``.
    """

    def __init__(self, trees: dict[str, list[Node]], transitions: dict[str, list[tuple[float, float]]]) -> None:
        if set(trees) != set(PHONES) or set(transitions) != set(PHONES):
            raise AsrKdError(f"senone tree must cover exactly the phones {PHONES}")
        self.phones: tuple[str, ...] = PHONES
        self.silence_phones: frozenset[str] = SILENCE_PHONES
        self.trees = {p: list(trees[p]) for p in PHONES}
        self.transitions = {p: [(float(s), float(f)) for s, f in transitions[p]] for p in PHONES}
        self._info: dict[int, dict] = {}
        for phone in PHONES:
            if len(self.trees[phone]) != len(self.transitions[phone]) or not self.trees[phone]:
                raise AsrKdError(f"phone {phone}: trees and transitions disagree on the number of states")
            for state, root in enumerate(self.trees[phone]):
                self._collect_leaves(root, phone, state, [])
        self.num_senones = len(self._info)
        if sorted(self._info) != list(range(self.num_senones)):
            raise AsrKdError(f"senone ids must be 0..{self.num_senones - 1}, each used by exactly one leaf")
        for phone in SILENCE_PHONES:
            if any(isinstance(root, Split) for root in self.trees[phone]):
                raise AsrKdError(f"silence phone {phone} must be context-independent (single-leaf trees)")
        self._cache: dict[tuple[str | None, str, str | None, int], int] = {}

    def _collect_leaves(self, node: Node, phone: str, state: int, path: list[str]) -> None:
        if isinstance(node, Split):
            self._collect_leaves(node.yes, phone, state, [*path, f"{node.side} is {node.question}"])
            self._collect_leaves(node.no, phone, state, [*path, f"{node.side} not {node.question}"])
            return
        if node in self._info:
            raise AsrKdError(f"senone {node} is used by two leaves")
        self._info[node] = {"phone": phone, "state": state, "contexts": " and ".join(path) or "any"}

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def monophone(cls, num_states: int = 3, forward_prob: float = DEFAULT_FORWARD_PROB) -> SenoneTree:
        """Context-independent tree: one senone per (phone, state), ids in phone order."""
        trees, transitions = {}, {}
        for i, phone in enumerate(PHONES):
            trees[phone] = [i * num_states + s for s in range(num_states)]
            transitions[phone] = [(math.log1p(-forward_prob), math.log(forward_prob))] * num_states
        return cls(trees, transitions)

    def with_transitions(self, forward_probs: dict[str, list[float]]) -> SenoneTree:
        """Copy with new forward probabilities per (phone, state); self-loop = 1 - forward."""
        transitions = {
            p: [(math.log1p(-f), math.log(f)) for f in forward_probs[p]] if p in forward_probs else self.transitions[p]
            for p in PHONES
        }
        return SenoneTree(self.trees, transitions)

    # -- lookups (what alignment, decoding and export read of <exp>/tree/tree.json) -----------

    def num_states(self, phone: str) -> int:
        """Number of emitting states of ``phone``'s left-to-right HMM."""
        return len(self._root_list(phone))

    def _root_list(self, phone: str) -> list[Node]:
        try:
            return self.trees[phone]
        except KeyError:
            raise AsrKdError(f"unknown phone {phone!r} (expected one of {self.phones})") from None

    def senone(self, left: str | None, phone: str, right: str | None, state: int) -> int:
        """Senone id of ``state`` of ``phone`` between ``left`` and ``right`` (``None`` = no phone)."""
        key = (left, phone, right, state)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        roots = self._root_list(phone)
        if not 0 <= state < len(roots):
            raise AsrKdError(f"phone {phone} has {len(roots)} states, asked for state {state}")
        node = roots[state]
        contexts = {"left": context_symbol(left), "right": context_symbol(right)}
        while isinstance(node, Split):
            node = node.yes if contexts[node.side] in node.members else node.no
        self._cache[key] = node
        return node

    def transition_logprobs(self, phone: str, state: int) -> tuple[float, float]:
        """``(self-loop log-prob, forward log-prob)`` of ``state`` of ``phone``."""
        roots = self._root_list(phone)
        if not 0 <= state < len(roots):
            raise AsrKdError(f"phone {phone} has {len(roots)} states, asked for state {state}")
        return self.transitions[phone][state]

    def senone_info(self, senone: int) -> dict:
        """``{"phone", "state", "contexts"}`` of a senone; contexts is a readable condition."""
        try:
            return dict(self._info[senone])
        except KeyError:
            raise AsrKdError(f"senone {senone} out of range 0..{self.num_senones - 1}") from None

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "num_senones": self.num_senones,
            "phones": list(self.phones),
            "silence_phones": sorted(self.silence_phones),
            "edge_symbol": EDGE,
            "topology": {
                p: {"num_states": len(self.trees[p]), "transitions": [list(t) for t in self.transitions[p]]}
                for p in PHONES
            },
            "trees": {p: [_node_to_json(n) for n in self.trees[p]] for p in PHONES},
        }

    def save(self, path: str | os.PathLike) -> None:
        """Atomically write the tree as JSON."""
        write_json(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SenoneTree:
        path = Path(path)
        if not path.exists():
            raise AsrKdError(f"{path}: senone tree is missing (run `asr-kd tree`)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise AsrKdError(f"{path}: not a senone tree (format {data.get('format')!r}, expected {FORMAT})")
            if tuple(data["phones"]) != PHONES:
                raise AsrKdError(f"{path}: phone set {data['phones']} differs from asr_kd's {PHONES}")
            trees = {p: [_node_from_json(n) for n in nodes] for p, nodes in data["trees"].items()}
            transitions = {p: [tuple(t) for t in v["transitions"]] for p, v in data["topology"].items()}
        except (KeyError, TypeError, ValueError) as err:
            raise AsrKdError(f"{path}: malformed senone tree ({type(err).__name__}: {err})") from None
        tree = cls(trees, transitions)
        if tree.num_senones != data["num_senones"]:
            raise AsrKdError(f"{path}: says {data['num_senones']} senones but its leaves number {tree.num_senones}")
        return tree


def _node_to_json(node: Node) -> dict:
    if isinstance(node, Split):
        return {"side": node.side, "question": node.question, "members": sorted(node.members),
                "yes": _node_to_json(node.yes), "no": _node_to_json(node.no)}
    return {"senone": int(node)}


def _node_from_json(obj: dict) -> Node:
    if "senone" in obj:
        return int(obj["senone"])
    if obj["side"] not in ("left", "right"):
        raise ValueError(f"side must be left or right, got {obj['side']!r}")
    return Split(obj["side"], obj["question"], frozenset(obj["members"]),
                 _node_from_json(obj["yes"]), _node_from_json(obj["no"]))

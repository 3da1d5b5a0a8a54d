import json
from pathlib import Path

import numpy as np
import pytest

from asr_kd.alignment import SenoneTree, load_senone_log_priors
from asr_kd.alignment.cluster import build_tree, context_stats
from asr_kd.alignment.questions import CONTEXTS
from asr_kd.alignment.tree import Split
from asr_kd.data.lexicon import PHONES
from asr_kd.utils.errors import AsrKdError


def test_monophone_tree_lookups() -> None:
    tree = SenoneTree.monophone()
    assert tree.phones == PHONES and tree.silence_phones == frozenset({"SIL", "SPN"})
    assert tree.num_senones == 3 * len(PHONES)
    assert tree.num_states("AA") == 3
    assert tree.senone("B", "AA", None, 1) == tree.senone(None, "AA", "K", 1) == 3 * PHONES.index("AA") + 1
    self_lp, fwd_lp = tree.transition_logprobs("AA", 2)
    assert np.isclose(np.exp(self_lp) + np.exp(fwd_lp), 1.0)
    assert tree.senone_info(4) == {"phone": "SPN", "state": 1, "contexts": "any"}


def test_lookup_errors() -> None:
    tree = SenoneTree.monophone()
    with pytest.raises(AsrKdError, match="unknown phone"):
        tree.senone(None, "XX", None, 0)
    with pytest.raises(AsrKdError, match="3 states"):
        tree.senone(None, "AA", None, 3)
    with pytest.raises(AsrKdError, match="out of range"):
        tree.senone_info(tree.num_senones)


def _synthetic_tree() -> SenoneTree:
    """Triphone stats where AA's state 0 depends strongly on whether the left context is a vowel."""
    rng = np.random.default_rng(0)
    aa = PHONES.index("AA")
    rows = []
    for left in ("IY", "EH", "T", "K", "SIL"):
        shift = 3.0 if left in ("IY", "EH") else -3.0
        for _ in range(200):
            rows.append((aa, 0, CONTEXTS.index(left), CONTEXTS.index("T"), rng.normal(shift, 1.0, 4)))
    phone, state, left, right, frames = (np.array(c) for c in zip(*rows))
    stats = context_stats(frames, phone, state, left, right)
    return build_tree(stats, num_senones=3 * len(PHONES) + 1, var_floor=np.full(4, 1e-3), min_leaf_frames=50)


def test_tree_splits_on_informative_context() -> None:
    tree = _synthetic_tree()
    assert tree.num_senones == 3 * len(PHONES) + 1
    root = tree.trees["AA"][0]
    assert isinstance(root, Split) and root.side == "left"
    vowel_left = tree.senone("IY", "AA", "T", 0)
    assert tree.senone("EH", "AA", None, 0) == vowel_left
    assert tree.senone("T", "AA", "T", 0) != vowel_left
    assert "left" in tree.senone_info(vowel_left)["contexts"]
    # Silence stays context-independent; every id maps back to its phone.
    assert tree.senone("IY", "SIL", "T", 1) == tree.senone(None, "SIL", None, 1)
    for s in range(tree.num_senones):
        info = tree.senone_info(s)
        assert info["phone"] in PHONES and 0 <= info["state"] < 3


def test_tree_save_load_round_trip(tmp_path: Path) -> None:
    tree = _synthetic_tree().with_transitions({"AA": [0.2, 0.3, 0.4]})
    tree.save(tmp_path / "tree.json")
    again = SenoneTree.load(tmp_path / "tree.json")
    assert again.to_dict() == tree.to_dict()
    for left in (None, "IY", "T", "SIL"):
        for right in (None, "T", "SPN"):
            for state in range(3):
                assert again.senone(left, "AA", right, state) == tree.senone(left, "AA", right, state)
    assert np.isclose(np.exp(again.transition_logprobs("AA", 1)[1]), 0.3)


def test_tree_load_errors(tmp_path: Path) -> None:
    with pytest.raises(AsrKdError, match="missing"):
        SenoneTree.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(AsrKdError, match="not a senone tree"):
        SenoneTree.load(bad)
    data = SenoneTree.monophone().to_dict()
    data["trees"]["AA"][0] = {"senone": 0}  # duplicate leaf id
    bad.write_text(json.dumps(data))
    with pytest.raises(AsrKdError, match="two leaves"):
        SenoneTree.load(bad)


def test_too_few_senones_is_an_error() -> None:
    stats = context_stats(np.zeros((1, 2)), np.array([2]), np.array([0]), np.array([0]), np.array([0]))
    with pytest.raises(AsrKdError, match="num-senones"):
        build_tree(stats, num_senones=10, var_floor=np.ones(2))


def test_priors(tmp_path: Path) -> None:
    np.save(tmp_path / "senone_counts.npy", np.array([0, 1, 2], dtype=np.int64))
    log_priors = load_senone_log_priors(tmp_path)
    np.testing.assert_allclose(np.exp(log_priors), [1 / 6, 2 / 6, 3 / 6])
    np.save(tmp_path / "senone_counts.npy", np.array([[1]]))
    with pytest.raises(AsrKdError, match="1-D"):
        load_senone_log_priors(tmp_path)
    with pytest.raises(AsrKdError, match="missing"):
        load_senone_log_priors(tmp_path / "nowhere")

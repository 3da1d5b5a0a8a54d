import numpy as np
import pytest

from asr_kd.alignment.aligner import alignment_from_states
from asr_kd.alignment.tree import SenoneTree
from asr_kd.alignment.utterance_graph import build_graph, equal_alignment
from asr_kd.alignment.viterbi import viterbi_batch
from asr_kd.data.lexicon import Lexicon
from asr_kd.utils.errors import AsrKdError

LEXICON = Lexicon({"A": [("AH",), ("EY",)], "CAT": [("K", "AE", "T")], "SAT": [("S", "AE", "T")]})
TREE = SenoneTree.monophone()


def planted_emissions(graph, path: np.ndarray) -> np.ndarray:
    """``(T, S)`` scores that make ``path`` the clear best: 0 on it, -20 elsewhere."""
    emit = np.full((len(path), graph.num_states), -20.0, dtype=np.float32)
    emit[np.arange(len(path)), path] = 0.0
    return emit


def test_graph_shape_and_minimum_duration() -> None:
    graph = build_graph(["CAT", "A", "SAT"], LEXICON, TREE)
    assert graph.min_frames == 3 * (3 + 1 + 3)
    # Flat-start path: SIL, K AE T, AH, S AE T, SIL.
    assert len(graph.flat_start_states) == 3 * 9
    assert graph.initial.sum() == 2 and graph.final.sum() == 2  # word or silence at each edge
    assert ((graph.pred >= 0) & (graph.pred <= graph.num_states)).all()
    assert np.isneginf(graph.pred_logp[graph.pred == graph.num_states]).all()


def test_cross_word_contexts_agree() -> None:
    graph = build_graph(["CAT", "A", "SAT"], LEXICON, TREE)
    first_states = np.flatnonzero(graph.hmm_state == 0)
    for s in first_states:
        node = graph.nodes[graph.node_of_state[s]]
        for src in graph.pred[s]:
            if src == graph.num_states or graph.node_of_state[src] == graph.node_of_state[s]:
                continue
            prev = graph.nodes[graph.node_of_state[src]]
            if prev.phone == "SIL":
                assert node.left in ("SIL", None) or node.phone == "SIL"
            elif node.phone == "SIL":
                assert prev.right == "SIL"
            else:
                assert prev.right == node.phone and node.left == prev.phone


def test_viterbi_recovers_planted_path_and_batching_is_invisible() -> None:
    graphs = [build_graph(w, LEXICON, TREE) for w in (["CAT", "SAT"], ["A"], ["SAT", "A", "CAT"])]
    paths = [equal_alignment(g, n) for g, n in zip(graphs, (50, 13, 95))]
    emissions = [planted_emissions(g, p) for g, p in zip(graphs, paths)]
    batched = viterbi_batch(graphs, emissions)
    for g, p, e, res in zip(graphs, paths, emissions, batched):
        np.testing.assert_array_equal(res.states, p)
        single = viterbi_batch([g], [e])[0]
        np.testing.assert_array_equal(single.states, res.states)
        assert single.score == pytest.approx(res.score)


def test_minimum_frames_and_topology() -> None:
    graph = build_graph(["CAT", "SAT"], LEXICON, TREE)
    scores = np.zeros((graph.min_frames, graph.num_states), dtype=np.float32)
    res = viterbi_batch([graph], [scores])[0]
    ali = alignment_from_states("u", graph, res.states, res.score)
    assert [p for p, _, _ in ali.phone_segments] == ["K", "AE", "T", "S", "AE", "T"]
    assert all(end - start == 3 for _, start, end in ali.phone_segments)
    assert [w for w, _, _ in ali.words] == ["CAT", "SAT"]
    too_short = viterbi_batch([graph], [scores[:-1]])[0]
    assert too_short.states is None and np.isneginf(too_short.score)


def test_alignment_is_monotone_with_optional_silence() -> None:
    graph = build_graph(["CAT", "SAT"], LEXICON, TREE)
    rng = np.random.default_rng(1)
    res = viterbi_batch([graph], [rng.normal(size=(80, graph.num_states)).astype(np.float32)])[0]
    ali = alignment_from_states("u", graph, res.states, res.score)
    assert ali.phone_segments[0][1] == 0 and ali.phone_segments[-1][2] == 80
    for (_, _, end), (_, start, _) in zip(ali.phone_segments, ali.phone_segments[1:]):
        assert end == start
    for phone, start, end in ali.phone_segments:
        states = ali.hmm_state[start:end]
        assert end - start >= 3 and (np.diff(states) >= 0).all() and states[0] == 0 and states[-1] == 2, phone
    assert [w for w, _, _ in ali.words] == ["CAT", "SAT"]


def test_empty_transcript_and_oov() -> None:
    with pytest.raises(AsrKdError, match="empty transcript"):
        build_graph([], LEXICON, TREE)
    graph = build_graph(["CAT", "ZZYZX"], LEXICON, TREE)
    assert {n.phone for n in graph.nodes if n.word == 1} == {"SPN"}
    with pytest.raises(AsrKdError, match="too few"):
        equal_alignment(graph, 5)

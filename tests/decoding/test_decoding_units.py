"""Self-loop insertion, score conversion and input checks of the decoder."""

from __future__ import annotations

import numpy as np
import pytest

from asr_kd.cli import main
from asr_kd.decoding.fst_arrays import FstArrays, arrays_to_fst, fst_to_arrays
from asr_kd.decoding.hmm_fst import add_self_loops
from asr_kd.decoding.store_decoding import hmm_log_likelihoods, log_softmax
from asr_kd.utils.errors import AsrKdError


def arrays(start, num_states, arcs, final) -> FstArrays:
    a = np.array(arcs, dtype=np.float64).reshape(-1, 5)
    return FstArrays(start, num_states, a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2].astype(int),
                     a[:, 3].astype(int), a[:, 4], np.array(final, dtype=np.float64))


def test_self_loops_in_place_and_split() -> None:
    # State 1 is entered only by id 1 and state 2 only by id 2: loops go in place. State 3 is
    # entered by ids 1 and 2, and the start state 0 by id 3 (it must stay loop-free): both split.
    graph = arrays(0, 4, [[0, 1, 1, 7, 0.5], [0, 2, 2, 0, 0.0], [1, 2, 2, 0, 0.0],
                          [1, 3, 1, 0, 0.0], [2, 3, 2, 0, 0.0], [3, 0, 3, 0, 0.0]], [np.inf, np.inf, np.inf, 1.0])
    out = add_self_loops(graph, loop_cost=np.array([0.1, 0.2, 0.3]))
    loops = {int(s): (int(i), float(w)) for s, d, i, w in zip(out.src, out.dst, out.ilabel, out.weight) if s == d}
    assert out.num_states == 4 + 3
    assert loops[1] == (1, 0.1) and loops[2] == (2, 0.2) and 0 not in loops and 3 not in loops
    copies = {loops[s][0]: s for s in range(4, 7)}  # loop id -> copy state
    assert set(copies) == {1, 2, 3}
    # copies of state 3 keep its final cost and its arc to (the copy of) state 0; the copy of 0 is not final
    assert out.final[copies[1]] == out.final[copies[2]] == 1.0 and np.isinf(out.final[copies[3]])
    for copy in (copies[1], copies[2]):
        assert [(int(d), int(i)) for s, d, i in zip(out.src, out.dst, out.ilabel) if s == copy and d != s] == [
            (copies[3], 3)]
    assert 3 not in out.dst  # every arc into state 3 moved to a copy
    round_trip = fst_to_arrays(arrays_to_fst(out))
    assert round_trip.num_arcs == out.num_arcs and round_trip.start == 0


def test_log_softmax_and_prior_division() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    lp = log_softmax(logits)
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0)
    priors = np.log(np.array([0.5, 0.25, 0.25]))
    ll = hmm_log_likelihoods(logits, "logits", priors, prior_scale=1.0)
    assert np.allclose(ll, lp - priors, atol=1e-6)
    assert np.allclose(hmm_log_likelihoods(lp, "log-posteriors", priors, prior_scale=0.5), lp - 0.5 * priors,
                       atol=1e-6)
    with pytest.raises(AsrKdError, match="priors have shape"):
        hmm_log_likelihoods(lp, "log-posteriors", priors[:2])


def test_lm_on_dev_text_is_refused(tmp_path, capsys) -> None:
    assert main(["lm", "--exp", str(tmp_path), "--subset", "dev-clean-2"]) == 2
    assert "training transcripts only" in capsys.readouterr().err

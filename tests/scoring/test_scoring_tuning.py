"""Kaldi score.sh style tuning on synthetic N-best lists: the best setting is found and applied."""

from __future__ import annotations

import pytest

from asr_kd.decoding.nbest import Hypothesis, NBestLists
from asr_kd.scoring import tuning
from asr_kd.utils.errors import AsrKdError

HEADER = {"acoustic_scale": 0.1, "prior_scale": 1.0}


def two_way(ref: str, wrong: str, graph_gap: float) -> list[Hypothesis]:
    """The right hypothesis costs ``graph_gap`` more graph cost and 20 less acoustic cost than the wrong one.

    So it wins when ``graph_gap < 20 / lm_weight``, i.e. at LM weights below ``20 / graph_gap``.
    """
    return [Hypothesis(tuple(wrong.split()), 10.0, 120.0), Hypothesis(tuple(ref.split()), 10.0 + graph_gap, 100.0)]


def test_tuning_picks_the_lm_weight_that_gets_most_utterances_right() -> None:
    refs = {"a": "A B", "b": "C D", "c": "E F"}
    # utterance a is right below LMWT 20/3.0 = 6.7, b below 20/1.9 = 10.5, c below 20/1.0 = 20
    lists = NBestLists(HEADER, {"a": two_way("A B", "A X", 3.0), "b": two_way("C D", "C X", 1.9),
                                "c": two_way("E F", "E X", 1.0)})
    results = tuning.sweep(refs, lists, tuning.grid([4.0, 8.0, 12.0, 16.0], [0.0], [1.0]))
    assert [r.errors for r in results] == [0, 1, 2, 2]
    assert tuning.choose(results).setting.lm_weight == 4.0


def test_insertion_penalty_removes_an_insertion_and_ties_go_to_the_first_setting() -> None:
    refs = {"a": "A B"}
    inserted = Hypothesis(("A", "UH", "B"), 10.0, 100.0)
    right = Hypothesis(("A", "B"), 10.4, 100.0)  # costs 0.4 more: a penalty above 0.4 per word flips it
    lists = NBestLists(HEADER, {"a": [inserted, right]})
    results = tuning.sweep(refs, lists, tuning.grid([10.0], [0.0, 0.5, 1.0], [1.0]))
    assert [r.errors for r in results] == [1, 0, 0]
    assert tuning.choose(results).setting.word_ins_penalty == 0.5


def test_a_setting_chosen_on_the_tuning_set_is_applied_to_the_reported_set() -> None:
    tune = NBestLists(HEADER, {"t1": two_way("A B", "A X", 1.0), "t2": two_way("C D", "C X", 1.5)})
    chosen = tuning.choose(tuning.sweep({"t1": "A B", "t2": "C D"}, tune, tuning.grid([10.0, 16.0], [0.0], [1.0])))
    assert chosen.setting.lm_weight == 10.0
    report = NBestLists(HEADER, {"r1": two_way("E F", "E X", 1.5)})
    assert report.best(chosen.setting) == {"r1": "E F"}
    block = tuning.describe(tuning.TUNED, chosen, "tune.jsonl.gz", [chosen])
    assert block["setting"] == {"lm_weight": 10.0, "word_ins_penalty": 0.0, "prior_scale": 1.0}
    assert block["chosen_on"] == "tune.jsonl.gz" and block["chosen_on_wer"] == 0.0


def test_bad_grids_and_unknown_utterances_are_clear_errors() -> None:
    with pytest.raises(AsrKdError, match="must be positive"):
        tuning.grid([0.0], [0.0], [1.0])
    with pytest.raises(AsrKdError, match="at least one"):
        tuning.grid([], [0.0], [1.0])
    with pytest.raises(AsrKdError, match="have no reference"):
        tuning.check_coverage({"a": "A"}, NBestLists(HEADER, {"b": []}), "x.jsonl.gz")

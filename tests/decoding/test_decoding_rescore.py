"""LM rescoring of N-best lists: exact LM costs through G, old LM out, new LM in."""

from __future__ import annotations

import math

import pytest
from decoding_fixtures import TOY_ARPA

from asr_kd.data.lexicon import PHONES
from asr_kd.decoding.lexicon_fst import make_lexicon_fst
from asr_kd.decoding.nbest import Hypothesis, NBestLists
from asr_kd.decoding.rescore import load_grammar, rescore
from asr_kd.utils.errors import AsrKdError

LN10 = math.log(10.0)


@pytest.fixture
def words(toy_lexicon):
    return make_lexicon_fst(toy_lexicon, PHONES).words


def test_lm_cost_is_the_arpa_probability_with_back_off(tmp_path, toy_arpa, words) -> None:
    lm = load_grammar(toy_arpa, words, tmp_path / "cache")
    # <s> TWO backs off: bo(<s>) -0.5 + p(TWO) -1.3; TWO DOGS -0.6; DOGS </s> -0.4
    assert lm.cost(["TWO", "DOGS"]) == pytest.approx(2.8 * LN10, abs=1e-3)
    # <s> THE -0.3, THE CAT -0.4, CAT </s> backs off: bo(CAT) -0.3 + p(</s>) -1.0
    assert lm.cost(["THE", "CAT"]) == pytest.approx(2.0 * LN10, abs=1e-3)
    with pytest.raises(AsrKdError, match="ZEBRA is not in the word table"):
        lm.cost(["ZEBRA"])
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 2 and cached[0].endswith(".fst")
    assert load_grammar(toy_arpa, words, tmp_path / "cache").cost(["TWO", "DOGS"]) == lm.cost(["TWO", "DOGS"])


def test_rescoring_swaps_the_old_lm_for_the_new_and_reranks(tmp_path, toy_arpa, words) -> None:
    new_arpa = tmp_path / "new.arpa"
    new_arpa.write_text(TOY_ARPA.replace("-0.6 TWO DOGS", "-0.6 TO DOGS"))
    old, new = load_grammar(toy_arpa, words, tmp_path), load_grammar(new_arpa, words, tmp_path)
    two, to = ("TWO", "DOGS"), ("TO", "DOGS")
    lists = NBestLists({"acoustic_scale": 0.1, "prior_scale": 1.0}, {
        # graph costs = LM cost + 1.0 of other graph costs; the acoustics slightly prefer TO
        "u": [Hypothesis(two, old.cost(two) + 1.0, 50.0), Hypothesis(to, old.cost(to) + 1.0, 49.0)],
    })
    assert lists.best(lists.search_setting())["u"] == "TWO DOGS"
    rescored, counts = rescore(lists, old, new)
    assert counts == {"hypotheses": 2, "dropped": 0, "utterances_emptied": 0}
    first = rescored.utterances["u"][0]
    assert first.words == to
    assert first.graph_cost == pytest.approx(new.cost(to) + 1.0, abs=1e-4)
    assert first.acoustic_cost == 49.0
    assert rescored.best(rescored.search_setting())["u"] == "TO DOGS"


def test_a_hypothesis_the_old_lm_cannot_produce_means_the_wrong_lm(tmp_path, toy_arpa, words) -> None:
    other = tmp_path / "other.arpa"
    other.write_text(TOY_ARPA.replace("-1.3 TO -0.3\n", "").replace("ngram 1=12", "ngram 1=11"))
    old, new = load_grammar(other, words, tmp_path), load_grammar(toy_arpa, words, tmp_path)
    lists = NBestLists({"acoustic_scale": 0.1, "prior_scale": 1.0}, {"u": [Hypothesis(("TO",), 5.0, 10.0)]})
    with pytest.raises(AsrKdError, match="decoded with another LM"):
        rescore(lists, old, new)
    rescored, counts = rescore(lists, new, old)  # TO is unknown to the new LM: that hypothesis is dropped
    assert counts == {"hypotheses": 1, "dropped": 1, "utterances_emptied": 1}
    assert rescored.utterances["u"] == []
